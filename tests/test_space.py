from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import Graph
from harness.pool import load_pool
from harness.space import OFF, Space
from tests.strategies import graphs

MATH = (202, 275)


@pytest.fixture(scope="module")
def pool():
    return load_pool("llama3")


def test_combinations_at_level_9_are_the_papers(pool):
    space = Space(pool, MATH, level=9, task="math")
    labels = [c.label for c in space.combos()]
    # PAPER.md section 6 lists these five at equal budget; they are exactly the 9-cost fillings.
    assert labels == ["1x8B", "3x3B", "2x3B+3x1B", "1x3B+6x1B", "9x1B"]
    assert all(c.cost == 9 for c in space.combos())


def test_combinations_at_level_12(pool):
    space = Space(pool, MATH, level=12, task="math")
    combos = space.combos()
    assert {c.label for c in combos} == {
        "1x8B+1x3B",
        "1x8B+3x1B",
        "4x3B",
        "3x3B+3x1B",
        "2x3B+6x1B",
        "1x3B+9x1B",
        "12x1B",
    }
    assert all(c.cost == 12 for c in combos)


def test_combinations_use_task_specific_costs(pool):
    # HumanEval costs 1, 4, 7, 81: at level 8 the fillings sum to exactly 8.
    space = Space(pool, (180, 115), level=8, task="humaneval")
    labels = {c.label for c in space.combos()}
    assert labels == {"1x8B+1x1B", "2x3B", "1x3B+4x1B", "8x1B"}


def test_combinations_respect_max_nodes(pool):
    space = Space(pool, MATH, level=9, max_nodes=4, task="math")
    # Only 1x8B and 3x3B have at most four nodes; least left over is still 0.
    assert [c.label for c in space.combos()] == ["1x8B", "3x3B"]


def test_combination_with_leftover_when_nothing_fills_exactly(pool):
    space = Space(pool, MATH, level=2, max_nodes=1, task="math")
    assert [c.label for c in space.combos()] == ["1x1B"]


def test_parse_combo(pool):
    space = Space(pool, MATH, level=9)
    assert space.parse_combo("2x3B+3x1B").models == ("llama-3.2-3b",) * 2 + ("llama-3.2-1b",) * 3
    assert space.parse_combo("8B").label == "1x8B"
    for bad in ["2x", "x3B", "0x3B", "2x9B", "two x 3B"]:
        with pytest.raises(ConfigError):
            space.parse_combo(bad)


@pytest.mark.parametrize("level", [4, 8, 12])
def test_samples_are_valid_feasible_and_seeded(pool, level):
    space = Space(pool, MATH, level=level)
    for seed in range(40):
        graph = space.sample(random.Random(seed))
        assert space.fits(graph)
        assert space.validate(graph) == graph
        assert len(graph.nodes) <= space.max_nodes
    again = [space.sample(random.Random(s)).id for s in range(10)]
    assert again == [space.sample(random.Random(s)).id for s in range(10)]
    assert len(set(again)) > 1


def test_sample_from_a_given_combination(pool):
    space = Space(pool, MATH, level=9)
    combo = space.parse_combo("3x3B")
    for seed in range(10):
        graph = space.sample(random.Random(seed), combo=combo, edge_prob=0.3)
        assert set(graph.model_counts()) <= {"llama-3.2-3b"}


def test_validate_rejects_over_cap_and_foreign_models(pool):
    space = Space(pool, MATH, level=4)
    # Four 1B nodes (combination cost 4) in a complete DAG into an 8B output: 34.3 units > 17.8.
    nodes = [(i, "1B", "assistant") for i in range(4)]
    edges = [(i, j) for i in range(4) for j in range(i + 1, 4)] + [(i, "output") for i in range(4)]
    big = Graph.create(nodes, edges, "8B")
    with pytest.raises(BudgetError, match="over the cap"):
        space.validate(big)
    # At level 4 the 8B output node alone (9) is over the integer budget of 4 + 3: no repair.
    with pytest.raises(BudgetError, match="8B output node costs 9 of the integer budget 7"):
        space.repair(big, random.Random(0))
    with_3b = big.replace_models({"8B": "3B"})
    assert space.fits(with_3b)  # the cap's reference graph itself
    alien = Graph.create([(0, "gpt-9", "assistant")], [(0, "output")], "3B")
    with pytest.raises(GraphError, match="node 0: unknown model 'gpt-9'"):
        space.validate(alien)
    many = Graph.create(
        [(i, "1B", "assistant") for i in range(6)], [(i, "output") for i in range(6)], "1B"
    )
    with pytest.raises(GraphError, match="max_nodes=4"):
        space.validate(many)


def test_the_combination_budget_binds_too(pool):
    # One 70B call and a 3B output node fit the level-12 FLOPs cap (74.0 < 79.15 units), but
    # their integer cost of 81 + 3 does not fit 12 + 3: the paper never builds that graph.
    space = Space(pool, MATH, level=12)
    lone = Graph.create([(0, "70B", "assistant")], [(0, "output")], "3B")
    assert space.cost(lone).fits(space.cap)
    assert space.combo_cost(lone) == 84 and not space.fits(lone)
    with pytest.raises(
        BudgetError,
        match=r"\(1x70B \+ 3B output\) have combination cost 84, over the integer budget 15",
    ):
        space.validate(lone)
    with pytest.raises(BudgetError, match="cannot be repaired"):
        space.repair(lone)
    mixed = Graph.create(
        [(0, "8B", "assistant"), (1, "8B", "assistant"), (2, "1B", "assistant")],
        [(0, "output"), (1, "output"), (2, "output")],
        "3B",
    )
    fixed = space.repair(mixed, random.Random(0))  # drops the 1B, then one 8B: 9 + 3 <= 15
    assert space.fits(fixed) and fixed.model_counts() == {"llama-3.1-8b": 1}


def _parallel(n, model, output):
    nodes = [(i, model, "assistant") for i in range(n)]
    return Graph.create(nodes, [(i, "output") for i in range(n)], output)


def test_the_output_node_pays_in_the_integer_budget(pool):
    # Level 12 on MATH: the reference graph (12x1B + a 3B output) costs 12 + 3 = 15.
    space = Space(pool, MATH, level=12, task="math")
    assert space.combo_budget == 15
    assert (space.agent_budget(), space.agent_budget("1B"), space.agent_budget("8B")) == (12, 14, 6)
    # Twelve parallel 1B agents into an 8B output fit the FLOPs cap (78.23 < 79.15 units): only
    # the integer budget stops the 8B output node from being free.
    loophole = _parallel(12, "1B", "8B")
    assert space.cost(loophole).fits(space.cap)
    assert space.combo_cost(loophole) == 12 + 9 and not space.fits(loophole)
    with pytest.raises(BudgetError, match=r"\(12x1B \+ 8B output\) have combination cost 21"):
        space.validate(loophole)
    assert space.why_not(loophole) and not space.why_not(_parallel(6, "1B", "8B"))
    six = _parallel(6, "1B", "8B")
    assert space.cost(six).fits(space.cap) and space.combo_cost(six) == 15 and space.fits(six)
    assert space.fits(_parallel(12, "1B", "3B"))
    assert not space.fits(_parallel(7, "1B", "8B"))


def test_humaneval_charges_its_own_output_cost(pool):
    # HumanEval's integer costs are 1, 4, 7, 81: level 8 gives 8 + 4, an 8B output leaves 5.
    space = Space(pool, (180, 115), level=8, task="humaneval")
    assert (space.combo_budget, space.agent_budget("8B")) == (12, 5)
    assert space.fits(_parallel(5, "1B", "8B")) and not space.fits(_parallel(6, "1B", "8B"))


def test_repair_of_an_expensive_output_node_terminates_and_fits(pool):
    space = Space(pool, MATH, level=12, task="math")
    for seed in range(5):
        repaired = space.repair(_parallel(12, "1B", "8B"), random.Random(seed))
        assert space.fits(repaired) and repaired.output_model == "llama-3.1-8b"
        assert repaired.model_counts() == {"llama-3.2-1b": 6}  # 6 + 9 = 15
    # A 70B output node (81) leaves no room for any agent: one clear line, no endless loop.
    with pytest.raises(BudgetError, match="70B output node costs 81 of the integer budget 15"):
        space.repair(_parallel(3, "1B", "70B"))


@pytest.mark.parametrize("output", ["1B", "3B", "8B"])
def test_samples_with_each_output_model_fit(pool, output):
    space = Space(pool, MATH, level=12, task="math")
    full = pool.model(output).name
    assert all(c.cost <= space.agent_budget(output) for c in space.combos(output))
    for seed in range(30):
        graph = space.sample(random.Random(seed), output_model=output)
        assert graph.output_model == full
        assert space.fits(graph) and space.validate(graph) == graph and not space.why_not(graph)
        assert space.combo_cost(graph) <= space.combo_budget


def test_sampling_an_output_model_that_leaves_no_room_is_refused(pool):
    space = Space(pool, MATH, level=12, task="math")
    assert space.combos("70B") == []
    with pytest.raises(BudgetError, match="beside a 70B output node"):
        space.sample(random.Random(0), output_model="70B")


def test_default_combinations_are_unchanged_by_charging_the_output(pool):
    # The agent combinations fill what the reference output model leaves: the level itself.
    for level in (4, 9, 12):
        space = Space(pool, MATH, level=level, task="math")
        assert space.combos() == space.combos("3B")
        assert {c.cost for c in space.combos()} == {level}
    wider = Space(pool, MATH, level=9, max_nodes=11, task="math")
    assert "11x1B" in {c.label for c in wider.combos("1B")}  # a 1B output frees 2 units


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_max_nodes_must_be_positive(pool, bad):
    with pytest.raises(ConfigError, match="max_nodes"):
        Space(pool, MATH, level=8, max_nodes=bad)


# ----- flat parametrisation --------------------------------------------------------------------


def test_params_shape(pool):
    space = Space(pool, MATH, level=3)
    names = [p.name for p in space.params()]
    assert names[:2] == ["slot0.model", "slot0.role"]
    assert "edge0-1" in names and "edge1-0" not in names and "edge2-output" in names
    assert names[-1] == "output.model"
    assert dict((p.name, p.choices) for p in space.params())["slot0.model"][0] == OFF
    assert len(names) == 3 * 2 + 3 + 3 + 1


@settings(max_examples=200, deadline=None)
@given(graphs(max_nodes=8))
def test_parametrisation_round_trips(graph):
    space = Space(load_pool("llama3"), MATH, level=8)
    values = space.encode(graph)
    back = space.decode(values)
    assert back.id == graph.id
    assert back.relabel() == graph.relabel()
    assert space.encode(back) == values


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_decode_of_any_values_is_a_valid_graph_or_a_graph_error(data):
    space = Space(load_pool("llama3"), MATH, level=5)
    values = {p.name: data.draw(st.sampled_from(p.choices)) for p in space.params()}
    try:
        graph = space.decode(values)
    except GraphError:
        return
    assert len(graph.nodes) <= space.max_nodes


def test_decode_rejects_missing_and_out_of_range_values(pool):
    space = Space(pool, MATH, level=2)
    values = space.encode(Graph.create([(0, "1B", "assistant")], [(0, "output")], "3B"))
    broken = dict(values)
    del broken["edge0-1"]
    with pytest.raises(GraphError, match="missing value for 'edge0-1'"):
        space.decode(broken)
    with pytest.raises(GraphError, match="slot1.model='9B'"):
        space.decode({**values, "slot1.model": "9B"})


def test_encode_rejects_too_many_nodes(pool):
    space = Space(pool, MATH, level=2)
    graph = Graph.create(
        [(i, "1B", "assistant") for i in range(3)], [(i, "output") for i in range(3)], "1B"
    )
    with pytest.raises(GraphError, match="do not fit 2 slots"):
        space.encode(graph)


@pytest.mark.parametrize("output", ["1B", "3B", "8B"])
def test_decoded_points_with_any_feasible_output_repair_to_a_fitting_graph(pool, output):
    space = Space(pool, MATH, level=12, task="math")
    values = space.encode(_parallel(12, "1B", "3B"))
    graph = space.decode({**values, "output.model": pool.model(output).name})
    repaired = space.repair(graph, random.Random(0))
    assert space.fits(repaired) and repaired.output_model == pool.model(output).name
