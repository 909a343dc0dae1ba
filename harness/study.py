"""Studies: one method x one task x one seed under one protocol (DESIGN.md section 5).

A :class:`Bench` holds what every study of a task shares (the loaded items, the bound backend,
the search space, the held-out batch); :meth:`Bench.run` runs one study. The study loop owns the
budget, the seeded stream of search questions, refusals, checkpoints, events and the trace:

1. ``ask`` the method for a trial; if it raises, record an ``event`` and evaluate a random
   feasible graph instead (Bayesmark's rule: a study never dies of a bad method);
2. validate the graph against the space: an invalid or over-cap graph is **refused** and not
   charged; the method is told;
3. take the next questions of the stream (identical for every method at a seed), run the graph,
   charge the ledger, write an ``evaluation`` record, ``tell`` the method;
4. at every checkpoint, score the method's current recommendation on the held-out split (not
   charged); at the end, the final recommendation.

The same study run twice writes the same trace, clock fields aside.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.agents import DEFAULT_AGENT, Agent, AgentLedger, LedgeredAgent, load_agent
from harness.backends import Backend, Batch, EvalContext, get_backend
from harness.errors import BudgetError, ConfigError, GraphError, UserError
from harness.executor import GraphRun, run_graph
from harness.graph import Graph
from harness.manifest import study_manifest
from harness.methods import Method, Outcome, SearchEnv, Trial, load_method
from harness.paths import atomic_write_text
from harness.pool import Pool, load_pool
from harness.protocol import Ledger, Protocol
from harness.space import Space
from harness.tasks import Item, Task, TaskData, load_task
from harness.trace import TraceWriter

__all__ = ["Bench", "QuestionStream", "StudyResult", "heldout_subset"]

MAX_CONSECUTIVE_REFUSALS = 25
"""After this many refusals in a row the harness evaluates a random graph instead."""
MAX_CONSECUTIVE_FAILURES = 10
"""After this many failed evaluations in a row (the backend raised) the search stops early."""
HELDOUT_SUBSET_SEED = 20251101
"""Seed of the fixed held-out subset when a protocol scores fewer than all held-out items."""


class QuestionStream:
    """The seeded stream of search questions: the same for every method at a seed.

    Each pass over the search split is a fresh seeded permutation; the pass number is the
    evaluation's epoch, so a question met again on a later pass gets fresh answers.

    Example:
        >>> from harness.tasks import Item
        >>> items = tuple(Item(str(i), f"q{i}", "a") for i in range(5))
        >>> stream = QuestionStream(items, seed=3)
        >>> [q.id for q in stream.take(3)[0]] == [q.id for q in QuestionStream(items, 3).take(3)[0]]
        True
    """

    def __init__(self, items: tuple[Item, ...], seed: int) -> None:
        if not items:
            raise ConfigError("the search split is empty")
        self.items = items
        self.seed = seed
        self.epoch = 0
        self._order = self._permutation(0)
        self._pos = 0

    def _permutation(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch, 0x5EA2C4])
        return [int(i) for i in rng.permutation(len(self.items))]

    def take(self, n: int) -> tuple[tuple[Item, ...], int]:
        """The next ``n`` questions and the epoch they belong to (the epoch of the first)."""
        out: list[Item] = []
        epoch: int | None = None
        while len(out) < n:
            if self._pos == len(self._order):
                self.epoch += 1
                self._order, self._pos = self._permutation(self.epoch), 0
            if epoch is None:
                epoch = self.epoch
            out.append(self.items[self._order[self._pos]])
            self._pos += 1
        return tuple(out), self.epoch if epoch is None else epoch


@dataclass
class StudyResult:
    """What one study found.

    Attributes:
        method: the method's name.
        seed: the study's seed.
        graph: the final recommendation.
        heldout_accuracy: its accuracy on the held-out questions.
        heldout_n: how many held-out questions were scored.
        flops_units: its FLOPs per question.
        latency_s: its latency per question.
        evals_used: question evaluations charged.
        checkpoints: ``(evals_used, held-out accuracy)`` along the search.
        refusals: trials refused (invalid or over the cap).
        events: method failures and fallbacks, as recorded.
        wall_s: the study's wall time.
        trace: the trace file (None when the study ran without an output folder).
        calls: the search's LLM calls on backends with a call cache (``search_calls``,
            ``search_cache_hits``, ``search_dollars``), else None.
    """

    method: str
    seed: int
    graph: Graph
    heldout_accuracy: float
    heldout_n: int
    flops_units: float
    latency_s: float
    evals_used: int
    checkpoints: list[tuple[int, float]]
    refusals: int
    events: list[dict[str, Any]]
    wall_s: float
    trace: Path | None = None
    evaluations: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] | None = None
    calls: dict[str, Any] | None = None


class _NullTrace:
    def append(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def heldout_subset(items: tuple[Item, ...], size: int | None) -> tuple[Item, ...]:
    """The held-out questions a protocol with ``heldout_size=size`` scores (None: all of them).

    The subset is fixed (seeded by :data:`HELDOUT_SUBSET_SEED`, in split order), so every study,
    method and ``harness graph eval`` of one size scores the same questions.

    Example:
        >>> items = tuple(Item(str(i), "q", "a") for i in range(10))
        >>> [item.id for item in heldout_subset(items, 3)] == [
        ...     item.id for item in heldout_subset(items, 3)]
        True
        >>> len(heldout_subset(items, None)), len(heldout_subset(items, 30))
        (10, 10)
    """
    if size is None or size >= len(items):
        return items
    rng = np.random.default_rng(HELDOUT_SUBSET_SEED)
    keep = sorted(int(i) for i in rng.choice(len(items), size, False))
    return tuple(items[i] for i in keep)


class Bench:
    """A task, its data, a pool, a bound backend and a protocol: what studies share.

    Args:
        task: task name.
        protocol: the protocol (budget, checkpoints, held-out size).
        backend: backend name.
        data_dir: a local data folder (else ``$HARNESS_DATA_DIR``, the Hub, the mirror).
        pool: pool name or file (default: the protocol's).
        cache: the call cache of ``live`` and ``replay`` (default: see :mod:`harness.cache`).

    Raises:
        UserError: unknown task, backend or pool, or data that cannot be loaded.
    """

    def __init__(
        self,
        task: str,
        protocol: Protocol,
        backend: str = "sim",
        data_dir: Path | None = None,
        pool: str | None = None,
        cache: Path | None = None,
    ) -> None:
        self.protocol = protocol
        self.task: Task = load_task(task)
        self.pool: Pool = load_pool(pool or protocol.pool)
        self.backend: Backend = get_backend(backend, cache)
        self.backend.bind(self.task, self.pool)
        self.data: TaskData = self.task.load(data_dir=data_dir)
        budget = protocol.budget
        self.space = Space(
            self.pool, self.task.lengths, budget.level, budget.max_nodes, self.task.name
        )
        self.heldout = Batch(heldout_subset(self.data.heldout, protocol.heldout_size), "heldout")
        self._heldout_scores: dict[tuple[str, int], GraphRun] = {}
        self._pilot: dict[str, Any] | None = None

    def score_heldout(self, graph: Graph, seed: int) -> GraphRun:
        """Run ``graph`` on the held-out questions (memoised per graph and seed)."""
        key = (graph.id, seed)
        if key not in self._heldout_scores:
            self._heldout_scores[key] = run_graph(
                graph, self.heldout, self.backend, self.task, self.pool, EvalContext(seed)
            )
        return self._heldout_scores[key]

    def pilot_tables(self) -> dict[str, Any]:
        """The backend's own pilot tables for this task (computed once per bench)."""
        if self._pilot is None:
            from harness.pilot import study_pilot

            self._pilot = study_pilot(self)
        return self._pilot

    def run(
        self,
        method: str,
        options: dict[str, Any] | None = None,
        seed: int = 0,
        out_dir: Path | None = None,
        agent: Agent | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> StudyResult:
        """Run one study; write ``manifest.json`` and ``trace.jsonl`` into ``out_dir`` if given.

        Args:
            method: a registered method name.
            options: its options.
            seed: the study's seed.
            out_dir: where to write the manifest and trace (None: write nothing).
            agent: the agent an LLM-based method consults (default: ``rules``); ignored by
                methods that use none.
            on_progress: called with (evals used, budget) after each evaluation.

        Raises:
            ConfigError: an unknown method or options its constructor rejects (before anything
                is written).
        """
        instance = load_method(method, options)
        if instance.uses_agent and agent is None:
            agent = load_agent(DEFAULT_AGENT)
        if not instance.uses_agent:
            agent = None
        manifest = study_manifest(self, instance, seed, agent)
        trace: TraceWriter | _NullTrace = _NullTrace()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / "manifest.json", _dumps(manifest))
            trace = TraceWriter(out_dir / "trace.jsonl")
        try:
            study = _Study(self, instance, seed, trace, on_progress)
            extras: dict[str, Any] = {}
            if agent is not None:
                extras["agent"] = LedgeredAgent(agent, study.agent_ledger, trace.append)
            if instance.uses_pilot:
                extras["pilot"] = self.pilot_tables()
            study.env.extras = extras
            study.agent = agent
            return study.run(manifest, out_dir)
        finally:
            trace.close()


class _Study:
    """One study's loop (see the module docstring)."""

    def __init__(
        self,
        bench: Bench,
        method: Method,
        seed: int,
        trace: TraceWriter | _NullTrace,
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        self.bench = bench
        self.method = method
        self.seed = seed
        self.trace = trace
        self.ledger = Ledger(bench.protocol.budget)
        self.stream = QuestionStream(bench.data.search, seed)
        self.fallback_rng = random.Random(f"fallback:{seed}")
        self.events: list[dict[str, Any]] = []
        self.checkpoints: list[tuple[int, float]] = []
        self.evaluated: list[Outcome] = []
        self.refusals = 0
        self.broken = False
        self.on_progress = on_progress
        self.agent: Agent | None = None
        self.agent_ledger = AgentLedger()
        self.calls = CallLedger()
        self.env = SearchEnv(
            space=bench.space,
            task=bench.task.name,
            seed=seed,
            rng=random.Random(seed),
            batch_size=bench.protocol.budget.batch_size,
            question_evals_left=lambda: self.ledger.question_evals_left,
        )

    # ----- records ---------------------------------------------------------------------------

    def event(self, kind: str, where: str, error: BaseException | str) -> None:
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
            frames = traceback.extract_tb(error.__traceback__)
            origin = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else None
        else:
            message, origin = error, None
        record: dict[str, Any] = {"type": "event", "kind": kind, "where": where, "error": message}
        if origin:
            record["origin"] = origin
        record["evals_used"] = self.ledger.used
        self.events.append(record)
        self.trace.append(record)

    def backend_events(self) -> None:
        """Write the backend's events (failed call attempts, corrupt cache rows) to the trace."""
        for event in self.bench.backend.drain_events():
            record = {"type": "event", **event, "evals_used": self.ledger.used}
            self.events.append(record)
            self.trace.append(record)

    def tell(self, outcome: Outcome) -> None:
        try:
            self.method.observe(outcome)
        except Exception as exc:
            self.event("method_error", "tell", exc)

    # ----- the loop --------------------------------------------------------------------------

    def run(self, manifest: dict[str, Any], out_dir: Path | None) -> StudyResult:
        started = time.perf_counter()
        self.trace.append(
            {
                "type": "start",
                "method": self.method.describe(),
                "task": self.bench.task.name,
                "backend": self.bench.backend.name,
                "agent": self.agent_label(),
                "seed": self.seed,
                "protocol": self.bench.protocol.to_json(),
            }
        )
        try:
            self.method.setup(self.env)
        except Exception as exc:
            self.event("method_error", "setup", exc)
            self.broken = True
        marks = iter(self.bench.protocol.checkpoints())
        next_mark = next(marks, None)
        consecutive_refusals = consecutive_failures = 0
        while self.ledger.question_evals_left > 0:
            trial = self.ask(force_random=consecutive_refusals >= MAX_CONSECUTIVE_REFUSALS)
            if consecutive_refusals >= MAX_CONSECUTIVE_REFUSALS:
                consecutive_refusals = 0
            outcome = self.evaluate(trial)
            self.tell(outcome)
            if outcome.status == "refused":
                consecutive_refusals += 1
                continue
            if outcome.status == "failed":
                consecutive_failures += 1
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    self.event(
                        "aborted",
                        "evaluate",
                        f"{MAX_CONSECUTIVE_FAILURES} failed evaluations in a row: search stopped "
                        f"with {self.ledger.question_evals_left} question evaluations left",
                    )
                    break
                continue
            consecutive_refusals = consecutive_failures = 0
            if self.on_progress is not None:
                self.on_progress(self.ledger.used, self.ledger.budget.question_evals)
            while next_mark is not None and self.ledger.used >= next_mark:
                self.checkpoint(next_mark)
                next_mark = next(marks, None)
        graph, run = self.recommendation()
        wall = time.perf_counter() - started
        self.trace.append(
            {
                "type": "final",
                "graph_id": graph.id,
                "graph": graph.to_json(),
                "heldout_accuracy": run.accuracy,
                "heldout_n": len(run.correct),
                "flops_units": run.flops_units,
                "latency_s": run.latency_s,
                "evals_used": self.ledger.used,
                "evaluations": len(self.evaluated),
                "refusals": self.refusals,
                "events": len(self.events),
                "agent": self.agent_summary(),
                **self.calls.totals(),
                "wall_s": round(wall, 4),
            }
        )
        return StudyResult(
            method=self.method.name,
            seed=self.seed,
            graph=graph,
            heldout_accuracy=run.accuracy,
            heldout_n=len(run.correct),
            flops_units=run.flops_units,
            latency_s=run.latency_s,
            evals_used=self.ledger.used,
            checkpoints=self.checkpoints,
            refusals=self.refusals,
            events=self.events,
            wall_s=wall,
            trace=out_dir / "trace.jsonl" if out_dir is not None else None,
            evaluations=len(self.evaluated),
            manifest=manifest,
            agent=self.agent_summary(),
            calls=self.calls.totals() or None,
        )

    def agent_label(self) -> dict[str, Any] | None:
        if self.agent is None:
            return None
        return {"spec": self.agent.spec, "is_llm": self.agent.is_llm}

    def agent_summary(self) -> dict[str, Any] | None:
        label = self.agent_label()
        return None if label is None else {**label, **self.agent_ledger.totals()}

    def ask(self, force_random: bool) -> Trial:
        if force_random:
            self.event(
                "fallback", "ask", f"{MAX_CONSECUTIVE_REFUSALS} refusals in a row: a random graph"
            )
        elif not self.broken:
            try:
                trial = self.method.ask()
                if isinstance(trial, Graph):  # a bare graph is accepted as a default trial
                    trial = Trial(trial)
                if isinstance(trial, Trial) and isinstance(trial.graph, Graph):
                    return trial
                self.event("method_error", "ask", f"ask() returned {type(trial).__name__}")
            except Exception as exc:
                self.event("method_error", "ask", exc)
        return Trial(self.bench.space.sample(self.fallback_rng))

    def evaluate(self, trial: Trial) -> Outcome:
        space = self.bench.space
        try:
            graph = space.validate(trial.graph)
            wanted = trial.questions
            if wanted is not None and (
                isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1
            ):
                raise GraphError(f"questions must be a positive integer, got {wanted!r}")
        except (GraphError, BudgetError, ConfigError) as exc:
            self.refusals += 1
            self.trace.append(
                {
                    "type": "refusal",
                    "graph": trial.graph.to_json(),
                    "reason": str(exc),
                    "evals_used": self.ledger.used,
                }
            )
            return Outcome(
                trial, "refused", trial.graph, reason=str(exc), evals_used=self.ledger.used
            )
        n = self.ledger.grant(trial.questions)
        items, epoch = self.stream.take(n)
        try:
            run = run_graph(
                graph,
                Batch(items, "search"),
                self.bench.backend,
                self.bench.task,
                self.bench.pool,
                EvalContext(self.seed, epoch),
            )
        except UserError:
            # Bad input (a replay missing a recorded call): no retry can fix it; stop the study.
            self.backend_events()
            raise
        except Exception as exc:
            self.backend_events()
            # No answers came back, so nothing is charged; the questions stay used in the stream
            # so that a retry sees new ones (a failure must not buy a second look).
            reason = f"{type(exc).__name__}: {exc}"
            self.trace.append(
                {
                    "type": "failure",
                    "graph_id": graph.id,
                    "graph": graph.to_json(),
                    "questions": [item.id for item in items],
                    "reason": reason,
                    "evals_used": self.ledger.used,
                }
            )
            return Outcome(trial, "failed", graph, reason=reason, evals_used=self.ledger.used)
        self.backend_events()
        self.ledger.charge(n)
        self.calls.add(run)
        correct = tuple(bool(c) for c in run.correct)
        self.trace.append(
            {
                **self.calls.fields(run),
                "type": "evaluation",
                "index": len(self.evaluated),
                "graph_id": graph.id,
                "graph": graph.to_json(),
                "questions": list(run.item_ids),
                "epoch": epoch,
                "correct": list(correct),
                "accuracy": run.accuracy,
                "flops_units": run.flops_units,
                "latency_s": run.latency_s,
                "prompt_tokens": run.prompt_tokens,
                "output_tokens": run.output_tokens,
                "nodes": [record.to_json() for record in run.nodes],
                "evals_used": self.ledger.used,
            }
        )
        outcome = Outcome(
            trial,
            "evaluated",
            graph,
            accuracy=run.accuracy,
            correct=correct,
            flops_units=run.flops_units,
            latency_s=run.latency_s,
            evals_used=self.ledger.used,
        )
        self.evaluated.append(outcome)
        return outcome

    def recommendation(self) -> tuple[Graph, GraphRun]:
        """The method's recommendation, validated; the best evaluated graph if that fails."""
        graph: Graph | None = None
        try:
            proposed = self.method.recommend()
            if not isinstance(proposed, Graph):
                raise TypeError(f"recommend() returned {type(proposed).__name__}")
            graph = self.bench.space.validate(proposed)
        except Exception as exc:
            self.event("method_error", "recommend", exc)
        if graph is None:
            graph = self.best_evaluated()
        run = self.bench.score_heldout(graph, self.seed)
        self.backend_events()
        return graph, run

    def best_evaluated(self) -> Graph:
        if not self.evaluated:
            # Only possible if every trial was refused; a random graph is still a fair answer.
            return self.bench.space.sample(self.fallback_rng)
        best = max(
            enumerate(self.evaluated),
            key=lambda p: (p[1].accuracy or 0.0, -(p[1].flops_units or 0.0), -p[0]),
        )
        return best[1].graph

    def checkpoint(self, mark: int) -> None:
        graph, run = self.recommendation()
        self.checkpoints.append((mark, run.accuracy))
        self.trace.append(
            {
                "type": "checkpoint",
                "evals_used": mark,
                "graph_id": graph.id,
                "graph": graph.to_json(),
                "heldout_accuracy": run.accuracy,
                "flops_units": run.flops_units,
                "latency_s": run.latency_s,
            }
        )


class CallLedger:
    """The search's LLM calls: how many, how many came from the call cache, and their dollars.

    Only backends with a call cache report these (``live``, ``replay``); on ``sim`` the ledger
    stays empty and adds nothing to the trace. Held-out scoring is not part of the search and
    is not counted.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.cache_hits = 0
        self.dollars: float | None = 0.0
        self.reported = False

    def add(self, run: GraphRun) -> None:
        if run.cache_hits is None:
            return
        self.reported = True
        self.calls += run.calls
        self.cache_hits += run.cache_hits
        cost = run.dollars
        self.dollars = None if cost is None or self.dollars is None else self.dollars + cost

    @staticmethod
    def fields(run: GraphRun) -> dict[str, Any]:
        """An evaluation record's call fields (none on backends without a cache)."""
        if run.cache_hits is None:
            return {}
        return {"calls": run.calls, "cache_hits": run.cache_hits, "dollars": run.dollars}

    def totals(self) -> dict[str, Any]:
        """The final record's call fields (none on backends without a cache)."""
        if not self.reported:
            return {}
        return {
            "search_calls": self.calls,
            "search_cache_hits": self.cache_hits,
            "search_dollars": self.dollars,
        }


def _dumps(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True) + "\n"
