"""The search space: a pool, a maximum number of agent nodes and a budget level.

A :class:`Space` samples random feasible graphs (seeded), enumerates the budget-filling model
combinations (PAPER.md section 3), validates and repairs graphs, and encodes them to and from a
flat parametrisation that Optuna-style methods can search.

Budget level k sets two budgets, both from the same reference graph (k 1B agent nodes and a 3B
output node): the FLOPs cap is its cost in units, the integer combination budget its integer
cost, ``k + 3`` on MATH. Every node a graph runs pays in both, the output node included.

The flat parametrisation:

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
    >>> space.fits(g), space.combo_budget
    (True, 12)
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
        cost: the integer combination cost of these agent nodes (a graph built from it also
            pays for its output node: :meth:`Space.combo_cost`).
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
        level: the budget level k (PAPER.md section 3). Its reference graph (k 1B agent nodes
            and the pool's output model) sets the FLOPs cap (its cost) and the integer
            combination budget (its integer cost, :attr:`combo_budget`); with the reference
            output node, agent combinations fill k.
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
            and self.combo_cost(graph) <= self.combo_budget
            and self.cost(graph).fits(self.cap)
        )

    def why_not(self, graph: Graph) -> list[str]:
        """Why ``graph`` does not fit (:meth:`fits`): one phrase per broken limit, empty if it fits.

        Example:
            >>> from harness.pool import load_pool
            >>> space = Space(load_pool("llama3"), (202, 275), level=12)
            >>> g = Graph.create([(0, "70B", "assistant")], [(0, "output")], "3B")
            >>> [reason.split(", over")[0] for reason in space.why_not(g)]
            ['its models (1x70B + 3B output) have combination cost 84']
        """
        graph = self.pool.resolve(graph)
        reasons: list[str] = []
        if len(graph.nodes) > self.max_nodes:
            reasons.append(
                f"{len(graph.nodes)} agent nodes, more than the space's max_nodes={self.max_nodes}"
            )
        cost = self.cost(graph)
        if not cost.fits(self.cap):
            reasons.append(
                f"costs {cost.units:.2f} units, over the cap of {self.cap:.2f} for budget level "
                f"{self.level}"
            )
        combo = self.combo_cost(graph)
        if combo > self.combo_budget:
            reasons.append(
                f"its models ({self._models_label(graph)}) have combination cost {combo}, over "
                f"the integer budget {self.combo_budget} of budget level {self.level} "
                f"({self._reference_label()})"
            )
        return reasons

    @property
    def combo_budget(self) -> int:
        """The integer combination budget of the level: what the cap's reference graph costs.

        The FLOPs cap of level k is the cost of a reference graph of k 1B agent nodes and one
        output node of the reference output model (3B; the pool's ``output_model``), so the
        integer budget is that graph's integer cost: ``k + combo_cost(output_model)``. Every
        node a graph runs pays in it, the output node included (see :meth:`combo_cost`).

        Example:
            >>> from harness.pool import load_pool
            >>> Space(load_pool("llama3"), (202, 275), level=12).combo_budget  # 12x1B + 3B
            15
        """
        return self.level + self.pool.combo_cost(self.pool.output_model, self.task)

    def agent_budget(self, output_model: str | None = None) -> int:
        """What the agent nodes may spend of :attr:`combo_budget` beside this output model.

        With the pool's reference output model (the default) this is the level k, so the
        agent combinations are exactly the paper's; a 1B output frees 2 units, an 8B one
        takes 6 more than the 3B (LLaMA pool, MATH). Negative when the output model alone is
        over the budget.

        Raises:
            ConfigError: ``output_model`` is not in the pool.

        Example:
            >>> from harness.pool import load_pool
            >>> space = Space(load_pool("llama3"), (202, 275), level=12)
            >>> space.agent_budget(), space.agent_budget("1B"), space.agent_budget("8B")
            (12, 14, 6)
        """
        output = self.pool.model(output_model or self.pool.output_model).name
        return self.combo_budget - self.pool.combo_cost(output, self.task)

    def combo_cost(self, graph: Graph) -> int:
        """The integer combination cost of every node ``graph`` runs, the output node included.

        The paper draws every graph's agent models from a budget-filling combination, so a
        graph must fit the integer budget as well as the FLOPs cap. The two disagree for the
        largest models: one 70B call (69.2 units on MATH) plus a 3B output node fits the
        level-12 cap of 79.15 units, but its integer cost of 81 + 3 does not fit 15; the paper
        never builds such a graph, so neither does the space.

        The paper's code fixes the output node's model, so its combinations count agent nodes
        only. Counting agents only here would make the output node free: an 8B output (cost 9)
        beside twelve 1B agents would fit level 12 although it costs 6 more than the 3B of the
        reference graph. Charging the output node against :attr:`combo_budget` (which includes
        the reference output) keeps every paper combination legal with the reference output
        and makes a bigger output node cost what it costs.

        Raises:
            ConfigError: a node's model is not in the pool.
        """
        agents = sum(self.pool.combo_cost(n.model, self.task) for n in graph.nodes)
        return agents + self.pool.combo_cost(graph.output_model, self.task)

    def validate(self, graph: Graph) -> Graph:
        """Resolve ``graph``'s models against the pool and check it fits.

        Returns:
            The graph with full model names.

        Raises:
            GraphError: a model outside the pool, or more agent nodes than ``max_nodes``.
            BudgetError: the graph is over the FLOPs cap or the integer combination budget
                (see :meth:`repair`).
        """
        resolved = self.pool.resolve(graph)
        if len(resolved.nodes) > self.max_nodes:
            raise GraphError(
                f"graph {resolved.id}: {len(resolved.nodes)} agent nodes, more than the "
                f"space's max_nodes={self.max_nodes}"
            )
        reasons = self.why_not(resolved)
        if reasons:
            raise BudgetError(f"graph {resolved.id}: {reasons[0]}")
        return resolved

    def repair(self, graph: Graph, rng: random.Random | None = None) -> Graph:
        """Bring ``graph`` within the budget by the paper's rule (see :func:`harness.cost.repair`).

        The rule (delete a node of the smallest model) runs until the graph fits the FLOPs cap,
        the combination budget and the node limit (:meth:`fits`). The output node is never
        deleted, so a graph whose output model leaves no room for even one agent node of the
        cheapest model cannot be repaired; that is said up front rather than after deleting
        every node.

        Raises:
            GraphError: a model outside the pool.
            BudgetError: the graph cannot be brought within the budget.
        """
        resolved = self.pool.resolve(graph)
        cheapest = min(self.pool.combo_cost(m.name, self.task) for m in self.pool.models)
        if self.agent_budget(resolved.output_model) < cheapest:
            output = self.pool.model(resolved.output_model)
            raise BudgetError(
                f"graph {resolved.id} cannot be repaired to budget level {self.level}: its "
                f"{output.short} output node costs "
                f"{self.pool.combo_cost(output.name, self.task)} of the integer budget "
                f"{self.combo_budget}, leaving no room for an agent node"
            )
        return repair(resolved, self.pool, self.lengths, self.cap, rng, fits=self.fits)

    def _models_label(self, graph: Graph) -> str:
        """``12x1B + 8B output``: a graph's agent combination and its output model."""
        agents = self.combo_of(graph).label
        return f"{agents} + {self.pool.model(graph.output_model).short} output"

    def _reference_label(self) -> str:
        """``12x1B + 3B output``: the reference graph behind the cap and the integer budget."""
        return f"{self.level}x1B + {self.pool.model(self.pool.output_model).short} output"

    # ----- model combinations ----------------------------------------------------------------

    def combos(self, output_model: str | None = None) -> list[Combo]:
        """The budget-filling agent model combinations (PAPER.md section 3).

        A combination gives a count per model whose integer cost fits what the output node
        leaves of the budget (:meth:`agent_budget`) with the least possible left over, and has
        at most ``max_nodes`` nodes. With the pool's reference output model (the default) that
        is the level k, so these are the paper's combinations. Ordered by fewest nodes, then by
        label.

        Args:
            output_model: the output node's model (default: the pool's ``output_model``).

        Raises:
            ConfigError: ``output_model`` is not in the pool.
        """
        budget = self.agent_budget(output_model)
        costs = [
            (spec.name, self.pool.combo_cost(spec.name, self.task)) for spec in self.pool.models
        ]
        found: list[tuple[int, ...]] = []
        if budget > 0:
            for counts in _count_vectors([c for _, c in costs], budget, self.max_nodes):
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

        Args:
            rng: the only source of randomness.
            combo: the agent models (default: a random one of ``combos(output_model)``).
            edge_prob: probability of each candidate edge.
            fuser_prob: probability that a node allowed to be a fuser becomes one.
            output_model: the output node's model (default: the pool's). The output node pays
                in the integer budget, so a random combination fills only what it leaves.
            repair_to_cap: repair the graph to the budget (:meth:`repair`).

        Raises:
            BudgetError: no feasible graph could be drawn (for example an output model that
                leaves no room for an agent node, or a combination whose smallest graph is over
                the cap).

        Example:
            >>> import random
            >>> from harness.pool import load_pool
            >>> space = Space(load_pool("llama3"), (202, 275), level=12)
            >>> g = space.sample(random.Random(0), output_model="8B")
            >>> space.combo_cost(g) <= space.combo_budget, space.fits(g)
            (True, True)
        """
        out_model = self.pool.model(output_model or self.pool.output_model).name
        if combo is None:
            options = self.combos(out_model)
            if not options:
                short = self.pool.model(out_model).short
                raise BudgetError(
                    f"no model combination fits budget level {self.level} beside a {short} "
                    f"output node (it costs {self.pool.combo_cost(out_model, self.task)} of the "
                    f"integer budget {self.combo_budget})"
                )
            combo = rng.choice(options)
        if combo.size > self.max_nodes:
            raise GraphError(f"combination {combo.label} has more than {self.max_nodes} nodes")
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
        return self.repair(graph, rng)

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

        Decoding checks the graph's constraints, not the budget: ``output.model`` may name any
        pool model, and its cost in the integer budget is charged when the graph is repaired
        (:meth:`repair` keeps the output node and deletes agent nodes until it fits; an output
        model with no room for an agent node raises ``BudgetError`` there).

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
