"""The hybrid of REINFORCE and an LLM optimiser (PAPER.md section 8).

Source: the official code's hybrid baseline (github.com/FairyFali/AgentRE): iterations
alternate one REINFORCE step (:class:`baselines.reinforce.Reinforce`: 3 sampled graphs, 1
question each, an Adam step on ``-log p * utility``) with one step in which the agent rewrites
the edge-probability table instead, given that iteration's samples and their rewards
(``prompts/hybrid.md``). Iterations 1, 3, 5, ... are Adam steps, 2, 4, 6, ... agent steps.
Everything else is REINFORCE's: the probabilistic graph (:mod:`harness.probgraph`), its
settings and defaults, the budget handling and the final thresholded graph (evaluated before
it is recommended).

Settings: REINFORCE's (``lr`` 0.1, ``samples`` 3, ``questions`` 1, ``threshold`` 0.55, ...),
plus ``tries`` 3 for the agent. Fallback: when every reply is invalid, that step is an Adam
step (the trace notes it).
"""

from __future__ import annotations

from typing import Any

from baselines.reinforce import Reinforce
from harness.agents import Agent
from harness.agents.questions import design_facts, design_text, make_question
from harness.agents.replies import consult, extract_json, parse_edge_rows
from harness.errors import ConfigError, GraphError
from harness.graph import OUTPUT
from harness.methods import SearchEnv

__all__ = ["Hybrid"]


class Hybrid(Reinforce):
    """REINFORCE whose every second update is an agent rewriting the edge table.

    Example:
        >>> import random
        >>> from harness.agents import load_agent
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = Hybrid()
        >>> extras = {"agent": load_agent("rules")}
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40, extras))
        >>> method.ask().questions
        1
    """

    name = "hybrid"
    description = "REINFORCE steps alternating with an agent rewriting the edge table (paper)"
    version = "1"
    uses_agent = True

    def __init__(self, tries: int = 3, **options: Any) -> None:
        super().__init__(**options)
        self.options["tries"] = tries
        self.tries = max(1, int(tries))
        self.agent: Agent | None = None
        self.agent_steps = 0

    def setup(self, env: SearchEnv) -> None:
        """REINFORCE's set-up, and the agent from ``env.extras``."""
        super().setup(env)
        agent = env.extras.get("agent")
        if not isinstance(agent, Agent):
            raise ConfigError("hybrid needs an agent in env.extras['agent']")
        self.agent = agent

    def _update(self) -> None:
        """Odd iterations: an Adam step; even ones: the agent rewrites the edge table."""
        if self.iteration % 2 == 0 or not self._batch:
            super()._update()
            return
        if not self._agent_step():
            super()._update()  # the agent failed three times: a gradient step instead
            return
        self._batch, self._asked = [], 0
        self.iteration += 1
        self.agent_steps += 1

    def _agent_step(self) -> bool:
        assert self.agent is not None and self.graph is not None and self.env is not None
        table = self.graph
        samples = []
        for sample, reward in self._batch:
            design = design_facts(sample.graph)
            samples.append({"graph": design, "text": design_text(design), "accuracy": reward})
        facts = {
            "task": self.env.task,
            "slots": list(table.models),
            "output_model": table.output_model,
            "samples": samples,
            "edge_table": [
                [src, "output" if dst == OUTPUT else dst, round(p, 4)]
                for (src, dst), p in table.edge_table().items()
            ],
            "edge_table_text": table.edge_table_text(),
        }

        def parse(text: str) -> dict[tuple[int, int | str], float]:
            return parse_edge_rows(extract_json(text), table.n)

        result = consult(
            self.agent, make_question("hybrid_table", facts), parse, self.tries,
            fallback="an Adam step",
        )  # fmt: skip
        if result.value is None:
            return False
        try:
            self.graph = table.with_edge_probs(result.value)
        except GraphError:
            return False
        return True
