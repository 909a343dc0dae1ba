"""Hypothesis strategies for valid collaboration graphs."""

from __future__ import annotations

from hypothesis import strategies as st

from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node

MODELS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 8, models: tuple[str, ...] = MODELS) -> Graph:
    """A valid graph whose node ids are a random sample (not 0..n-1), every node kept."""
    n = draw(st.integers(1, max_nodes))
    ids = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n, unique=True))
    # Position in `ids` is a topological order; edges only go forward in it.
    edges = [(ids[i], ids[j]) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())]
    has_succ = {src for src, _ in edges}
    # Sinks must feed the output node so that nothing is pruned; others may too.
    edges += [(ids[i], OUTPUT) for i in range(n) if ids[i] not in has_succ or draw(st.booleans())]
    parents: dict[int, list[int]] = {i: [] for i in ids}
    for src, dst in edges:
        if dst != OUTPUT:
            parents[dst].append(src)
    roles: dict[int, str] = {}
    for node_id in ids:
        parent_roles = {roles[p] for p in parents[node_id]}
        can_fuse = ASSISTANT in parent_roles and FUSER not in parent_roles
        roles[node_id] = FUSER if can_fuse and draw(st.booleans()) else ASSISTANT
    nodes = [Node(i, draw(st.sampled_from(models)), roles[i]) for i in ids]
    return Graph.create(nodes, edges, draw(st.sampled_from(models)))


@st.composite
def relabelled(draw: st.DrawFn, graph: Graph) -> Graph:
    """The same graph with its agent nodes renumbered at random."""
    new_ids = draw(
        st.lists(
            st.integers(0, 99), min_size=len(graph.nodes), max_size=len(graph.nodes), unique=True
        )
    )
    mapping = dict(zip(graph.node_ids, new_ids, strict=True))
    mapping[OUTPUT] = OUTPUT
    nodes = [Node(mapping[n.id], n.model, n.role) for n in graph.nodes]
    edges = [(mapping[s], mapping[d]) for s, d in graph.edges]
    return Graph.create(nodes, edges, graph.output_model)
