"""The rules agent's graph rules: ``next_graph`` (Agent-REINFORCE) and ``textgrad_graph``.

Both take the question's facts (see :mod:`harness.agents.questions`) and return the reply
object an LLM must write. The rules are documented in docs/agents.md; in brief:

``next_graph`` applies PAPER.md section 7's rules and Insights 2 and 3 explicitly:

1. *Did the last graph do well?* Yes if its score is at least the previous round's (the first
   time: accuracy at least 0.5) and it answered something right.
2. *Table.* Edges of the last graph: ``p + 0.3 (1 - p)`` if it did well, ``p / 2`` if not;
   other edges keep theirs (raise an edge only if it was in the graph and helped).
3. *Base.* The last graph; after a worse round, the previous (better) graph.
4. *Caps (Insights 2, 3).* A node's in-degree cap is the pilot's best width for the nearest
   swept model at the base's depth; the depth cap is the pilot's best depth for the
   combination's most common model at the base's width. Joint objective with a latency above
   the reference: the depth cap drops by one and below the base's depth (the counts are
   fixed, so a shorter chain is the lever).
5. *Structure.* Idle nodes are wired in from the output node outward (output first, then its
   inputs, ...: the nearest node with room, larger models as targets, inputs of diverse
   models); edges past the caps are cut (lowest probability first) and their sources rewired.
6. *One change.* If the latency is high and the graph deeper than one, cut the deepest chain.
   Otherwise grow: add the most probable absent edge within the caps, nearest the output
   first. With nothing to add, a graph that did poorly flips the role of its busiest node.
7. *Roles* stay where the constraints allow; otherwise the node becomes an assistant.

``textgrad_graph`` knows no insights or edge rules: after a good round it adds the first
absent edge (candidate order) that keeps the graph acyclic, after a worse one it goes back to
the previous graph and tries the next edge; idle nodes feed the output node; the table is left
as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.graph import ASSISTANT, FUSER, OUTPUT

__all__ = ["next_graph_reply", "textgrad_reply"]

RAISE = 0.3
"""A good graph's edges move this fraction of the way to probability 1."""
LOWER = 0.5
"""A poor graph's edges are multiplied by this."""


class Design:
    """A mutable graph over slot ids (``OUTPUT`` = -1) with the queries the rules need."""

    def __init__(self, nodes: dict[int, list[str]], edges: set[tuple[int, int]], out: str) -> None:
        self.nodes, self.edges, self.output_model = nodes, edges, out

    @classmethod
    def of(cls, facts: Mapping[str, Any]) -> Design:
        nodes = {int(n["id"]): [n["model"], n["role"]] for n in facts["nodes"]}
        edges = {(int(s), OUTPUT if d == "output" else int(d)) for s, d in facts["edges"]}
        return cls(nodes, edges, facts["output_model"])

    def copy(self) -> Design:
        nodes = {k: list(v) for k, v in self.nodes.items()}
        return Design(nodes, set(self.edges), self.output_model)

    def preds(self, node: int) -> list[int]:
        return sorted(s for s, d in self.edges if d == node)

    def connected(self) -> set[int]:
        """Agent nodes with a path to the output node."""
        seen, frontier = {OUTPUT}, [OUTPUT]
        while frontier:
            for src in self.preds(frontier.pop()):
                if src not in seen:
                    seen.add(src)
                    frontier.append(src)
        return seen - {OUTPUT}

    def reaches(self, src: int, dst: int) -> bool:
        """Whether there is a path ``src -> ... -> dst``."""
        frontier, seen = [src], {src}
        while frontier:
            node = frontier.pop()
            if node == dst:
                return True
            for s, d in self.edges:
                if s == node and d not in seen:
                    seen.add(d)
                    frontier.append(d)
        return False

    def closes_cycle(self, src: int, dst: int) -> bool:
        return dst != OUTPUT and self.reaches(dst, src)

    def levels(self) -> dict[int, int]:
        """Levels of the connected nodes (sources 1), and the output node's (its depth + 1)."""
        keep = self.connected() | {OUTPUT}
        level: dict[int, int] = {}

        def of(node: int) -> int:
            if node not in level:
                parents = [p for p in self.preds(node) if p in keep]
                level[node] = 1 + max((of(p) for p in parents), default=0)
            return level[node]

        for node in keep:
            of(node)
        return level

    def depth(self) -> int:
        return self.levels()[OUTPUT] - 1

    def width(self) -> int:
        counts: dict[int, int] = {}
        for node, lvl in self.levels().items():
            if node != OUTPUT:
                counts[lvl] = counts.get(lvl, 0) + 1
        return max(counts.values(), default=0)

    def distance(self) -> dict[int, int]:
        """Edges on the shortest path from each connected node to the output node (output 0)."""
        dist, frontier = {OUTPUT: 0}, [OUTPUT]
        while frontier:
            nxt = []
            for node in frontier:
                for src in self.preds(node):
                    if src not in dist:
                        dist[src] = dist[node] + 1
                        nxt.append(src)
            frontier = nxt
        return dist

    def model(self, node: int) -> str:
        return self.output_model if node == OUTPUT else self.nodes[node][0]

    def fix_roles(self) -> None:
        """Keep each role where the constraints allow it, in topological order."""
        done: set[int] = set()
        while len(done) < len(self.nodes):
            node = min(n for n in self.nodes if n not in done and set(self.preds(n)) <= done)
            parents = [self.nodes[p][1] for p in self.preds(node)]
            if self.nodes[node][1] == FUSER and (ASSISTANT not in parents or FUSER in parents):
                self.nodes[node][1] = ASSISTANT
            done.add(node)

    def can_fuse(self, node: int) -> bool:
        parents = [self.nodes[p][1] for p in self.preds(node)]
        return bool(parents) and FUSER not in parents

    def reply_graph(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": i, "model": m, "role": r} for i, (m, r) in sorted(self.nodes.items())],
            "edges": [[s, "output" if d == OUTPUT else d] for s, d in sorted(self.edges)],
        }


def _table(facts: Mapping[str, Any]) -> dict[tuple[int, int], float]:
    return {
        (int(s), OUTPUT if d == "output" else int(d)): float(p) for s, d, p in facts["edge_table"]
    }


def _did_well(facts: Mapping[str, Any]) -> bool:
    last, history = facts["last"], facts.get("history") or []
    if last["accuracy"] <= 0:
        return False
    return last["score"] >= history[-1]["score"] if history else last["accuracy"] >= 0.5


def _base(facts: Mapping[str, Any], good: bool) -> Design:
    history = facts.get("history") or []
    if not good and history and history[-1]["score"] > facts["last"]["score"]:
        return Design.of(history[-1]["graph"])
    return Design.of(facts["last"]["graph"])


def _params(facts: Mapping[str, Any]) -> dict[str, float]:
    return {m["name"]: float(m["params"]) for m in facts["models"]}


def _nearest(model: str, facts: Mapping[str, Any], swept: list[str]) -> str:
    """The swept pilot model (short name) closest in log-parameters; ties go to the larger."""
    by_short = {m["short"]: float(m["params"]) for m in facts["models"]}
    own = _params(facts).get(model, 1.0)
    known = [s for s in swept if s in by_short]
    if not known:
        return swept[0]
    return min(known, key=lambda s: (abs(math.log(by_short[s] / own)), -by_short[s]))


def _lookup(table: Mapping[str, Any], key: int) -> int | None:
    if not table:
        return None
    sizes = sorted(int(k) for k in table)
    near = min(sizes, key=lambda k: (abs(k - key), k))
    return int(table[str(near)])


class Caps:
    """In-degree caps per node and a depth cap, from the pilot (Insights 2 and 3)."""

    def __init__(self, facts: Mapping[str, Any], base: Design) -> None:
        pilot = facts["pilot"]
        swept = list(pilot["best_width"]) or ["?"]
        counts = facts["combination"]["counts"]
        params = self.params = _params(facts)
        main = max(counts, key=lambda m: (counts[m], params.get(m, 0.0)))
        short = _nearest(main, facts, swept)
        width, depth = max(1, base.width()), max(1, base.depth())
        by_width = pilot["best_depth_by_width"].get(short, {})
        self.depth = _lookup(by_width, width) or pilot["best_depth"].get(short, 2)
        last = facts["last"]
        self.latency_high = bool(
            facts.get("objective") == "accuracy-latency"
            and last.get("latency_s") is not None
            and last["latency_s"] > facts["latency_ref_s"]
        )
        if self.latency_high:
            # The counts are fixed, so a shorter chain is the lever: never deeper than the base.
            self.depth = max(1, min(self.depth - 1, depth))
        self._in: dict[str, int] = {}
        for model in {*counts, facts["output_model"]}:
            near = _nearest(model, facts, swept)
            by_depth = pilot["best_width_by_depth"].get(near, {})
            self._in[model] = _lookup(by_depth, depth) or pilot["best_width"].get(near, 3)

    def in_cap(self, design: Design, node: int) -> int:
        return self._in.get(design.model(node), 3)


def _diversity(design: Design, src: int, dst: int) -> int:
    """How many of ``dst``'s inputs already use ``src``'s model (fewer is better)."""
    return sum(1 for p in design.preds(dst) if design.model(p) == design.model(src))


def _connect(design: Design, caps: Caps, table: Mapping[tuple[int, int], float]) -> None:
    """Wire every idle node in, from the output node outward (larger models first)."""
    size = caps.params
    while True:
        idle = sorted(set(design.nodes) - design.connected())
        if not idle:
            return
        node = max(idle, key=lambda n: (size.get(design.model(n), 0.0), -n))
        dist = design.distance()
        options = []
        for target in [OUTPUT, *sorted(design.connected())]:
            if design.closes_cycle(node, target):
                continue
            trial = design.copy()
            trial.edges.add((node, target))
            options.append(
                (
                    len(design.preds(target)) + 1 > caps.in_cap(design, target),
                    trial.depth() > caps.depth,
                    dist[target],
                    _diversity(design, node, target),
                    -size.get(design.model(target), 0.0),
                    -table.get((node, target), 0.0),
                    target,
                )
            )
        design.edges.add((node, min(options)[-1]))


def _prune(design: Design, caps: Caps, table: Mapping[tuple[int, int], float]) -> None:
    """Cut edges past the in-degree and depth caps, least probable first."""
    for _ in range(len(design.edges)):
        over = [n for n in [OUTPUT, *design.nodes] if len(design.preds(n)) > caps.in_cap(design, n)]
        if over:
            node = over[0]
            victim = min(design.preds(node), key=lambda p: (table.get((p, node), 0.0), -p))
            design.edges.discard((victim, node))
            continue
        if design.depth() <= caps.depth:
            return
        if not _cut_deepest(design, table):
            return


def _cut_deepest(design: Design, table: Mapping[tuple[int, int], float]) -> bool:
    """Remove the least probable edge into the deepest node from a predecessor one level up."""
    level = design.levels()
    chain = [n for n in level if n != OUTPUT and level[n] > 1]
    if not chain:
        return False
    node = max(chain, key=lambda n: (level[n], -n))
    preds = [p for p in design.preds(node) if level.get(p) == level[node] - 1]
    victim = min(preds, key=lambda p: (table.get((p, node), 0.0), -p))
    design.edges.discard((victim, node))
    return True


def _grow(design: Design, caps: Caps, table: Mapping[tuple[int, int], float]) -> bool:
    """Add the most probable absent edge within the caps, nearest the output node first."""
    dist = design.distance()
    live = sorted(design.connected())
    best = None
    for src in live:
        for dst in [OUTPUT, *live]:
            if src == dst or (src, dst) in design.edges or design.closes_cycle(src, dst):
                continue
            if len(design.preds(dst)) + 1 > caps.in_cap(design, dst):
                continue
            trial = design.copy()
            trial.edges.add((src, dst))
            if trial.depth() > caps.depth:
                continue
            key = (-round(table.get((src, dst), 0.0), 6), dist[dst], _diversity(design, src, dst),
                   src, dst)  # fmt: skip
            if best is None or key < best:
                best = key
    if best is None:
        return False
    design.edges.add((best[-2], best[-1]))
    return True


def _flip_busiest(design: Design) -> None:
    busy = [n for n in design.nodes if design.preds(n)]
    if not busy:
        return
    node = max(busy, key=lambda n: (len(design.preds(n)), -n))
    if design.nodes[node][1] == FUSER:
        design.nodes[node][1] = ASSISTANT
    elif design.can_fuse(node):
        design.nodes[node][1] = FUSER


def _rows(table: Mapping[tuple[int, int], float], before: Mapping[tuple[int, int], float]) -> list:
    return [
        [s, "output" if d == OUTPUT else d, round(p, 3)]
        for (s, d), p in sorted(table.items())
        if round(p, 3) != round(before[(s, d)], 3)
    ]


def next_graph_reply(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The Agent-REINFORCE rules (module docstring) applied to a ``next_graph`` question."""
    before = _table(facts)
    table = dict(before)
    good = _did_well(facts)
    for edge in Design.of(facts["last"]["graph"]).edges:
        if edge in table:
            p = table[edge]
            table[edge] = p + RAISE * (1 - p) if good else p * LOWER
    design = _base(facts, good)
    caps = Caps(facts, design)
    _connect(design, caps, table)
    _prune(design, caps, table)
    _connect(design, caps, table)
    if caps.latency_high and design.depth() > 1:
        change = "cut the deepest chain (latency above the reference)"
        _cut_deepest(design, table)
        _connect(design, caps, table)
    elif _grow(design, caps, table):
        change = "added the most probable absent edge within the caps"
    elif not good:
        change = "flipped the role of the busiest node"
        _flip_busiest(design)
    else:
        change = "kept the graph (at the caps)"
    design.fix_roles()
    verdict = "did well" if good else "did poorly"
    reason = (
        f"rules agent: the last graph {verdict}; in-degree caps from the pilot, depth cap "
        f"{caps.depth}; {change}"
    )
    return {"graph": design.reply_graph(), "edge_table": _rows(table, before), "reason": reason}


def textgrad_reply(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The TextGrad rules (module docstring): no insights, no edge rules, one change a round."""
    good = _did_well(facts)
    design = _base(facts, good)
    rejected = Design.of(facts["last"]["graph"]).edges - design.edges
    for node in sorted(set(design.nodes) - design.connected()):
        design.edges.add((node, OUTPUT))
    live = design.connected()
    for src, dst in _table(facts):  # the table's order: node pairs, then node -> output
        absent = (src, dst) not in design.edges and (src, dst) not in rejected
        if absent and (dst == OUTPUT or dst in live) and not design.closes_cycle(src, dst):
            design.edges.add((src, dst))
            break
    design.fix_roles()
    feedback = (
        "The last graph did well: keep it and add one connection."
        if good
        else "The last graph did worse: go back to the previous one and try another connection."
    )
    return {"feedback": feedback, "graph": design.reply_graph(), "edge_table": []}
