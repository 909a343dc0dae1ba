"""``harness cache``: the shared call cache of real LLM calls (stats, export, import).

The cache file is ``--cache PATH``, else ``$HARNESS_CALL_CACHE``, else ``calls.sqlite`` in the
harness cache folder (``$HARNESS_CACHE_DIR``, see :mod:`harness.paths`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.cache import CallCache, default_cache_path


def register(commands: Any) -> None:
    """Add the ``cache`` command and its ``stats``, ``export`` and ``import`` sub-commands."""
    cache = commands.add_parser(
        "cache",
        help="inspect, export and import the shared cache of real LLM calls",
        description=(
            "The call cache replays every real LLM call made before. The file is --cache, "
            "else $HARNESS_CALL_CACHE, else calls.sqlite in the harness cache folder."
        ),
    )
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    actions.required = True
    stats = actions.add_parser("stats", help="entries, tokens, dollars and latency per model")
    stats.add_argument("--json", action="store_true", help="print as JSON")
    stats.set_defaults(run=run_stats)
    export = actions.add_parser("export", help="write every valid entry to a JSON Lines file")
    export.add_argument("file", type=Path, metavar="FILE", help="output file (.gz: gzipped)")
    export.set_defaults(run=run_export)
    import_ = actions.add_parser("import", help="add the entries of an exported file")
    import_.add_argument("file", type=Path, metavar="FILE", help="a file written by export")
    import_.set_defaults(run=run_import)
    for parser in (stats, export, import_):
        parser.add_argument(
            "--cache",
            type=Path,
            default=None,
            metavar="PATH",
            help="the cache file (default $HARNESS_CALL_CACHE, else calls.sqlite in the cache dir)",
        )


def _warn_corrupt(cache: CallCache, count: int) -> None:
    # Corrupt rows are never served; the user should know that those calls will be paid again.
    if count:
        first_key, reason = cache.corrupt[0]
        print(
            f"harness: warning: {cache.path}: skipped {count} corrupt row(s) "
            f"(first {first_key[:12]}: {reason}); they are never served",
            file=sys.stderr,
        )


def run_stats(args: argparse.Namespace) -> int:
    """Print the cache's totals per (provider, model)."""
    with CallCache(args.cache or default_cache_path(), create=False) as cache:
        stats = cache.stats()
        _warn_corrupt(cache, stats["corrupt"])
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['path']}: {stats['entries']} entries, {stats['bytes'] / 1e6:.2f} MB")
    print(
        f"{'provider':<12} {'model':<28} {'entries':>8} {'prompt tok':>11} {'output tok':>11} "
        f"{'dollars':>10} {'latency s':>10}"
    )
    for row in stats["models"]:
        dollars = "unknown" if row["dollars"] is None else f"{row['dollars']:.4f}"
        print(
            f"{row['provider']:<12} {row['model']:<28} {row['entries']:>8} "
            f"{row['prompt_tokens']:>11} {row['output_tokens']:>11} {dollars:>10} "
            f"{row['latency_s']:>10.1f}"
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the cache to a JSON Lines file."""
    with CallCache(args.cache or default_cache_path(), create=False) as cache:
        written = cache.export(args.file)
        _warn_corrupt(cache, len(cache.corrupt))
    print(f"exported {written} entries from {cache.path} to {args.file}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Add an exported file's entries to the cache (created if absent)."""
    with CallCache(args.cache or default_cache_path()) as cache:
        added, present = cache.import_(args.file)
    print(f"imported {args.file} into {cache.path}: {added} added, {present} already present")
    return 0
