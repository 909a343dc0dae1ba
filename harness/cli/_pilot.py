"""``harness pilot``: the paper's pilot experiments on one task, beside the paper's numbers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.backends import Backend, get_backend
from harness.cli._common import add_pool_argument
from harness.cli._tasks import add_data_arguments
from harness.errors import ConfigError, UserError
from harness.pilot import PAPER_COMBOS, run_pilot
from harness.pool import load_pool
from harness.sim import SimBackend
from harness.space import Space
from harness.tasks import load_task


def register(commands: Any) -> None:
    """Add the ``pilot`` command."""
    pilot = commands.add_parser(
        "pilot",
        help="run the pilot experiments (single models, equal-budget combinations, sweeps)",
        description=(
            "Run the paper's pilot experiments on one task through the graph executor: "
            "single-model accuracy, random graphs at equal budget per model combination, "
            "width and depth sweeps and a width x depth grid. Prints the tables (with the "
            "paper's numbers beside) and writes plots as PNG and SVG under --out."
        ),
    )
    pilot.add_argument("--task", required=True, help="task name (math, gsm8k, mmlu, humaneval)")
    pilot.add_argument("--backend", default="sim", help="backend (default sim)")
    add_pool_argument(pilot)
    add_data_arguments(pilot)
    pilot.add_argument(
        "--combos",
        default=",".join(PAPER_COMBOS),
        help=f"comma-separated model combinations (default {','.join(PAPER_COMBOS)})",
    )
    pilot.add_argument("--seed", type=int, default=0, help="seed of graphs and answers")
    pilot.add_argument(
        "--graphs", type=int, default=32, help="random graphs per combination (default 32)"
    )
    pilot.add_argument(
        "--out", type=Path, default=None, help="plot folder (default results/pilot/<task>/)"
    )
    pilot.add_argument("--json", action="store_true", help="print the tables as JSON")
    pilot.set_defaults(run=run_pilot_command)


def _backend(name: str) -> Backend:
    return SimBackend() if name == "sim" else get_backend(name)


def _prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    probe = out / ".harness-write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {out}: not writable ({exc.strerror or exc})") from None
    return out


def run_pilot_command(args: argparse.Namespace) -> int:
    """Check every argument, run the pilot, print the tables and write the plots."""
    task = load_task(args.task)
    pool = load_pool(args.pool)
    if args.graphs < 1:
        raise ConfigError(f"--graphs must be a positive integer, got {args.graphs}")
    space = Space(pool, task.lengths, level=9, max_nodes=64, task=task.name)
    combos = [part.strip() for part in args.combos.split(",") if part.strip()]
    if not combos:
        raise ConfigError("--combos: expected at least one combination, like 3x3B,1x8B")
    labels = [space.parse_combo(text).label for text in combos]
    backend = _backend(args.backend)
    # An unwritable --out fails before any work is done, and before anything is written.
    out = args.out if args.out is not None else Path("results") / "pilot" / task.name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    out = _prepare_out(out)
    items = task.load(args.data_dir, args.source).heldout
    if isinstance(backend, SimBackend):
        # The simulator calibrates on the held-out items: the very ones loaded here.
        backend.bind(task, pool, items=items)
    else:
        backend.bind(task, pool)
    tables = run_pilot(
        task, pool, backend, items, seed=args.seed, graphs=args.graphs, combos=labels
    )
    from harness._pilot_plots import write_plots

    files = write_plots(tables, out)
    (out / "pilot.json").write_text(json.dumps(tables, indent=2) + "\n", encoding="utf-8")
    tables["files"] = [str(path) for path in [*files, out / "pilot.json"]]
    if args.json:
        print(json.dumps(tables, indent=2))
    else:
        print(format_tables(tables))
    return 0


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def format_tables(tables: dict[str, Any]) -> str:
    """The pilot tables as text, the paper's numbers beside the measured ones."""
    s = tables["settings"]
    lines = [
        f"pilot: task {tables['task']}, pool {tables['pool']}, backend {tables['backend']}, "
        f"{tables['items']} held-out items, seed {tables['seed']}",
        f"reference: {tables['paper'].get('source') or 'none for this pool'}",
        "",
        "single model (graph: 0 | m | assistant -> output | m)",
        f"  {'model':<15} {'measured':>8} {'paper':>6}",
    ]
    for row in tables["single"]:
        lines.append(f"  {row['model']:<15} {row['accuracy']:>8.1f} {_cell(row['paper']):>6}")
    lines += [
        "",
        f"random graphs at equal budget ({s['graphs']} graphs each, edge probability "
        f"{s['edge_prob']}, fuser probability {s['fuser_prob']}, output node {s['output_model']})",
        f"  {'combination':<15} {'measured':>8} {'paper':>6} {'sd':>6}",
    ]
    for row in tables["combos"]:
        lines.append(
            f"  {row['combo']:<15} {row['accuracy']:>8.1f} {_cell(row['paper']):>6} "
            f"{row['sd_over_graphs']:>6.1f}"
        )
    for key, label in (("width", "width: w parallel assistants"), ("depth", "depth: chain of d")):
        lines += ["", f"{label} (every node the model named)"]
        lines.append("  model " + " ".join(f"{x:>5}" for x in s["sweep"]))
        for model, curve in tables[key].items():
            lines.append(f"  {model:<5} " + " ".join(f"{v:>5.1f}" for v in curve))
    for model, grid in tables["grid"].items():
        lines += ["", f"grid {model}: rows width, columns depth (layered, all-to-all)"]
        lines.append("  w\\d  " + " ".join(f"{x:>5}" for x in s["grid"]))
        for w, row in zip(s["grid"], grid, strict=True):
            lines.append(f"  {w:<5} " + " ".join(f"{v:>5.1f}" for v in row))
    ins = tables["insights"]
    lines += [
        "",
        f"best width: {ins['best_width']}; best depth: {ins['best_depth']}",
        f"best depth by width: {ins['best_depth_by_width']}",
        f"best width by depth: {ins['best_width_by_depth']}",
        f"best combination: {ins['best_combo']}",
    ]
    return "\n".join(lines)
