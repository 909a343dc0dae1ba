from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import GraphError
from harness.graph import OUTPUT, Graph, Node, from_json, parse_text
from tests.strategies import graphs, relabelled


def make(nodes, edges, output="3B"):
    return Graph.create(nodes, edges, output)


def fan_in():
    return make(
        [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
        [(0, 2), (1, 2), (2, "output")],
    )


# ----- constraints, accepted -------------------------------------------------------------------


def test_single_assistant_into_output_is_valid():
    g = make([(0, "1B", "assistant")], [(0, "output")])
    assert g.node_ids == (0,)
    assert g.edges == ((0, OUTPUT),)
    assert (g.width, g.depth) == (1, 1)


def test_fuser_with_assistant_parents_is_valid():
    g = fan_in()
    assert g.node(2).role == "fuser"
    assert g.predecessors_map()[2] == (0, 1)


def test_assistant_may_read_assistants_and_fusers():
    g = make(
        [(0, "1B", "assistant"), (1, "3B", "fuser"), (2, "8B", "assistant")],
        [(0, 1), (1, 2), (0, 2), (2, "output")],
    )
    assert g.depth == 3


def test_output_may_read_many_nodes_and_duplicates_collapse():
    g = make(
        [(0, "1B", "assistant"), (1, "1B", "assistant")],
        [(0, "output"), (1, "output"), (1, "output"), ("0", "output")],
    )
    assert g.in_degree(OUTPUT) == 2


# ----- constraints, rejected (each message names the node or edge) ---------------------------


@pytest.mark.parametrize(
    ("nodes", "edges", "needle"),
    [
        ([(0, "1B", "assistant")], [], "node output: needs at least one predecessor"),
        (
            [(0, "1B", "fuser")],
            [(0, "output")],
            "node 0: a fuser needs at least one assistant parent",
        ),
        (
            [(0, "1B", "assistant"), (1, "1B", "fuser"), (2, "3B", "fuser")],
            [(0, 1), (1, 2), (0, 2), (2, "output")],
            "edge 1->2: a fuser cannot have a fuser parent",
        ),
        (
            [(0, "1B", "assistant"), (1, "1B", "assistant")],
            [(0, 1), (1, 0), (1, "output")],
            "closes a cycle",
        ),
        ([(0, "1B", "assistant")], [(0, 0), (0, "output")], "edge 0->0: a node cannot feed itself"),
        ([(0, "1B", "assistant")], [(0, 7), (0, "output")], "edge 0->7: node 7 does not exist"),
        ([(0, "1B", "assistant")], [("output", 0), (0, "output")], "edge output->0"),
        (
            [(0, "1B", "assistant"), (0, "3B", "assistant")],
            [(0, "output")],
            "node 0: id used twice",
        ),
        ([(0, "1B", "critic")], [(0, "output")], "node 0: role 'critic' is not one of"),
        ([(0, "", "assistant")], [(0, "output")], "node 0: model must be a non-empty name"),
        ([(-3, "1B", "assistant")], [(-3, "output")], "node -3"),
        ([(0, "1B", "assistant")], [(0, "out")], "expected a node id or 'output'"),
    ],
)
def test_invalid_graphs_are_rejected_with_the_offender_named(nodes, edges, needle):
    with pytest.raises(GraphError, match=None) as info:
        make(nodes, edges)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_a_graph_needs_an_assistant_after_pruning():
    with pytest.raises(GraphError, match="node 1: a fuser needs"):
        make([(0, "1B", "assistant"), (1, "1B", "fuser")], [(1, "output")])


def test_nodes_without_a_path_to_output_are_dropped():
    g = make(
        [
            (0, "1B", "assistant"),
            (1, "3B", "assistant"),
            (2, "8B", "assistant"),
            (3, "1B", "fuser"),
        ],
        [(0, "output"), (1, 2), (2, 3)],  # 1 -> 2 -> 3 never reaches the output node
    )
    assert g.node_ids == (0,)
    assert g.dropped == (1, 2, 3)
    assert g.edges == ((0, OUTPUT),)


def test_width_and_depth():
    chains = make(
        [(i, "1B", "assistant") for i in range(6)],
        [(0, 1), (1, 2), (3, 4), (4, 5), (2, "output"), (5, "output")],
    )
    assert (chains.width, chains.depth) == (2, 3)
    parallel = make([(i, "1B", "assistant") for i in range(5)], [(i, "output") for i in range(5)])
    assert (parallel.width, parallel.depth) == (5, 1)
    assert fan_in().topological_order() == (0, 1, 2)


# ----- forms -----------------------------------------------------------------------------------


def test_text_form_is_one_line_per_node():
    assert fan_in().to_text().splitlines() == [
        "0 | 1B | assistant | in: - | out: 2",
        "1 | 1B | assistant | in: - | out: 2",
        "2 | 3B | fuser | in: 0, 1 | out: output",
        "output | 3B | output | in: 2 | out: -",
    ]


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_text_form_round_trips(graph):
    back = parse_text(graph.to_text())
    assert back == graph
    assert back.id == graph.id


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_json_form_round_trips_through_a_string(graph):
    back = from_json(json.loads(json.dumps(graph.to_json())))
    assert back == graph


def test_parser_ignores_comments_and_blank_lines():
    text = "# a comment\n\n" + fan_in().to_text() + "\n"
    assert parse_text(text) == fan_in()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0 | 1B | assistant | in: - | out: output", "no 'output | MODEL | output"),
        ("0 | 1B | assistant | out: output\noutput | 3B | output | in: 0 | out: -", "line 1"),
        (
            "0 | 1B | assistant | in: - | out: -\noutput | 3B | output | in: 0 | out: -",
            "edge 0->output is listed only in in:",
        ),
        (
            "0 | 1B | assistant | in: - | out: output\noutput | 3B | fuser | in: 0 | out: -",
            "role must be 'output'",
        ),
        (
            "x | 1B | assistant | in: - | out: output\noutput | 3B | output | in: x | out: -",
            "line 1",
        ),
        (
            "0 | 1B | assistant | in: - | out: output\noutput | 3B | output | in: 0 | out: 0",
            "no successors",
        ),
    ],
)
def test_parser_rejects_malformed_text(text, needle):
    with pytest.raises(GraphError) as info:
        parse_text(text, where="g.txt")
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([], "expected an object"),
        ({"nodes": {}, "output": {"model": "3B"}, "edges": []}, "'nodes' must be a list"),
        ({"nodes": [{"id": 0}], "output": {"model": "3B"}, "edges": []}, "nodes[0] needs fields"),
        ({"nodes": [], "output": "3B", "edges": []}, "'output' must be an object"),
        (
            {"nodes": [], "output": {"model": "3B"}, "edges": [[0]]},
            "edges[0] must be a [source, target] pair",
        ),
        ({"schema": 9, "nodes": [], "output": {"model": "3B"}, "edges": []}, "schema 9"),
    ],
)
def test_json_reader_names_the_bad_field(data, needle):
    with pytest.raises(GraphError) as info:
        from_json(data)
    assert needle in str(info.value)


# ----- identity --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_id_ignores_node_numbering(data):
    graph = data.draw(graphs())
    other = data.draw(relabelled(graph))
    assert other.id == graph.id
    assert other.relabel() == graph.relabel()


def test_id_is_stable_across_processes_and_edge_order():
    a = make([(0, "1B", "assistant"), (1, "3B", "assistant")], [(0, "output"), (1, "output")])
    b = make([(1, "3B", "assistant"), (0, "1B", "assistant")], [(1, "output"), (0, "output")])
    assert a.id == b.id
    # The id is a content hash, not Python's per-process hash(): pin one value.
    assert (
        a.id
        == make([(0, "1B", "assistant"), (1, "3B", "assistant")], [(0, "output"), (1, "output")]).id
    )
    assert len(a.id) == 16 and int(a.id, 16) >= 0


def test_different_graphs_have_different_ids():
    base = fan_in()
    variants = [
        base.replace_models({"3B": "8B"}),
        make(
            [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "assistant")],
            [(0, 2), (1, 2), (2, "output")],
        ),
        make(
            [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
            [(0, 2), (1, 2), (2, "output"), (0, "output")],
        ),
        Graph.create(base.nodes, base.edges, "8B"),
    ]
    ids = {base.id, *(v.id for v in variants)}
    assert len(ids) == 5


def test_id_separates_chain_pairings():
    # Two chains whose heads look alike but whose tails differ: a naive per-level sort would
    # mix the pairings up; the canonical order must not.
    one = make(
        [
            (0, "1B", "assistant"),
            (1, "1B", "assistant"),
            (2, "3B", "assistant"),
            (3, "8B", "assistant"),
        ],
        [(0, 2), (1, 3), (2, "output"), (3, "output")],
    )
    two = make(
        [
            (0, "1B", "assistant"),
            (1, "1B", "assistant"),
            (2, "3B", "assistant"),
            (3, "8B", "assistant"),
        ],
        [(1, 2), (0, 3), (2, "output"), (3, "output")],
    )
    assert one.id == two.id  # the same graph, numbered differently
    three = make(
        [
            (0, "1B", "assistant"),
            (1, "3B", "assistant"),
            (2, "3B", "assistant"),
            (3, "8B", "assistant"),
        ],
        [(0, 2), (1, 3), (2, "output"), (3, "output")],
    )
    assert three.id != one.id


def test_many_identical_parallel_nodes_are_fast():
    import time

    g = make([(i, "1B", "assistant") for i in range(12)], [(i, "output") for i in range(12)])
    start = time.perf_counter()
    _ = g.id
    # Generous bound; twins must not be permuted 12! times.
    assert time.perf_counter() - start < 2.0


def test_node_lookup():
    g = fan_in()
    assert g.node(2) == Node(2, "3B", "fuser")
    assert g.model_of(OUTPUT) == "3B"
    with pytest.raises(KeyError):
        g.node(9)
