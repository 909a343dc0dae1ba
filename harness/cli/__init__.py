"""The ``harness`` command line.

Each command group lives in its own module and registers its sub-parser here. Every
:class:`~harness.errors.UserError` becomes one line on standard error and exit status 2, with
no traceback; anything else is a bug and keeps its traceback.

Example:
    >>> main(["graph", "check", "no-such-graph.json"])  # one line on stderr, then status 2
    2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness import __version__
from harness.cli import (
    _cache,
    _eval,
    _graph,
    _leaderboard,
    _methods,
    _pilot,
    _pools,
    _serve,
    _sim,
    _submit,
    _sweep,
    _tasks,
)
from harness.errors import UserError

__all__ = ["main"]

EXIT_USAGE = 2

_COMMANDS = (
    _eval,
    _pilot,
    _sim,
    _methods,
    _tasks,
    _graph,
    _pools,
    _serve,
    _cache,
    _sweep,
    _submit,
    _leaderboard,
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2, like every user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with one sub-command per command module."""
    parser = _Parser(
        prog="harness",
        description="Benchmark harness for test-time-scaling graph search.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in _COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status: int = args.run(args)
    except UserError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `harness tasks | head` closes the pipe early; that is not an error of ours.
        return 0
    return status
