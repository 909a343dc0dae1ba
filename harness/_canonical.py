"""A canonical node order for collaboration graphs, behind :attr:`Graph.id`.

Two graphs that differ only in how their agent nodes are numbered should share one id (a
search method that renumbers nodes has not found a new graph). The order is built so that:

1. It depends only on the graph's structure, models and roles, never on the node ids, except
   among nodes that no search below tells apart; those are, in practice, interchangeable.
2. Relabelling by it and hashing gives equal ids only for isomorphic graphs: the relabelled
   graph *is* the graph, so a hash collision aside, equal ids mean the same graph.

How: colour refinement (1-dimensional Weisfeiler-Leman over predecessors and successors) gives
every node a structural rank; nodes are then placed level by level (longest path from a source),
sorted by rank and by the canonical positions of their predecessors. Nodes still tied are tried
in every order (twins, which share model, role, predecessors and successors, are not permuted:
swapping them changes nothing) and the smallest relabelled edge list wins. The search is capped
at :data:`MAX_LEAVES` orders; past it the remaining ties keep id order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.graph import Graph

MAX_LEAVES = 5040
_OUT = -1


def canonical_order(graph: Graph) -> list[int]:
    """Agent node ids of ``graph`` in canonical order.

    Example:
        >>> from harness.graph import Graph
        >>> a = Graph.create([(0, "1B", "assistant"), (1, "3B", "assistant")],
        ...                  [(0, "output"), (1, "output")], "3B")
        >>> b = Graph.create([(5, "3B", "assistant"), (2, "1B", "assistant")],
        ...                  [(5, "output"), (2, "output")], "3B")
        >>> [a.node(i).model for i in canonical_order(a)] == [b.node(i).model
        ...                                                   for i in canonical_order(b)]
        True
    """
    preds = graph.predecessors_map()
    succs = graph.successors_map()
    ranks = _refine(graph, preds, succs)
    levels = graph.levels()
    by_level: dict[int, list[int]] = {}
    for node_id, lvl in levels.items():
        by_level.setdefault(lvl, []).append(node_id)
    layer_list = [sorted(by_level[lvl]) for lvl in sorted(by_level)]
    search = _Search(graph, preds, succs, ranks, layer_list)
    search.run(0, [])
    assert search.best_order is not None
    return search.best_order


def _refine(
    graph: Graph, preds: dict[int, tuple[int, ...]], succs: dict[int, tuple[int, ...]]
) -> dict[int, int]:
    """Colour refinement; ranks are positions in the sorted list of colour signatures."""
    colour: dict[int, tuple[object, ...]] = {n.id: (n.model, n.role) for n in graph.nodes}
    colour[_OUT] = ("\x00output", graph.output_model)
    ranks = _rank(colour)
    for _ in range(len(colour)):
        signature = {
            node: (
                ranks[node],
                tuple(sorted(ranks[p] for p in preds[node])),
                tuple(sorted(ranks[s] for s in succs[node])),
            )
            for node in colour
        }
        new_ranks = _rank(signature)
        if len(set(new_ranks.values())) == len(set(ranks.values())):
            break
        ranks = new_ranks
    return ranks


def _rank(signature: Mapping[int, tuple[object, ...]]) -> dict[int, int]:
    # Signatures mix str and int only position by position, so tuples compare fine; repr keeps
    # the comparison total even if a model name looks like a number.
    distinct = sorted({repr(sig) for sig in signature.values()})
    position = {sig: pos for pos, sig in enumerate(distinct)}
    return {node: position[repr(sig)] for node, sig in signature.items()}


class _Search:
    def __init__(
        self,
        graph: Graph,
        preds: dict[int, tuple[int, ...]],
        succs: dict[int, tuple[int, ...]],
        ranks: dict[int, int],
        layers: list[list[int]],
    ) -> None:
        self.graph = graph
        self.preds = preds
        self.succs = succs
        self.ranks = ranks
        self.layers = layers
        self.leaves = 0
        self.best_key: tuple[object, ...] | None = None
        self.best_order: list[int] | None = None

    def run(self, layer: int, placed: list[int]) -> None:
        if layer == len(self.layers):
            self.leaves += 1
            key = self._key(placed)
            if self.best_key is None or key < self.best_key:
                self.best_key, self.best_order = key, list(placed)
            return
        index = {node: pos for pos, node in enumerate(placed)}

        def sort_key(node: int) -> tuple[int, tuple[int, ...]]:
            return (self.ranks[node], tuple(sorted(index[p] for p in self.preds[node])))

        nodes = sorted(self.layers[layer], key=lambda n: (sort_key(n), n))
        groups: list[list[int]] = []
        for node in nodes:
            if groups and sort_key(groups[-1][0]) == sort_key(node):
                groups[-1].append(node)
            else:
                groups.append([node])
        for arrangement in self._arrangements(groups):
            self.run(layer + 1, placed + arrangement)
            if self.leaves >= MAX_LEAVES:
                return

    def _arrangements(self, groups: list[list[int]]) -> Iterator[list[int]]:
        """Every order of the tied nodes, twins kept in id order."""

        def rec(pos: int) -> Iterator[list[int]]:
            if pos == len(groups):
                yield []
                return
            for head in self._orders(groups[pos]):
                for tail in rec(pos + 1):
                    yield head + tail

        return rec(0)

    def _orders(self, group: list[int]) -> Iterator[list[int]]:
        if len(group) == 1:
            yield group
            return
        twin_of = {}
        for node in group:
            key = (self.preds[node], self.succs[node])
            twin_of[node] = next((t for t in group if (self.preds[t], self.succs[t]) == key), node)
        classes = sorted({twin_of[n] for n in group})
        members = {c: sorted(n for n in group if twin_of[n] == c) for c in classes}
        for pattern in _distinct_permutations([twin_of[n] for n in group]):
            taken = {c: iter(members[c]) for c in classes}
            yield [next(taken[c]) for c in pattern]

    def _key(self, order: Sequence[int]) -> tuple[object, ...]:
        index = {node: pos for pos, node in enumerate(order)}
        index[_OUT] = len(order)
        edges = tuple(sorted((index[s], index[d]) for s, d in self.graph.edges))
        return (edges,)


def _distinct_permutations(items: list[int]) -> Iterator[list[int]]:
    counts: dict[int, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    keys = sorted(counts)

    def rec(remaining: int) -> Iterator[list[int]]:
        if remaining == 0:
            yield []
            return
        for key in keys:
            if counts[key]:
                counts[key] -= 1
                for rest in rec(remaining - 1):
                    yield [key, *rest]
                counts[key] += 1

    return rec(len(items))
