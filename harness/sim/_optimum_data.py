"""The world's known optimum as data: :class:`Optimum` and its shipped file.

:mod:`harness.sim._optimum` finds it; this module holds the result and reads and writes the
shipped file, ``tasks/sim/optimum/<pool>.json``: one entry per task, the graph in its JSON
form, written atomically.

Example:
    >>> opt = load_optimum("llama3", "math")
    >>> opt.level, 0 < opt.accuracy < 1
    (12, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, GraphError
from harness.graph import Graph, from_json
from harness.paths import atomic_write_text, tasks_dir
from harness.pool import Pool
from harness.tasks import Task

__all__ = ["SCHEMA", "Optimum", "ShapeScore", "load_optimum", "optimum_path", "save_optimum"]

SCHEMA = 1
"""The optimum file's schema version."""


@dataclass(frozen=True)
class ShapeScore:
    """The best expected accuracy found among graphs of one width and depth."""

    width: int
    depth: int
    accuracy: float


@dataclass(frozen=True)
class Optimum:
    """The best graph found for a task, pool and budget level (see the module docstring).

    Attributes:
        task: the task's name.
        pool: the pool's name.
        level: the budget level k.
        graph: the graph, models by full name.
        accuracy: its expected accuracy (a fraction) on the whole held-out split, on epochs
            from :data:`REPORT_EPOCH` of ``seed``.
        stderr: the standard error of ``accuracy`` (over epochs).
        evals: question evaluations behind ``accuracy`` (epochs times questions).
        seed: the search's and the evaluations' seed.
        cache_key: the sim parameters' key (``backend.describe()["cache_key"]``): an optimum
            found under other parameters is stale.
        scored: how many distinct graphs the search scored.
        items: held-out questions behind ``accuracy``.
        by_shape: per (width, depth) met in the search, the best accuracy found there (on the
            search batch, sorted by width then depth).
    """

    task: str
    pool: str
    level: int
    graph: Graph
    accuracy: float
    stderr: float
    evals: int
    seed: int
    cache_key: str
    scored: int
    items: int
    by_shape: tuple[ShapeScore, ...]

    def to_json(self) -> dict[str, Any]:
        """The task's entry in ``tasks/sim/optimum/<pool>.json``."""
        return {
            "graph": self.graph.to_json(),
            "text": self.graph.to_text(),
            "id": self.graph.id,
            "accuracy": self.accuracy,
            "stderr": self.stderr,
            "level": self.level,
            "evals": self.evals,
            "items": self.items,
            "seed": self.seed,
            "cache_key": self.cache_key,
            "scored": self.scored,
            "by_shape": [
                {"width": s.width, "depth": s.depth, "accuracy": s.accuracy} for s in self.by_shape
            ],
        }


# ----- shipped data ----------------------------------------------------------------------------


def optimum_path(pool: str) -> Path:
    """Where a pool's optima ship: ``tasks/sim/optimum/<pool>.json``."""
    return tasks_dir() / "sim" / "optimum" / f"{pool}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the optimum file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise ConfigError(f"{path}: expected an object with a 'tasks' object")
    if data.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA}")
    return data


def save_optimum(optimum: Optimum, path: Path | None = None) -> Path:
    """Write ``optimum`` as its task's entry of the pool's file, keeping the other tasks.

    Args:
        optimum: what :func:`find_optimum` returned.
        path: the file (default :func:`optimum_path`); its folder is created.

    Returns:
        The file written (atomically: readers see the old file or the new one).

    Raises:
        ConfigError: the existing file is malformed (it is not overwritten) or names another
            pool.
    """
    path = path or optimum_path(optimum.pool)
    data: dict[str, Any] = {"schema": SCHEMA, "pool": optimum.pool, "tasks": {}}
    if path.exists():
        data = _read(path)
        if data.get("pool") != optimum.pool:
            raise ConfigError(f"{path}: holds pool {data.get('pool')!r}, not {optimum.pool!r}")
    data["tasks"][optimum.task] = optimum.to_json()
    data["tasks"] = dict(sorted(data["tasks"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def load_optimum(pool: str | Pool, task: str | Task, path: Path | None = None) -> Optimum:
    """The shipped optimum of ``task`` for ``pool``.

    Raises:
        ConfigError: the file is missing or malformed, or has no entry for the task; one line
            naming the file.
    """
    pool_name = pool if isinstance(pool, str) else pool.name
    task_name = task if isinstance(task, str) else task.name
    path = path or optimum_path(pool_name)
    if not path.is_file():
        raise ConfigError(f"{path}: no optimum file for pool {pool_name!r}")
    entry = _read(path)["tasks"].get(task_name)
    if entry is None:
        raise ConfigError(f"{path}: no optimum for task {task_name!r}")
    try:
        return Optimum(
            task=task_name,
            pool=pool_name,
            level=int(entry["level"]),
            graph=from_json(entry["graph"], f"{path}: {task_name}.graph"),
            accuracy=float(entry["accuracy"]),
            stderr=float(entry["stderr"]),
            evals=int(entry["evals"]),
            seed=int(entry["seed"]),
            cache_key=str(entry["cache_key"]),
            scored=int(entry["scored"]),
            items=int(entry["items"]),
            by_shape=tuple(
                ShapeScore(int(s["width"]), int(s["depth"]), float(s["accuracy"]))
                for s in entry["by_shape"]
            ),
        )
    except GraphError as exc:
        raise ConfigError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: task {task_name!r}: malformed entry ({exc!r})") from None
