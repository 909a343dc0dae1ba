"""The graph executor: one code path that runs a graph on a batch of questions, any backend.

Nodes run in topological order, the output node last. Each node's prompt is the task's prompt
for its role (``assistant`` without inputs, ``assistant`` with inputs, ``fuser``, ``output``)
over the question and its inputs' answers; the backend answers every question of the batch at
once. The output node's answers are scored by the task (symbols: ``0`` is correct; text: the
task's real scorer). Per node the executor records FLOPs (the PAPER.md formula, whatever the
backend), tokens (measured where the backend measures them, the formula otherwise) and latency
(measured, or the pool's speed estimate); a graph's latency per question is its critical path.

Example:
    >>> from harness.backends import get_backend
    >>> from harness.graph import Graph
    >>> from harness.pool import load_pool
    >>> from harness.tasks import load_task
    >>> task, pool = load_task("math"), load_pool("llama3")
    >>> items = task.load("../shared/data").heldout[:50]
    >>> backend = get_backend("sim")
    >>> backend.bind(task, pool)
    >>> g = Graph.create([(0, "3B", "assistant")], [(0, "output")], "3B")
    >>> run = run_graph(g, Batch(items, "heldout"), backend, task, pool, EvalContext(seed=0))
    >>> run.correct.shape, round(run.flops_units, 2)
    ((50,), 7.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from harness._canonical import canonical_order
from harness.backends import Answers, Backend, Batch, EvalContext, NodeCall
from harness.cost import Architecture, node_flops, node_latency, node_tokens, unit_flops
from harness.graph import OUTPUT, Graph
from harness.pool import Pool
from harness.tasks import Task

__all__ = ["GraphRun", "NodeRecord", "run_graph"]


@dataclass(frozen=True)
class NodeRecord:
    """What one node cost on a batch.

    Tokens and latency are means over its questions; ``cache_hits`` (questions answered from the
    call cache) and ``dollars`` are totals over them, None where the backend reports neither.
    """

    node_id: int
    model: str
    role: str
    in_degree: int
    flops_units: float
    prompt_tokens: float
    output_tokens: float
    latency_s: float
    cache_hits: int | None = None
    dollars: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON object for traces (cache hits and dollars only where a backend reports them)."""
        extra: dict[str, Any] = {}
        if self.cache_hits is not None:
            extra["cache_hits"] = self.cache_hits
        if self.dollars is not None:
            extra["dollars"] = self.dollars
        return {
            "node": "output" if self.node_id == OUTPUT else self.node_id,
            "model": self.model,
            "role": self.role,
            "in_degree": self.in_degree,
            "flops_units": self.flops_units,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "latency_s": self.latency_s,
            **extra,
        }


@dataclass(frozen=True, eq=False)
class GraphRun:
    """The outcome of one graph on one batch.

    Attributes:
        graph: the graph that ran.
        item_ids: the questions, in batch order.
        correct: per question, whether the graph's answer was right.
        answers: the output node's answers (symbols or text).
        extracted: per question, the answer extracted from text (None on symbol backends).
        notes: per question, why a text answer scored 0 (None where none applies).
        flops_units: FLOPs per question, in units of the task's 1B call.
        latency_s: mean critical-path latency per question.
        prompt_tokens: mean prompt tokens per question, all nodes.
        output_tokens: mean output tokens per question, all nodes.
        nodes: per-node records, in execution order.
        calls: LLM calls behind this run (nodes x questions).
        cache_hits: of those, answered from the call cache (None: no cache).
        dollars: total cost of the calls, cached ones charged as made (None: not reported).
    """

    graph: Graph
    item_ids: tuple[str, ...]
    correct: npt.NDArray[np.bool_]
    answers: Answers
    extracted: tuple[str | None, ...] | None
    notes: tuple[str | None, ...] | None
    flops_units: float
    latency_s: float
    prompt_tokens: float
    output_tokens: float
    nodes: tuple[NodeRecord, ...] = field(default=())

    @property
    def calls(self) -> int:
        """LLM calls behind this run."""
        return len(self.nodes) * len(self.item_ids)

    @property
    def cache_hits(self) -> int | None:
        """Calls answered from the call cache (None when the backend has no cache)."""
        hits = [r.cache_hits for r in self.nodes]
        return None if not hits or None in hits else sum(h for h in hits if h is not None)

    @property
    def dollars(self) -> float | None:
        """Total dollars of the calls (None when any node's cost is not reported)."""
        costs = [r.dollars for r in self.nodes]
        return None if not costs or None in costs else sum(c for c in costs if c is not None)

    @property
    def accuracy(self) -> float:
        """Fraction of questions answered right."""
        return float(self.correct.mean()) if len(self.correct) else 0.0


def run_graph(
    graph: Graph,
    batch: Batch,
    backend: Backend,
    task: Task,
    pool: Pool,
    context: EvalContext,
) -> GraphRun:
    """Run ``graph`` on every question of ``batch`` with ``backend``.

    Args:
        graph: a valid graph whose models are in ``pool`` (short aliases are resolved).
        batch: the questions.
        backend: a backend bound to ``task`` and ``pool``.
        task: supplies prompts, lengths and the scorer.
        pool: supplies model constants and speeds.
        context: seed and epoch, for reproducible answers.

    Returns:
        Correctness per question, the output answers and per-node costs.
    """
    graph = pool.resolve(graph)
    lengths = task.lengths
    unit = unit_flops(lengths)
    preds = graph.predecessors_map()
    levels = graph.levels()
    levels[OUTPUT] = graph.depth + 1
    position = {node_id: pos for pos, node_id in enumerate(canonical_order(graph))}
    position[OUTPUT] = len(graph.nodes)
    n = len(batch)
    answers: dict[int, Answers] = {}
    finish: dict[int, npt.NDArray[np.float64]] = {}
    records: list[NodeRecord] = []
    for node_id in (*graph.topological_order(), OUTPUT):
        spec = pool.model(graph.model_of(node_id))
        # Inputs in canonical order, not by node id: a graph renumbered (the same graph id) reads
        # its inputs in the same order, so its prompts and its sim answers are the same.
        inputs = tuple(sorted(preds[node_id], key=position.__getitem__))
        role = "output" if node_id == OUTPUT else graph.node(node_id).role
        prompt_len, output_len = node_tokens(lengths, len(inputs))
        call = NodeCall(
            graph_id=graph.id,
            node_id=node_id,
            position=position[node_id],
            model=spec,
            role=role,
            level=levels[node_id],
            inputs=inputs,
            prompt_tokens=prompt_len,
            output_tokens=output_len,
        )
        input_answers = [answers[p] for p in inputs]

        def prompts(
            role: str = role, input_answers: Sequence[Answers] = input_answers
        ) -> list[list[dict[str, str]]]:
            texts = [_texts(a, batch, backend) for a in input_answers]
            prompt_role = "assistant" if role == "output" and not texts else role
            return [
                task.prompt(prompt_role, item.question, [t[i] for t in texts])
                for i, item in enumerate(batch.items)
            ]

        result = backend.answer(call, batch, input_answers, context, prompts)
        if len(result) != n:
            raise RuntimeError(f"backend {backend.name} answered {len(result)} of {n} questions")
        answers[node_id] = result
        own = (
            result.latency_s
            if result.latency_s is not None
            else np.full(n, node_latency(spec, lengths, len(inputs)))
        )
        start = np.zeros(n)
        for p in inputs:
            start = np.maximum(start, finish[p])
        finish[node_id] = start + own
        records.append(
            NodeRecord(
                node_id=node_id,
                model=spec.name,
                role=role,
                in_degree=len(inputs),
                flops_units=node_flops(Architecture.of(spec), lengths, len(inputs)) / unit,
                prompt_tokens=_mean(result.prompt_tokens, prompt_len),
                output_tokens=_mean(result.output_tokens, output_len),
                latency_s=float(own.mean()) if n else 0.0,
                cache_hits=None if result.cached is None else int(result.cached.sum()),
                dollars=None if result.dollars is None else float(result.dollars.sum()),
            )
        )
    final = answers[OUTPUT]
    correct, extracted, notes = _score(final, batch, task)
    return GraphRun(
        graph=graph,
        item_ids=batch.ids,
        correct=correct,
        answers=final,
        extracted=extracted,
        notes=notes,
        flops_units=sum(r.flops_units for r in records),
        latency_s=float(finish[OUTPUT].mean()) if n else 0.0,
        prompt_tokens=sum(r.prompt_tokens for r in records),
        output_tokens=sum(r.output_tokens for r in records),
        nodes=tuple(records),
    )


def _mean(measured: npt.NDArray[np.int64] | None, formula: int) -> float:
    if measured is None or not len(measured):
        return float(formula)
    return float(np.mean(measured))


def _texts(answers: Answers, batch: Batch, backend: Backend) -> tuple[str, ...]:
    if answers.texts is not None:
        return answers.texts
    assert answers.symbols is not None
    return backend.render(answers.symbols, batch)


def _score(
    final: Answers, batch: Batch, task: Task
) -> tuple[npt.NDArray[np.bool_], tuple[str | None, ...] | None, tuple[str | None, ...] | None]:
    if final.symbols is not None:
        return final.symbols == 0, None, None
    assert final.texts is not None
    scores = [task.score(item, text) for item, text in zip(batch.items, final.texts, strict=True)]
    correct = np.array([s.correct for s in scores], dtype=bool)
    return correct, tuple(s.extracted for s in scores), tuple(s.note for s in scores)
