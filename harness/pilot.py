"""The paper's pilot experiments (PAPER.md sections 5 and 6), on any backend, through run_graph.

Five tables, each a plain JSON-able structure:

1. ``single``: each pool model alone. One model, one call is measured as the two-node graph
   ``0 | m | assistant -> output | m``: a graph needs an output node, and an output node with a
   single input keeps it (PAPER.md section 6 has 1x8B = single 8B = 49 on MATH).
2. ``combos``: random graphs at equal budget for model combinations (default: the paper's five,
   the level-9 fillings), output node the pool's default model, sampled by
   :meth:`harness.space.Space.sample` without repair; mean accuracy over ``graphs`` graphs.
3. ``width``: ``w = 1..8`` parallel assistants into the output node.
4. ``depth``: chains of ``d = 1..8`` assistants into the output node.
5. ``grid``: layered graphs, ``d`` layers of ``w`` assistants, each node of a layer reading every
   node of the layer before, the last layer read by the output node (``w, d = 1..6``); its first
   row and column are the width and depth sweeps' shapes.

In 3-5 every node, the output node included, uses the swept model, so that a curve describes one
model. Each accuracy is a mean over epochs (independent repetitions, :class:`EvalContext`) until
at least ``min_evals`` question evaluations stand behind it. Everything is seeded: the same
arguments give the same tables.

Example:
    >>> from harness.backends import get_backend
    >>> from harness.pool import load_pool
    >>> from harness.tasks import load_task
    >>> task, pool = load_task("math"), load_pool("llama3")
    >>> items = task.load().heldout
    >>> backend = get_backend("sim")
    >>> backend.bind(task, pool)
    >>> tables = run_pilot(task, pool, backend, items, graphs=4, min_evals=600, sweep=(1, 2))
    >>> [row["combo"] for row in tables["combos"]]
    ['9x1B', '2x3B+3x1B', '1x3B+6x1B', '3x3B', '1x8B']
    >>> len(tables["width"]["3B"]), tables["paper"]["combos"]["3x3B"]
    (2, 54)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.backends import Backend, Batch, EvalContext
from harness.errors import ConfigError
from harness.executor import run_graph
from harness.graph import ASSISTANT, OUTPUT, Graph, Node
from harness.pool import Pool
from harness.space import Combo, Space
from harness.tasks import Item, Task

__all__ = [
    "PAPER",
    "PAPER_COMBOS",
    "chain_graph",
    "layered_graph",
    "parallel_graph",
    "run_pilot",
    "single_graph",
]

PAPER_COMBOS = ("9x1B", "2x3B+3x1B", "1x3B+6x1B", "3x3B", "1x8B")
"""The equal-budget combinations of PAPER.md section 6 (the level-9 fillings), in its order."""

PAPER: dict[str, dict[str, Any]] = {
    # PAPER.md section 6 (LLaMA pool), accuracy in percent.
    "math": {
        "source": "PAPER.md section 6",
        "single": {"1B": 31, "3B": 40, "8B": 49, "70B": 68},
        "combos": {"9x1B": 39, "2x3B+3x1B": 45, "1x3B+6x1B": 44, "3x3B": 54, "1x8B": 49},
    },
    "mmlu": {
        "source": "PAPER.md section 6",
        "single": {"1B": 31, "3B": 43, "8B": 64, "70B": 84},
        "combos": {"9x1B": 30, "2x3B+3x1B": 45, "1x3B+6x1B": 39, "3x3B": 41, "1x8B": 64},
    },
    "humaneval": {
        "source": "PAPER.md section 6",
        "single": {"1B": 31, "3B": 48, "8B": 60, "70B": 68},
        "combos": {},
    },
    # Not in the paper: Meta's model cards, GSM8K 8-shot chain of thought (Llama 3.2 1B / 3B
    # Instruct, Llama 3.1 8B / 70B Instruct).
    "gsm8k": {
        "source": "Meta Llama 3.1 / 3.2 model cards (8-shot CoT)",
        "single": {"1B": 44.4, "3B": 77.7, "8B": 84.5, "70B": 95.1},
        "combos": {},
    },
}
"""Reference accuracies for the LLaMA pool (``llama3``), by task, short model name and combo."""


def single_graph(model: str) -> Graph:
    """One model, one call: ``0 | model | assistant -> output | model``.

    Example:
        >>> print(single_graph("8B").to_text())
        0 | 8B | assistant | in: - | out: output
        output | 8B | output | in: 0 | out: -
    """
    return layered_graph(model, 1, 1)


def parallel_graph(model: str, width: int) -> Graph:
    """``width`` assistants of ``model`` feeding an output node of ``model``."""
    return layered_graph(model, width, 1)


def chain_graph(model: str, depth: int) -> Graph:
    """A chain of ``depth`` assistants of ``model`` into an output node of ``model``."""
    return layered_graph(model, 1, depth)


def layered_graph(model: str, width: int, depth: int) -> Graph:
    """``depth`` layers of ``width`` assistants, each reading all of the layer before.

    Example:
        >>> g = layered_graph("1B", 2, 3)
        >>> g.width, g.depth, len(g.nodes), g.in_degree(OUTPUT)
        (2, 3, 6, 2)
    """
    nodes = [Node(i, model, ASSISTANT) for i in range(width * depth)]
    edges: list[tuple[int, int]] = []
    for layer in range(1, depth):
        for src in range((layer - 1) * width, layer * width):
            edges += [(src, dst) for dst in range(layer * width, (layer + 1) * width)]
    edges += [(i, OUTPUT) for i in range((depth - 1) * width, depth * width)]
    return Graph.create(nodes, edges, model)


class _Meter:
    """Accuracy of graphs on one batch, repeated over epochs to reach ``min_evals``."""

    def __init__(
        self, task: Task, pool: Pool, backend: Backend, items: Sequence[Item], seed: int
    ) -> None:
        self.task, self.pool, self.backend, self.seed = task, pool, backend, seed
        self.batch = Batch(tuple(items), "heldout")

    def accuracy(self, graph: Graph, epochs: int, first_epoch: int = 0) -> float:
        runs = [
            run_graph(
                graph, self.batch, self.backend, self.task, self.pool, EvalContext(self.seed, e)
            )
            for e in range(first_epoch, first_epoch + epochs)
        ]
        return float(np.mean([run.accuracy for run in runs]))


def _sample_whole(
    space: Space, rng: random.Random, combo: Combo, edge_prob: float, fuser_prob: float
) -> Graph:
    """A random graph that executes every node of ``combo`` (a dropped node is redrawn)."""
    for _ in range(10_000):
        graph = space.sample(
            rng, combo=combo, edge_prob=edge_prob, fuser_prob=fuser_prob, repair_to_cap=False
        )
        if len(graph.nodes) == combo.size:
            return graph
    raise ConfigError(
        f"combination {combo.label}: no graph using every node in 10000 draws at edge "
        f"probability {edge_prob}"
    )


def _pct(value: float) -> float:
    return round(100 * value, 1)


def run_pilot(
    task: Task,
    pool: Pool,
    backend: Backend,
    items: Sequence[Item],
    *,
    seed: int = 0,
    graphs: int = 32,
    combos: Sequence[str] | None = None,
    level: int = 9,
    edge_prob: float = 0.5,
    fuser_prob: float = 0.5,
    sweep_models: Sequence[str] = ("1B", "3B"),
    sweep: Sequence[int] = tuple(range(1, 9)),
    grid: Sequence[int] = tuple(range(1, 7)),
    min_evals: int = 6000,
    grid_evals: int | None = None,
) -> dict[str, Any]:
    """Run the pilot experiments and return their tables (accuracies in percent).

    Args:
        task: the task; ``items`` are its questions to score on (the held-out split).
        pool: the model pool.
        backend: a backend bound to ``task`` and ``pool``.
        items: the questions.
        seed: seeds the random graphs and every evaluation.
        graphs: random graphs per combination.
        combos: combinations in the paper's notation (default :data:`PAPER_COMBOS`).
        level: the budget level whose integer cost the combinations fill (only labels them).
        edge_prob: probability of each candidate edge in the random graphs.
        fuser_prob: probability that a node which may be a fuser is one.
        sweep_models: models of the width, depth and grid sweeps.
        sweep: widths and depths of the sweeps.
        grid: widths and depths of the grid.
        min_evals: question evaluations behind each accuracy (epochs are added to reach it).
        grid_evals: the same for the grid's cells (default ``min_evals``).

    Raises:
        ConfigError: a malformed combination or an unknown model.
    """
    if not items:
        raise ValueError("run_pilot needs at least one item")
    meter = _Meter(task, pool, backend, items, seed)
    epochs = max(1, math.ceil(min_evals / len(items)))
    grid_epochs = max(1, math.ceil((grid_evals or min_evals) / len(items)))
    space = Space(pool, task.lengths, level=level, max_nodes=64, task=task.name)
    parsed = [space.parse_combo(text) for text in (combos or PAPER_COMBOS)]
    sweep_specs = [pool.model(m) for m in sweep_models]
    reference = PAPER.get(task.name, {}) if pool.name == "llama3" else {}

    single = []
    for spec in pool.models:
        paper = reference.get("single", {}).get(spec.short)
        graph = single_graph(spec.name)
        single.append(
            {
                "model": spec.name,
                "short": spec.short,
                "accuracy": _pct(meter.accuracy(graph, epochs)),
                "paper": paper,
            }
        )

    combo_rows = []
    combo_epochs = max(1, math.ceil(min_evals / (len(items) * graphs)))
    for combo in parsed:
        rng = random.Random(f"pilot:{seed}:{combo.label}")
        scores = []
        nodes = []
        for index in range(graphs):
            graph = _sample_whole(space, rng, combo, edge_prob, fuser_prob)
            # Epochs differ per draw: two draws of the same graph are two repetitions, not one.
            scores.append(meter.accuracy(graph, combo_epochs, index * combo_epochs))
            nodes.append(len(graph.nodes))
        combo_rows.append(
            {
                "combo": combo.label,
                "cost": combo.cost,
                "accuracy": _pct(float(np.mean(scores))),
                "sd_over_graphs": _pct(float(np.std(scores))),
                "paper": reference.get("combos", {}).get(combo.label),
            }
        )

    width: dict[str, list[float]] = {}
    depth: dict[str, list[float]] = {}
    grid_table: dict[str, list[list[float]]] = {}
    for spec in sweep_specs:
        width[spec.short] = [
            _pct(meter.accuracy(parallel_graph(spec.name, w), epochs)) for w in sweep
        ]
        depth[spec.short] = [_pct(meter.accuracy(chain_graph(spec.name, d), epochs)) for d in sweep]
        grid_table[spec.short] = [
            [_pct(meter.accuracy(layered_graph(spec.name, w, d), grid_epochs)) for d in grid]
            for w in grid
        ]

    return {
        "task": task.name,
        "pool": pool.name,
        "backend": backend.name,
        "items": len(items),
        "seed": seed,
        "settings": {
            "graphs": graphs,
            "edge_prob": edge_prob,
            "fuser_prob": fuser_prob,
            "output_model": pool.model(pool.output_model).short,
            "level": level,
            "epochs": epochs,
            "grid_epochs": grid_epochs,
            "combo_epochs": combo_epochs,
            "sweep": list(sweep),
            "grid": list(grid),
        },
        "paper": {
            "source": reference.get("source"),
            **{k: reference.get(k, {}) for k in ("single", "combos")},
        },
        "single": single,
        "combos": combo_rows,
        "width": width,
        "depth": depth,
        "grid": grid_table,
        "insights": insights(width, depth, grid_table, list(sweep), list(grid), combo_rows),
    }


def _argmax(values: Sequence[float], labels: Sequence[int]) -> int:
    return labels[int(np.argmax(values))]


def insights(
    width: dict[str, list[float]],
    depth: dict[str, list[float]],
    grid: dict[str, list[list[float]]],
    sweep: list[int],
    sizes: list[int],
    combos: list[dict[str, Any]],
) -> dict[str, Any]:
    """Where each curve peaks, and how the grid's optimum moves (PAPER.md section 5).

    ``best_depth_by_width[w]`` is the depth that maximises accuracy at width ``w`` (a row of
    the grid); ``best_width_by_depth[d]`` the width that does at depth ``d``.
    """
    out: dict[str, Any] = {
        "best_width": {m: _argmax(v, sweep) for m, v in width.items()},
        "best_depth": {m: _argmax(v, sweep) for m, v in depth.items()},
        "best_depth_by_width": {},
        "best_width_by_depth": {},
        "best_combo": max(combos, key=lambda row: row["accuracy"])["combo"] if combos else None,
    }
    for model, table in grid.items():
        array = np.array(table)
        out["best_depth_by_width"][model] = {
            w: sizes[int(np.argmax(array[i]))] for i, w in enumerate(sizes)
        }
        out["best_width_by_depth"][model] = {
            d: sizes[int(np.argmax(array[:, j]))] for j, d in enumerate(sizes)
        }
    return out


def study_pilot(bench: Any) -> dict[str, Any]:
    """The pilot tables a study shows its method: the backend's own results on the search split.

    ``bench`` is a :class:`harness.study.Bench` (typed loosely: this module must not import the
    study module, which imports it lazily).
    """
    return run_pilot(bench.task, bench.pool, bench.backend, bench.data.search, seed=0)
