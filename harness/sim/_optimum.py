"""The world's known optimum: the best graph a thorough search finds per task at a budget level.

A search method is judged against the best graph of its space. On ``sim`` that graph can be
looked for at leisure, with far more question evaluations than any method gets, and the result
(:class:`Optimum`) ships as data (``tasks/sim/optimum/<pool>.json``). :func:`find_optimum` is
deterministic for a seed; every accuracy is an *expected* accuracy, a mean over epochs
(independent repetitions, ``EvalContext(seed, epoch)``) of :func:`~harness.executor.run_graph`
on one held-out batch (:func:`expected_accuracy`). The search, step by step:

1. **Candidates.** For each output model of the pool, every multiset of agent models (at most
   ``max_nodes``, within what the output model leaves of the integer budget), times a family of
   structures: ``L`` layers (``L = 1``: parallel fan-in, ``L = n``: a chain, and every ``L``
   between) of widths as even as possible, wider layers first, each node reading every node of
   the layer before and the last layer read by the output node; roles all assistants, or
   fusers in every second layer (a fuser needs assistant parents and no fuser parent, so
   alternating is the most fusers a layered graph can hold); models placed largest-last
   (nearest the output) and largest-first. :meth:`Space.fits <harness.space.Space.fits>` is
   the only test of legality; graphs are deduplicated by id.
2. **Successive halving.** Every candidate is scored on a twentieth of ``evals``; the best
   quarter and the best two of each (width, depth) shape are scored on a fifth (at least one
   epoch more); the best :data:`TOP_K` on all of ``evals``.
3. **Local search.** From the best :data:`STARTS`, first-improvement hill climbing over single
   edits (toggle an edge, flip a role, swap a node's model, change the output model, remove a
   node bridging its inputs to its outputs, add an assistant as a new source or as a new last
   layer); an edit must give a valid graph (:meth:`Graph.create <harness.graph.Graph.create>`)
   that keeps every node and fits the space. Edits are tried in a seeded random order on half
   of ``evals``, the neighbour and the incumbent on the same epochs (common random numbers); a
   move is accepted only if the mean per-epoch difference exceeds twice its standard error
   (the paired difference's: the sd of the per-epoch differences over the root of the epochs).
   After a move the incumbent is re-scored on fresh epochs, so that the luck that got it
   accepted does not make later moves harder. ``local_steps`` neighbours are scored in all.
4. **Choice and report.** The starts and the climbs' ends are scored on twice ``evals`` on
   fresh epochs (they are few, and often within a point of each other) and the best is
   chosen; its reported accuracy comes from other fresh epochs (from :data:`REPORT_EPOCH`),
   so that choosing the maximum does not inflate it.

Large held-out splits (MMLU's 13,742 questions) are searched on a fixed subset of
:data:`SEARCH_ITEMS` questions (:func:`harness.study.heldout_subset`); the reported accuracy is
on the whole split. ``by_shape`` gives, per (width, depth) of the graphs met in steps 2-4, the
best accuracy found on ``evals`` search evaluations (the search's epochs, not the report's: the
optimum's own shape may differ from its reported accuracy by noise): it shows the paper's
insights inside the budgeted space (an interior optimum in width and in depth, the best depth
moving with width).

Reproduce the reported accuracy with ``expected_accuracy(optimum.graph, task, pool, backend,
items, optimum.evals, optimum.seed, first_epoch=REPORT_EPOCH)``; regenerate the shipped file
with ``harness sim optimum --task math --write``.

Example:
    >>> from harness.backends import get_backend
    >>> from harness.pool import load_pool
    >>> from harness.tasks import load_task
    >>> task, pool = load_task("math"), load_pool("llama3")
    >>> backend = get_backend("sim")
    >>> backend.bind(task, pool)
    >>> g = Graph.create([(0, "3B", "assistant")], [(0, "output")], "3B")
    >>> mean, stderr = expected_accuracy(g, task, pool, backend, task.load().heldout[:50], 100)
    >>> 0 <= mean <= 1, stderr >= 0
    (True, True)
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from harness.backends import Backend, Batch, EvalContext
from harness.errors import GraphError
from harness.executor import run_graph
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node
from harness.pool import Pool
from harness.space import Space
from harness.study import heldout_subset
from harness.tasks import Item, Task

__all__ = [
    "EVALS",
    "REPORT_EPOCH",
    "Optimum",
    "ShapeScore",
    "expected_accuracy",
    "find_optimum",
    "load_optimum",
    "optimum_path",
    "save_optimum",
]

# The result and its shipped file live in their own module; re-exported here.
from harness.sim._optimum_data import (
    Optimum,
    ShapeScore,
    load_optimum,
    optimum_path,
    save_optimum,
)

EVALS = 6000
"""Question evaluations behind each full accuracy (20 epochs of a 300-question split)."""
LOCAL_STEPS = 300
"""Neighbours scored by the local search, in all."""
SEARCH_ITEMS = 2000
"""Largest search batch: a bigger held-out split is searched on a fixed subset of this size."""
TOP_K = 24
"""Candidates scored on all of ``evals`` after the coarse passes."""
STARTS = 6
"""Local searches, from the best candidates."""
MIN_EPOCHS = 2
"""Fewest epochs behind a standard error (one epoch has no spread to estimate it from)."""
REPORT_EPOCHS = 20
"""Fewest epochs behind the reported accuracy and its standard error."""
LOCAL_EPOCHS = 5
"""Fewest epochs behind a local-search comparison: its test needs a usable standard error."""
LOCAL_EPOCH = 100_000
"""First epoch of the local search's blocks: disjoint from the candidates' epochs."""
SELECT_EPOCH = 500_000
"""First epoch of the final choice: disjoint from every epoch that selected a finalist."""
REPORT_EPOCH = 1_000_000
"""First epoch of the reported accuracy: disjoint from every epoch that chose the graph."""

Progress = Callable[[str], None]


def _epochs(evals: int, questions: int, least: int = MIN_EPOCHS) -> int:
    return max(least, math.ceil(evals / questions))


class _Meter:
    """Per-epoch accuracies of graphs on one batch, memoised by (graph id, epoch)."""

    def __init__(self, task: Task, pool: Pool, backend: Backend, batch: Batch, seed: int) -> None:
        self.task, self.pool, self.backend, self.batch, self.seed = task, pool, backend, batch, seed
        self.memo: dict[tuple[str, int], float] = {}

    def per_epoch(self, graph: Graph, first: int, count: int) -> npt.NDArray[np.float64]:
        for epoch in range(first, first + count):
            if (graph.id, epoch) not in self.memo:
                context = EvalContext(self.seed, epoch)
                run = run_graph(graph, self.batch, self.backend, self.task, self.pool, context)
                self.memo[graph.id, epoch] = run.accuracy
        return np.array([self.memo[graph.id, e] for e in range(first, first + count)])

    def mean(self, graph: Graph, first: int, count: int) -> float:
        return float(self.per_epoch(graph, first, count).mean())

    def graphs(self) -> set[str]:
        return {graph_id for graph_id, _ in self.memo}


def _mean_stderr(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), stderr


def expected_accuracy(
    graph: Graph,
    task: Task,
    pool: Pool,
    backend: Backend,
    items: Sequence[Item] | Batch,
    evals: int = EVALS,
    seed: int = 0,
    *,
    first_epoch: int = 0,
) -> tuple[float, float]:
    """Mean accuracy of ``graph`` over epochs, and its standard error.

    Args:
        graph: the graph (short model names are resolved against ``pool``).
        task: the task.
        pool: the pool.
        backend: a backend bound to ``task`` and ``pool``.
        items: the questions, or a :class:`Batch` of them: pass one batch to repeated calls so
            that the sim prepares its per-question world once.
        evals: question evaluations wanted; epochs are whole passes over the items, at least
            :data:`MIN_EPOCHS` of them.
        seed: the evaluation seed.
        first_epoch: the first epoch (``EvalContext(seed, first_epoch)``, then the next ones).

    Returns:
        ``(mean, stderr)``: the mean of the per-epoch accuracies and their sample standard
        deviation over the square root of the number of epochs.

    Raises:
        ValueError: no items.
    """
    batch = items if isinstance(items, Batch) else Batch(tuple(items), "heldout")
    if not len(batch):
        raise ValueError("expected_accuracy needs at least one item")
    meter = _Meter(task, pool, backend, batch, seed)
    return _mean_stderr(meter.per_epoch(graph, first_epoch, _epochs(evals, len(batch))))


# ----- step 1: candidates ----------------------------------------------------------------------


def _multisets(space: Space, output_model: str) -> Iterator[tuple[str, ...]]:
    """Agent model multisets (smallest model first) within what ``output_model`` leaves."""
    # The integer budget only bounds the enumeration; Space.fits decides each built graph.
    budget = space.agent_budget(output_model)
    costs = [(name, space.pool.combo_cost(name, space.task)) for name in space.pool.names]

    def rec(pos: int, left: int, room: int) -> Iterator[tuple[str, ...]]:
        if pos == len(costs):
            yield ()
            return
        name, cost = costs[pos]
        for count in range(min(left // cost, room) + 1):
            for rest in rec(pos + 1, left - count * cost, room - count):
                yield (name,) * count + rest

    if budget > 0:
        yield from (models for models in rec(0, budget, space.max_nodes) if models)


def _layered(
    models: Sequence[str], layers: int, fusers: bool, skips: bool, output_model: str
) -> Graph:
    """``models`` in ``layers`` layers (wider first), all-to-all between consecutive layers.

    With ``skips`` the output node reads every agent node, not only the last layer.
    """
    size, extra = divmod(len(models), layers)
    widths = [size + (1 if i < extra else 0) for i in range(layers)]
    nodes: list[Node] = []
    edges: list[tuple[int, int]] = []
    previous: list[int] = []
    for layer, width in enumerate(widths):
        current = list(range(len(nodes), len(nodes) + width))
        role = FUSER if fusers and layer % 2 == 1 else ASSISTANT
        nodes += [Node(i, models[i], role) for i in current]
        edges += [(src, dst) for src in previous for dst in current]
        previous = current
    edges += [(node.id, OUTPUT) for node in nodes] if skips else [(i, OUTPUT) for i in previous]
    return Graph.create(nodes, edges, output_model)


def _candidates(space: Space) -> list[Graph]:
    found: dict[str, Graph] = {}
    for output_model in space.pool.names:
        for models in _multisets(space, output_model):
            # Largest-last: the strongest models nearest the output; largest-first: the reverse.
            placements = {models, tuple(reversed(models))}
            for placed in sorted(placements):
                for layers in range(1, len(placed) + 1):
                    deeper = (False, True) if layers > 1 else (False,)
                    for fusers, skips in itertools.product(deeper, deeper):
                        graph = _layered(placed, layers, fusers, skips, output_model)
                        if graph.id not in found and space.fits(graph):
                            found[graph.id] = graph
    return list(found.values())


# ----- step 3: local search ----------------------------------------------------------------


def _build(nodes: Sequence[Node], edges: set[tuple[int, int]], output_model: str) -> Graph | None:
    try:
        return Graph.create(nodes, edges, output_model)
    except GraphError:
        return None


def _edits(graph: Graph, pool: Pool) -> Iterator[tuple[Graph | None, int]]:
    """Single edits of ``graph``, each with the number of agent nodes it should keep."""
    nodes, edges, out = list(graph.nodes), set(graph.edges), graph.output_model
    n = len(nodes)
    ids = [node.id for node in nodes]
    for src in ids:
        for dst in [*ids, OUTPUT]:
            if src != dst:
                yield _build(nodes, edges ^ {(src, dst)}, out), n
    for pos, node in enumerate(nodes):
        flipped = Node(node.id, node.model, FUSER if node.role == ASSISTANT else ASSISTANT)
        yield _build([*nodes[:pos], flipped, *nodes[pos + 1 :]], edges, out), n
        for model in pool.names:
            if model != node.model:
                swapped = Node(node.id, model, node.role)
                yield _build([*nodes[:pos], swapped, *nodes[pos + 1 :]], edges, out), n
    for model in pool.names:
        if model != out:
            yield _build(nodes, edges, model), n
    preds, succs = graph.predecessors_map(), graph.successors_map()
    for pos, node in enumerate(nodes):
        # Bridging the removed node keeps its inputs reaching the output (a chain shortens).
        kept = {(s, d) for s, d in edges if node.id not in (s, d)}
        kept |= {(p, s) for p in preds[node.id] for s in succs[node.id]}
        yield _build([*nodes[:pos], *nodes[pos + 1 :]], kept, out), n - 1
    new = max(ids) + 1
    for model in pool.names:
        added = [*nodes, Node(new, model, ASSISTANT)]
        for dst in [*ids, OUTPUT]:
            yield _build(added, edges | {(new, dst)}, out), n + 1
        # A new last layer: the node reads the output's inputs and becomes its only input.
        last = {(s, d) for s, d in edges if d != OUTPUT}
        last |= {(p, new) for p in preds[OUTPUT]} | {(new, OUTPUT)}
        yield _build(added, last, out), n + 1


def _neighbours(graph: Graph, space: Space, rng: random.Random) -> list[Graph]:
    seen: dict[str, Graph] = {}
    for edited, size in _edits(graph, space.pool):
        # A move that silently drops nodes (no path to the output) is a different move.
        if edited is None or len(edited.nodes) != size or edited.id in seen:
            continue
        if edited.id != graph.id and space.fits(edited):
            seen[edited.id] = edited
    ordered = sorted(seen.values(), key=lambda g: g.id)
    rng.shuffle(ordered)
    return ordered


def _climb(
    start: Graph, space: Space, meter: _Meter, epochs: int, steps: int, rng: random.Random
) -> tuple[Graph, int]:
    """First-improvement hill climbing from ``start``; returns the end and the steps used."""
    block = 0
    incumbent = start
    scores = meter.per_epoch(incumbent, LOCAL_EPOCH, epochs)
    used = 0
    while used < steps:
        for neighbour in _neighbours(incumbent, space, rng):
            if used >= steps:
                return incumbent, used
            used += 1
            first = LOCAL_EPOCH + block * epochs
            diff = meter.per_epoch(neighbour, first, epochs) - scores
            mean, stderr = _mean_stderr(diff)
            if mean > 2 * stderr and mean > 0:
                block += 1
                incumbent = neighbour
                # Fresh epochs: the luck that got the move accepted stays behind.
                scores = meter.per_epoch(incumbent, LOCAL_EPOCH + block * epochs, epochs)
                break
        else:
            return incumbent, used  # a local optimum: no neighbour is better
    return incumbent, used


# ----- the search ------------------------------------------------------------------------------


def _ranked(graphs: Sequence[Graph], score: Callable[[Graph], float]) -> list[Graph]:
    # Ties by id: the order, and so the search, never depends on enumeration order.
    return sorted(graphs, key=lambda g: (-score(g), g.id))


def find_optimum(
    task: Task,
    pool: Pool,
    backend: Backend,
    items: Sequence[Item],
    *,
    level: int = 12,
    seed: int = 0,
    evals: int = EVALS,
    local_steps: int = LOCAL_STEPS,
    progress: Progress | None = None,
) -> Optimum:
    """Search the budgeted space of ``task`` for its best graph (see the module docstring).

    Args:
        task: the task.
        pool: the pool.
        backend: a backend bound to ``task`` and ``pool`` (``sim``: other backends would
            make hundreds of thousands of calls).
        items: the held-out questions.
        level: the budget level k; the space is ``Space(pool, task.lengths, level=level,
            task=task.name)``, as ``harness graph eval`` builds it.
        seed: seeds the local search's order and every evaluation.
        evals: question evaluations behind each full accuracy; the coarse passes use a
            twentieth and a fifth of it, the local search half (at least
            :data:`LOCAL_EPOCHS` epochs).
        local_steps: neighbours scored by the local search, in all.
        progress: called with one line per step (for a command line), if given.

    Returns:
        The best graph found and its accuracy on the whole of ``items``.

    Raises:
        ValueError: no items, or no graph of the pool fits the budget.
    """
    if not items:
        raise ValueError("find_optimum needs at least one held-out item")
    say = progress or (lambda _line: None)
    started = time.perf_counter()
    space = Space(pool, task.lengths, level=level, task=task.name)
    search_items = heldout_subset(tuple(items), SEARCH_ITEMS)
    meter = _Meter(task, pool, backend, Batch(search_items, "heldout"), seed)
    questions = len(search_items)
    full = _epochs(evals, questions)

    candidates = _candidates(space)
    if not candidates:
        raise ValueError(f"no graph of pool {pool.name!r} fits budget level {level}")
    coarse = _epochs(evals // 20, questions, least=1)
    ranked = _ranked(candidates, lambda g: meter.mean(g, 0, coarse))
    say(f"{len(candidates)} candidates scored on {coarse} epoch(s) of {questions} questions")

    # The second rung keeps the best quarter and the best two of every shape, so that every
    # shape's entry in by_shape rests on more than one noisy epoch.
    per_shape: dict[tuple[int, int], list[Graph]] = {}
    for graph in ranked:
        per_shape.setdefault((graph.width, graph.depth), []).append(graph)
    rung = {g.id: g for g in ranked[: max(TOP_K, len(ranked) // 4)]}
    rung |= {g.id: g for best in per_shape.values() for g in best[:2]}
    middle = max(coarse + 1, _epochs(evals // 5, questions, least=1))
    second = _ranked(list(rung.values()), lambda g: meter.mean(g, 0, middle))
    top = _ranked(second[:TOP_K], lambda g: meter.mean(g, 0, full))
    say(f"{len(second)} graphs on {middle} epochs, the best {len(top)} on {full}")

    local = _epochs(evals // 2, questions, least=LOCAL_EPOCHS)
    rng = random.Random(f"optimum:{task.name}:{pool.name}:{level}:{seed}")
    ends: list[Graph] = []
    for index, start in enumerate(top[:STARTS]):
        share = local_steps // STARTS + (1 if index < local_steps % STARTS else 0)
        end, used = _climb(start, space, meter, local, share, rng)
        ends.append(end)
        say(f"climb {index + 1}: {used} neighbours on {local} epochs, {start.id} -> {end.id}")

    finalists = list({g.id: g for g in [*top[:STARTS], *ends]}.values())
    best = _ranked(finalists, lambda g: meter.mean(g, SELECT_EPOCH, 2 * full))[0]

    # Per shape: its best graph on the second rung, then the finalists, all on `full` epochs.
    shape_best: dict[tuple[int, int], Graph] = {}
    for graph in second:
        shape_best.setdefault((graph.width, graph.depth), graph)
    shapes: dict[tuple[int, int], float] = {}
    for graph in [*shape_best.values(), *top, *ends]:
        shape = (graph.width, graph.depth)
        shapes[shape] = max(shapes.get(shape, 0.0), meter.mean(graph, 0, full))

    # The whole split reuses the search batch when they are the same questions.
    whole = (
        meter
        if len(search_items) == len(items)
        else _Meter(task, pool, backend, Batch(tuple(items), "heldout"), seed)
    )
    # At least REPORT_EPOCHS: a standard error estimated from a handful of epochs is itself
    # too noisy to state (GSM8K's 1319 questions would otherwise give five).
    report = _epochs(evals, len(items), REPORT_EPOCHS)
    accuracy, stderr = _mean_stderr(whole.per_epoch(best, REPORT_EPOCH, report))
    scored = len(meter.graphs())
    say(
        f"optimum {best.id}: {accuracy:.4f} +- {stderr:.4f}, {scored} graphs scored, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return Optimum(
        task=task.name,
        pool=pool.name,
        level=level,
        graph=pool.resolve(best),
        accuracy=accuracy,
        stderr=stderr,
        evals=report * len(items),
        seed=seed,
        cache_key=str(backend.describe().get("cache_key", backend.name)),
        scored=scored,
        items=len(items),
        by_shape=tuple(ShapeScore(w, d, a) for (w, d), a in sorted(shapes.items())),
    )
