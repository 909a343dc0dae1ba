"""The probabilistic graph: valid samples, exact log-probabilities and gradients, the table."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT
from harness.probgraph import Adam, LogitGrad, ProbGraph

POOL = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")


@st.composite
def prob_graphs(draw: st.DrawFn, max_slots: int = 6) -> ProbGraph:
    n = draw(st.integers(1, max_slots))
    models = draw(st.lists(st.sampled_from(POOL), min_size=n, max_size=n))
    choices = draw(st.sampled_from([(), POOL]))
    pg = ProbGraph.create(models, "llama-3.2-3b", model_choices=choices)
    logits = draw(st.lists(st.floats(-4, 4), min_size=len(pg.flat()), max_size=len(pg.flat())))
    return pg.with_flat(logits)


def _reaches(edges: set[tuple[int, int]], src: int, dst: int) -> bool:
    frontier, seen = [src], {src}
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            if a == node and b not in seen:
                if b == dst:
                    return True
                seen.add(b)
                frontier.append(b)
    return False


@settings(max_examples=150, deadline=None)
@given(prob_graphs(), st.integers(0, 2**32 - 1))
def test_samples_are_valid_and_their_decisions_consistent(pg, seed):
    sample = pg.sample(random.Random(seed))
    graph = sample.graph  # Graph.create has checked acyclicity, roles and the output's input
    assert graph.in_degree(OUTPUT) >= 1
    pairs = pg.candidates[: pg.n * (pg.n - 1)]
    on = {pairs[i] for i in range(len(pairs)) if sample.edges[i]}
    assert not (sample.edges & ~sample.drawn).any()
    for i, (src, dst) in enumerate(pairs):
        if not sample.drawn[i]:  # skipped only because it would have closed a cycle
            assert _reaches(on, dst, src)
    roles = {n.id: n.role for n in graph.nodes}
    for node_id, role in roles.items():
        assert role == (FUSER if sample.fusers[node_id] else ASSISTANT)
        assert sample.role_drawn[node_id] or role == ASSISTANT
    if pg.model_logits is not None:
        for node in graph.nodes:
            assert node.model == POOL[sample.models[node.id]]
    assert np.isfinite(pg.log_prob(sample))


@settings(max_examples=40, deadline=None)
@given(prob_graphs(max_slots=4), st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(pg, seed):
    sample = pg.sample(random.Random(seed))
    analytic = pg.log_prob_grad(sample).flat()
    base, h = pg.flat(), 1e-6
    numeric = np.array(
        [
            (
                pg.with_flat(base + h * e).log_prob(sample)
                - pg.with_flat(base - h * e).log_prob(sample)
            )
            / (2 * h)
            for e in np.eye(len(base))
        ]
    )
    assert np.allclose(analytic, numeric, atol=1e-5)


def test_score_has_mean_zero_so_log_p_is_the_sampling_distribution():
    # E[grad log p] = 0 holds only if log p is exactly the probability the sampler draws with,
    # including the conditioning on an output edge and the forced roles.
    rng = np.random.default_rng(0)
    pg = ProbGraph.create(["1B", "3B", "8B"], "3B", model_choices=("1B", "3B", "8B"))
    pg = pg.with_flat(pg.flat() + rng.normal(0, 1.5, len(pg.flat())))
    draws = random.Random(0)
    mean = np.mean([pg.log_prob_grad(pg.sample(draws)).flat() for _ in range(4000)], axis=0)
    assert np.abs(mean).max() < 0.05


def test_output_edges_follow_their_conditional_distribution():
    pg = ProbGraph.create(["1B", "1B"], "3B").with_edge_probs(
        {(0, "output"): 0.2, (1, "output"): 0.3, (0, 1): 0.0, (1, 0): 0.0}
    )
    rng = random.Random(1)
    counts = {(True, False): 0, (False, True): 0, (True, True): 0}
    n = 20000
    for _ in range(n):
        out = pg.sample(rng).edges[-2:]
        counts[(bool(out[0]), bool(out[1]))] += 1
    z = 1 - 0.8 * 0.7
    expected = {(True, False): 0.2 * 0.7 / z, (False, True): 0.8 * 0.3 / z, (True, True): 0.06 / z}
    for key, p in expected.items():
        assert abs(counts[key] / n - p) < 0.015


def test_table_round_trips_as_mapping_and_text():
    rng = np.random.default_rng(3)
    pg = ProbGraph.create(["1B", "3B", "1B"], "3B")
    pg = pg.with_flat(rng.normal(0, 2, len(pg.flat())))
    again = pg.with_edge_probs(pg.edge_table())
    assert np.allclose(again.edge_probs(), pg.edge_probs())
    text = pg.edge_table_text()
    assert len(text.splitlines()) == 1 + len(pg.candidates)
    assert "0 -> output |" in text
    from_text = ProbGraph.create(["1B", "3B", "1B"], "3B").with_edge_probs(text)
    assert np.allclose(from_text.edge_probs(), pg.edge_probs(), atol=5e-4)
    # Rows left out keep their probability; the role logits are untouched.
    partial = pg.with_edge_probs("# an agent's answer\n2 -> 0 | 0.75\n")
    probs = dict(zip(pg.candidates, partial.edge_probs(), strict=True))
    assert probs[(2, 0)] == pytest.approx(0.75)
    assert probs[(0, 1)] == pytest.approx(pg.edge_table()[(0, 1)])
    assert np.array_equal(partial.role_logits, pg.role_logits)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("0 -> 0 | 0.5", "not a candidate"),
        ("0 -> 7 | 0.5", "not a candidate"),
        ("0 => 1 | 0.5", "line 1"),
        ("0 -> 1 | high", "line 1"),
        ("0 -> 1 | 1.5", "not in \\[0, 1\\]"),
        ("0 -> 1 | 0.5\n0 -> 1 | 0.6", "listed twice"),
    ],
)
def test_bad_tables_are_rejected_with_the_line(table, message):
    with pytest.raises(GraphError, match=message):
        ProbGraph.create(["1B", "1B"], "3B").with_edge_probs(table)


def test_extreme_table_probabilities_stay_finite():
    pg = ProbGraph.create(["1B", "1B"], "3B").with_edge_probs("0 -> 1 | 0\n1 -> 0 | 1")
    assert np.isfinite(pg.edge_logits).all()
    assert 0 < pg.edge_table()[(0, 1)] < 1e-3


def test_threshold_graph_keeps_likely_edges_and_stays_valid():
    pg = ProbGraph.create(["1B", "1B", "3B"], "3B", edge_prob=0.1).with_edge_probs(
        {(0, 2): 0.9, (1, 2): 0.7, (2, 0): 0.8, (2, "output"): 0.6, (0, "output"): 0.55}
    )
    graph = pg.threshold_graph(0.55)
    # 2 -> 0 would close a cycle with the likelier 0 -> 2; 0 -> output is not above 0.55.
    assert set(graph.edges) == {(0, 2), (1, 2), (2, OUTPUT)}
    assert all(n.role == ASSISTANT for n in graph.nodes)  # fuser probability 0.5 is not > 0.5
    fusing = pg.with_flat(np.concatenate([pg.edge_logits, [0.0, 0.0, 3.0]]))
    assert fusing.threshold_graph().node(2).role == FUSER


def test_threshold_graph_always_feeds_the_output_node():
    pg = ProbGraph.create(["1B", "3B"], "3B", edge_prob=0.2).with_edge_probs({(1, "output"): 0.4})
    assert pg.threshold_graph().edges == ((1, OUTPUT),)


def test_model_logits_start_at_the_slot_model_and_threshold_to_the_likeliest():
    pg = ProbGraph.create(["1B", "8B"], "3B", model_choices=("1B", "3B", "8B"), model_prob=0.7)
    probs = np.exp(pg.model_logits) / np.exp(pg.model_logits).sum(axis=1, keepdims=True)
    assert probs[0].tolist() == pytest.approx([0.7, 0.15, 0.15])
    both = pg.with_edge_probs({(0, "output"): 0.9, (1, "output"): 0.9})
    assert [n.model for n in both.threshold_graph().nodes] == ["1B", "8B"]
    with pytest.raises(GraphError, match="not among the model choices"):
        ProbGraph.create(["70B"], "3B", model_choices=("1B",))


def test_probgraphs_are_immutable_and_flat_round_trips():
    pg = ProbGraph.create(["1B", "3B"], "3B", model_choices=("1B", "3B"))
    with pytest.raises(ValueError):
        pg.edge_logits[0] = 1.0
    vec = np.arange(len(pg.flat()), dtype=float)
    assert np.array_equal(pg.with_flat(vec).flat(), vec)


def test_adam_descends_a_quadratic():
    pg = ProbGraph.create(["1B"], "3B")  # one slot: a single candidate edge, 0 -> output
    target = np.array([2.0])
    adam = Adam(lr=0.1)
    for _ in range(300):
        pg = adam.step(pg, LogitGrad(2 * (pg.edge_logits - target), np.zeros(1)))
    assert pg.edge_logits[0] == pytest.approx(2.0, abs=0.05)
