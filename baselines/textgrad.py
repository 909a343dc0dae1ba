"""TextGrad-style LLM optimiser (PAPER.md section 8).

Source: the official code's TextGrad baseline (github.com/FairyFali/AgentRE), after TextGrad
(Yuksekgonul et al., 2024: an LLM's textual feedback used as a gradient). It is the same loop
as Agent-REINFORCE (:mod:`baselines._agent_loop`) with three differences, all the paper's:
the model combination is a seeded random one of ``space.combos()`` (no agent choice), there is
no pre-test, and the prompt (``prompts/textgrad.md``) has no insights, pilot data or edge
rules: the agent is asked for feedback on the last graph, then the improved graph and the
updated edge table. Replies are parsed by the same strict parser (3 tries).

Settings: as Agent-REINFORCE's loop: ``recommend`` last, ``objective`` accuracy,
``latency_weight`` 0.1, ``iterations`` None (until the budget is spent), ``initial_edge_prob``
0.12, ``batch`` (the protocol's), ``tries`` 3.
"""

from __future__ import annotations

from baselines._agent_loop import AgentLoop
from harness.errors import BudgetError
from harness.space import Combo

__all__ = ["TextGrad"]


class TextGrad(AgentLoop):
    """The Agent-REINFORCE loop on a random combination, without insights or edge rules.

    Example:
        >>> import random
        >>> from harness.agents import load_agent
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = TextGrad()
        >>> extras = {"agent": load_agent("rules")}
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40, extras))
        >>> trial = method.ask()
        >>> trial.questions, space.fits(trial.graph)
        (3, True)
    """

    name = "textgrad"
    description = "TextGrad-style: the agent loop on a random combination, no insights (paper)"
    version = "1"
    question_kind = "textgrad_graph"

    def first_combo(self) -> Combo:
        """A seeded random budget-filling combination."""
        combos = self.space.combos()
        if not combos:
            raise BudgetError(f"textgrad: no combination fits level {self.space.level}")
        return self.rng.choice(combos)
