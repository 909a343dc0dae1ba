"""OPRO-style LLM optimiser: the scored history of graphs in, the next graph out.

Source: OPRO (Yang et al., 2023, "Large Language Models as Optimizers"), applied to
collaboration graphs as the design card asks (not in the paper's code). The meta-prompt
(``prompts/opro.md``) lists the graphs evaluated so far in text form with their scores, in
ascending order (best last, as OPRO does), the pool, the integer budget and the budget-filling
combinations; the agent writes a new graph. The graph may use any models whose integer costs
fit the budget level (the combination is searched too); it is parsed strictly (3 tries with
the error fed back), repaired to the FLOPs cap and evaluated on a batch.

Settings: ``initial`` 2 random graphs first (OPRO starts from a few scored solutions),
``history`` 20 (the best this many graphs are shown), ``objective`` accuracy or
``accuracy-latency`` with ``latency_weight`` 0.1 (as Agent-REINFORCE), ``edge_prob`` 0.5 for
the random graphs, ``questions`` (the protocol's batch), ``tries`` 3.

Fallback: when every reply is invalid, a random graph (as the initial ones). A refused or
failed trial is proposed again at most twice. Recommends the best-scoring graph evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baselines._agent_loop import OBJECTIVES, latency_reference
from harness.agents import Agent
from harness.agents.questions import combo_facts, make_question, model_facts, round_facts
from harness.agents.replies import ReplyError, consult, extract_json, parse_graph
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import Graph
from harness.methods import Method, Outcome, SearchEnv, Trial

__all__ = ["Opro"]


class Opro(Method):
    """Scored history in, next graph out; recommends the best graph evaluated.

    Example:
        >>> import random
        >>> from harness.agents import load_agent
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = Opro()
        >>> extras = {"agent": load_agent("rules")}
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40, extras))
        >>> space.fits(method.ask().graph)
        True
    """

    name = "opro"
    description = "OPRO-style: the scored history of graphs in, the next graph out (agent)"
    version = "1"
    uses_agent = True

    def __init__(
        self,
        initial: int = 2,
        history: int = 20,
        objective: str = "accuracy",
        latency_weight: float = 0.1,
        edge_prob: float = 0.5,
        questions: int | None = None,
        tries: int = 3,
    ) -> None:
        super().__init__(
            initial=initial, history=history, objective=objective, latency_weight=latency_weight,
            edge_prob=edge_prob, questions=questions, tries=tries,
        )  # fmt: skip
        if objective not in OBJECTIVES:
            raise ConfigError(f"opro: objective must be one of {', '.join(OBJECTIVES)}")
        self.initial, self.shown = max(1, int(initial)), max(1, int(history))
        self.objective, self.latency_weight = objective, float(latency_weight)
        self.edge_prob, self.questions, self.tries = float(edge_prob), questions, max(1, tries)
        self.agent: Agent | None = None
        self.latency_ref = 1.0
        self.scored: list[tuple[Graph, float, int, float | None, float, float]] = []
        self._pending: Trial | None = None
        self._resends = 0

    def setup(self, env: SearchEnv) -> None:
        """Take the agent from ``env.extras``."""
        super().setup(env)
        agent = env.extras.get("agent")
        if not isinstance(agent, Agent):
            raise ConfigError("opro needs an agent in env.extras['agent']")
        self.agent = agent
        self.latency_ref = latency_reference(env.space)

    def _score(self, accuracy: float, latency_s: float | None) -> float:
        if self.objective == "accuracy" or latency_s is None:
            return accuracy
        return accuracy - self.latency_weight * latency_s / self.latency_ref

    def ask(self) -> Trial:
        """A resend, a random initial graph, or the agent's next graph."""
        if self._pending is not None and self._resends:
            return self._pending
        if len(self.scored) < self.initial:
            graph = self.space.sample(self.rng, edge_prob=self.edge_prob)
        else:
            graph = self._from_agent()
        self._pending = Trial(graph, self.questions)
        return self._pending

    def tell(self, outcome: Outcome) -> None:
        """Record an evaluated graph; resend a refused or failed one (twice at most)."""
        if self._pending is None or outcome.trial is not self._pending:
            return
        if not outcome.evaluated:
            self._resends += 1
            if self._resends > 2:
                self._pending, self._resends = None, 0
            return
        self._pending, self._resends = None, 0
        accuracy = float(outcome.accuracy or 0.0)
        self.scored.append(
            (outcome.graph, accuracy, len(outcome.correct), outcome.latency_s,
             self._score(accuracy, outcome.latency_s), float(outcome.flops_units or 0.0))
        )  # fmt: skip

    def recommend(self) -> Graph:
        """The best-scoring graph evaluated (then fewer FLOPs, then the earliest)."""
        if not self.scored:
            return super().recommend()
        best = max(enumerate(self.scored), key=lambda p: (p[1][4], -p[1][5], -p[0]))
        return best[1][0]

    def _from_agent(self) -> Graph:
        assert self.agent is not None and self.env is not None
        order = sorted(range(len(self.scored)), key=lambda i: (self.scored[i][4], i))
        shown = order[-self.shown :]
        history = [
            round_facts(g, None, acc, n, lat, score)
            for g, acc, n, lat, score, _ in (self.scored[i] for i in shown)
        ]
        pool = self.space.pool
        facts: dict[str, Any] = {
            "task": self.env.task,
            "objective": self.objective,
            "latency_weight": self.latency_weight,
            "latency_ref_s": round(self.latency_ref, 4),
            "models": model_facts(pool, self.space.task),
            "level": self.space.level,
            "max_nodes": self.space.max_nodes,
            "candidates": [combo_facts(c) for c in self.space.combos()],
            "output_model": pool.model(pool.output_model).name,
            "history": history,
        }
        result = consult(
            self.agent, make_question("opro_graph", facts), self._parse, self.tries,
            fallback="a random graph",
        )  # fmt: skip
        if result.value is not None:
            try:
                return self.space.validate(self.space.repair(result.value, self.rng))
            except (BudgetError, GraphError):
                pass
        return self.space.sample(self.rng, edge_prob=self.edge_prob)

    def _parse(self, text: str) -> Graph:
        pool = self.space.pool
        out = pool.model(pool.output_model).name
        graph = parse_graph(extract_json(text), pool, out, max_nodes=self.space.max_nodes)
        # The output node is fixed and pays in the integer budget too (Space.combo_cost); the
        # agent is told the agent nodes' share of it, as its prompt states the budget.
        budget = self.space.agent_budget(graph.output_model)
        cost = self.space.combo_cost(graph) - pool.combo_cost(graph.output_model, self.space.task)
        if cost > budget:
            costs: Mapping[str, int] = {m.short: pool.combo_cost(m.name, self.space.task)
                                        for m in pool.models}  # fmt: skip
            raise ReplyError(
                f"the models cost {cost}, over the budget of {budget} "
                f"(costs: {', '.join(f'{k} = {v}' for k, v in costs.items())})"
            )
        return graph
