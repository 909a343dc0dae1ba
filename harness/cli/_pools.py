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
                    "served_by": _served_by(pool, spec.name, spec.short),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    wide = {
        key: max(len(title), *(len(str(r[key])) for r in rows))
        for key, title in (("pool", "pool"), ("model", "model"), ("short", "short"))
    }
    p, m, sh = wide["pool"], wide["model"], wide["short"]
    sv = max(len("live: provider/model id"), *(len(r["served_by"] or "-") for r in rows))
    print(
        f"{'pool':<{p}} {'model':<{m}} {'short':<{sh}} {'params':>8} {'L':>3} {'D':>5} "
        f"{'call units':>10} {'combo':>5}  {'live: provider/model id':<{sv}} (task {task_name})"
    )
    for row in rows:
        mark = "output default" if row["output_default"] else ""
        print(
            f"{row['pool']:<{p}} {row['model']:<{m}} {row['short']:<{sh}} "
            f"{row['params'] / 1e9:>7.2f}B {row['layers']:>3} {row['hidden']:>5} "
            f"{row['call_units']:>10.3f} {row['combo_cost']:>5}  {row['served_by'] or '-':<{sv}} "
            f"{mark}".rstrip()
        )
    return 0


def _served_by(pool: Any, name: str, short: str) -> str | None:
    """``provider/model_id`` from the pool's serve section, as written (not validated here)."""
    serve = pool.live.get("serve") or {}
    entry = serve.get(name, serve.get(short)) if isinstance(serve, dict) else None
    if not isinstance(entry, dict):
        return None
    return f"{entry.get('provider')}/{entry.get('model_id')}"
