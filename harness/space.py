"""The search space: a pool, a maximum number of agent nodes and a budget level.

A :class:`Space` samples random feasible graphs (seeded), enumerates the budget-filling model
combinations (PAPER.md section 3), validates and repairs graphs, and encodes them to and from a
flat parametrisation that Optuna-style methods can search:

- ``slot{i}.model``: ``off`` or a model name, for agent slots ``i = 0 .. max_nodes-1``;
- ``slot{i}.role``: ``assistant`` or ``fuser``;
- ``edge{i}-{j}``: 0 or 1 for ``i < j`` (slots are in topological order, so every decoded graph
  is acyclic), and ``edge{i}-output``;
- ``output.model``: the output node's model.

Example:
    >>> import random
    >>> from harness.pool import load_pool
    >>> space = Space(load_pool("llama3"), lengths=(202, 275), level=9, task="math")
    >>> [c.label for c in space.combos()][:3]
    ['1x8B', '3x3B', '2x3B+3x1B']
    >>> g = space.sample(random.Random(0))
    >>> space.fits(g)
    True
    >>> space.decode(space.encode(g)).id == g.id
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from harness.cost import GraphCost, budget_cap, graph_cost, repair
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT, ROLES, Graph, Node
from harness.pool import Pool

__all__ = ["OFF", "Combo", "Param", "Space"]

OFF = "off"


@dataclass(frozen=True)
class Combo:
    """A model combination: how many agent nodes of each model.

    Attributes:
        counts: ``(model name, count)`` pairs, largest model first, counts > 0.
        label: the paper's notation, for example ``2x3B+3x1B``.
        cost: the integer combination cost.
    """

    counts: tuple[tuple[str, int], ...]
    label: str
    cost: int

    @property
    def models(self) -> tuple[str, ...]:
        """One model name per agent node, largest first."""
        return tuple(name for name, count in self.counts for _ in range(count))

    @property
    def size(self) -> int:
        """Number of agent nodes."""
        return sum(count for _, count in self.counts)


@dataclass(frozen=True)
class Param:
    """One variable of the flat parametrisation and its choices."""

    name: str
    choices: tuple[str | int, ...]


class Space:
    """Graphs over one pool that fit one budget.

    Args:
        pool: the models a graph may use.
        lengths: the task's token lengths (A, B).
        level: the budget level k (PAPER.md section 3); the cap is the cost of its reference
            graph and combinations fill an integer budget of k.
        max_nodes: most agent nodes a graph may have (default: ``level``, the size of the
            reference graph).
        task: the task name, which selects the pool's integer combination costs.
    """

    def __init__(
        self,
        pool: Pool,
        lengths: tuple[int, int],
        level: int = 12,
        max_nodes: int | None = None,
        task: str = "math",
    ) -> None:
        self.pool = pool
        self.lengths = lengths
        self.level = level
        self.cap = budget_cap(level, lengths)
        self.max_nodes = level if max_nodes is None else max_nodes
        if isinstance(self.max_nodes, bool) or not isinstance(self.max_nodes, int):
            raise ConfigError(f"max_nodes must be a positive integer, got {self.max_nodes!r}")
        if self.max_nodes < 1:
            raise ConfigError(f"max_nodes must be a positive integer, got {self.max_nodes}")
        self.task = task

    def __repr__(self) -> str:
        return (
            f"Space(pool={self.pool.name!r}, level={self.level}, cap={self.cap:.2f}, "
            f"max_nodes={self.max_nodes}, task={self.task!r})"
        )

    # ----- budget ----------------------------------------------------------------------------

    def cost(self, graph: Graph) -> GraphCost:
        """FLOPs units, latency and tokens of one run of ``graph``."""
        return graph_cost(graph, self.pool, self.lengths)

    def fits(self, graph: Graph) -> bool:
        """Whether ``graph`` is within the FLOPs cap, the combination budget and the node limit."""
        return (
            len(graph.nodes) <= self.max_nodes
            and self.combo_cost(graph) <= self.level
            and self.cost(graph).fits(self.cap)
        )

    def combo_cost(self, graph: Graph) -> int:
        """The integer combination cost of ``graph``'s agent nodes (PAPER.md section 3).

        The paper draws every graph's models from a budget-filling combination, so a graph's
        agent nodes must fit the integer budget ``level`` as well as the FLOPs cap. The two
        disagree for the largest models: one 70B call (69.2 units on MATH) plus a 3B output
        node fits the level-12 cap of 79.15 units, but its integer cost of 81 does not fit 12;
        the paper never builds such a graph, so neither does the space.
        """
        return sum(self.pool.combo_cost(n.model, self.task) for n in graph.nodes)

    def validate(self, graph: Graph) -> Graph:
        """Resolve ``graph``'s models against the pool and check it fits.

        Returns:
            The graph with full model names.

        Raises:
            GraphError: a model outside the pool, or more agent nodes than ``max_nodes``.
            BudgetError: the graph is over the cap (see :meth:`repair`).
        """
        resolved = self.pool.resolve(graph)
        if len(resolved.nodes) > self.max_nodes:
            raise GraphError(
                f"graph {resolved.id}: {len(resolved.nodes)} agent nodes, more than the "
                f"space's max_nodes={self.max_nodes}"
            )
        units = self.cost(resolved).units
        if not self.cost(resolved).fits(self.cap):
            raise BudgetError(
                f"graph {resolved.id}: costs {units:.2f} units, over the cap of {self.cap:.2f} "
                f"for budget level {self.level}"
            )
        combo = self.combo_cost(resolved)
        if combo > self.level:
            raise BudgetError(
                f"graph {resolved.id}: its models ({self.combo_of(resolved).label}) have "
                f"combination cost {combo}, over the budget level {self.level}"
            )
        return resolved

    def repair(self, graph: Graph, rng: random.Random | None = None) -> Graph:
        """Bring ``graph`` within the budget by the paper's rule (see :func:`harness.cost.repair`).

        The rule (delete a node of the smallest model) runs until the graph fits the FLOPs cap,
        the combination budget and the node limit (:meth:`fits`).
        """
        return repair(
            self.pool.resolve(graph), self.pool, self.lengths, self.cap, rng, fits=self.fits
        )

    # ----- model combinations ----------------------------------------------------------------

    def combos(self) -> list[Combo]:
        """The budget-filling model combinations (PAPER.md section 3).

        A combination gives a count per model whose integer cost fits the budget level with the
        least possible left over, and has at most ``max_nodes`` nodes. Ordered by fewest nodes,
        then by label.
        """
        costs = [
            (spec.name, self.pool.combo_cost(spec.name, self.task)) for spec in self.pool.models
        ]
        found: list[tuple[int, ...]] = []
        for counts in _count_vectors([c for _, c in costs], self.level, self.max_nodes):
            if sum(counts) > 0:
                found.append(counts)
        if not found:
            return []
        best = max(sum(n * c for n, (_, c) in zip(v, costs, strict=True)) for v in found)
        chosen = [
            v for v in found if sum(n * c for n, (_, c) in zip(v, costs, strict=True)) == best
        ]
        combos = [
            self._combo({name: n for n, (name, _) in zip(v, costs, strict=True)}) for v in chosen
        ]
        return sorted(combos, key=lambda c: (c.size, c.label))

    def _combo(self, counts: Mapping[str, int]) -> Combo:
        ordered = [(spec.name, counts.get(spec.name, 0)) for spec in reversed(self.pool.models)]
        kept = tuple((name, n) for name, n in ordered if n > 0)
        label = "+".join(f"{n}x{self.pool.model(name).short}" for name, n in kept)
        cost = sum(n * self.pool.combo_cost(name, self.task) for name, n in kept)
        return Combo(kept, label, cost)

    def parse_combo(self, text: str) -> Combo:
        """Parse the paper's notation (``2x3B+3x1B``; ``3B`` alone means ``1x3B``).

        Raises:
            ConfigError: malformed text or an unknown model, naming the part.
        """
        counts: dict[str, int] = {}
        for part in text.replace(" ", "").split("+"):
            count_text, sep, model = part.partition("x")
            if not sep:
                count_text, model = "1", part
            if not count_text.isdigit() or int(count_text) < 1 or not model:
                raise ConfigError(f"combination {text!r}: expected COUNTxMODEL, got {part!r}")
            name = self.pool.model(model).name
            counts[name] = counts.get(name, 0) + int(count_text)
        return self._combo(counts)

    def combo_of(self, graph: Graph) -> Combo:
        """The model combination of a graph's agent nodes."""
        return self._combo(self.pool.resolve(graph).model_counts())

    # ----- sampling --------------------------------------------------------------------------

    def sample(
        self,
        rng: random.Random,
        combo: Combo | None = None,
        edge_prob: float = 0.5,
        fuser_prob: float = 0.5,
        output_model: str | None = None,
        repair_to_cap: bool = True,
    ) -> Graph:
        """A random feasible graph.

        The models come from ``combo`` (a random budget-filling combination when None) in random
        node order; each forward edge and each node-to-output edge is kept with ``edge_prob``
        (redrawn until the output node has an input); roles are drawn in topological order, a
        node becoming a fuser with ``fuser_prob`` where the constraints allow; the result is
        repaired to the cap unless ``repair_to_cap`` is False (pilot experiments compare model
        combinations at equal integer cost, whatever their wiring costs).

        Raises:
            BudgetError: no feasible graph could be drawn (for example a combination whose
                smallest graph is over the cap).
        """
        if combo is None:
            options = self.combos()
            if not options:
                raise BudgetError(f"no model combination fits budget level {self.level}")
            combo = rng.choice(options)
        if combo.size > self.max_nodes:
            raise GraphError(f"combination {combo.label} has more than {self.max_nodes} nodes")
        out_model = self.pool.model(output_model or self.pool.output_model).name
        models = list(combo.models)
        rng.shuffle(models)
        n = len(models)
        edges: list[tuple[int, int]] = []
        for _ in range(100):
            edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < edge_prob]
            edges += [(i, OUTPUT) for i in range(n) if rng.random() < edge_prob]
            if any(dst == OUTPUT for _, dst in edges):
                break
        else:
            edges.append((rng.randrange(n), OUTPUT))
        parents: dict[int, list[int]] = {i: [] for i in range(n)}
        for src, dst in edges:
            if dst != OUTPUT:
                parents[dst].append(src)
        roles: list[str] = []
        for i in range(n):
            parent_roles = {roles[p] for p in parents[i]}
            can_fuse = ASSISTANT in parent_roles and FUSER not in parent_roles
            roles.append(FUSER if can_fuse and rng.random() < fuser_prob else ASSISTANT)
        graph = Graph.create([Node(i, models[i], roles[i]) for i in range(n)], edges, out_model)
        if not repair_to_cap:
            return graph
        return repair(graph, self.pool, self.lengths, self.cap, rng, fits=self.fits)

    # ----- flat parametrisation ----------------------------------------------------------------

    def params(self) -> list[Param]:
        """The variables of the flat parametrisation, in a fixed order."""
        models: tuple[str | int, ...] = tuple(self.pool.names)
        out: list[Param] = []
        for i in range(self.max_nodes):
            out.append(Param(f"slot{i}.model", (OFF, *models)))
            out.append(Param(f"slot{i}.role", ROLES))
        for i in range(self.max_nodes):
            for j in range(i + 1, self.max_nodes):
                out.append(Param(f"edge{i}-{j}", (0, 1)))
            out.append(Param(f"edge{i}-output", (0, 1)))
        out.append(Param("output.model", models))
        return out

    def encode(self, graph: Graph) -> dict[str, str | int]:
        """The flat parametrisation of ``graph``: its nodes fill slots in topological order.

        Raises:
            GraphError: the graph has more agent nodes than ``max_nodes`` or foreign models.
        """
        resolved = self.pool.resolve(graph)
        if len(resolved.nodes) > self.max_nodes:
            raise GraphError(
                f"graph {resolved.id}: {len(resolved.nodes)} agent nodes do not fit "
                f"{self.max_nodes} slots"
            )
        slot = {node_id: pos for pos, node_id in enumerate(resolved.topological_order())}
        values: dict[str, str | int] = {p.name: p.choices[0] for p in self.params()}
        for i in range(self.max_nodes):
            values[f"slot{i}.role"] = ASSISTANT
        for node in resolved.nodes:
            values[f"slot{slot[node.id]}.model"] = node.model
            values[f"slot{slot[node.id]}.role"] = node.role
        for src, dst in resolved.edges:
            target = "output" if dst == OUTPUT else str(slot[dst])
            values[f"edge{slot[src]}-{target}"] = 1
        values["output.model"] = resolved.output_model
        return values

    def decode(self, values: Mapping[str, str | int]) -> Graph:
        """The graph a flat parametrisation describes (slots switched ``off`` are absent).

        Raises:
            GraphError: a missing or invalid value, or a graph that breaks a constraint (for
                example no edge into the output node); it is not repaired to the budget.
        """
        for param in self.params():
            if param.name not in values:
                raise GraphError(f"parametrisation: missing value for {param.name!r}")
            if values[param.name] not in param.choices:
                raise GraphError(
                    f"parametrisation: {param.name}={values[param.name]!r} is not one of "
                    f"{', '.join(map(str, param.choices))}"
                )
        active = [i for i in range(self.max_nodes) if values[f"slot{i}.model"] != OFF]
        nodes = [
            Node(i, str(values[f"slot{i}.model"]), str(values[f"slot{i}.role"])) for i in active
        ]
        edges: list[tuple[int, int]] = [
            (i, j) for i in active for j in active if i < j and values[f"edge{i}-{j}"] == 1
        ]
        edges += [(i, OUTPUT) for i in active if values[f"edge{i}-output"] == 1]
        return Graph.create(nodes, edges, str(values["output.model"]))


def _count_vectors(costs: Sequence[int], budget: int, max_nodes: int) -> Iterator[tuple[int, ...]]:
    """Every count vector with total cost <= budget and at most max_nodes nodes."""

    def rec(pos: int, left: int, nodes_left: int) -> Iterator[tuple[int, ...]]:
        if pos == len(costs):
            yield ()
            return
        for count in range(min(left // costs[pos], nodes_left) + 1):
            for rest in rec(pos + 1, left - count * costs[pos], nodes_left - count):
                yield (count, *rest)

    return rec(0, budget, max_nodes)
