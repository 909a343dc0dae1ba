"""A conformance suite for search methods (the pattern of Optuna's ``optuna/testing``).

A method's test file inherits :class:`MethodConformance` and supplies **one** fixture: either
``method_spec``, a registered name and its options, or ``method_factory``, a callable that
returns a fresh :class:`~harness.methods.Method` (for a method that is not registered yet)::

    import pytest
    from harness.testing import MethodConformance

    class TestMyMethod(MethodConformance):
        @pytest.fixture
        def method_spec(self):
            return "my-method", {"edge_prob": 0.3}

    class TestMyUnregisteredMethod(MethodConformance):
        @pytest.fixture
        def method_factory(self):
            return lambda: MyMethod(edge_prob=0.3)

Each check runs real, small studies (task ``math`` on the ``sim`` backend, 15 question
evaluations; override the ``conformance_task`` or ``conformance_protocol`` fixtures to change
them) and reads back their traces: the budget is spent exactly and never exceeded, every
evaluated graph is valid and within the cap, a seed gives the same trace twice, the method keeps
working when its proposals are refused (:class:`RefusalInjectingMethod`) and when evaluations
fail (:class:`FaultInjectingBackend`), with no ``method_error`` or ``fallback`` events, and
its final recommendation is a graph the study evaluated. The task's data must be reachable
(``$HARNESS_DATA_DIR`` or a mirror; see docs/tasks.md), and pytest installed (the ``test``
extra): like ``optuna.testing``, this module is for test suites only.

Example:
    >>> from harness.pool import load_pool
    >>> from harness.space import Space
    >>> space = Space(load_pool("llama3"), (202, 275), level=12)
    >>> space.fits(over_cap_graph(space))
    False
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest

import harness.study
from harness.backends import Answers, Backend, Batch, EvalContext, NodeCall
from harness.graph import OUTPUT, Graph, from_json
from harness.methods import Method, Outcome, SearchEnv, Trial, load_method
from harness.protocol import Protocol, load_protocol
from harness.space import Space
from harness.study import Bench, StudyResult
from harness.trace import read_trace, without_times

__all__ = [
    "FaultInjectingBackend",
    "MethodConformance",
    "RefusalInjectingMethod",
    "installed_backend",
    "over_cap_graph",
    "run_study",
]

MethodFactory = Callable[[], Method]


def over_cap_graph(space: Space) -> Graph:
    """A graph ``space`` refuses.

    Parallel copies of the pool's largest model, just past the FLOPs cap; where even
    ``max_nodes`` of them fit, ``max_nodes + 1`` nodes of the smallest model instead.
    """
    pool = space.pool
    big, small = pool.models[-1].name, pool.models[0].name

    def parallel(model: str, n: int) -> Graph:
        nodes = [(i, model, "assistant") for i in range(n)]
        return Graph.create(nodes, [(i, OUTPUT) for i in range(n)], pool.output_model)

    for n in range(1, space.max_nodes + 1):
        if not space.fits(parallel(big, n)):
            return parallel(big, n)
    return parallel(small, space.max_nodes + 1)


class RefusalInjectingMethod(Method):
    """Wraps a method; every ``every``-th proposal is swapped for a graph the space refuses.

    The harness refuses the swapped graph; the wrapped method is told that *its own* trial
    was refused (status ``refused`` with the harness's reason), as if it had proposed an
    over-cap graph itself.
    """

    name = "refusal-injecting"
    description = "test double: swaps some proposals for over-cap graphs"

    def __init__(self, inner: Method, every: int = 3) -> None:
        super().__init__(inner=inner.describe(), every=every)
        self.inner, self.every = inner, every
        self.asks = self.injected = 0
        self._swap: tuple[Trial, Trial] | None = None  # (sent to the harness, the inner one)

    @property
    def uses_agent(self) -> bool:  # type: ignore[override]
        """Whether the wrapped method consults an agent (it then gets the study's)."""
        return self.inner.uses_agent

    @property
    def uses_pilot(self) -> bool:  # type: ignore[override]
        """Whether the wrapped method reads the pilot tables."""
        return self.inner.uses_pilot

    def setup(self, env: SearchEnv) -> None:
        """Set up the wrapped method too."""
        super().setup(env)
        self.inner.setup(env)

    def ask(self) -> Trial:
        """The wrapped method's trial, or every ``every``-th time an over-cap one."""
        trial = self.inner.ask()
        if isinstance(trial, Graph):  # the harness accepts a bare graph as a default trial
            trial = Trial(trial)
        self.asks += 1
        if self.asks % self.every:
            return trial
        self.injected += 1
        sent = Trial(over_cap_graph(self.space), trial.questions)
        self._swap = (sent, trial)
        return sent

    def tell(self, outcome: Outcome) -> None:
        """Pass the outcome on, translated back to the wrapped method's trial if swapped."""
        if self._swap is not None and outcome.trial is self._swap[0]:
            mine = self._swap[1]
            reason = outcome.reason or "refused"
            outcome = Outcome(
                mine, "refused", mine.graph, reason=reason, evals_used=outcome.evals_used
            )
        self._swap = None
        self.inner.observe(outcome)

    def recommend(self) -> Graph:
        """The wrapped method's recommendation."""
        return self.inner.recommend()


class FaultInjectingBackend(Backend):
    """Wraps a bound backend; every ``fail_every``-th search evaluation raises.

    Counting is per evaluation (at the output node's call), so a study stays deterministic.
    Held-out scoring never fails.

    Example:
        >>> from harness.backends import get_backend
        >>> FaultInjectingBackend(get_backend("sim"), fail_every=2).describe()["fail_every"]
        2
    """

    name = "fault-injecting"

    def __init__(self, inner: Backend, fail_every: int = 3) -> None:
        super().__init__()
        self.inner, self.fail_every = inner, fail_every
        self.task, self.pool = inner.task, inner.pool
        self.evaluations = self.failures = 0

    @property
    def produces(self) -> str:  # type: ignore[override]
        """What the wrapped backend produces."""
        return self.inner.produces

    def bind(self, task: Any, pool: Any) -> None:
        """Bind the wrapped backend."""
        self.inner.bind(task, pool)
        super().bind(task, pool)

    def answer(
        self,
        call: NodeCall,
        batch: Batch,
        inputs: Sequence[Answers],
        context: EvalContext,
        prompts: Callable[[], list[list[dict[str, str]]]],
    ) -> Answers:
        """The wrapped backend's answers, or an injected RuntimeError."""
        if batch.split == "search" and call.node_id == OUTPUT:
            self.evaluations += 1
            if self.evaluations % self.fail_every == 0:
                self.failures += 1
                raise RuntimeError(f"injected backend failure (evaluation {self.evaluations})")
        return self.inner.answer(call, batch, inputs, context, prompts)

    def render(self, symbols: npt.NDArray[np.int32], batch: Batch) -> tuple[str, ...]:
        """The wrapped backend's rendering."""
        return self.inner.render(symbols, batch)

    def describe(self) -> dict[str, Any]:
        """Name, the wrapped backend and the failure rate."""
        return {"name": self.name, "inner": self.inner.describe(), "fail_every": self.fail_every}


@contextmanager
def installed_backend(bench: Bench, backend: Backend) -> Iterator[Backend]:
    """Run studies on ``bench`` with ``backend`` for a while, then restore the original."""
    original = bench.backend
    bench.backend = backend
    try:
        yield backend
    finally:
        bench.backend = original


def run_study(bench: Bench, method: Method, seed: int, out_dir: Path) -> list[dict[str, Any]]:
    """Run one study of a method *instance* and return its trace records.

    ``Bench.run`` builds methods from the registry; the instance is handed in by standing in
    for the registry lookup during this call (so unregistered methods can be checked too).
    """
    with mock.patch.object(harness.study, "load_method", lambda name, options: method):
        result: StudyResult = bench.run(method.name, method.options, seed=seed, out_dir=out_dir)
    assert result.trace is not None
    return read_trace(result.trace)


def _of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind]


class MethodConformance:
    """Checks every search method must pass; inherit it and give one fixture (module doc)."""

    budget: ClassVar[int] = 15

    @pytest.fixture
    def method_spec(self) -> tuple[str, dict[str, Any]]:
        """Override: ``(registered name, options)`` (or override ``method_factory``)."""
        pytest.fail("MethodConformance needs a method_spec or a method_factory fixture")

    @pytest.fixture
    def method_factory(self, method_spec: tuple[str, dict[str, Any]]) -> MethodFactory:
        """A callable giving a fresh method: by default from ``method_spec``."""
        name, options = method_spec
        return lambda: load_method(name, options)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_task(cls) -> str:
        """The task the checks run on."""
        return "math"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_protocol(cls) -> Protocol:
        """The paper protocol, with a small budget and held-out subset so checks stay fast."""
        protocol = load_protocol("paper").with_budget(cls.budget)
        return dataclasses.replace(protocol, heldout_size=50)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_bench(cls, conformance_task: str, conformance_protocol: Protocol) -> Bench:
        """One bench (task data, sim backend, space) shared by the class's checks."""
        return Bench(conformance_task, conformance_protocol, "sim")

    @pytest.fixture(scope="class")
    @classmethod
    def _plain_traces(cls) -> dict[str, list[dict[str, Any]]]:
        return {}

    @pytest.fixture
    def plain_trace(
        self,
        conformance_bench: Bench,
        method_factory: MethodFactory,
        tmp_path_factory: pytest.TempPathFactory,
        _plain_traces: dict[str, list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """The trace of a plain study at seed 0 (no injected faults), run once per method.

        Studies are deterministic, so checks of the same method and options share one run.
        """
        method = method_factory()
        key = json.dumps(method.describe(), sort_keys=True, default=str)
        if key not in _plain_traces:
            out = tmp_path_factory.mktemp("plain")
            _plain_traces[key] = run_study(conformance_bench, method, 0, out)
        return _plain_traces[key]

    # ----- the checks ----------------------------------------------------------------------

    def test_budget_is_spent_exactly(
        self, plain_trace: list[dict[str, Any]], conformance_protocol: Protocol
    ) -> None:
        """The budget is spent exactly, never exceeded, charged per question; no events."""
        budget = conformance_protocol.budget.question_evals
        evaluations = _of(plain_trace, "evaluation")
        used = [r["evals_used"] for r in evaluations]
        assert plain_trace[-1]["type"] == "final" and plain_trace[-1]["evals_used"] == budget
        assert sum(len(r["questions"]) for r in evaluations) == budget
        assert used == list(np.cumsum([len(r["questions"]) for r in evaluations]))
        assert all(r.get("evals_used", 0) <= budget for r in plain_trace)
        assert _of(plain_trace, "event") == []

    def test_every_evaluated_graph_is_valid(
        self, plain_trace: list[dict[str, Any]], conformance_bench: Bench
    ) -> None:
        """Every evaluated or scored graph re-validates from its JSON, within the cap."""
        space = conformance_bench.space
        scored = _of(plain_trace, "evaluation") + _of(plain_trace, "checkpoint")
        for record in [*scored, plain_trace[-1]]:
            graph = space.validate(from_json(record["graph"]))  # raises if invalid or over cap
            assert graph.id == record["graph_id"]

    def test_final_recommendation_was_evaluated(self, plain_trace: list[dict[str, Any]]) -> None:
        """The final recommendation is a graph the study evaluated."""
        evaluated = {r["graph_id"] for r in _of(plain_trace, "evaluation")}
        assert plain_trace[-1]["graph_id"] in evaluated

    def test_same_seed_same_trace(
        self,
        conformance_bench: Bench,
        method_factory: MethodFactory,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        """The same seed gives the same trace, clock fields aside."""
        first = run_study(conformance_bench, method_factory(), 1, tmp_path_factory.mktemp("a"))
        again = run_study(conformance_bench, method_factory(), 1, tmp_path_factory.mktemp("b"))
        assert without_times(first) == without_times(again)

    def test_survives_refusals(
        self,
        conformance_bench: Bench,
        method_factory: MethodFactory,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        """Refused proposals are recorded and the method carries on without errors."""
        method = RefusalInjectingMethod(method_factory(), every=3)
        records = run_study(conformance_bench, method, 0, tmp_path_factory.mktemp("refused"))
        assert method.injected > 0
        assert len(_of(records, "refusal")) >= method.injected
        assert _of(records, "event") == []
        assert records[-1]["evals_used"] == conformance_bench.protocol.budget.question_evals
        evaluated = {r["graph_id"] for r in _of(records, "evaluation")}
        assert records[-1]["graph_id"] in evaluated

    def test_survives_failed_evaluations(
        self,
        conformance_bench: Bench,
        method_factory: MethodFactory,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        """Failed evaluations are recorded and the method carries on without errors."""
        out = tmp_path_factory.mktemp("failed")
        backend = FaultInjectingBackend(conformance_bench.backend, fail_every=3)
        with installed_backend(conformance_bench, backend):
            records = run_study(conformance_bench, method_factory(), 0, out)
        assert backend.failures > 0 and len(_of(records, "failure")) == backend.failures
        assert _of(records, "event") == []
        assert records[-1]["evals_used"] == conformance_bench.protocol.budget.question_evals
        evaluated = {r["graph_id"] for r in _of(records, "evaluation")}
        assert records[-1]["graph_id"] in evaluated

    def test_options_are_recorded(self, plain_trace: list[dict[str, Any]]) -> None:
        """The method's name and JSON-serialisable options open the trace."""
        start = plain_trace[0]
        assert start["type"] == "start" and start["method"]["name"]
        # A trace's options must rebuild the method: they survive a JSON round trip.
        assert json.loads(json.dumps(start["method"]["options"])) == start["method"]["options"]
