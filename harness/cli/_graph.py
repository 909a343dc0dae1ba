"""``harness graph check FILE``: validate a graph file and print what it costs.

``harness graph eval FILE`` (score a graph on a task's held-out split) lives in
:mod:`harness.cli._graph_eval`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from harness.cli._common import add_pool_argument, read_pool_graph, resolve_lengths
from harness.cli._graph_eval import add_eval_parser
from harness.errors import BudgetError, UserError
from harness.graph import OUTPUT, Graph
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
            "units, latency estimate and whether it fits the budget level: its FLOPs cap, its "
            "integer combination budget (the output node included) and its node limit. Exit "
            "status: 0 fits, 1 over the budget, 2 invalid."
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
    add_eval_parser(sub)


def run_check(args: argparse.Namespace) -> int:
    """Validate and price one graph file."""
    pool = load_pool(args.pool)
    task_name, lengths = resolve_lengths(args.task)
    if args.budget < 1:
        raise UserError(f"--budget must be a positive integer, got {args.budget}")
    space = Space(pool, lengths, level=args.budget, max_nodes=max(args.budget, 1), task=task_name)
    graph = read_pool_graph(args.file, pool)
    cost = space.cost(graph)
    # Fitting means what a study accepts: the cap, the integer budget and the node limit.
    why_not = space.why_not(graph)
    fits = not why_not
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
        "cap_fits": cost.fits(space.cap),
        "combo_cost": space.combo_cost(graph),
        "combo_budget": space.combo_budget,
        "fits": fits,
        "why_not": why_not,
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
    verdict = "fits" if report["cap_fits"] else "OVER the cap"
    print(f"budget level {report['budget_level']}: cap {report['cap_units']:.2f} units: {verdict}")
    combo_verdict = "fits" if report["combo_cost"] <= report["combo_budget"] else "OVER"
    print(
        f"integer budget: {report['combo_cost']} of {report['combo_budget']} (output node "
        f"included): {combo_verdict}"
    )
    for reason in report["why_not"]:
        print(f"does not fit: {reason}")
    if repaired is not None:
        count = len(repaired.nodes)
        print(f"# repaired ({count} agent node{'' if count == 1 else 's'}):")
        print(repaired.to_text())
    elif report["repair_error"]:
        print(f"repair: {report['repair_error']}")
