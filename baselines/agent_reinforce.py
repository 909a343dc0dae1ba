"""Agent-REINFORCE (arXiv 2511.00086; PAPER.md section 7), the flagship method.

Source: the paper and its official code (github.com/FairyFali/AgentRE). REINFORCE's sample ->
gradient -> update becomes sample -> feedback -> update, the feedback written by an agent
(DeepSeek-R1 in the code; here any agent: an LLM, or the offline ``rules`` agent):

1. **Combination initialisation (Insight 1).** The agent gets the task, the insights, the
   backend's own pilot tables (``env.extras["pilot"]``: single-model accuracies, equal-budget
   combinations, width and depth curves; never constants) and the budget-filling combinations
   (``space.combos()``); it names two.
2. **Pre-test.** For each, up to ``pretest_variants`` (5) variants: the combination, then
   copies with one node removed, weakest model first (one copy per node, so ``4x3B`` gives
   ``4x3B`` and four draws of ``3x3B``). Each variant's random graph (``space.sample``) is
   evaluated on 1 question; the best score wins (ties: the earlier variant, so the agent's
   first choice and the full combination).
3. **Iteration 0.** The winner's models are assigned to nodes (largest first); edges are
   sampled with ``initial_edge_prob`` (0.12) until the output node has an input, roles under
   the constraints; the graph is repaired to the budget and evaluated on a batch of 3.
4. **Iterations 1..T.** :mod:`baselines._agent_loop`: last graph, batch accuracy (latency
   under the joint objective), edge table, one round of history and the rules go to the
   agent; its graph and table are parsed strictly (3 tries with the error fed back), repaired
   and evaluated on the next batch.
5. **Recommendation**: ``last`` (the code's choice) or ``best`` (highest batch score).

Settings: ``recommend`` last, ``objective`` accuracy (or ``accuracy-latency``, with
``latency_weight`` 0.1; see :mod:`baselines._agent_loop`), ``iterations`` None (until the
budget is spent; 10 is the paper's T, after which the rest of the budget re-measures the
recommendation), ``initial_edge_prob`` 0.12, ``batch`` (the protocol's, 3), ``pretest_variants``
5, ``tries`` 3.

Budget: under the paper protocol (40 question evaluations) the pre-test takes at most 10,
iteration 0 takes 3, and the iterations take the rest (9 of 3, and any remainder as a short
last batch): the paper's ten iterations are truncated at the budget. The pre-test never leaves
less than one batch for iteration 0.
"""

from __future__ import annotations

from typing import Any

from baselines._agent_loop import AgentLoop
from harness.agents.questions import combo_facts, make_question, model_facts, pilot_facts
from harness.agents.replies import consult, parse_combinations
from harness.errors import BudgetError, ConfigError
from harness.methods import Outcome, SearchEnv, Trial
from harness.space import Combo, Space

__all__ = ["AgentReinforce", "pretest_variants"]


def pretest_variants(space: Space, combo: Combo, limit: int = 5) -> list[Combo]:
    """The combination, then copies with one node removed, weakest model first.

    Example:
        >>> from harness.pool import load_pool
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> [v.label for v in pretest_variants(space, space.parse_combo("1x8B+3x1B"))]
        ['1x8B+3x1B', '1x8B+2x1B', '1x8B+2x1B', '1x8B+2x1B', '3x1B']
    """
    pool = space.pool
    weakest_first = sorted(combo.models, key=lambda m: pool.model(m).params)
    variants = [combo]
    for removed in weakest_first:
        if len(variants) >= limit or combo.size < 2:
            break
        counts = dict(combo.counts)
        counts[removed] -= 1
        label = "+".join(f"{n}x{pool.model(m).short}" for m, n in counts.items() if n)
        variants.append(space.parse_combo(label))
    return variants


class AgentReinforce(AgentLoop):
    """Agent-REINFORCE: an agent's feedback as the gradient of a probabilistic graph.

    Example:
        >>> import random
        >>> from harness.agents import load_agent
        >>> from harness.methods import SearchEnv
        >>> from harness.pilot import PAPER
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> pilot = {"single": [{"short": k, "accuracy": v}
        ...                     for k, v in PAPER["math"]["single"].items()],
        ...          "combos": [{"combo": k, "accuracy": v}
        ...                     for k, v in PAPER["math"]["combos"].items()]}
        >>> method = AgentReinforce()
        >>> extras = {"agent": load_agent("rules"), "pilot": pilot}
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40, extras))
        >>> [c.label for c in method.chosen]
        ['1x8B+1x3B', '4x3B']
        >>> trial = method.ask()
        >>> trial.questions, space.fits(trial.graph)
        (1, True)
    """

    name = "agent-reinforce"
    description = "Agent-REINFORCE: an agent's feedback updates a probabilistic graph (paper)"
    version = "1"
    uses_pilot = True

    def __init__(self, pretest_variants: int = 5, **options: Any) -> None:
        super().__init__(**options)
        self.options["pretest_variants"] = pretest_variants
        if isinstance(pretest_variants, bool) or not isinstance(pretest_variants, int):
            raise ConfigError("agent-reinforce: pretest_variants must be an integer")
        self.variants_per_combo = max(1, pretest_variants)
        self.pilot: dict[str, Any] = {}
        self.chosen: list[Combo] = []
        self.plan: list[Combo] = []
        self.tested: list[tuple[Combo, float]] = []
        self._asked: list[tuple[Trial, Combo]] = []

    def setup(self, env: SearchEnv) -> None:
        """Ask the agent for two combinations and plan the pre-test."""
        super().setup(env)
        pilot = env.extras.get("pilot")
        if not pilot:
            raise ConfigError("agent-reinforce needs the pilot tables in env.extras['pilot']")
        self.pilot = pilot_facts(pilot)
        candidates = env.space.combos()
        if not candidates:
            raise BudgetError(f"agent-reinforce: no combination fits level {env.space.level}")
        choose = min(2, len(candidates))
        facts = {
            "task": env.task,
            "level": env.space.level,
            "models": model_facts(env.space.pool, env.space.task),
            "pilot": self.pilot,
            "candidates": [combo_facts(c) for c in candidates],
            "choose": choose,
            **self.objective_facts(),
        }
        assert self.agent is not None
        result = consult(
            self.agent,
            make_question("combinations", facts),
            lambda text: parse_combinations(text, env.space, candidates, choose),
            self.tries,
            fallback="two combinations drawn at random",
        )
        self.chosen = result.value or self.rng.sample(candidates, choose)
        plan = [
            v for c in self.chosen for v in pretest_variants(env.space, c, self.variants_per_combo)
        ]
        # The pre-test never takes the batch iteration 0 needs.
        room = max(0, env.question_evals_left() - self.batch)
        self.plan = plan[:room]

    def planned_trial(self) -> Trial | None:
        """The next pre-test variant's random graph, on 1 question."""
        if not self.plan:
            return None
        variant = self.plan.pop(0)
        trial = Trial(self.space.sample(self.rng, combo=variant), 1)
        self._asked.append((trial, variant))
        return trial

    def planned_outcome(self, outcome: Outcome) -> None:
        """Keep an evaluated variant's score."""
        for trial, variant in self._asked:
            if trial is outcome.trial and outcome.evaluated:
                accuracy = float(outcome.accuracy or 0.0)
                self.tested.append((variant, self.score(accuracy, outcome.latency_s)))

    def first_combo(self) -> Combo:
        """The pre-test's best variant (the agent's first choice if nothing was tested)."""
        if not self.tested:
            return self.chosen[0]
        best = max(range(len(self.tested)), key=lambda i: (self.tested[i][1], -i))
        return self.tested[best][0]

    def loop_facts(self) -> dict[str, Any]:
        """The pilot tables go into every iteration question (Insights 2 and 3)."""
        return {"pilot": self.pilot}
