"""Collaboration graphs: agent nodes, one output node, edges (PAPER.md section 2).

A :class:`Graph` is immutable and always valid: every way of making one (:meth:`Graph.create`,
:func:`parse_text`, :func:`from_json`) checks each constraint and raises :class:`GraphError`
naming the offending node or edge. Nodes with no path to the output node are dropped on
creation (they would not be executed or charged); :attr:`Graph.dropped` remembers which.

Agent nodes have integer ids; the output node is called ``output`` in every text and JSON form
(:data:`OUTPUT` in code). Models are pool model names or their short aliases (``3B``); a
:class:`~harness.pool.Pool` resolves them.

Example:
    >>> g = Graph.create(
    ...     nodes=[(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
    ...     edges=[(0, 2), (1, 2), (2, "output")],
    ...     output_model="3B",
    ... )
    >>> print(g.to_text())
    0 | 1B | assistant | in: - | out: 2
    1 | 1B | assistant | in: - | out: 2
    2 | 3B | fuser | in: 0, 1 | out: output
    output | 3B | output | in: 2 | out: -
    >>> g.width, g.depth
    (2, 2)
    >>> parse_text(g.to_text()) == g
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from harness._canonical import canonical_order
from harness.errors import GraphError

__all__ = [
    "ASSISTANT",
    "FUSER",
    "OUTPUT",
    "ROLES",
    "Graph",
    "Node",
    "from_json",
    "parse_text",
]

OUTPUT: Final = -1
"""The output node's id in code; written ``output`` in text and JSON forms."""
ASSISTANT: Final = "assistant"
FUSER: Final = "fuser"
ROLES: Final = (ASSISTANT, FUSER)
JSON_SCHEMA: Final = 1

NodeRef = int | str
"""An agent node id, or ``"output"`` / :data:`OUTPUT` for the output node."""


@dataclass(frozen=True, order=True)
class Node:
    """One agent node: one LLM call of ``model`` in ``role``."""

    id: int
    model: str
    role: str


def _node_name(node_id: int) -> str:
    return "output" if node_id == OUTPUT else str(node_id)


def _ref(value: NodeRef, where: str) -> int:
    """Turn a node reference from user input into an id, or raise a GraphError."""
    if isinstance(value, bool):
        raise GraphError(f"{where}: expected a node id or 'output', got {value!r}")
    if isinstance(value, int):
        if value < 0 and value != OUTPUT:
            raise GraphError(f"{where}: node ids are non-negative integers, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "output":
            return OUTPUT
        if text.isdigit():
            return int(text)
    raise GraphError(f"{where}: expected a node id or 'output', got {value!r}")


@dataclass(frozen=True)
class Graph:
    """An immutable, valid collaboration graph.

    Build one with :meth:`create`; the constructor itself trusts its arguments.

    Attributes:
        nodes: agent nodes, sorted by id.
        edges: ``(source, target)`` pairs, sorted; a target may be :data:`OUTPUT`.
        output_model: the model of the output node.
        dropped: ids of nodes given at creation that had no path to the output node.
    """

    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int], ...]
    output_model: str
    dropped: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def create(
        cls,
        nodes: Iterable[Node | tuple[int, str, str]],
        edges: Iterable[tuple[NodeRef, NodeRef]],
        output_model: str,
    ) -> Graph:
        """Validate, prune and build a graph.

        Args:
            nodes: agent nodes as :class:`Node` or ``(id, model, role)`` tuples.
            edges: ``(source, target)`` pairs; ``"output"`` names the output node.
            output_model: the output node's model.

        Returns:
            The graph without the nodes that cannot reach the output node.

        Raises:
            GraphError: a constraint of PAPER.md section 2 is broken; the message names the
                node or edge.
        """
        by_id: dict[int, Node] = {}
        for raw in nodes:
            node = raw if isinstance(raw, Node) else Node(*raw)
            if isinstance(node.id, bool) or not isinstance(node.id, int) or node.id < 0:
                raise GraphError(f"node {node.id!r}: ids are non-negative integers")
            if node.id in by_id:
                raise GraphError(f"node {node.id}: id used twice")
            if not isinstance(node.model, str) or not node.model.strip():
                raise GraphError(f"node {node.id}: model must be a non-empty name")
            if node.role not in ROLES:
                raise GraphError(
                    f"node {node.id}: role {node.role!r} is not one of {', '.join(ROLES)}"
                )
            by_id[node.id] = Node(node.id, node.model.strip(), node.role)
        if not isinstance(output_model, str) or not output_model.strip():
            raise GraphError("node output: model must be a non-empty name")

        edge_set: set[tuple[int, int]] = set()
        for raw_src, raw_dst in edges:
            src = _ref(raw_src, f"edge {raw_src}->{raw_dst}")
            dst = _ref(raw_dst, f"edge {raw_src}->{raw_dst}")
            label = f"edge {_node_name(src)}->{_node_name(dst)}"
            if src == OUTPUT:
                raise GraphError(f"{label}: the output node has no successors")
            for end in (src, dst):
                if end != OUTPUT and end not in by_id:
                    raise GraphError(f"{label}: node {end} does not exist")
            if src == dst:
                raise GraphError(f"{label}: a node cannot feed itself")
            edge_set.add((src, dst))

        _check_acyclic(by_id, edge_set)
        keep = _reaching_output(edge_set)
        dropped = tuple(sorted(set(by_id) - keep))
        kept_nodes = tuple(sorted(by_id[i] for i in keep if i != OUTPUT))
        kept_edges = tuple(sorted((s, d) for s, d in edge_set if s in keep and d in keep))
        graph = cls(kept_nodes, kept_edges, output_model.strip(), dropped)
        graph._check_roles()
        return graph

    def _check_roles(self) -> None:
        preds = self.predecessors_map()
        if not preds[OUTPUT]:
            raise GraphError("node output: needs at least one predecessor")
        roles = {n.id: n.role for n in self.nodes}
        for node in self.nodes:
            if node.role != FUSER:
                continue
            parent_roles = [roles[p] for p in preds[node.id]]
            if FUSER in parent_roles:
                fuser = next(p for p in preds[node.id] if roles[p] == FUSER)
                raise GraphError(f"edge {fuser}->{node.id}: a fuser cannot have a fuser parent")
            if ASSISTANT not in parent_roles:
                raise GraphError(f"node {node.id}: a fuser needs at least one assistant parent")
        # Implied by the fuser rule (a source node cannot be a fuser), kept as a safety net.
        if ASSISTANT not in roles.values():
            raise GraphError("graph: needs at least one assistant node")

    # ----- structure -------------------------------------------------------------------------

    @property
    def node_ids(self) -> tuple[int, ...]:
        """Agent node ids, sorted."""
        return tuple(n.id for n in self.nodes)

    def node(self, node_id: int) -> Node:
        """The agent node with this id (KeyError if absent)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def model_of(self, node_id: int) -> str:
        """The model of an agent node or of the output node."""
        return self.output_model if node_id == OUTPUT else self.node(node_id).model

    def predecessors_map(self) -> dict[int, tuple[int, ...]]:
        """Predecessors of every node, output node included, each tuple sorted."""
        preds: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        preds[OUTPUT] = []
        for src, dst in self.edges:
            preds[dst].append(src)
        return {k: tuple(sorted(v)) for k, v in preds.items()}

    def successors_map(self) -> dict[int, tuple[int, ...]]:
        """Successors of every node, output node included, each tuple sorted."""
        succs: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        succs[OUTPUT] = []
        for src, dst in self.edges:
            succs[src].append(dst)
        # The output node sorts last in every listing; -1 would otherwise sort first.
        return {k: tuple(sorted(v, key=_output_last)) for k, v in succs.items()}

    def in_degree(self, node_id: int) -> int:
        """Number of predecessors of a node (the output node included)."""
        return sum(1 for _, dst in self.edges if dst == node_id)

    def topological_order(self) -> tuple[int, ...]:
        """Agent node ids in execution order (smallest id first among ready nodes)."""
        preds = self.predecessors_map()
        done: set[int] = set()
        order: list[int] = []
        pending = list(self.node_ids)
        while pending:
            ready = next(i for i in pending if all(p in done for p in preds[i]))
            pending.remove(ready)
            done.add(ready)
            order.append(ready)
        return tuple(order)

    def levels(self) -> dict[int, int]:
        """Each agent node's level: the number of agent nodes on the longest path into it."""
        preds = self.predecessors_map()
        level: dict[int, int] = {}
        for node_id in self.topological_order():
            level[node_id] = 1 + max((level[p] for p in preds[node_id]), default=0)
        return level

    @property
    def depth(self) -> int:
        """Agent nodes on the longest chain into the output node."""
        return max(self.levels().values())

    @property
    def width(self) -> int:
        """The most agent nodes at one level (parallel branches)."""
        counts: dict[int, int] = {}
        for lvl in self.levels().values():
            counts[lvl] = counts.get(lvl, 0) + 1
        return max(counts.values())

    def model_counts(self) -> dict[str, int]:
        """How many agent nodes use each model (the output node not counted)."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.model] = counts.get(node.model, 0) + 1
        return counts

    def replace_models(self, mapping: Mapping[str, str]) -> Graph:
        """The same graph with model names mapped (for example short aliases to full names)."""
        nodes = [Node(n.id, mapping.get(n.model, n.model), n.role) for n in self.nodes]
        output = mapping.get(self.output_model, self.output_model)
        return Graph(tuple(nodes), self.edges, output, self.dropped)

    # ----- forms -----------------------------------------------------------------------------

    def to_text(self) -> str:
        """The canonical text form: one line per node, ``id | model | role | in: .. | out: ..``."""
        preds, succs = self.predecessors_map(), self.successors_map()

        def names(ids: Sequence[int]) -> str:
            return ", ".join(_node_name(i) for i in ids) or "-"

        lines = [
            f"{n.id} | {n.model} | {n.role} | in: {names(preds[n.id])} | out: {names(succs[n.id])}"
            for n in self.nodes
        ]
        lines.append(f"output | {self.output_model} | output | in: {names(preds[OUTPUT])} | out: -")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in traces (``schema`` 1)."""
        return {
            "schema": JSON_SCHEMA,
            "nodes": [{"id": n.id, "model": n.model, "role": n.role} for n in self.nodes],
            "output": {"model": self.output_model},
            "edges": [[s, _json_ref(d)] for s, d in self.edges],
        }

    @cached_property
    def id(self) -> str:
        """A stable content id: graphs equal up to node numbering share it.

        It hashes the graph relabelled in a canonical order (see :mod:`harness._canonical`),
        so two graphs with the same id are always the same graph.
        """
        order = canonical_order(self)
        index = {old: new for new, old in enumerate(order)}
        index[OUTPUT] = OUTPUT
        payload = {
            "nodes": [[self.node(old).model, self.node(old).role] for old in order],
            "output": self.output_model,
            "edges": sorted([index[s], index[d]] for s, d in self.edges),
        }
        blob = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def relabel(self) -> Graph:
        """The same graph with agent nodes renumbered 0..n-1 in canonical order."""
        order = canonical_order(self)
        index = {old: new for new, old in enumerate(order)}
        index[OUTPUT] = OUTPUT
        nodes = tuple(Node(index[n.id], n.model, n.role) for n in self.nodes)
        edges = tuple(sorted((index[s], index[d]) for s, d in self.edges))
        return Graph(tuple(sorted(nodes)), edges, self.output_model)

    def __str__(self) -> str:
        return self.to_text()


def _output_last(node_id: int) -> tuple[int, int]:
    return (1, 0) if node_id == OUTPUT else (0, node_id)


def _json_ref(node_id: int) -> int | str:
    return "output" if node_id == OUTPUT else node_id


def _check_acyclic(by_id: Mapping[int, Node], edges: set[tuple[int, int]]) -> None:
    succs: dict[int, list[int]] = {i: [] for i in by_id}
    for src, dst in sorted(edges):
        if dst != OUTPUT:
            succs[src].append(dst)
    state: dict[int, int] = {}  # 1 = on the current path, 2 = finished

    def visit(start: int) -> None:
        # Iterative DFS: graphs are small, but recursion limits should never be a user's problem.
        stack: list[tuple[int, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, pos = stack[-1]
            if pos < len(succs[node]):
                stack[-1] = (node, pos + 1)
                nxt = succs[node][pos]
                if state.get(nxt) == 1:
                    raise GraphError(f"edge {node}->{nxt}: closes a cycle")
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()

    for node_id in sorted(by_id):
        if node_id not in state:
            visit(node_id)


def _reaching_output(edges: set[tuple[int, int]]) -> set[int]:
    preds: dict[int, list[int]] = {}
    for src, dst in edges:
        preds.setdefault(dst, []).append(src)
    seen = {OUTPUT}
    frontier = [OUTPUT]
    while frontier:
        for src in preds.get(frontier.pop(), []):
            if src not in seen:
                seen.add(src)
                frontier.append(src)
    return seen


# ----- parsing -------------------------------------------------------------------------------


def parse_text(text: str, where: str = "graph text") -> Graph:
    r"""Parse the canonical text form back into a graph.

    Blank lines and lines starting with ``#`` are ignored. ``in:`` and ``out:`` lists must agree;
    ``-`` is an empty list.

    Args:
        text: the text form, as written by :meth:`Graph.to_text` (or by an agent).
        where: what to call the text in error messages (for example the file name).

    Raises:
        GraphError: a malformed line or a broken constraint, with the line number.

    Example:
        >>> g = parse_text("0 | 1B | assistant | in: - | out: output\n"
        ...                "output | 3B | output | in: 0 | out: -")
        >>> g.node_ids, g.output_model
        ((0,), '3B')
    """
    nodes: list[Node] = []
    ins: set[tuple[int, int]] = set()
    outs: set[tuple[int, int]] = set()
    output_model: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        at = f"{where}, line {number}"
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 5:
            raise GraphError(
                f"{at}: expected 'id | model | role | in: ... | out: ...', got {line!r}"
            )
        ident, model, role, in_part, out_part = parts
        node_id = _ref(ident, at)
        preds = _parse_list(in_part, "in:", at)
        succs = _parse_list(out_part, "out:", at)
        if node_id == OUTPUT:
            if output_model is not None:
                raise GraphError(f"{at}: the output node is listed twice")
            if role != "output":
                raise GraphError(f"{at}: the output node's role must be 'output', got {role!r}")
            if succs:
                raise GraphError(f"{at}: the output node has no successors")
            output_model = model
        else:
            nodes.append(Node(node_id, model, role))
        ins.update((p, node_id) for p in preds)
        outs.update((node_id, s) for s in succs)
    if output_model is None:
        raise GraphError(f"{where}: no 'output | MODEL | output | in: ... | out: -' line")
    for src, dst in sorted(ins ^ outs):
        side = "in:" if (src, dst) in ins else "out:"
        raise GraphError(
            f"{where}: edge {_node_name(src)}->{_node_name(dst)} is listed only in {side} "
            "(in: and out: lists must agree)"
        )
    return Graph.create(nodes, sorted(ins), output_model)


def _parse_list(part: str, label: str, at: str) -> list[int]:
    if not part.startswith(label):
        raise GraphError(f"{at}: expected a field starting with {label!r}, got {part!r}")
    body = part[len(label) :].strip()
    if body in ("", "-"):
        return []
    return [_ref(item.strip(), at) for item in body.split(",")]


def from_json(data: object, where: str = "graph JSON") -> Graph:
    """Build a graph from its JSON form (see :meth:`Graph.to_json`).

    Raises:
        GraphError: a missing or mistyped field, naming it, or a broken constraint.

    Example:
        >>> from_json({"nodes": [{"id": 0, "model": "8B", "role": "assistant"}],
        ...            "output": {"model": "3B"}, "edges": [[0, "output"]]}).depth
        1
    """
    if not isinstance(data, Mapping):
        raise GraphError(f"{where}: expected an object with nodes, output and edges")
    schema = data.get("schema", JSON_SCHEMA)
    if schema != JSON_SCHEMA:
        raise GraphError(f"{where}: schema {schema!r} is not supported (expected {JSON_SCHEMA})")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        raise GraphError(f"{where}: field 'nodes' must be a list")
    nodes = []
    for pos, item in enumerate(raw_nodes):
        if not isinstance(item, Mapping) or not {"id", "model", "role"} <= set(item):
            raise GraphError(f"{where}: nodes[{pos}] needs fields id, model and role")
        nodes.append(
            Node(_ref(item["id"], f"{where}: nodes[{pos}].id"), item["model"], item["role"])
        )
    output = data.get("output")
    if not isinstance(output, Mapping) or not isinstance(output.get("model"), str):
        raise GraphError(f"{where}: field 'output' must be an object with a 'model' string")
    raw_edges = data.get("edges")
    if not isinstance(raw_edges, list):
        raise GraphError(f"{where}: field 'edges' must be a list of [source, target] pairs")
    edges = []
    for pos, pair in enumerate(raw_edges):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise GraphError(f"{where}: edges[{pos}] must be a [source, target] pair")
        edges.append((pair[0], pair[1]))
    return Graph.create(nodes, edges, output["model"])
