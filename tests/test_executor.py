"""The executor: order, context passing, accounting, and malformed text output."""

from __future__ import annotations

import numpy as np
import pytest

from harness.backends import Answers, Backend, Batch, EvalContext
from harness.cost import graph_cost
from harness.executor import run_graph
from harness.graph import OUTPUT, Graph
from harness.pool import load_pool
from harness.tasks import load_task


class FaultInjectingTextBackend(Backend):
    """A text backend whose output node writes garbage for every other question.

    Each agent node answers with a marker naming itself and the markers it read in its prompt,
    so the test can see the order of calls and what context each node was given. The output
    node returns the right boxed answer, an empty string, or a malformed fragment.
    """

    name = "fault-injecting-text"
    produces = "text"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, list[str]]] = []

    def answer(self, call, batch, inputs, context, prompts):
        messages = prompts()
        prompt_text = [" ".join(m["content"] for m in msgs) for msgs in messages]
        seen = sorted({tok for text in prompt_text for tok in text.split() if tok.startswith("<n")})
        self.calls.append((call.node_id, seen))
        if call.node_id != OUTPUT:
            return Answers(texts=tuple(f"<n{call.node_id}> working" for _ in batch.items))
        faults = ("", "\\boxed{", "<think>never closed", "\x00\xff garbage")
        # Even questions: the right answer; odd ones cycle through four kinds of garbage.
        texts = tuple(
            f"So the answer is \\boxed{{{item.answer}}}" if i % 2 == 0 else faults[(i // 2) % 4]
            for i, item in enumerate(batch.items)
        )
        return Answers(
            texts=texts,
            prompt_tokens=np.full(len(batch), 100),
            output_tokens=np.full(len(batch), 10),
            latency_s=np.full(len(batch), 0.5),
        )


@pytest.fixture(scope="module")
def setup():
    task, pool = load_task("math"), load_pool("llama3")
    items = task.load().heldout[:8]
    return task, pool, items


def diamond() -> Graph:
    # 3 -> {1, 2} -> 0 -> output: ids deliberately not in execution order.
    return Graph.create(
        [
            (3, "1B", "assistant"),
            (1, "3B", "assistant"),
            (2, "1B", "assistant"),
            (0, "8B", "fuser"),
        ],
        [(3, 1), (3, 2), (1, 0), (2, 0), (0, "output"), (3, "output")],
        "3B",
    )


def test_nodes_run_in_topological_order_and_read_their_inputs(setup):
    task, pool, items = setup
    backend = FaultInjectingTextBackend()
    backend.bind(task, pool)
    run_graph(diamond(), Batch(items), backend, task, pool, EvalContext(0))
    order = [node for node, _ in backend.calls]
    assert order == [3, 1, 2, 0, OUTPUT]
    seen = dict(backend.calls)
    assert seen[3] == []  # a source reads only the question
    assert seen[1] == ["<n3>"] and seen[2] == ["<n3>"]
    assert seen[0] == ["<n1>", "<n2>"]
    assert seen[OUTPUT] == ["<n0>", "<n3>"]


def test_malformed_output_scores_zero_and_is_recorded(setup):
    task, pool, items = setup
    backend = FaultInjectingTextBackend()
    backend.bind(task, pool)
    run = run_graph(diamond(), Batch(items), backend, task, pool, EvalContext(0))
    assert run.correct.tolist() == [i % 2 == 0 for i in range(len(items))]
    assert run.extracted is not None and run.notes is not None
    assert all(run.notes[i] for i in range(1, len(items), 2))  # each zero says why
    assert all(run.notes[i] is None for i in range(0, len(items), 2))


def test_flops_come_from_the_formula_and_tokens_latency_from_the_backend(setup):
    task, pool, items = setup
    backend = FaultInjectingTextBackend()
    backend.bind(task, pool)
    graph = diamond()
    run = run_graph(graph, Batch(items), backend, task, pool, EvalContext(0))
    expected = graph_cost(pool.resolve(graph), pool, task.lengths)
    assert run.flops_units == pytest.approx(expected.units)
    output = run.nodes[-1]
    assert output.node_id == OUTPUT and output.prompt_tokens == 100 and output.latency_s == 0.5
    source = run.nodes[0]
    assert source.prompt_tokens == task.lengths[0]  # not measured: the formula
    # Critical path: the measured output latency on top of the estimated 3 -> 1 -> 0 chain.
    est = {n.node_id: n.latency_s for n in run.nodes}
    assert run.latency_s == pytest.approx(est[3] + max(est[1], est[2]) + est[0] + 0.5)


def test_sim_backend_runs_a_graph_as_symbols(setup):
    from harness.backends import get_backend

    task, pool, items = setup
    backend = get_backend("sim")
    backend.bind(task, pool)
    run = run_graph(diamond(), Batch(items), backend, task, pool, EvalContext(0))
    assert run.answers.symbols is not None and run.correct.dtype == bool
    assert run.correct.tolist() == (run.answers.symbols == 0).tolist()
    assert len(run.nodes) == 5 and run.extracted is None
