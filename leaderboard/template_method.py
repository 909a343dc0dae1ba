"""A complete search method to start from: greedy local search (docs/submitting.md).

Copy this file, rename the class and its ``name``, and change ``ask`` and ``tell``. Try it with::

    harness eval --method leaderboard/template_method.py:TemplateSearch --task math

The method only proposes graphs and learns from what it is told; the harness owns the loop,
the budget, the question stream, the seeds and the records. The search:

1. the first ``restarts`` trials are random feasible graphs (``space.sample``);
2. every later trial is a *neighbour* of the best graph so far: its flat parametrisation
   (``space.encode``: a model or ``off`` per slot, a role per slot, 0/1 per edge, the output
   model) with ``changes`` variables set to another value, decoded (``space.decode``) and
   repaired to the FLOPs cap by the paper's rule (``space.repair``);
3. the best graph is the one with the highest batch accuracy (then the fewest FLOPs);
   ``recommend`` (inherited) returns the best graph evaluated, which is the same thing.
"""

from __future__ import annotations

from harness.errors import BudgetError, GraphError
from harness.graph import Graph
from harness.methods import Method, Outcome, Trial

MAX_TRIES = 20
"""Neighbours drawn before falling back to a random graph (all invalid or seen already)."""


class TemplateSearch(Method):
    """Greedy local search: random starts, then neighbours of the best graph found so far.

    Example:
        >>> import random
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = TemplateSearch()
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40))
        >>> space.fits(method.ask().graph)
        True
    """

    # What the leaderboard shows and the trace records: keep ``name`` stable, bump ``version``
    # whenever a change alters what the method proposes.
    name = "template-search"
    description = "greedy local search: random starts, then neighbours of the best graph"
    version = "1"

    def __init__(self, restarts: int = 3, changes: int = 2, questions: int | None = None) -> None:
        # Every option goes to super().__init__: the harness records them in the manifest and
        # the trace, and a validator rebuilds the method from them. Keep them JSON values.
        super().__init__(restarts=restarts, changes=changes, questions=questions)
        self.restarts = max(1, int(restarts))
        self.changes = max(1, int(changes))
        self.questions = questions  # None: the protocol's batch size (3 in the paper protocol)
        self.best: tuple[float, float, Graph] | None = None  # (accuracy, -FLOPs, graph)
        self.seen: set[str] = set()  # graph ids already proposed: never pay twice for one

    def ask(self) -> Trial:
        """A random graph for the first trials, then an unseen neighbour of the best one."""
        if self.best is None or len(self.seen) < self.restarts:
            return self._propose(self._random())
        for _ in range(MAX_TRIES):
            try:
                graph = self._neighbour(self.best[2])
            except (GraphError, BudgetError):
                continue  # this change broke a constraint (a fuser with no assistant input...)
            if graph.id not in self.seen:
                return self._propose(graph)
        return self._propose(self._random())

    def tell(self, outcome: Outcome) -> None:
        """Keep the best evaluated graph; refused and failed trials teach nothing here."""
        if not outcome.evaluated or outcome.accuracy is None:
            return
        score = (outcome.accuracy, -(outcome.flops_units or 0.0), outcome.graph)
        if self.best is None or score[:2] > self.best[:2]:
            self.best = score

    # ----- helpers --------------------------------------------------------------------------

    def _propose(self, graph: Graph) -> Trial:
        self.seen.add(graph.id)
        return Trial(graph, self.questions)

    def _random(self) -> Graph:
        # A random budget-filling model combination, randomly wired, repaired to the cap. Use
        # self.rng (seeded by the harness), never the global random module: same seed, same study.
        return self.space.sample(self.rng)

    def _neighbour(self, graph: Graph) -> Graph:
        values = self.space.encode(graph)
        params = self.space.params()
        for param in self.rng.sample(params, self.changes):
            others = [c for c in param.choices if c != values[param.name]]
            values[param.name] = self.rng.choice(others)
        # decode raises GraphError for a broken graph; repair raises BudgetError if hopeless.
        return self.space.repair(self.space.decode(values), self.rng)
