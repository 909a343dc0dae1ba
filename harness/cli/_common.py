"""Arguments and look-ups shared by several commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.errors import GraphError, UserError
from harness.graph import Graph, from_json, parse_text
from harness.pool import DEFAULT_POOL, Pool
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


def read_graph(path: Path) -> Graph:
    """Read a graph from a JSON file or a text-form file.

    Raises:
        UserError: the file cannot be read, is not UTF-8 text, or holds no valid graph (the
            message names the file).

    Example:
        >>> read_graph(Path("no-such-graph.txt"))
        Traceback (most recent call last):
        ...
        harness.errors.UserError: no-such-graph.txt: cannot read (No such file or directory)
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        except RecursionError:  # a hostile file of deeply nested brackets
            raise GraphError(f"{path}: invalid JSON: nested too deeply") from None
        return from_json(data, where=str(path))
    return parse_text(text, where=str(path))


def read_pool_graph(path: Path, pool: Pool) -> Graph:
    """Read a graph file and resolve its models against ``pool`` (full names).

    Raises:
        UserError: as :func:`read_graph`, or a model outside the pool (naming the file and
            the node).
    """
    graph = read_graph(path)
    try:
        return pool.resolve(graph)
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from None
