"""Arguments and look-ups shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.pool import DEFAULT_POOL
from harness.tasks import load_task


def add_pool_argument(parser: argparse.ArgumentParser, default: str | None = DEFAULT_POOL) -> None:
    """The ``--pool`` option: a pool name or a pool YAML file (None: the protocol's pool)."""
    shown = default if default is not None else "the protocol's"
    parser.add_argument(
        "--pool", default=default, help=f"model pool name or YAML file (default {shown})"
    )


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--cache`` option: the call cache file of the ``live`` and ``replay`` backends."""
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="call cache of live and replay (default $HARNESS_CALL_CACHE or the harness cache)",
    )


def resolve_lengths(task: str) -> tuple[str, tuple[int, int]]:
    """The task's name and its token lengths (A, B) for the FLOPs formula."""
    loaded = load_task(task)
    return loaded.name, loaded.lengths
