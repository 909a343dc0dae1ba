"""The feedback-update loop that Agent-REINFORCE and the TextGrad baseline share.

Iteration 0 samples the probabilistic graph of a model combination (low initial edge
probability, edges redrawn until the output node has an input, roles under the constraints)
and evaluates it on a batch. Each later iteration sends the agent the last graph (every slot of
the combination, idle ones marked), its batch accuracy (and latency under the joint
objective), the edge-probability table and one round of history; the agent returns the next
graph and the updated table, which are parsed strictly (3 tries with the error fed back),
repaired to the budget and evaluated on the next batch. Subclasses choose the combination
(:meth:`AgentLoop.first_combo`), may plan trials before iteration 0
(:meth:`AgentLoop.planned_trial`), and say which question kind they ask.

**Objectives.** ``accuracy``, or ``accuracy-latency``: score = accuracy - ``latency_weight`` x
latency / reference, where the reference is the latency of one call of the output model alone
(its output node reading it), so the weight is in accuracy per reference latency.

**Fallbacks.** An agent whose three replies are all invalid is replaced, for that iteration,
by a sample of the current probabilistic graph (the table unchanged); a refused or failed
trial is proposed again (at most twice), then replaced by such a sample. The trace notes every
invalid reply and fallback (``agent_note`` records).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.agents import Agent
from harness.agents.questions import (
    combo_facts,
    make_question,
    model_facts,
    round_facts,
)
from harness.agents.replies import (
    ReplyError,
    consult,
    extract_json,
    parse_edge_rows,
    parse_graph,
)
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import ASSISTANT, OUTPUT, Graph
from harness.methods import Method, Outcome, SearchEnv, Trial
from harness.probgraph import ProbGraph
from harness.space import Combo, Space

__all__ = ["OBJECTIVES", "RECOMMEND", "AgentLoop", "Round", "latency_reference"]

OBJECTIVES = ("accuracy", "accuracy-latency")
RECOMMEND = ("last", "best")
MAX_RESENDS = 2
"""A refused or failed trial is proposed again this many times before a fresh sample."""


def latency_reference(space: Space) -> float:
    """The joint objective's latency unit: one call of the output model alone, then its output.

    Example:
        >>> from harness.pool import load_pool
        >>> round(latency_reference(Space(load_pool("llama3"), (202, 275), level=12)), 2)
        3.57
    """
    out = space.pool.model(space.pool.output_model).name
    alone = Graph.create([(0, out, ASSISTANT)], [(0, OUTPUT)], out)
    return space.cost(alone).latency_s


@dataclass(frozen=True)
class Round:
    """One evaluated iteration: the graph as evaluated and what it scored."""

    index: int
    graph: Graph
    accuracy: float
    questions: int
    latency_s: float | None
    flops_units: float
    score: float


class AgentLoop(Method):
    """The shared loop (module docstring); subclasses set the combination and question kind."""

    uses_agent = True
    question_kind: ClassVar[str] = "next_graph"

    def __init__(
        self,
        recommend: str = "last",
        objective: str = "accuracy",
        latency_weight: float = 0.1,
        iterations: int | None = None,
        initial_edge_prob: float = 0.12,
        batch: int | None = None,
        tries: int = 3,
    ) -> None:
        super().__init__(
            recommend=recommend, objective=objective, latency_weight=latency_weight,
            iterations=iterations, initial_edge_prob=initial_edge_prob, batch=batch,
            tries=tries,
        )  # fmt: skip
        if recommend not in RECOMMEND:
            raise ConfigError(f"{self.name}: recommend must be last or best, got {recommend!r}")
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"{self.name}: objective must be accuracy or accuracy-latency, got {objective!r}"
            )
        for option, value in (("batch", batch), ("iterations", iterations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):  # fmt: skip
                raise ConfigError(f"{self.name}: {option} must be a positive integer or null")
        if not 0.0 < float(initial_edge_prob) < 1.0:
            raise ConfigError(f"{self.name}: initial_edge_prob must be in (0, 1)")
        self.recommend_mode, self.objective = recommend, objective
        self.latency_weight, self.iterations = float(latency_weight), iterations
        self.initial_edge_prob, self.batch_option = float(initial_edge_prob), batch
        self.tries = max(1, int(tries))
        self.agent: Agent | None = None
        self.latency_ref = 1.0
        self.combo: Combo | None = None
        self.table: ProbGraph | None = None
        self.rounds: list[Round] = []
        self.iteration = 0  # agent iterations evaluated (iteration 0 not counted)
        self._pending: Trial | None = None
        self._pending_kind = ""  # planned, zero (iteration 0), agent, final
        self._resend: Trial | None = None
        self._resend_kind = ""
        self._resends = 0

    # ----- hooks -----------------------------------------------------------------------------

    def first_combo(self) -> Combo:
        """The combination of iteration 0 (called once, after any planned trials)."""
        raise NotImplementedError

    def planned_trial(self) -> Trial | None:
        """A trial to run before iteration 0 (Agent-REINFORCE's pre-test), or None."""
        return None

    def planned_outcome(self, outcome: Outcome) -> None:
        """Told the outcome of a planned trial."""

    def loop_facts(self) -> dict[str, Any]:
        """Extra facts for the iteration questions (Agent-REINFORCE adds the pilot)."""
        return {}

    # ----- set-up ----------------------------------------------------------------------------

    def setup(self, env: SearchEnv) -> None:
        """Take the agent from ``env.extras`` and fix the latency reference."""
        super().setup(env)
        agent = env.extras.get("agent")
        if not isinstance(agent, Agent):
            raise ConfigError(f"{self.name} needs an agent in env.extras['agent']")
        self.agent = agent
        self.latency_ref = latency_reference(env.space)

    @property
    def batch(self) -> int:
        """Questions per iteration (the protocol's batch unless set)."""
        assert self.env is not None
        return self.batch_option or self.env.batch_size

    def score(self, accuracy: float, latency_s: float | None) -> float:
        """The objective: accuracy, or accuracy minus the weighted relative latency."""
        if self.objective == "accuracy" or latency_s is None:
            return float(accuracy)
        return float(accuracy) - self.latency_weight * float(latency_s) / self.latency_ref

    def objective_facts(self) -> dict[str, Any]:
        """The objective as question facts."""
        return {
            "objective": self.objective,
            "latency_weight": self.latency_weight,
            "latency_ref_s": round(self.latency_ref, 4),
        }

    # ----- ask / tell ------------------------------------------------------------------------

    def ask(self) -> Trial:
        """A resend, a planned trial, iteration 0, or the agent's next graph."""
        assert self.env is not None, "setup() comes first"
        if self._resend is not None:
            trial, kind = self._resend, self._resend_kind
        elif (planned := self.planned_trial()) is not None:
            trial, kind = planned, "planned"
        elif not self.rounds:
            trial, kind = self._iteration_zero(), "zero"
        elif self.iterations is not None and self.iteration >= self.iterations:
            # The paper's T iterations are done: the rest of the budget re-measures the answer.
            trial, kind = Trial(self.recommend(), max(1, self.env.question_evals_left())), "final"
        else:
            trial, kind = self._agent_trial(), "agent"
        self._pending, self._pending_kind = trial, kind
        return trial

    def tell(self, outcome: Outcome) -> None:
        """Resend refused or failed trials; record evaluated rounds."""
        if self._pending is None or outcome.trial is not self._pending:
            return  # a harness fallback: not ours
        trial, kind, self._pending = self._pending, self._pending_kind, None
        if not outcome.evaluated:
            self._resends = self._resends + 1 if self._resend is trial else 1
            self._resend, self._resend_kind = trial, kind
            if self._resends > MAX_RESENDS:
                self._resend = None
                if kind == "planned":
                    self.planned_outcome(outcome)  # given up: the plan moves on
                elif kind in ("zero", "agent"):
                    self._resend = Trial(self._sample(), self.batch)
            return
        self._resend, self._resends = None, 0
        if kind == "planned":
            self.planned_outcome(outcome)
            return
        if kind == "final":
            return
        accuracy = float(outcome.accuracy or 0.0)
        self.rounds.append(
            Round(
                len(self.rounds), outcome.graph, accuracy, len(outcome.correct),
                outcome.latency_s, float(outcome.flops_units or 0.0),
                self.score(accuracy, outcome.latency_s),
            )
        )  # fmt: skip
        if kind == "agent":
            self.iteration += 1

    def recommend(self) -> Graph:
        """The last graph evaluated (the paper) or the best-scoring one (``recommend=best``)."""
        if not self.rounds:
            return super().recommend()
        if self.recommend_mode == "last":
            return self.rounds[-1].graph
        best = max(self.rounds, key=lambda r: (r.score, -r.flops_units, -r.index))
        return best.graph

    # ----- the loop --------------------------------------------------------------------------

    def _repaired(self, graph: Graph) -> Graph:
        repaired = self.space.repair(graph, self.rng)
        return self.space.validate(repaired)

    def _sample(self) -> Graph:
        """A sample of the current probabilistic graph, repaired to the budget."""
        assert self.table is not None and self.combo is not None
        for _ in range(20):
            try:
                return self._repaired(self.table.sample(self.rng).graph)
            except (BudgetError, GraphError):
                continue
        return self.space.sample(self.rng, combo=self.combo)

    def _iteration_zero(self) -> Trial:
        if self.table is None:
            self.combo = self.first_combo()
            out = self.space.pool.model(self.space.pool.output_model).name
            self.table = ProbGraph.create(
                list(self.combo.models), out, edge_prob=self.initial_edge_prob, fuser_prob=0.5
            )
        return Trial(self._sample(), self.batch)

    def _agent_trial(self) -> Trial:
        assert self.agent is not None and self.table is not None and self.combo is not None
        facts = self._facts()
        question = make_question(self.question_kind, facts)
        result = consult(
            self.agent, question, self._parse, self.tries,
            fallback="a sample of the current probabilistic graph",
        )  # fmt: skip
        if result.value is None:
            return Trial(self._sample(), self.batch)
        graph, rows = result.value
        self.table = dataclasses.replace(
            self.table.with_edge_probs(rows), models=tuple(n.model for n in graph.nodes)
        )
        try:
            return Trial(self._repaired(graph), self.batch)
        except (BudgetError, GraphError):
            return Trial(self._sample(), self.batch)

    def _parse(self, text: str) -> tuple[Graph, dict[tuple[int, int | str], float]]:
        assert self.table is not None and self.combo is not None
        reply = extract_json(text)
        graph = parse_graph(
            reply, self.space.pool, self.table.output_model, counts=dict(self.combo.counts)
        )
        rows = parse_edge_rows(reply, self.table.n)
        try:
            self.table.with_edge_probs(rows)
        except GraphError as exc:
            raise ReplyError(str(exc)) from None
        return graph, rows

    def _facts(self) -> dict[str, Any]:
        assert self.env is not None and self.table is not None and self.combo is not None
        slots = list(self.table.models)

        def facts_of(r: Round) -> dict[str, Any]:
            return round_facts(r.graph, slots, r.accuracy, r.questions, r.latency_s, r.score)

        last = self.rounds[-1]
        table = [
            [src, "output" if dst == OUTPUT else dst, round(p, 4)]
            for (src, dst), p in self.table.edge_table().items()
        ]
        return {
            "task": self.env.task,
            **self.objective_facts(),
            "models": model_facts(self.space.pool, self.space.task),
            "combination": combo_facts(self.combo),
            "output_model": self.table.output_model,
            "iteration": last.index,
            "last": facts_of(last),
            "history": [facts_of(self.rounds[-2])] if len(self.rounds) > 1 else [],
            "edge_table": table,
            "edge_table_text": self.table.edge_table_text(),
            "pilot": None,
            **self.loop_facts(),
        }
