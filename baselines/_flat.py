"""Shared by the Optuna and evolutionary baselines: turning raw proposals into valid graphs.

A point of the flat parametrisation (``Space.params``) or a mutated graph may break a role rule
or leave the output node without an input. Rather than reject it, :func:`legal_graph` maps it
to the nearest valid graph by a fixed rule, so that "proposal -> graph" is a deterministic
function a model-based optimiser can learn (many proposals share a graph, none is wasted):

- in topological order, a fuser without an assistant parent or with a fuser parent becomes an
  assistant (what the paper's role sampler would allow there);
- an output node without inputs is fed by the last node in topological order; with
  ``wire_sinks`` every node without successors feeds it, so that no node is dropped and a
  fixed model combination is kept whole.

:func:`decode_legal` adds the budget: the paper's repair with ties broken by the lowest id (no
random generator), again so that a point always maps to the same graph.

Example:
    >>> from harness.graph import Node
    >>> g = legal_graph([Node(0, "1B", "fuser"), Node(1, "1B", "assistant")], [], "3B")
    >>> [n.role for n in g.nodes], g.edges
    (['assistant'], ((1, -1),))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from harness.errors import GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node
from harness.space import OFF, Space

__all__ = ["decode_legal", "feasible_models", "legal_graph", "topological"]


def feasible_models(space: Space) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The pool's models that can appear in a graph within the cap: (agent, output) models.

    An agent model is feasible if one node of it feeding the pool's output model fits; an
    output model, if one node of the smallest model feeding it fits. The rest can never be
    part of a graph the space accepts (the repair deletes the smallest models first), so
    searching them only wastes proposals: at level 12 on MATH a 70B output node is over the cap.

    Example:
        >>> from harness.pool import load_pool
        >>> agents, outputs = feasible_models(Space(load_pool("llama3"), (202, 275), level=12))
        >>> outputs
        ('llama-3.2-1b', 'llama-3.2-3b', 'llama-3.1-8b')
    """
    pool = space.pool
    default_out, smallest = pool.model(pool.output_model).name, pool.names[0]

    def fits(agent: str, output: str) -> bool:
        return space.fits(Graph.create([Node(0, agent, ASSISTANT)], [(0, OUTPUT)], output))

    agents = tuple(m for m in pool.names if fits(m, default_out))
    outputs = tuple(m for m in pool.names if fits(smallest, m))
    return agents, outputs


def topological(ids: Sequence[int], edges: Iterable[tuple[int, int]]) -> list[int]:
    """Agent node ids in topological order (smallest id first among ready ones).

    Raises:
        GraphError: the agent edges contain a cycle.
    """
    parents: dict[int, set[int]] = {i: set() for i in ids}
    for src, dst in edges:
        if dst != OUTPUT:
            parents[dst].add(src)
    order: list[int] = []
    done: set[int] = set()
    pending = sorted(ids)
    while pending:
        ready = next((i for i in pending if parents[i] <= done), None)
        if ready is None:
            raise GraphError(f"edges among nodes {pending} close a cycle")
        pending.remove(ready)
        done.add(ready)
        order.append(ready)
    return order


def legal_graph(
    nodes: Sequence[Node],
    edges: Iterable[tuple[int, int]],
    output_model: str,
    wire_sinks: bool = False,
) -> Graph:
    """The valid graph nearest to ``nodes`` and acyclic ``edges`` (rules in the module doc).

    Raises:
        GraphError: no nodes, a cycle, or an edge naming a missing node.
    """
    if not nodes:
        raise GraphError("a graph needs at least one agent node")
    edge_set = set(edges)
    ids = [n.id for n in nodes]
    order = topological(ids, edge_set)
    parents: dict[int, list[int]] = {i: [] for i in ids}
    for src, dst in edge_set:
        if dst != OUTPUT:
            parents[dst].append(src)
    roles = {n.id: n.role for n in nodes}
    for node_id in order:
        parent_roles = {roles[p] for p in parents[node_id]}
        if roles[node_id] == FUSER and (ASSISTANT not in parent_roles or FUSER in parent_roles):
            roles[node_id] = ASSISTANT
    if wire_sinks:
        has_succ = {src for src, _ in edge_set}
        edge_set |= {(i, OUTPUT) for i in ids if i not in has_succ}
    if not any(dst == OUTPUT for _, dst in edge_set):
        edge_set.add((order[-1], OUTPUT))
    fixed = [Node(n.id, n.model, roles[n.id]) for n in nodes]
    return Graph.create(fixed, sorted(edge_set), output_model)


def decode_legal(space: Space, values: Mapping[str, str | int], wire_sinks: bool = False) -> Graph:
    """The valid, budget-repaired graph of a point of ``space``'s flat parametrisation.

    Missing variables take their first choice (``off``, 0, the first model) and roles default
    to assistant, so a point may name only the variables a method searches.

    Raises:
        GraphError: every slot is off, or an unknown value.
        BudgetError: the graph cannot be repaired to the cap.
    """
    full: dict[str, str | int] = {p.name: p.choices[0] for p in space.params()}
    full.update({f"slot{i}.role": ASSISTANT for i in range(space.max_nodes)})
    full.update(values)
    for param in space.params():
        if full[param.name] not in param.choices:
            raise GraphError(f"parametrisation: {param.name}={full[param.name]!r} is not allowed")
    active = [i for i in range(space.max_nodes) if full[f"slot{i}.model"] != OFF]
    if not active:
        raise GraphError("parametrisation: every slot is off")
    nodes = [Node(i, str(full[f"slot{i}.model"]), str(full[f"slot{i}.role"])) for i in active]
    edges = [(i, j) for i in active for j in active if i < j and full[f"edge{i}-{j}"] == 1]
    edges += [(i, OUTPUT) for i in active if full[f"edge{i}-output"] == 1]
    graph = legal_graph(nodes, edges, str(full["output.model"]), wire_sinks)
    return space.repair(graph)
