"""GPTSwarm-style REINFORCE on the probabilistic graph (PAPER.md section 8).

Source: the official code's REINFORCE baseline (github.com/FairyFali/AgentRE, built on
GPTSwarm's edge optimiser, ``swarm/optimizer/edge_optimizer``): Adam (lr 0.1) on the edge,
role and model logits of a :class:`~harness.probgraph.ProbGraph`; per iteration 3 sampled
graphs, 1 question each; loss = mean of ``-log p(graph) * utility`` with utility = accuracy on
the question; the final graph keeps the edges with probability above 0.55.

Settings (defaults are the paper's): ``lr`` 0.1, ``samples`` 3 graphs per iteration,
``questions`` 1 per sample, ``iterations`` (None: as many as the budget allows; the paper ran
10), ``threshold`` 0.55, ``final_questions`` 3, ``edge_prob`` 0.5 and ``fuser_prob`` 0.5
(GPTSwarm's initial probability), ``learn_models`` True with ``model_prob`` 0.9, ``baseline``
False. ``reinforce-baseline`` is the same method with ``baseline=True``: utility minus an
exponential moving average of past utilities (decay ``baseline_decay`` 0.9, started at the
first iteration's mean, as GPTSwarm's first step does).

Deviations, each because the protocol demands it:

- The initial model combination is a seeded random one of ``space.combos()`` (the official
  code samples models too); each slot's own model starts with probability ``model_prob``.
- Samples are repaired to the FLOPs cap before they are proposed; the gradient is that of the
  sample as drawn. A sample that cannot be repaired is redrawn (at most 20 times).
- Iterations continue while the budget allows (every method gets the same budget); the last
  ``final_questions`` or more are spent evaluating the thresholded graph, so that the final
  recommendation is a graph the study evaluated. At earlier checkpoints the recommendation is
  the current thresholded graph (REINFORCE's answer at that point, scored but never told).
- Refused, failed or foreign (harness fallback) outcomes carry no utility and are left out of
  the gradient; an iteration steps with the samples that were evaluated.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import Graph
from harness.methods import Method, Outcome, SearchEnv, Trial
from harness.probgraph import Adam, GraphSample, LogitGrad, ProbGraph

MAX_REDRAWS = 20
"""Samples that cannot be repaired to the cap are redrawn at most this many times."""


class Reinforce(Method):
    """REINFORCE on edge, role and model logits; recommends the thresholded graph.

    Example:
        >>> import random
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = Reinforce()
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40))
        >>> trial = method.ask()
        >>> trial.questions, space.fits(trial.graph)
        (1, True)
    """

    name = "reinforce"
    description = "GPTSwarm-style REINFORCE on edge/role/model logits, threshold 0.55 (paper)"
    version = "1"

    def __init__(
        self,
        lr: float = 0.1,
        samples: int = 3,
        questions: int = 1,
        iterations: int | None = None,
        threshold: float = 0.55,
        final_questions: int = 3,
        edge_prob: float = 0.5,
        fuser_prob: float = 0.5,
        learn_models: bool = True,
        model_prob: float = 0.9,
        baseline: bool = False,
        baseline_decay: float = 0.9,
    ) -> None:
        super().__init__(
            lr=lr, samples=samples, questions=questions, iterations=iterations,
            threshold=threshold, final_questions=final_questions, edge_prob=edge_prob,
            fuser_prob=fuser_prob, learn_models=learn_models, model_prob=model_prob,
            baseline=baseline, baseline_decay=baseline_decay,
        )  # fmt: skip
        for option, value in (("samples", samples), ("questions", questions)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"reinforce: {option} must be a positive integer, got {value!r}")
        self.samples, self.questions, self.iterations = samples, questions, iterations
        self.threshold, self.final_questions = float(threshold), max(1, int(final_questions))
        self.edge_prob, self.fuser_prob = float(edge_prob), float(fuser_prob)
        self.learn_models, self.model_prob = bool(learn_models), float(model_prob)
        self.use_baseline, self.baseline_decay = bool(baseline), float(baseline_decay)
        self.optimizer = Adam(lr=float(lr))
        self.graph: ProbGraph | None = None
        self.iteration = 0
        self.moving_baseline: float | None = None
        self._asked = 0  # samples asked in the current iteration
        self._batch: list[tuple[GraphSample, float]] = []
        self._pending: tuple[Trial, GraphSample] | None = None
        self._final: Trial | None = None  # the thresholded graph's trial, once in the final phase
        self._final_graph: Graph | None = None  # ... and the graph as evaluated
        self._final_refused = False

    def setup(self, env: SearchEnv) -> None:
        """Pick the seeded random model combination and build the probabilistic graph."""
        super().setup(env)
        combos = env.space.combos()
        if not combos:
            raise BudgetError(f"reinforce: no model combination fits level {env.space.level}")
        models = list(self.rng.choice(combos).models)
        self.rng.shuffle(models)
        pool = env.space.pool
        self.graph = ProbGraph.create(
            models,
            pool.model(pool.output_model).name,
            model_choices=pool.names if self.learn_models else (),
            edge_prob=self.edge_prob,
            fuser_prob=self.fuser_prob,
            model_prob=self.model_prob,
        )

    # ----- ask / tell ----------------------------------------------------------------------

    def ask(self) -> Trial:
        """The next sample of this iteration, or the thresholded graph once the budget is due."""
        assert self.env is not None and self.graph is not None, "setup() comes first"
        self._pending = None  # an unanswered sample (the harness replaced it) is lost
        if self._asked >= self.samples:
            self._update()
        left = self.env.question_evals_left()
        if self._final is None and not self._final_refused:
            needed = self.samples * self.questions if self._asked == 0 else 0
            done = self.iterations is not None and self.iteration >= self.iterations
            if done or left < needed + self.final_questions or left <= self.final_questions:
                if self._batch:
                    self._update()  # the partial iteration still counts
                self._final = Trial(self.thresholded(), None)
        if self._final is not None:
            # All the remaining budget goes to the final graph (a failure gets another try).
            return Trial(self._final.graph, max(1, left))
        sample = self._draw()
        trial = Trial(sample.graph, self.questions)
        self._pending = (trial, sample)
        self._asked += 1
        return trial

    def tell(self, outcome: Outcome) -> None:
        """Keep an evaluated sample's utility; note the final graph's evaluation."""
        if self._final is not None and outcome.trial.graph is self._final.graph:
            if outcome.evaluated:
                self._final_graph = outcome.graph
            elif outcome.status == "refused":
                self._final, self._final_refused = None, True  # back to sampling
            return
        if self._pending is None or outcome.trial is not self._pending[0]:
            return  # a harness fallback: not drawn from the distribution, no gradient
        sample = self._pending[1]
        self._pending = None
        if outcome.evaluated and outcome.accuracy is not None:
            self._batch.append((sample, float(outcome.accuracy)))

    def recommend(self) -> Graph:
        """The evaluated thresholded graph; before the final phase the current one."""
        if self._final_graph is not None:
            return self._final_graph
        assert self.env is not None, "setup() comes first"
        if self.env.question_evals_left() > 0 and not self._final_refused:
            try:
                return self.thresholded()
            except (GraphError, BudgetError):
                pass
        # The thresholded graph never ran (its evaluations failed or were refused).
        return super().recommend()

    # ----- the method ----------------------------------------------------------------------

    def thresholded(self) -> Graph:
        """The graph of edges with probability above the threshold, repaired to the cap."""
        assert self.graph is not None, "setup() comes first"
        # No generator: ties in the repair break by id, so asking twice gives the same graph.
        return self.space.repair(self.graph.threshold_graph(self.threshold))

    def _draw(self) -> GraphSample:
        assert self.graph is not None
        for _ in range(MAX_REDRAWS):
            sample = self.graph.sample(self.rng)
            try:
                repaired = self.space.repair(sample.graph, self.rng)
            except BudgetError:
                continue
            return replace(sample, graph=repaired)
        raise BudgetError(f"reinforce: {MAX_REDRAWS} samples in a row could not be repaired")

    def _update(self) -> None:
        """One Adam step on ``-mean((utility - baseline) * log p)`` over the evaluated samples."""
        assert self.graph is not None
        batch, self._batch, self._asked = self._batch, [], 0
        self.iteration += 1
        if not batch:
            return
        utilities = [u for _, u in batch]
        base = 0.0
        if self.use_baseline:
            if self.moving_baseline is None:
                self.moving_baseline = sum(utilities) / len(utilities)
            base = self.moving_baseline
        grad: LogitGrad | None = None
        for sample, utility in batch:
            term = self.graph.log_prob_grad(sample) * (-(utility - base) / len(batch))
            grad = term if grad is None else grad + term
        assert grad is not None
        self.graph = self.optimizer.step(self.graph, grad)
        if self.use_baseline and self.moving_baseline is not None:
            mean = sum(utilities) / len(utilities)
            decay = self.baseline_decay
            self.moving_baseline = decay * self.moving_baseline + (1 - decay) * mean


class ReinforceBaseline(Reinforce):
    """REINFORCE with a moving-average baseline (utility minus the average of past ones).

    Example:
        >>> ReinforceBaseline().options["baseline"]
        True
    """

    name = "reinforce-baseline"
    description = "REINFORCE with a moving-average baseline (GPTSwarm's variance reduction)"
    version = "1"

    def __init__(self, baseline: bool = True, **options: Any) -> None:
        super().__init__(baseline=baseline, **options)
