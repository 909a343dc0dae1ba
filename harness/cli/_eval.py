"""``harness eval``: run one method on one task for several seeds under a protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from harness.agents import DEFAULT_AGENT, load_agent, parse_agent_spec
from harness.backends import BACKENDS
from harness.cli._common import add_cache_argument, add_pool_argument
from harness.cli._tasks import add_data_arguments
from harness.errors import ConfigError, UserError
from harness.methods import method_class
from harness.paths import atomic_write_text
from harness.protocol import load_protocol
from harness.report import plot_curve, summarize
from harness.study import Bench, StudyResult

MAX_SEEDS = 1000


def register(commands: Any) -> None:
    """Add the ``eval`` command."""
    cmd = commands.add_parser(
        "eval",
        help="run a search method on a task under the standard protocol",
        description=(
            "Run one search method on one task for several seeds under a protocol (default: "
            "the paper's: 40 question evaluations in batches of 3, budget level 12). Prints the "
            "held-out accuracy with a 95%% bootstrap CI over seeds and the found graph, and "
            "writes traces, a JSON summary and the sample-efficiency curve (PNG and SVG)."
        ),
    )
    cmd.add_argument("--method", required=True, help="search method (see `harness methods`)")
    cmd.add_argument("--task", required=True, help="task (see `harness tasks`)")
    cmd.add_argument("--backend", default="sim", help="backend: sim (default), live, replay")
    cmd.add_argument("--seeds", type=int, default=None, help="number of seeds (default: protocol)")
    cmd.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    cmd.add_argument(
        "--budget",
        type=int,
        default=None,
        metavar="Q",
        help="search budget in question evaluations",
    )
    cmd.add_argument("--protocol", default="paper", help="protocol name or YAML (default paper)")
    cmd.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option (repeatable; VALUE is read as YAML: 4, 0.3, 3B, null)",
    )
    cmd.add_argument(
        "--agent",
        default=None,
        metavar="SPEC",
        help=(
            "the agent LLM-based methods consult: rules (offline, the default), openai:MODEL, "
            "openai:MODEL@http://HOST:PORT/v1, anthropic:MODEL"
        ),
    )
    add_pool_argument(cmd, default=None)
    add_data_arguments(cmd)
    cmd.add_argument(
        "--out", type=Path, default=None, help="output folder (default results/runs/...)"
    )
    add_cache_argument(cmd)
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="print the most calls, tokens and dollars the studies can need, then stop",
    )
    cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    cmd.set_defaults(run=run_eval)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs into method options (values read as YAML scalars)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--option {pair!r}: VALUE is not a valid YAML scalar") from None
    return options


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that exists with files in it, or cannot be created."""
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()):
            raise UserError(f"--out {out}: folder is not empty (choose a new one)")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"--out {out}: folder is not writable")
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: cannot create it ({parent} is not a writable folder)")


def run_eval(args: argparse.Namespace) -> int:
    """Validate every input, then run the studies and report."""
    # Everything that can be wrong is checked before anything is written.
    if args.backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {args.backend!r} (expected one of {', '.join(BACKENDS)})"
        )
    cls = method_class(args.method)
    options = parse_options(args.option)
    agent = None
    if cls.uses_agent:
        agent = load_agent(args.agent or DEFAULT_AGENT)
        agent.check()  # a missing key or an unreachable server fails here, before any budget
    elif args.agent is not None:
        parse_agent_spec(args.agent)
        print(
            f"harness: note: method {args.method!r} uses no agent; --agent ignored", file=sys.stderr
        )
    protocol = load_protocol(args.protocol)
    if args.budget is not None:
        if args.budget < 1:
            raise UserError(
                f"--budget must be a positive number of question evaluations, got {args.budget}"
            )
        protocol = protocol.with_budget(args.budget)
    seeds = protocol.seeds if args.seeds is None else args.seeds
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    if args.seed_start < 0 or args.seed_start + seeds > 2**31:
        raise UserError(
            f"--seed-start must be between 0 and {2**31 - seeds}, got {args.seed_start}"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # A method given as FILE.py:Class is named by its class's `name` (as its traces are).
    out: Path = args.out or Path("results") / "runs" / f"{args.task}-{cls.name}-{stamp}"
    if not args.dry_run:
        check_out_dir(out)
    # Binding the backend checks routes, keys and the cache: a bad pool fails before any call.
    bench = Bench(args.task, protocol, args.backend, args.data_dir, args.pool, args.cache)
    try:
        # A method whose options are wrong fails here, once, before any folder is made.
        from harness.methods import load_method

        load_method(args.method, options)
        if args.dry_run:
            from harness.plan import format_plan, study_plan

            plan = study_plan(bench, seeds)
            print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
            return 0
        return _run_studies(args, bench, protocol, options, agent, seeds, out)
    finally:
        bench.backend.close()


def _run_studies(
    args: argparse.Namespace,
    bench: Bench,
    protocol: Any,
    options: dict[str, Any],
    agent: Any,
    seeds: int,
    out: Path,
) -> int:

    out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(seeds, protocol.budget.question_evals)
    results: list[StudyResult] = []
    for index, seed in enumerate(range(args.seed_start, args.seed_start + seeds)):
        progress.study(index, seed)
        result = bench.run(
            args.method,
            options,
            seed=seed,
            out_dir=out / "studies" / f"seed-{seed}",
            agent=agent,
            on_progress=progress.update,
        )
        results.append(result)
    progress.done()
    header = {
        "method": results[0].method,
        "method_options": results[0].manifest["method"]["options"],
        "task": bench.task.name,
        "backend": bench.backend.name,
        "agent": results[0].agent
        and {
            "spec": results[0].agent["spec"],
            "is_llm": results[0].agent["is_llm"],
        },
        "pool": bench.pool.name,
        "protocol": protocol.to_json(),
        "data_source": bench.data.source,
        "heldout_items": len(bench.heldout),
    }
    summary = summarize(results, header)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plots = plot_curve(summary, out / "curve")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, results, out, plots)
    return 0


def _print_summary(
    summary: dict[str, Any], results: list[StudyResult], out: Path, plots: list[Path]
) -> None:
    acc = summary["heldout_accuracy"]
    n = len(results)
    print(
        f"{summary['method']} on {summary['task']} ({summary['backend']} backend, pool "
        f"{summary['pool']}, {n} seed{'s' if n > 1 else ''}, "
        f"protocol {summary['protocol']['name']})"
    )
    print(
        f"held-out accuracy: {acc['mean'] * 100:.1f}%  "
        f"(95% bootstrap CI {acc['low'] * 100:.1f} to {acc['high'] * 100:.1f}, "
        f"{summary['heldout_items']} held-out questions)"
    )
    print(
        f"found graph: {summary['flops_units']:.1f} FLOPs units per question, "
        f"latency {summary['latency_s']:.2f} s (means over seeds)"
    )
    print(
        f"question evaluations used: {summary['evals_used']:.0f} of "
        f"{summary['protocol']['question_evals']} per study; refusals {summary['refusals']}, "
        f"events {summary['events']}"
    )
    if summary["agent"] is not None:
        kind = "an LLM" if summary["agent"]["is_llm"] else "offline rules, not an LLM"
        totals = summary["agent_ledger"]
        cost = "unknown" if totals["cost_usd"] is None else f"${totals['cost_usd']:.4f}"
        print(
            f"agent: {summary['agent']['spec']} ({kind}); {totals['calls']} calls, "
            f"{totals['prompt_tokens']} tokens in, {totals['completion_tokens']} out, cost {cost}"
        )
    calls = summary.get("calls_ledger")
    if calls is not None:
        cost = "unknown" if calls["search_dollars"] is None else f"${calls['search_dollars']:.4f}"
        print(
            f"search calls: {calls['search_calls']} ({calls['search_cache_hits']} from the call "
            f"cache, charged as made), cost {cost}"
        )
    first = results[0]
    distinct = summary["distinct_graphs"]
    print(
        f"graph found with seed {first.seed} ({first.heldout_accuracy * 100:.1f}% held out; "
        f"{distinct} distinct graph{'s' if distinct > 1 else ''} over {n} seeds):"
    )
    print(first.graph.to_text())
    print(f"wrote {out}/summary.json, {', '.join(str(p) for p in plots)} and {n} trace(s)")


class _Progress:
    """A one-line progress display on standard error (a line per study when not a terminal)."""

    def __init__(self, studies: int, budget: int) -> None:
        self.studies = studies
        self.budget = budget
        self.index = 0
        self.seed = 0
        self.tty = sys.stderr.isatty()

    def study(self, index: int, seed: int) -> None:
        self.index, self.seed = index, seed
        if not self.tty:
            print(f"study {index + 1}/{self.studies} (seed {seed})", file=sys.stderr, flush=True)

    def update(self, used: int, total: int) -> None:
        if not self.tty:
            return
        done = (self.index * total + used) / (self.studies * total)
        bar = "#" * int(done * 30)
        print(
            f"\r[{bar:<30}] study {self.index + 1}/{self.studies} seed {self.seed}: "
            f"{used}/{total} question evaluations",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)
