"""``harness sim check|optimum``: the simulator's stated error, and the world's known optimum.

``sim check`` measures every anchor of ``tasks/sim/<pool>.anchors.yaml`` (docs/sim.md, "The
sim's error") and prints it with its target, tolerance, the sim's value and pass or fail, in
sample (fitted) apart from held out, with the error of each group. ``sim optimum`` runs the
documented optimum search (:mod:`harness.sim._optimum`) and prints the graph, or compares it
with the shipped one (``--write`` replaces the shipped one).

Example:
    >>> from harness.cli import main
    >>> main(["sim", "check", "--pool", "qwen2.5"])  # no sim parameters: one line, status 2
    2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from harness.cli._common import add_pool_argument
from harness.cli._tasks import add_data_arguments
from harness.errors import ConfigError
from harness.pool import load_pool
from harness.sim._check import Verdict, check_anchors, load_anchors
from harness.sim._params import load_sim_params
from harness.tasks import load_task

TASKS = ("math", "gsm8k", "mmlu", "humaneval")


def register(commands: Any) -> None:
    """Add the ``sim`` command group."""
    sim = commands.add_parser(
        "sim",
        help="the simulator's error (check) and its known optimum per task (optimum)",
        description="Inspect the sim backend: its anchors and its known optimum.",
    )
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", parser_class=type(sim))
    sub.required = True
    check = sub.add_parser(
        "check",
        help="every anchor the sim is held to, with the sim's value and pass or fail",
        description=(
            "Measure every anchor of tasks/sim/<pool>.anchors.yaml: the paper's single-model "
            "and equal-budget figures and the literature's findings on collaboration, each "
            "with its target, tolerance, the sim's value and pass or fail; anchors the "
            "parameters were fitted on apart from held-out ones. Exit status 0 if every anchor "
            "passes, 1 if one fails, 2 on bad input."
        ),
    )
    check.add_argument("--task", choices=TASKS, default=None, help="one task (default: all)")
    add_pool_argument(check)
    add_data_arguments(check)
    check.add_argument("--seed", type=int, default=0, help="study seed of the measurements")
    check.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    check.set_defaults(run=run_check)
    optimum = sub.add_parser(
        "optimum",
        help="search for the best graph of a task at a budget level (the world's optimum)",
        description=(
            "Run the documented optimum search (every model multiset with each output model "
            "times a family of layered structures, successive halving, then local search, "
            "all scored by expected accuracy) and print the best graph beside the shipped "
            "one (tasks/sim/optimum/<pool>.json); --write replaces the shipped entry."
        ),
    )
    optimum.add_argument("--task", choices=TASKS, required=True, help="the task")
    add_pool_argument(optimum)
    add_data_arguments(optimum)
    optimum.add_argument("--budget", type=int, default=12, metavar="K", help="level (12)")
    optimum.add_argument("--seed", type=int, default=0, help="seed of the search")
    optimum.add_argument("--write", action="store_true", help="write it as the shipped optimum")
    optimum.add_argument("--json", action="store_true", help="print the result as JSON")
    optimum.set_defaults(run=run_optimum)


def _bound(task_name: str, args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    from harness.sim import SimBackend

    task = load_task(task_name)
    pool = load_pool(args.pool)
    items = task.load(args.data_dir, args.source).heldout
    backend = SimBackend()
    backend.bind(task, pool, items=items)
    return task, pool, items, backend


def _summary(verdicts: Sequence[Verdict], fitted: bool) -> str:
    group = [v for v in verdicts if v.anchor.fitted == fitted]
    if not group:
        return f"{'fitted' if fitted else 'held out'}: no anchors"
    passed = sum(v.passed for v in group)
    within = [v for v in group if v.anchor.check == "within"]
    parts = [f"{'fitted' if fitted else 'held out'}: {passed}/{len(group)} pass"]
    if within:
        rms = math.sqrt(sum(v.error**2 for v in within) / len(within))
        parts.append(f"rms error of the {len(within)} targeted values {rms:.2f}")
    worst = max(group, key=lambda v: abs(v.error))
    if worst.error:
        parts.append(f"largest miss {worst.anchor.id} ({worst.error:+.2f})")
    else:
        parts.append("every value within its target or bound")
    return "; ".join(parts)


def run_check(args: argparse.Namespace) -> int:
    """``harness sim check``: print every anchor's verdict; exit 1 if one fails."""
    load_sim_params(args.pool)  # a pool without parameters is one line, before any work
    anchors = load_anchors(args.pool)
    names = [args.task] if args.task else [t for t in TASKS if any(a.task == t for a in anchors)]
    verdicts: list[Verdict] = []
    for name in names:
        task, pool, items, backend = _bound(name, args)
        verdicts += check_anchors(task, pool, items, anchors, backend=backend, seed=args.seed)
    if args.json:
        print(json.dumps([v.to_json() for v in verdicts], indent=2))
    else:
        print(f"{'':4} {'anchor':30} {'fit':>4} {'sim':>8}  {'wanted':<14} source")
        for v in verdicts:
            a = v.anchor
            print(
                f"{'ok' if v.passed else 'FAIL':4} {a.id:30} {'yes' if a.fitted else 'no':>4} "
                f"{v.value:8.2f}  {a.wanted:<14} {a.source}"
            )
        print(_summary(verdicts, True))
        print(_summary(verdicts, False))
    return 0 if all(v.passed for v in verdicts) else 1


def run_optimum(args: argparse.Namespace) -> int:
    """``harness sim optimum``: search, print beside the shipped optimum, optionally write."""
    from harness.sim._optimum import find_optimum, load_optimum, save_optimum

    if args.budget < 1 or args.budget > 100:
        raise ConfigError(f"--budget: expected a level in 1..100, got {args.budget}")
    task, pool, items, backend = _bound(args.task, args)

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    found = find_optimum(
        task, pool, backend, items, level=args.budget, seed=args.seed, progress=progress
    )
    shipped = None
    with contextlib.suppress(ConfigError):  # no shipped optimum yet: nothing to compare
        shipped = load_optimum(pool, task)
    if args.write:
        save_optimum(found)
    if args.json:
        print(json.dumps({"found": found.to_json(), "shipped": shipped and shipped.to_json()}))
        return 0
    print(f"optimum: task {task.name}, pool {pool.name}, level {found.level}, seed {found.seed}")
    print(found.graph.to_text())
    print(
        f"expected accuracy {100 * found.accuracy:.2f} ± {100 * found.stderr:.2f} "
        f"({found.evals} question evaluations, {found.scored} graphs scored)"
    )
    if shipped is not None:
        same = "the same graph" if shipped.graph.id == found.graph.id else "another graph"
        print(f"shipped: {100 * shipped.accuracy:.2f} ± {100 * shipped.stderr:.2f} ({same})")
    return 0
