"""``harness graph check FILE``: validate a graph file and print what it costs."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from harness.cli._common import add_pool_argument, resolve_lengths
from harness.errors import BudgetError, GraphError, UserError
from harness.graph import OUTPUT, Graph, from_json, parse_text
from harness.pool import load_pool
from harness.space import Space

EXIT_OVER_BUDGET = 1


def register(commands: Any) -> None:
    """Add the ``graph`` command group."""
    graph = commands.add_parser("graph", help="inspect collaboration graphs")
    sub = graph.add_subparsers(dest="graph_command", metavar="COMMAND")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="validate a graph file (JSON or text form) and print its cost",
        description=(
            "Validate a graph given as JSON or in the text form, print its text form, FLOPs "
            "units, latency estimate and whether it fits the budget cap. Exit status: 0 fits, "
            "1 over the cap, 2 invalid."
        ),
    )
    check.add_argument("file", type=Path, help="graph file: JSON (.json) or the text form")
    check.add_argument(
        "--task", default="math", help="task whose lengths A, B apply (default math)"
    )
    check.add_argument(
        "--budget", type=int, default=12, metavar="K", help="budget level k (default 12)"
    )
    add_pool_argument(check)
    check.add_argument(
        "--repair", action="store_true", help="also print the graph repaired to the cap"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=run_check)


def read_graph(path: Path) -> Graph:
    """Read a graph from a JSON file or a text-form file.

    Raises:
        UserError: the file cannot be read, or holds no valid graph (naming the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        return from_json(data, where=str(path))
    return parse_text(text, where=str(path))


def run_check(args: argparse.Namespace) -> int:
    """Validate and price one graph file."""
    pool = load_pool(args.pool)
    task_name, lengths = resolve_lengths(args.task)
    if args.budget < 1:
        raise UserError(f"--budget must be a positive integer, got {args.budget}")
    space = Space(pool, lengths, level=args.budget, max_nodes=max(args.budget, 1), task=task_name)
    graph = pool.resolve(read_graph(args.file))
    cost = space.cost(graph)
    fits = cost.fits(space.cap)
    repaired: Graph | None = None
    repair_error: str | None = None
    if args.repair and not fits:
        try:
            repaired = space.repair(graph, random.Random(0))
        except BudgetError as exc:
            repair_error = str(exc)
    report = {
        "id": graph.id,
        "text": graph.to_text(),
        "graph": graph.to_json(),
        "agents": len(graph.nodes),
        "width": graph.width,
        "depth": graph.depth,
        "dropped": list(graph.dropped),
        "task": task_name,
        "lengths": list(lengths),
        "flops_units": cost.units,
        "per_node_units": {
            ("output" if k == OUTPUT else str(k)): v for k, v in cost.per_node.items()
        },
        "latency_s": cost.latency_s,
        "budget_level": args.budget,
        "cap_units": space.cap,
        "fits": fits,
        "repaired": repaired.to_json() if repaired else None,
        "repair_error": repair_error,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(graph, report, repaired)
    return 0 if fits else EXIT_OVER_BUDGET


def _print_report(graph: Graph, report: dict[str, Any], repaired: Graph | None) -> None:
    print(
        f"# graph {report['id']}: {report['agents']} agent nodes + output, "
        f"width {report['width']}, depth {report['depth']}"
    )
    print(graph.to_text())
    if report["dropped"]:
        dropped = ", ".join(map(str, report["dropped"]))
        print(f"dropped (no path to the output node): {dropped}")
    per_node = ", ".join(f"{k}: {v:.2f}" for k, v in report["per_node_units"].items())
    print(f"task {report['task']} (A={report['lengths'][0]}, B={report['lengths'][1]})")
    print(f"FLOPs: {report['flops_units']:.2f} units of the 1B call  ({per_node})")
    print(f"latency estimate: {report['latency_s']:.2f} s (critical path)")
    verdict = "fits" if report["fits"] else "OVER the cap"
    print(f"budget level {report['budget_level']}: cap {report['cap_units']:.2f} units: {verdict}")
    if repaired is not None:
        count = len(repaired.nodes)
        print(f"# repaired ({count} agent node{'' if count == 1 else 's'}):")
        print(repaired.to_text())
    elif report["repair_error"]:
        print(f"repair: {report['repair_error']}")
