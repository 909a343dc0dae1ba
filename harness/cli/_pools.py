"""``harness pools``: the model pools and their models' constants."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.cli._common import resolve_lengths
from harness.cost import Architecture, node_flops, unit_flops
from harness.pool import load_pool, pool_names


def register(commands: Any) -> None:
    """Add the ``pools`` command."""
    pools = commands.add_parser(
        "pools",
        help="list model pools and their models",
        description="List the model pools, each model's constants and its cost per call.",
    )
    pools.add_argument("name", nargs="?", help="show only this pool (name or YAML path)")
    pools.add_argument(
        "--task", default="math", help="task whose lengths price a call (default math)"
    )
    pools.add_argument("--json", action="store_true", help="print as JSON")
    pools.set_defaults(run=run_pools)


def run_pools(args: argparse.Namespace) -> int:
    """Print pools with per-model constants and single-call cost in units."""
    task_name, lengths = resolve_lengths(args.task)
    unit = unit_flops(lengths)
    rows: list[dict[str, Any]] = []
    for name in [args.name] if args.name else pool_names():
        pool = load_pool(name)
        for spec in pool.models:
            rows.append(
                {
                    "pool": pool.name,
                    "model": spec.name,
                    "short": spec.short,
                    "params": spec.params,
                    "layers": spec.layers,
                    "hidden": spec.hidden,
                    "call_units": node_flops(Architecture.of(spec), lengths, 0) / unit,
                    "combo_cost": pool.combo_cost(spec.name, task_name),
                    "output_default": spec.name == pool.output_model,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'pool':<9} {'model':<15} {'short':<6} {'params':>8} {'L':>3} {'D':>5} "
        f"{'call units':>10} {'combo':>5}  (task {task_name})"
    )
    for row in rows:
        mark = "  output default" if row["output_default"] else ""
        print(
            f"{row['pool']:<9} {row['model']:<15} {row['short']:<6} {row['params'] / 1e9:>7.2f}B "
            f"{row['layers']:>3} {row['hidden']:>5} {row['call_units']:>10.3f} "
            f"{row['combo_cost']:>5}{mark}"
        )
    return 0
