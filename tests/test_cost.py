from __future__ import annotations

import random

import pytest

from harness.cost import (
    REFERENCE_1B,
    REFERENCE_3B,
    Architecture,
    budget_cap,
    graph_cost,
    node_flops,
    node_latency,
    repair,
    unit_flops,
)
from harness.errors import BudgetError
from harness.graph import OUTPUT, Graph
from harness.pool import load_pool

LENGTHS = {"math": (202, 275), "mmlu": (213, 215), "humaneval": (180, 115)}


@pytest.fixture(scope="module")
def pool():
    return load_pool("llama3")


def g(nodes, edges, output):
    return Graph.create(nodes, edges, output)


GRAPHS = {
    # 1B -> output(3B)
    "single": g([(0, "1B", "assistant")], [(0, "output")], "3B"),
    # three parallel 3B -> output(8B)
    "parallel": g(
        [(i, "3B", "assistant") for i in range(3)], [(i, "output") for i in range(3)], "8B"
    ),
    # 0, 1 (1B) -> 2 (3B fuser) -> output(3B), and 0 -> output
    "fused": g(
        [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
        [(0, 2), (1, 2), (2, "output"), (0, "output")],
        "3B",
    ),
    # 70B -> 1B -> output(1B)
    "chain": g([(0, "70B", "assistant"), (1, "1B", "assistant")], [(0, 1), (1, "output")], "1B"),
}

# Computed by hand (exact rational arithmetic, PAPER.md section 3) for each graph and task.
EXPECTED = {
    "math": {
        "single": 5.757159140703789,
        "parallel": 30.941360010195968,
        "fused": 15.093910430258516,
        "chain": 72.40993660790795,
    },
    "mmlu": {
        "single": 5.526597707213894,
        "parallel": 29.11047273785191,
        "fused": 14.153432363684729,
        "chain": 72.33241778572413,
    },
    "humaneval": {
        "single": 5.178100843602517,
        "parallel": 26.358925050848473,
        "fused": 12.73488438379408,
        "chain": 72.30972731031147,
    },
}


@pytest.mark.parametrize("task", sorted(LENGTHS))
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_flops_match_hand_computed_values(pool, task, name):
    cost = graph_cost(GRAPHS[name], pool, LENGTHS[task])
    assert cost.units == pytest.approx(EXPECTED[task][name], rel=1e-12)
    assert sum(cost.per_node.values()) == pytest.approx(cost.units)


def test_node_flops_formula_by_hand():
    # 1B, A=202, B=275, one input: Np = 477, Nd = 275.
    m, ld = 1e9, 16 * 2048
    prefill = 2 * m * 477 + 2 * ld * 477 * 478
    decode = 2 * m * 275 + 2 * ld * 275 * (2 * 477 + 275 + 1)
    assert node_flops(REFERENCE_1B, (202, 275), 1) == pytest.approx(prefill + decode, rel=1e-15)


def test_the_unit_is_one_reference_call(pool):
    for lengths in LENGTHS.values():
        single = g([(0, "1B", "assistant")], [(0, "output")], "1B")
        cost = graph_cost(single, pool, lengths)
        assert cost.per_node[0] == pytest.approx(1.0)
        assert unit_flops(lengths) == node_flops(REFERENCE_1B, lengths, 0)


# Cap values, PAPER.md section 3 ("about 79 units on MATH, 70 on MMLU, 56 on HumanEval" at k=12).
CAPS = {
    ("math", 8): 42.956745398215126,
    ("math", 12): 79.14595932364055,
    ("mmlu", 8): 38.51073899220746,
    ("mmlu", 12): 69.96428479093458,
    ("humaneval", 8): 31.887331279217197,
    ("humaneval", 12): 56.39226670060733,
}


@pytest.mark.parametrize(("task", "level"), sorted(CAPS))
def test_budget_cap_values(task, level):
    assert budget_cap(level, LENGTHS[task]) == pytest.approx(CAPS[(task, level)], rel=1e-12)


@pytest.mark.parametrize("level", [8, 12])
def test_budget_cap_gsm8k_from_its_lengths(level):
    from harness.tasks import load_task

    a, b = load_task("gsm8k").lengths

    def flops(m, layers, hidden, d):
        n_p, n_d = a + d * b, b
        return (
            2 * m * n_p
            + 2 * layers * hidden * n_p * (n_p + 1)
            + 2 * m * n_d
            + 2 * layers * hidden * n_d * (2 * n_p + n_d + 1)
        )

    reference = sum(flops(1e9, 16, 2048, i) for i in range(level)) + flops(3e9, 28, 3072, level)
    assert budget_cap(level, (a, b)) == pytest.approx(reference / flops(1e9, 16, 2048, 0))


def test_cap_is_the_complete_dag_reference_graph(pool):
    k = 5
    nodes = [(i, "1B", "assistant") for i in range(k)]
    edges = [(i, j) for i in range(k) for j in range(i + 1, k)] + [(i, "output") for i in range(k)]
    reference = g(nodes, edges, "3B")
    assert graph_cost(reference, pool, LENGTHS["math"]).units == pytest.approx(
        budget_cap(k, LENGTHS["math"])
    )
    assert Architecture.of(pool.model("3B")) == REFERENCE_3B


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_budget_level_must_be_positive_integer(bad):
    with pytest.raises(BudgetError, match="budget level"):
        budget_cap(bad, LENGTHS["math"])


def test_latency_is_the_critical_path(pool):
    lengths = LENGTHS["math"]
    graph = GRAPHS["fused"]
    one_b, three_b = pool.model("1B"), pool.model("3B")
    t_source = node_latency(one_b, lengths, 0)
    t_fuser = node_latency(three_b, lengths, 2)
    t_output = node_latency(three_b, lengths, 2)
    assert graph_cost(graph, pool, lengths).latency_s == pytest.approx(
        t_source + t_fuser + t_output
    )
    # Parallel branches overlap: three parallel calls take as long as one, plus the output node.
    par = graph_cost(GRAPHS["parallel"], pool, lengths)
    expected = node_latency(three_b, lengths, 0) + node_latency(pool.model("8B"), lengths, 3)
    assert par.latency_s == pytest.approx(expected)


def test_latency_formula(pool):
    spec = pool.model("8B")
    n_p, n_d = 202 + 2 * 275, 275
    assert node_latency(spec, (202, 275), 2) == pytest.approx(
        spec.overhead_s + n_p / spec.prefill_tps + n_d / spec.decode_tps
    )


def test_tokens_are_counted(pool):
    cost = graph_cost(GRAPHS["fused"], pool, (202, 275))
    # prompts: 202, 202, 202 + 2*275, 202 + 2*275; outputs: 4 * 275
    assert cost.prompt_tokens == 202 * 4 + 4 * 275
    assert cost.output_tokens == 4 * 275


# ----- repair ----------------------------------------------------------------------------------


def test_repair_deletes_smallest_models_first(pool):
    lengths = LENGTHS["math"]
    nodes = [(0, "8B", "assistant"), (1, "3B", "assistant"), (2, "3B", "assistant")]
    nodes += [(3 + i, "1B", "assistant") for i in range(6)]
    edges = [(i, "output") for i in range(9)]
    big = g(nodes, edges, "3B")
    cap = graph_cost(big, pool, lengths).units - 0.5  # forces at least one deletion
    fixed = repair(big, pool, lengths, cap, random.Random(0))
    assert graph_cost(fixed, pool, lengths).units <= cap
    removed = set(big.node_ids) - set(fixed.node_ids)
    assert removed and all(big.node(i).model == "1B" for i in removed)
    assert fixed.model_counts()["8B"] == 1


def test_repair_keeps_a_fitting_graph(pool):
    graph = GRAPHS["fused"]
    assert repair(graph, pool, LENGTHS["math"], 1000.0) is graph


def test_repair_ties_are_random_but_seeded(pool):
    lengths = LENGTHS["math"]
    big = g([(i, "1B", "assistant") for i in range(10)], [(i, "output") for i in range(10)], "3B")
    cap = graph_cost(big, pool, lengths).units - 3
    outcomes = {repair(big, pool, lengths, cap, random.Random(s)).node_ids for s in range(20)}
    assert len(outcomes) > 1
    assert repair(big, pool, lengths, cap, random.Random(7)) == repair(
        big, pool, lengths, cap, random.Random(7)
    )


def test_repair_turns_orphaned_fusers_into_assistants(pool):
    lengths = LENGTHS["math"]
    graph = g(
        [(0, "1B", "assistant"), (1, "8B", "fuser")], [(0, 1), (1, "output"), (0, "output")], "3B"
    )
    cap = graph_cost(graph, pool, lengths).units - 0.1
    fixed = repair(graph, pool, lengths, cap)
    assert fixed.node_ids == (1,)
    assert fixed.node(1).role == "assistant"
    assert fixed.edges == ((1, OUTPUT),)


def test_repair_fails_clearly_when_impossible(pool):
    graph = g([(0, "70B", "assistant")], [(0, "output")], "70B")
    with pytest.raises(BudgetError, match="cannot be repaired"):
        repair(graph, pool, LENGTHS["math"], 10.0)
