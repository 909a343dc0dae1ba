"""``harness tasks``: the tasks, their split sizes and the source that served them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.tasks import SOURCES, load_task, task_names


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--source``, shared by every command that loads task items."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local data folder (layout of shared/data); default $HARNESS_DATA_DIR",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help="use only this data source (default: local if given, then hub, then mirror)",
    )


def register(commands: Any) -> None:
    """Add the ``tasks`` command."""
    tasks = commands.add_parser(
        "tasks",
        help="list tasks with split sizes and the data source that served them",
        description=(
            "Load every task (or the named ones) and print its item counts per split and the "
            "source that served them. Loading warms the local item cache."
        ),
    )
    tasks.add_argument("names", nargs="*", metavar="TASK", help="tasks to load (default: all)")
    add_data_arguments(tasks)
    tasks.add_argument("--json", action="store_true", help="print as JSON")
    tasks.set_defaults(run=run_tasks)


def run_tasks(args: argparse.Namespace) -> int:
    """Load the tasks and print one row each; a task that fails to load is one error line."""
    names = args.names or task_names()
    rows: list[dict[str, Any]] = []
    failures = 0
    for name in names:
        task = load_task(name)
        try:
            data = task.load(data_dir=args.data_dir, source=args.source)
        except UserError as exc:
            failures += 1
            print(f"harness: error: {name}: {exc}", file=sys.stderr)
            continue
        rows.append(
            {
                "task": task.name,
                "search": len(data.search),
                "heldout": len(data.heldout),
                "source": data.source,
                "scheme": data.scheme,
                "lengths": list(task.lengths),
                "description": task.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(f"{'task':<10} {'search':>7} {'held-out':>8}  {'A, B':<9} {'source':<16} scheme")
        for row in rows:
            lengths = f"{row['lengths'][0]}, {row['lengths'][1]}"
            print(
                f"{row['task']:<10} {row['search']:>7} {row['heldout']:>8}  {lengths:<9} "
                f"{row['source']:<16} {row['scheme']}"
            )
    return 2 if failures else 0
