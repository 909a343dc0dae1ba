"""A steady-state evolutionary search over collaboration graphs.

Source: the textbook steady-state genetic algorithm (tournament selection, uniform crossover,
mutation, replace-the-worst; as in regularised/aging evolution for architecture search), with
graph-aware mutations. It is not in the paper; it is here as a strong model-free baseline.

1. The first ``population`` trials are seeded random graphs (random budget-filling combination
   and wiring, as random search draws them).
2. Then each trial is a child: a parent by tournament (``tournament`` members drawn at random,
   the best by batch accuracy, then fewer FLOPs); with ``crossover_prob`` a second parent and a
   uniform crossover over the flat parametrisation (``Space.encode`` slots, each variable from
   either parent); then ``mutations`` random mutations, each one of: toggle an edge (forward in
   a topological order, so no cycle), flip a role, swap a node's model, add a node (an
   assistant feeding a random node or the output), remove a node.
3. Every child is made valid (:func:`baselines._flat.legal_graph`: broken fusers become
   assistants, the output node gets an input) and repaired to the FLOPs cap by the paper's
   rule; a child equal to a graph already proposed is replaced by a fresh child (new
   selection and variation); if no new valid child comes in 20 tries, a random graph is
   proposed instead.
4. Each evaluated graph joins the population; beyond ``population`` the worst leaves (lowest
   accuracy, then most FLOPs, then the oldest). The recommendation is the best graph evaluated.

Settings: ``population`` 4, ``tournament`` 2, ``crossover_prob`` 0.5, ``mutations`` 1,
``edge_prob`` 0.5 and ``fuser_prob`` 0.5 for the random graphs, ``questions`` per evaluation
(the protocol's batch).
"""

from __future__ import annotations

import random

from baselines._flat import decode_legal, legal_graph, topological
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node
from harness.methods import Method, Outcome, Trial
from harness.space import Space

MAX_TRIES = 20
"""Children drawn before falling back to a random graph."""
MUTATIONS = ("toggle-edge", "flip-role", "swap-model", "add-node", "remove-node")


def mutate(graph: Graph, space: Space, rng: random.Random) -> Graph:
    """One random mutation of ``graph``, made valid and repaired to the cap.

    Raises:
        GraphError: the mutated graph has no valid form.
        BudgetError: it cannot be repaired to the cap.

    Example:
        >>> from harness.pool import load_pool
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> g = space.sample(random.Random(0))
        >>> space.fits(mutate(g, space, random.Random(1)))
        True
    """
    nodes = {n.id: n for n in graph.nodes}
    edges = set(graph.edges)
    order = topological(list(nodes), edges)
    preds = graph.predecessors_map()
    roles = {n.id: n.role for n in graph.nodes}
    flippable = [
        i
        for i in order
        if roles[i] == FUSER or (preds[i] and all(roles[p] == ASSISTANT for p in preds[i]))
    ]
    options = ["toggle-edge", "swap-model"]
    options += ["flip-role"] if flippable else []
    options += ["add-node"] if len(nodes) < space.max_nodes else []
    options += ["remove-node"] if len(nodes) > 1 else []
    kind = rng.choice(options)
    if kind == "toggle-edge":
        targets = [*order, OUTPUT]
        a = rng.randrange(len(order))
        edge = (order[a], targets[rng.randrange(a + 1, len(targets))])
        edges ^= {edge}
    elif kind == "flip-role":
        node = nodes[rng.choice(flippable)]
        nodes[node.id] = Node(node.id, node.model, ASSISTANT if node.role == FUSER else FUSER)
    elif kind == "swap-model":
        node = nodes[rng.choice(order)]
        other = [m for m in space.pool.names if m != node.model] or [node.model]
        nodes[node.id] = Node(node.id, rng.choice(other), node.role)
    elif kind == "add-node":
        new = max(nodes) + 1
        nodes[new] = Node(new, rng.choice(space.pool.names), ASSISTANT)
        edges.add((new, rng.choice([*order, OUTPUT])))
    else:
        victim = rng.choice(order)
        del nodes[victim]
        edges = {(s, d) for s, d in edges if victim not in (s, d)}
    child = legal_graph(list(nodes.values()), edges, graph.output_model)
    return space.repair(child, rng)


def crossover(first: Graph, second: Graph, space: Space, rng: random.Random) -> Graph:
    """Uniform crossover over the flat parametrisation, made valid and repaired.

    Raises:
        GraphError: every slot is off in the child.
        BudgetError: the child cannot be repaired to the cap.
    """
    a, b = space.encode(first), space.encode(second)
    child = {name: a[name] if rng.random() < 0.5 else b[name] for name in a}
    return decode_legal(space, child)


class Evolution(Method):
    """Tournament selection, crossover and mutation; recommends the best graph evaluated.

    Example:
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = Evolution()
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40))
        >>> space.fits(method.ask().graph)
        True
    """

    name = "evolution"
    description = "steady-state evolution: tournament, crossover, graph mutations; best seen"
    version = "1"

    def __init__(
        self,
        population: int = 4,
        tournament: int = 2,
        crossover_prob: float = 0.5,
        mutations: int = 1,
        edge_prob: float = 0.5,
        fuser_prob: float = 0.5,
        questions: int | None = None,
    ) -> None:
        super().__init__(
            population=population, tournament=tournament, crossover_prob=crossover_prob,
            mutations=mutations, edge_prob=edge_prob, fuser_prob=fuser_prob, questions=questions,
        )  # fmt: skip
        for option, value in (("population", population), ("tournament", tournament)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"evolution: {option} must be a positive integer, got {value!r}")
        self.population_size, self.tournament = population, tournament
        self.crossover_prob, self.mutations = float(crossover_prob), max(1, int(mutations))
        self.edge_prob, self.fuser_prob = float(edge_prob), float(fuser_prob)
        self.questions = questions
        self.population: list[tuple[float, float, int, Graph]] = []  # accuracy, -FLOPs, age
        self.seen: set[str] = set()
        self.proposed = 0

    def ask(self) -> Trial:
        """A seeded random graph while the population fills, then a new child."""
        self.proposed += 1
        if self.proposed <= self.population_size or not self.population:
            return Trial(self._random(), self.questions)
        for _ in range(MAX_TRIES):
            try:
                child = self._child()
            except (GraphError, BudgetError):
                continue
            if child.id not in self.seen:
                return Trial(child, self.questions)
        return Trial(self._random(), self.questions)

    def tell(self, outcome: Outcome) -> None:
        """An evaluated graph joins the population; the worst leaves when it is full."""
        self.seen.add(outcome.graph.id)
        if not outcome.evaluated or outcome.accuracy is None:
            return
        age = len(self.history)
        entry = (float(outcome.accuracy), -(outcome.flops_units or 0.0), age, outcome.graph)
        self.population.append(entry)
        if len(self.population) > self.population_size:
            self.population.remove(min(self.population, key=lambda e: e[:3]))

    def _random(self) -> Graph:
        return self.space.sample(self.rng, edge_prob=self.edge_prob, fuser_prob=self.fuser_prob)

    def _select(self) -> Graph:
        size = min(self.tournament, len(self.population))
        return max(self.rng.sample(self.population, size), key=lambda e: e[:3])[3]

    def _child(self) -> Graph:
        child = self._select()
        if len(self.population) > 1 and self.rng.random() < self.crossover_prob:
            child = crossover(child, self._select(), self.space, self.rng)
        for _ in range(self.mutations):
            child = mutate(child, self.space, self.rng)
        return child
