"""Random search (PAPER.md section 8).

Source: the official code's random baseline (github.com/FairyFali/AgentRE): each iteration draws
a random budget-filling model combination and a random graph over it, evaluates it on a batch of
questions (3 by default), and the method returns the best graph seen.

Settings: ``edge_prob`` (each candidate edge kept with this probability, default 0.5),
``fuser_prob`` (a node that may be a fuser becomes one with this probability, default 0.5),
``questions`` (per evaluation; default the protocol's batch size). Graphs are repaired to the
FLOPs cap by the paper's rule before they are proposed.
"""

from __future__ import annotations

from harness.methods import Method, Outcome, Trial


class RandomSearch(Method):
    """A random combination and a random graph per iteration; recommends the best seen.

    Example:
        >>> import random
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = RandomSearch()
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40))
        >>> space.fits(method.ask().graph)
        True
    """

    name = "random"
    description = "random model combination and random graph per iteration; best seen (paper)"
    version = "1"

    def __init__(
        self, edge_prob: float = 0.5, fuser_prob: float = 0.5, questions: int | None = None
    ) -> None:
        super().__init__(edge_prob=edge_prob, fuser_prob=fuser_prob, questions=questions)
        self.edge_prob = float(edge_prob)
        self.fuser_prob = float(fuser_prob)
        self.questions = questions

    def ask(self) -> Trial:
        """A fresh random feasible graph."""
        graph = self.space.sample(self.rng, edge_prob=self.edge_prob, fuser_prob=self.fuser_prob)
        return Trial(graph, self.questions)

    def tell(self, outcome: Outcome) -> None:
        """Nothing to learn: the history (kept by the base class) is enough."""
