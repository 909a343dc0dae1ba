"""Running a sweep: skip what is finished, run the rest on local processes or Ray."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, UserError
from harness.paths import atomic_write_text
from harness.sweep._bundles import _report_json, _write_bundles
from harness.sweep._config import EXECUTORS, RAY_MISSING, SweepConfig, _one_line
from harness.sweep._plan import (
    StudySpec,
    _backend_identity,
    _check_same_study,
    plan,
    study_finished,
)

# ----- running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyOutcome:
    """What became of one study in this run: ``done`` or ``failed`` (with a one-line error)."""

    spec: StudySpec
    status: str
    error: str | None = None
    heldout_accuracy: float | None = None
    wall_s: float = 0.0


@dataclass(frozen=True)
class SweepProgress:
    """A snapshot for a progress display: counts out of ``total``; ``last`` just finished."""

    total: int
    done: int
    skipped: int
    running: int
    failed: int
    last: StudyOutcome | None = None


@dataclass
class SweepReport:
    """What a :func:`run_sweep` call did.

    Attributes:
        done: studies run to their end in this call.
        skipped: studies already finished before it.
        failed: studies that raised (the error in one line).
        bundles: bundle folders written.
        notes: bundles not written, and why (one line each).
    """

    name: str
    out: Path
    total: int
    done: list[StudyOutcome] = field(default_factory=list)
    skipped: list[StudySpec] = field(default_factory=list)
    failed: list[StudyOutcome] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bundle_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every study finished and every bundle that could be written was."""
        return not self.failed and not self.bundle_errors


class _Benches:
    """One :class:`Bench` per (task, backend, pool, protocol, data, cache), built on first use.

    A worker process keeps one of these for its whole life: building a bench loads the task's
    data and binds the backend, which costs far more than a small study.
    """

    def __init__(self) -> None:
        self._benches: dict[tuple[Any, ...], Any] = {}

    def get(self, spec: StudySpec, data_dir: Path | None, cache: Path | None) -> Any:
        from harness.study import Bench

        key = (spec.task, spec.backend, spec.pool, spec.protocol, data_dir, cache)
        if key not in self._benches:
            self._benches[key] = Bench(
                spec.task, spec.protocol, spec.backend, data_dir, spec.pool, cache
            )
        return self._benches[key]

    def close(self) -> None:
        for bench in self._benches.values():
            bench.backend.close()
        self._benches.clear()


_WORKER_BENCHES = _Benches()
"""This worker process's benches (process pool and Ray workers; never the parent's)."""


def _run_study(
    spec: StudySpec, benches: _Benches, data_dir: Path | None, cache: Path | None
) -> StudyOutcome:
    """Run one study into its ``.partial`` folder, then rename it; never raises."""
    from harness.agents import load_agent

    started = time.perf_counter()
    try:
        if spec.partial.exists():
            shutil.rmtree(spec.partial)
        bench = benches.get(spec, data_dir, cache)
        agent = load_agent(spec.agent) if spec.agent is not None else None
        result = bench.run(
            spec.method, dict(spec.options), seed=spec.seed, out_dir=spec.partial, agent=agent
        )
        if spec.folder.exists():  # an unfinished folder a person left there: ours replaces it
            shutil.rmtree(spec.folder)
        os.rename(spec.partial, spec.folder)
    except Exception as exc:
        return StudyOutcome(spec, "failed", _one_line(exc), None, time.perf_counter() - started)
    accuracy = float(result.heldout_accuracy)
    return StudyOutcome(spec, "done", None, accuracy, time.perf_counter() - started)


def _pool_worker_init() -> None:
    # Like Ray's workers: one thread per worker for numpy/torch, so workers do not fight over
    # the cores (and every executor computes the same way).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _pool_study(spec: StudySpec, data_dir: Path | None, cache: Path | None) -> StudyOutcome:
    return _run_study(spec, _WORKER_BENCHES, data_dir, cache)


def _ray_study(spec: StudySpec, data_dir: Path | None, cache: Path | None) -> StudyOutcome:
    return _run_study(spec, _WORKER_BENCHES, data_dir, cache)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``OUT/.sweep.lock`` so that two sweeps never write the same folder at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (out / ".sweep.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"{out}: another sweep is running into this folder") from None
        yield


def sweep_status(
    config: SweepConfig, out: Path, cache: Path | None = None
) -> tuple[list[StudySpec], list[StudySpec]]:
    """The sweep's studies split into (finished, still to run); checks finished ones match.

    A finished study must have been run with the config's method, options, protocol, pool and
    agent, and on the same backend as the one here (a recalibrated simulator, other live
    routes): one sweep never mixes the two in a bundle.

    Raises:
        UserError: a finished study folder that was run with another configuration.
    """
    from harness.backends import get_backend
    from harness.pool import load_pool
    from harness.tasks import load_task

    entries = {entry.label: entry for entry in config.methods}
    here: dict[tuple[str, str], dict[str, Any]] = {}
    finished, todo = [], []
    for spec in plan(config, out):
        if not study_finished(spec.folder):
            todo.append(spec)
            continue
        manifest = _check_same_study(spec, entries[spec.label], config)
        key = (spec.task, spec.backend)
        if key not in here:
            backend = get_backend(spec.backend, cache)
            try:
                backend.bind(load_task(spec.task), load_pool(spec.pool))
                here[key] = _backend_identity(json.loads(json.dumps(backend.describe())))
            finally:
                backend.close()
        if _backend_identity(manifest.get("backend") or {}) != here[key]:
            raise UserError(
                f"{spec.folder}: finished on another {spec.backend} backend than this one (its "
                "parameters differ: recalibrated, or other routes); use another --out"
            )
        finished.append(spec)
    return finished, todo


def run_sweep(
    config: SweepConfig,
    out: Path,
    executor: str = "process",
    workers: int | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    *,
    data_dir: Path | None = None,
    cache: Path | None = None,
) -> SweepReport:
    """Run every study of the sweep that is not finished in ``out``, then write the bundles.

    Args:
        config: the sweep (:func:`load_sweep`).
        out: the output folder (created; a sweep's earlier output is resumed).
        executor: ``process`` (a local process pool) or ``ray``.
        workers: processes (default: the CPU count); 1 runs the studies in this process. With
            ``ray``: the CPUs of a local Ray instance (ignored with ``ray_address``).
        ray_address: a Ray cluster to join (default: start a local one).
        on_progress: called with a :class:`SweepProgress` at the start and after each study.
        data_dir: a local data folder (default ``$HARNESS_DATA_DIR``, the Hub, the mirror).
        cache: the call cache of ``live`` and ``replay``.

    Raises:
        UserError: an unknown executor, a bad worker count, ray missing, another sweep running
            into ``out``, or a finished folder run with another configuration.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r} (expected one of {', '.join(EXECUTORS)})")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"workers must be a positive number, got {workers!r}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(RAY_MISSING) from None
    started = time.perf_counter()
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir.absolute() if data_dir is not None else None
    cache = cache.absolute() if cache is not None else None
    with _locked(out):
        finished, todo = sweep_status(config, out, cache)
        report = SweepReport(config.name, out, len(finished) + len(todo), skipped=finished)
        tally = _Tally(report, on_progress)
        tally.show(running=0)
        if todo:
            _preflight(todo, data_dir, cache)
            count = min(workers or os.cpu_count() or 1, len(todo))
            if executor == "ray":
                _run_ray(todo, count if workers else None, ray_address, data_dir, cache, tally)
            elif count == 1:
                _run_here(todo, data_dir, cache, tally)
            else:
                _run_pool(todo, count, data_dir, cache, tally)
        try:
            _write_bundles(config, out, report)
        finally:
            report.wall_s = time.perf_counter() - started
            text = json.dumps(_report_json(config, report), indent=2) + "\n"
            atomic_write_text(out / "sweep.json", text)
    return report


class _Tally:
    """Counts outcomes into the report and tells the progress callback."""

    def __init__(self, report: SweepReport, on_progress: Callable[[SweepProgress], None] | None):
        self.report = report
        self.on_progress = on_progress

    def show(self, running: int, last: StudyOutcome | None = None) -> None:
        if self.on_progress is None:
            return
        r = self.report
        done = len(r.done) + len(r.skipped)
        self.on_progress(SweepProgress(r.total, done, len(r.skipped), running, len(r.failed), last))

    def add(self, outcome: StudyOutcome, running: int) -> None:
        (self.report.done if outcome.status == "done" else self.report.failed).append(outcome)
        self.show(running, outcome)


def _preflight(todo: list[StudySpec], data_dir: Path | None, cache: Path | None) -> None:
    """Check what every worker will need, once, before any worker starts.

    Loads each task's data (warming the item cache, so that workers never race to write it)
    and binds every non-sim backend (a missing key or route fails here, once, and the call
    cache's database is created by one process).
    """
    from harness.backends import get_backend
    from harness.pool import load_pool
    from harness.tasks import load_task

    seen: set[tuple[str, str, str]] = set()
    for spec in todo:
        if (spec.task, spec.backend, spec.pool) in seen:
            continue
        seen.add((spec.task, spec.backend, spec.pool))
        task = load_task(spec.task)
        task.load(data_dir=data_dir)
        if spec.backend != "sim":
            backend = get_backend(spec.backend, cache)
            try:
                backend.bind(task, load_pool(spec.pool))
            finally:
                backend.close()


def _run_here(
    todo: list[StudySpec], data_dir: Path | None, cache: Path | None, tally: _Tally
) -> None:
    benches = _Benches()
    try:
        for spec in todo:
            tally.show(running=1)
            tally.add(_run_study(spec, benches, data_dir, cache), running=0)
    finally:
        benches.close()


def _run_pool(
    todo: list[StudySpec], workers: int, data_dir: Path | None, cache: Path | None, tally: _Tally
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    # spawn: a fresh interpreter per worker, never a fork of a parent that holds threads,
    # sockets or database handles (the call cache, a live backend's event loop).
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_worker_init)
    try:
        pending: dict[Future[StudyOutcome], StudySpec] = {
            pool.submit(_pool_study, spec, data_dir, cache): spec for spec in todo
        }
        tally.show(running=min(workers, len(pending)))
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                spec = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    outcome = StudyOutcome(spec, "failed", _one_line(exc))
                tally.add(outcome, running=min(workers, len(pending)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(
    todo: list[StudySpec],
    workers: int | None,
    address: str | None,
    data_dir: Path | None,
    cache: Path | None,
    tally: _Tally,
) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                logging_level=logging.WARNING, log_to_driver=False,
            )  # fmt: skip
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        remote = ray.remote(num_cpus=1)(_ray_study)
        pending = {remote.remote(spec, data_dir, cache): spec for spec in todo}
        tally.show(running=min(cpus, len(pending)))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # the task's worker died past its retries
                outcome = StudyOutcome(spec, "failed", _one_line(exc))
            tally.add(outcome, running=min(cpus, len(pending)))
    finally:
        if started_here:
            ray.shutdown()
