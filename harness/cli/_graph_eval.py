"""``harness graph eval FILE``: score one graph on a task's held-out split, with its budget.

Any valid graph of the pool is scored, whether or not it fits the budget: a graph over the cap
is reported (``fits: false`` and why), not refused, so a hand-made graph can be compared with
what the search methods find. On ``sim`` the accuracy is the mean over epochs (independent
repetitions, ``EvalContext(seed, epoch)``) with its standard error; ``live`` and ``replay`` run
the same loop, one epoch by default since every epoch repeats every call.

Example:
    >>> from harness.cli import main
    >>> main(["graph", "eval", "no-such-graph.txt", "--task", "math"])  # one line on stderr
    2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends import BACKENDS, Batch, EvalContext, get_backend
from harness.cli._common import add_cache_argument, add_pool_argument, read_pool_graph
from harness.cli._tasks import add_data_arguments
from harness.errors import CallError, ConfigError, DataError, UserError
from harness.executor import GraphRun, run_graph
from harness.graph import Graph
from harness.pool import load_pool
from harness.sim import SimBackend
from harness.space import Space
from harness.study import heldout_subset
from harness.tasks import load_task

SIM_EPOCHS = 20
"""Default epochs on ``sim``: enough for a standard error of about a third of a point."""
OTHER_EPOCHS = 1
"""Default epochs on ``live`` and ``replay``: every epoch repeats every call (and its price)."""
MAX_EPOCHS = 10_000
"""More epochs than this is a typo, not a measurement: the standard error is long converged."""
MAX_SEED = 2**31 - 1
EXIT_RUN_FAILED = 1
"""A call failed after its retries (``live``): reported in one line, nothing else printed."""


def add_eval_parser(sub: Any) -> None:
    """Add ``graph eval`` to the ``graph`` command group's sub-parsers."""
    cmd = sub.add_parser(
        "eval",
        help="score a graph file on a task's held-out split, with its cost and budget",
        description=(
            "Score one graph (JSON or text form) on the task's held-out split: the accuracy "
            "over N epochs (independent repetitions) with its standard error, the FLOPs units, "
            "the latency estimate, the budget level's cap and integer budget, and whether the "
            "graph fits them (a graph over the budget is reported, not refused). Exit status: "
            "0 scored, 1 a call failed, 2 invalid input."
        ),
    )
    cmd.add_argument("file", type=Path, help="graph file: JSON (.json) or the text form")
    cmd.add_argument("--task", required=True, help="task (see `harness tasks`)")
    cmd.add_argument(
        "--backend",
        default="sim",
        help=f"backend: {', '.join(BACKENDS)} (default sim); live makes real, possibly paid calls",
    )
    add_pool_argument(cmd)
    cmd.add_argument(
        "--budget", type=int, default=12, metavar="K", help="budget level k (default 12)"
    )
    cmd.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help=(
            f"independent repetitions (default {SIM_EPOCHS} on sim, {OTHER_EPOCHS} on live and "
            f"replay: each live epoch repeats every call and may cost money; at most "
            f"{MAX_EPOCHS})"
        ),
    )
    cmd.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    cmd.add_argument(
        "--heldout-size",
        type=int,
        default=None,
        metavar="Q",
        help="score the protocol's fixed subset of Q held-out questions (default: all of them)",
    )
    add_data_arguments(cmd)
    add_cache_argument(cmd)
    cmd.add_argument("--json", action="store_true", help="print the report as one JSON object")
    cmd.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """Check every input, then score the graph and print the report."""
    # Every value is checked before any data is loaded or any call made.
    epochs = _epochs(args.epochs, args.backend)
    if args.budget < 1:
        raise UserError(f"--budget must be a positive integer, got {args.budget}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}")
    if args.heldout_size is not None and args.heldout_size < 1:
        raise UserError(f"--heldout-size must be a positive integer, got {args.heldout_size}")
    task = load_task(args.task)
    pool = load_pool(args.pool)
    graph = read_pool_graph(args.file, pool)
    # max_nodes = level: the protocols' node limit (the size of the cap's reference graph).
    space = Space(pool, task.lengths, level=args.budget, task=task.name)
    backend = get_backend(args.backend, args.cache)
    try:
        data = task.load(data_dir=args.data_dir, source=args.source)
        if isinstance(backend, SimBackend):
            # The sim fits its abilities on the held-out items: the very ones scored here.
            backend.bind(task, pool, items=data.heldout)
        else:
            backend.bind(task, pool)  # routes, keys and the cache: fails before any call
        heldout = heldout_subset(data.heldout, args.heldout_size)
        if not heldout:
            raise DataError(f"task {task.name}: the held-out split is empty ({data.source})")
        batch = Batch(heldout, "heldout")
        runs: list[GraphRun] = []
        for epoch in range(epochs):
            try:
                runs.append(
                    run_graph(graph, batch, backend, task, pool, EvalContext(args.seed, epoch))
                )
            except CallError as exc:
                print(f"harness: error: {args.file}: epoch {epoch}: {exc}", file=sys.stderr)
                return EXIT_RUN_FAILED
    finally:
        backend.close()
    report = eval_report(graph, space, runs, args, data.source, len(heldout))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _epochs(given: int | None, backend: str) -> int:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if given is None:
        return SIM_EPOCHS if backend == "sim" else OTHER_EPOCHS
    if not 1 <= given <= MAX_EPOCHS:
        raise UserError(f"--epochs must be between 1 and {MAX_EPOCHS}, got {given}")
    return given


def eval_report(
    graph: Graph,
    space: Space,
    runs: list[GraphRun],
    args: argparse.Namespace,
    data_source: str,
    questions: int,
) -> dict[str, Any]:
    """The JSON report of one ``graph eval``.

    The standard error is the sample standard deviation of the per-epoch accuracies over the
    square root of the number of epochs (None for one epoch: nothing to estimate it from).

    Example:
        >>> import argparse
        >>> from harness.pool import load_pool
        >>> g = Graph.create([(0, "1B", "assistant")], [(0, "output")], "3B")
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> args = argparse.Namespace(task="math", backend="sim", pool="llama3", seed=0)
        >>> r = eval_report(space.pool.resolve(g), space, [], args, "local", 0)
        >>> r["combo_cost"], r["combo_budget"], r["fits"], r["accuracy"]
        (4, 15, True, None)
    """
    cost = space.cost(graph)
    per_epoch = [run.accuracy for run in runs]
    accuracy = float(np.mean(per_epoch)) if per_epoch else None
    stderr = (
        float(np.std(per_epoch, ddof=1) / math.sqrt(len(per_epoch))) if len(per_epoch) > 1 else None
    )
    dollars = [run.dollars for run in runs]
    why_not = space.why_not(graph)
    return {
        "id": graph.id,
        "text": graph.to_text(),
        "graph": graph.to_json(),
        "task": space.task,
        "backend": args.backend,
        "pool": space.pool.name,
        "seed": args.seed,
        "epochs": len(runs),
        "heldout_items": questions,
        "data_source": data_source,
        "accuracy": accuracy,
        "stderr": stderr,
        "per_epoch": per_epoch,
        "flops_units": cost.units,
        "latency_s": cost.latency_s,
        "level": space.level,
        "cap_units": space.cap,
        "combo_cost": space.combo_cost(graph),
        "combo_budget": space.combo_budget,
        "agents": len(graph.nodes),
        "width": graph.width,
        "depth": graph.depth,
        "max_nodes": space.max_nodes,
        "fits": not why_not,
        "why_not": why_not,
        # Dollars only where the backend prices every call (live, replay); cached calls count.
        "dollars": None if not dollars or None in dollars else sum(d or 0.0 for d in dollars),
    }


def format_report(report: dict[str, Any]) -> str:
    """A few aligned lines for a person (``--json`` gives everything)."""
    n = report["epochs"]
    epochs = f"{n} epoch{'s' if n != 1 else ''}"
    if report["stderr"] is None:
        accuracy = f"{report['accuracy'] * 100:.1f}% ({epochs}: no standard error)"
    else:
        accuracy = (
            f"{report['accuracy'] * 100:.1f}% +- {report['stderr'] * 100:.1f} "
            f"(standard error over {epochs})"
        )
    fits = "yes" if report["fits"] else "no (a study would refuse it):"
    rows = [
        ("task", f"{report['task']}: {report['heldout_items']} held-out questions "
                 f"({report['data_source']})"),
        ("backend", f"{report['backend']}, pool {report['pool']}, seed {report['seed']}"),
        ("accuracy", accuracy),
        ("FLOPs", f"{report['flops_units']:.2f} units per question "
                  f"(cap {report['cap_units']:.2f} at budget level {report['level']})"),
        ("integer", f"{report['combo_cost']} of {report['combo_budget']} (output node included)"),
        ("agents", f"{report['agents']} of at most {report['max_nodes']}"),
        ("latency", f"{report['latency_s']:.2f} s per question (estimate, critical path)"),
        ("fits", fits),
    ]  # fmt: skip
    if report["dollars"] is not None:
        rows.append(("cost", f"${report['dollars']:.4f} over {epochs}"))
    width = max(len(label) for label, _ in rows) + 1
    header = (
        f"# graph {report['id']}: {report['agents']} agent nodes + output, "
        f"width {report['width']}, depth {report['depth']}"
    )
    lines = [header, report["text"]]
    lines += [f"{label + ':':<{width}} {value}" for label, value in rows]
    lines += [f"{'':<{width}}   - {reason}" for reason in report["why_not"]]
    return "\n".join(lines)
