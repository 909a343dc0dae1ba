"""``harness methods``: the registered search methods."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.methods import ENTRY_POINT_GROUP, method_class, method_names


def register(commands: Any) -> None:
    """Add the ``methods`` command."""
    cmd = commands.add_parser(
        "methods",
        help="list the registered search methods",
        description=(
            f"List every method registered under the {ENTRY_POINT_GROUP!r} entry-point group "
            "(built-in and installed third-party ones) with a one-line description."
        ),
    )
    cmd.add_argument("--json", action="store_true", help="print as JSON")
    cmd.set_defaults(run=run_methods)


def run_methods(args: argparse.Namespace) -> int:
    """Print one line per method."""
    rows = []
    for name in method_names():
        cls = method_class(name)
        rows.append(
            {
                "name": name,
                "version": cls.version,
                "description": cls.description,
                "class": f"{cls.__module__}:{cls.__qualname__}",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        print(f"{row['name']:<{width}}  v{row['version']}  {row['description']}")
    return 0
