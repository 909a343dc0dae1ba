"""Bayesian optimisation with Optuna: TPE and GP samplers over the flat parametrisation.

Source: the official code's Bayesian-optimisation baseline (PAPER.md section 8: Optuna TPE over
binary edge and role variables with a fixed random model combination, returning the best
trial), generalised to Optuna's GP sampler and to the whole flat space of
:meth:`harness.space.Space.params` (slot models, including ``off``, roles, forward edges, edges
to the output node and the output model).

- ``optuna-tpe``: ``optuna.samplers.TPESampler``; ``optuna-gp``: ``optuna.samplers.GPSampler``,
  which needs PyTorch (without it the method refuses to start with a one-line ConfigError).
- Optuna's ask-and-tell interface drives an in-memory study whose sampler is seeded from the
  method's generator (so from the study seed). The objective is the batch accuracy (maximised).
- ``fixed_combo: true`` is the paper's variant: one seeded random budget-filling combination,
  its models on slots in a seeded random order, and only the role and edge variables searched;
  every slot without successors feeds the output node, so the model counts never change.

Settings: ``n_startup_trials`` (Optuna's default, 10: at the paper protocol's 14 evaluations
only the last 4 are model-guided, as the official code's default sampler would do),
``fixed_combo`` (False), ``questions`` per evaluation (the protocol's batch), ``max_retries``.

Infeasible points: models that cannot appear in any graph within the cap (a 70B output node
at level 12 on MATH) are left out of the choices. A point is then
mapped to the nearest valid graph by a fixed rule (:func:`baselines._flat.decode_legal`:
broken fuser roles become assistants, an output node without inputs gets one, the paper's
repair with ties by id), so the objective is a deterministic function of the point. A point
with no valid graph even so (every slot off, or a repair that deletes the output node's last
input) is told to Optuna as a FAIL and another is asked, at most ``max_retries`` times, then a
random graph is proposed (not told to Optuna). Failed or refused evaluations are told as FAIL;
the recommendation is the best complete trial's graph.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from baselines._flat import decode_legal, feasible_models
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import Graph
from harness.methods import Method, Outcome, SearchEnv, Trial
from harness.space import OFF


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's per-trial INFO lines (the trace records what matters), then restore."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def has_torch() -> bool:
    """Whether PyTorch can be imported (Optuna's GPSampler needs it)."""
    return importlib.util.find_spec("torch") is not None


class _OptunaSearch(Method):
    """An Optuna sampler over the flat parametrisation (subclasses choose the sampler)."""

    sampler_label: ClassVar[str] = ""

    def __init__(
        self,
        n_startup_trials: int = 10,
        fixed_combo: bool = False,
        questions: int | None = None,
        max_retries: int = 20,
    ) -> None:
        super().__init__(
            n_startup_trials=n_startup_trials, fixed_combo=fixed_combo, questions=questions,
            max_retries=max_retries,
        )  # fmt: skip
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int):
            raise ConfigError(f"{self.name}: n_startup_trials must be an integer")
        self.n_startup_trials = n_startup_trials
        self.fixed_combo = bool(fixed_combo)
        self.questions = questions
        self.max_retries = max(1, int(max_retries))
        self.study: optuna.Study | None = None
        self.distributions: dict[str, BaseDistribution] = {}
        self.fixed: dict[str, str | int] = {}
        self.graphs: dict[int, Graph] = {}  # Optuna trial number -> graph as evaluated
        self._pending: tuple[Trial, optuna.Trial] | None = None

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler, seeded."""
        raise NotImplementedError

    def setup(self, env: SearchEnv) -> None:
        """Create the seeded in-memory Optuna study and the searched distributions."""
        super().setup(env)
        space = env.space
        with _quiet():
            self.study = optuna.create_study(
                direction="maximize", sampler=self.make_sampler(self.rng.randrange(2**31))
            )
        params = space.params()
        if not self.fixed_combo:
            agents, outputs = feasible_models(space)
            narrowed: dict[str, tuple[str | int, ...]] = {"output.model": outputs}
            narrowed.update({f"slot{i}.model": (OFF, *agents) for i in range(space.max_nodes)})
            self.distributions = {
                p.name: CategoricalDistribution(narrowed.get(p.name, p.choices)) for p in params
            }
            return
        combos = space.combos()
        if not combos:
            raise BudgetError(f"{self.name}: no model combination fits level {space.level}")
        models = list(self.rng.choice(combos).models)
        self.rng.shuffle(models)
        n = len(models)
        self.fixed = {f"slot{i}.model": models[i] if i < n else OFF for i in range(space.max_nodes)}
        self.fixed["output.model"] = space.pool.model(space.pool.output_model).name
        searched = [f"slot{i}.role" for i in range(n)]
        searched += [f"edge{i}-{j}" for i in range(n) for j in range(i + 1, n)]
        searched += [f"edge{i}-output" for i in range(n)]
        choices = {p.name: p.choices for p in params}
        self.distributions = {name: CategoricalDistribution(choices[name]) for name in searched}

    def ask(self) -> Trial:
        """Ask Optuna for a point and propose its valid graph (see the module docstring)."""
        assert self.study is not None, "setup() comes first"
        self._close_pending()
        for _ in range(self.max_retries):
            with _quiet():
                point = self.study.ask(self.distributions)
            try:
                graph = decode_legal(self.space, {**self.fixed, **point.params}, self.fixed_combo)
            except (GraphError, BudgetError):
                with _quiet():
                    self.study.tell(point, state=TrialState.FAIL)
                continue
            trial = Trial(graph, self.questions)
            self._pending = (trial, point)
            return trial
        return Trial(self.space.sample(self.rng), self.questions)

    def tell(self, outcome: Outcome) -> None:
        """Tell Optuna the batch accuracy, or FAIL for a refused or failed evaluation."""
        if self._pending is None or outcome.trial is not self._pending[0]:
            return  # a harness fallback: no Optuna point behind it
        point = self._pending[1]
        self._pending = None
        assert self.study is not None
        with _quiet():
            if outcome.evaluated and outcome.accuracy is not None:
                self.study.tell(point, float(outcome.accuracy))
                self.graphs[point.number] = outcome.graph
            else:
                self.study.tell(point, state=TrialState.FAIL)

    def recommend(self) -> Graph:
        """The best complete trial's graph (the earliest among equals)."""
        if self.study is not None and self.graphs:
            return self.graphs[self.study.best_trial.number]
        return super().recommend()

    def _close_pending(self) -> None:
        """A point whose trial was never answered (the harness replaced it) is told FAIL."""
        if self._pending is not None and self.study is not None:
            with _quiet():
                self.study.tell(self._pending[1], state=TrialState.FAIL)
        self._pending = None


class OptunaTPE(_OptunaSearch):
    """Optuna's TPE sampler; ``fixed_combo=True`` is the paper's BO baseline.

    Example:
        >>> import random
        >>> from harness.methods import SearchEnv
        >>> from harness.pool import load_pool
        >>> from harness.space import Space
        >>> space = Space(load_pool("llama3"), (202, 275), level=12)
        >>> method = OptunaTPE(fixed_combo=True)
        >>> method.setup(SearchEnv(space, "math", 0, random.Random(0), 3, lambda: 40))
        >>> type(method.study.sampler).__name__, space.fits(method.ask().graph)
        ('TPESampler', True)
    """

    name = "optuna-tpe"
    description = "Optuna TPE over the flat parametrisation; best trial (paper: fixed_combo)"
    version = "1"

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """``TPESampler`` with Optuna's defaults, seeded."""
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)


class OptunaGP(_OptunaSearch):
    """Optuna's Gaussian-process sampler (needs PyTorch).

    Example:
        >>> OptunaGP().make_sampler(0).__class__.__name__
        'GPSampler'
    """

    name = "optuna-gp"
    description = "Optuna GP sampler over the flat parametrisation; best trial (needs torch)"
    version = "1"

    def __init__(self, **options: Any) -> None:
        if not has_torch():
            raise ConfigError(
                "optuna-gp needs PyTorch for Optuna's GPSampler: pip install torch "
                "(or use optuna-tpe)"
            )
        super().__init__(**options)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """``GPSampler`` with Optuna's defaults, seeded."""
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials)
