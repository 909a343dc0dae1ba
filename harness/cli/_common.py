"""Arguments and look-ups shared by several commands."""

from __future__ import annotations

import argparse

from harness.pool import DEFAULT_POOL
from harness.tasks import load_task


def add_pool_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--pool`` option: a pool name or a pool YAML file."""
    parser.add_argument(
        "--pool",
        default=DEFAULT_POOL,
        help=f"model pool name or YAML file (default {DEFAULT_POOL})",
    )


def resolve_lengths(task: str) -> tuple[str, tuple[int, int]]:
    """The task's name and its token lengths (A, B) for the FLOPs formula."""
    loaded = load_task(task)
    return loaded.name, loaded.lengths
