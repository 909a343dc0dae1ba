"""Sweeps: a grid of studies from a YAML config, resumable, on local processes or Ray.

A sweep config is data (``leaderboard/sweeps/*.yaml``): methods x tasks x backends x seeds
under one protocol. :func:`load_sweep` validates it, :func:`plan` lays out one folder per
study, :func:`run_sweep` runs what is not finished yet and writes one result bundle per
(label, backend)::

    OUT/studies/<label>/<task>/<backend>/seed-<n>/   manifest.json, trace.jsonl
    OUT/bundles/<label>/              (<label>-<backend> when the sweep has several backends)
    OUT/sweep.json                    what the last run did (done, skipped, failed, bundles)

**Resuming.** A study runs into ``<folder>.partial/`` and is renamed to ``<folder>`` only
when its trace ends with the ``final`` record (one atomic rename), so a killed sweep leaves
finished folders and at most one ``.partial`` folder per worker. A restart skips every
finished study, deletes the ``.partial`` folders and reruns those studies from their start.
Studies are deterministic, so a restarted sweep gives the same traces (clock fields aside) as
an uninterrupted one; on ``live`` an interrupted study's calls come back from the call cache,
so nothing is paid twice. A failed study's ``.partial`` folder stays for inspection until
the next run reruns it. A finished folder that was run with another configuration (method
options, protocol, pool, agent) is refused rather than silently kept: use a new ``--out``.

**Executors.** ``process`` (default): a process pool; each worker keeps one
:class:`~harness.study.Bench` per (task, backend, pool, protocol), since building one loads
the data and binds the backend. ``workers=1`` runs in this process. ``ray``: the same studies
as Ray tasks, locally or on a cluster (whose nodes must share the output folder). A study that
raises is reported as failed and the sweep goes on.

Example:
    >>> import pathlib, tempfile, yaml
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> config = {"name": "demo", "tasks": ["math"], "seeds": 2, "methods": ["random"]}
    >>> _ = (folder / "s.yaml").write_text(yaml.safe_dump(config))
    >>> config = load_sweep(folder / "s.yaml")
    >>> [spec.folder.relative_to(folder).as_posix() for spec in plan(config, folder)]
    ['studies/random/math/sim/seed-0', 'studies/random/math/sim/seed-1']
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import ConfigError, HarnessError, UserError
from harness.paths import atomic_write_text
from harness.protocol import Protocol

__all__ = [
    "EXECUTORS",
    "MethodEntry",
    "StudyOutcome",
    "StudySpec",
    "SweepConfig",
    "SweepProgress",
    "SweepReport",
    "bundle_name",
    "load_sweep",
    "plan",
    "run_sweep",
    "study_finished",
    "sweep_status",
]

EXECUTORS = ("process", "ray")
MAX_SEEDS = 1000
PARTIAL = ".partial"
RAY_MISSING = "the ray executor needs ray: pip install 'harness[ray]'"
_FIELDS = (
    "name", "description", "protocol", "pool", "backends", "tasks", "seeds", "agent", "methods",
)  # fmt: skip
_METHOD_FIELDS = ("name", "label", "options")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ----- the config -------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodEntry:
    """One method of a sweep: its registered name, its folder label and its options."""

    name: str
    label: str
    options: Mapping[str, Any]
    uses_agent: bool = False
    describe: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config (see :func:`load_sweep`).

    Attributes:
        name: the sweep's name (default output folder ``results/sweeps/<name>``).
        protocol: the protocol every study runs under.
        pool: the pool (name, or absolute path of a pool file).
        pool_name: the pool's own name, as manifests record it.
        backends, tasks, seeds: the grid.
        agent: the agent spec of methods that use one.
        methods: the methods, in config order.
        source: the config file.
    """

    name: str
    description: str
    protocol: Protocol
    pool: str
    pool_name: str
    backends: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    agent: str
    methods: tuple[MethodEntry, ...]
    source: Path


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep config.

    Raises:
        ConfigError: one line naming the file and the field: an unknown field, method, task,
            backend, protocol, pool or agent; bad method options; a bad seed range; a duplicate
            label or task.
    """
    from harness.agents import DEFAULT_AGENT, parse_agent_spec
    from harness.backends import BACKENDS
    from harness.methods import load_method, method_class
    from harness.pool import load_pool
    from harness.protocol import load_protocol
    from harness.tasks import load_task

    path = Path(path)
    data = read_yaml(path)

    def fail(where: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {where}: {message}")

    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field (expected one of {', '.join(_FIELDS)})")
    name = data.get("name")
    if not isinstance(name, str) or not _SAFE.fullmatch(name):
        raise fail("name", f"expected a folder-safe name (letters, digits, . _ -), got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "expected a string")

    ref = data.get("protocol", "paper")
    if not isinstance(ref, str) or not ref:
        raise fail("protocol", f"expected a protocol name or a path, got {ref!r}")
    try:
        protocol = load_protocol(_relative(path, ref) if _is_path(ref) else ref)
    except ConfigError as exc:
        raise fail("protocol", str(exc)) from None

    pool = data.get("pool", protocol.pool)
    if not isinstance(pool, str) or not pool:
        raise fail("pool", f"expected a pool name or a path, got {pool!r}")
    if _is_path(pool):
        pool = str(_relative(path, pool).resolve())
    try:
        pool_name = load_pool(pool).name
    except ConfigError as exc:
        raise fail("pool", str(exc)) from None

    # Tasks and backend default to what the protocol names for a submission, if it does.
    default_backend = getattr(protocol, "backend", None) or "sim"
    backends = _names(data.get("backends", [default_backend]), "backends", fail)
    for index, backend in enumerate(backends):
        if backend not in BACKENDS:
            expected = ", ".join(BACKENDS)
            raise fail(f"backends[{index}]", f"unknown backend {backend!r} (expected {expected})")
    tasks = _names(data.get("tasks", list(getattr(protocol, "tasks", ()))), "tasks", fail)
    for index, task in enumerate(tasks):
        try:
            load_task(task)
        except ConfigError as exc:
            raise fail(f"tasks[{index}]", str(exc)) from None
    seeds = _seeds(data.get("seeds", protocol.seeds), fail)

    agent = data.get("agent", DEFAULT_AGENT)
    if not isinstance(agent, str):
        raise fail("agent", f"expected an agent spec (rules, openai:MODEL, ...), got {agent!r}")
    try:
        parse_agent_spec(agent)
    except ConfigError as exc:
        raise fail("agent", str(exc)) from None

    raw_methods = data.get("methods")
    if not isinstance(raw_methods, list) or not raw_methods:
        raise fail("methods", "expected a non-empty list of methods")
    methods: list[MethodEntry] = []
    labels: dict[str, int] = {}
    for index, raw in enumerate(raw_methods):
        where = f"methods[{index}]"
        entry = {"name": raw} if isinstance(raw, str) else raw
        if not isinstance(entry, dict):
            raise fail(where, "expected a method name or a mapping with name, label, options")
        extra = sorted(set(entry) - set(_METHOD_FIELDS))
        if extra:
            expected = ", ".join(_METHOD_FIELDS)
            raise fail(f"{where}.{extra[0]}", f"unknown field (expected one of {expected})")
        method = entry.get("name")
        if not isinstance(method, str) or not method:
            raise fail(f"{where}.name", f"expected a method name, got {method!r}")
        label = entry.get("label", method)
        if not isinstance(label, str) or not _SAFE.fullmatch(label):
            raise fail(f"{where}.label", f"expected a folder-safe label, got {label!r}")
        if label in labels:
            first = f"methods[{labels[label]}]"
            raise fail(f"{where}.label", f"duplicate label {label!r} (as {first}; add a label)")
        labels[label] = index
        options = entry.get("options", {})
        options = {} if options is None else options
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise fail(f"{where}.options", "expected a mapping")
        try:
            cls = method_class(method)
        except ConfigError as exc:
            raise fail(f"{where}.name", str(exc)) from None
        try:
            described = json.loads(json.dumps(load_method(method, options).describe()))
        except (UserError, TypeError, ValueError) as exc:
            # With options given they are the likely cause; without, the method itself is.
            raise fail(f"{where}.options" if options else where, _one_line(exc)) from None
        methods.append(MethodEntry(method, label, options, cls.uses_agent, described))
    return SweepConfig(
        name=name, description=description, protocol=protocol, pool=pool, pool_name=pool_name,
        backends=backends, tasks=tasks, seeds=seeds, agent=agent, methods=tuple(methods),
        source=path,
    )  # fmt: skip


def _is_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def _relative(config: Path, ref: str) -> Path:
    """``ref`` read relative to the config file's folder (an absolute path stays)."""
    return config.parent / Path(ref).expanduser()


def _names(value: Any, key: str, fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail(key, "expected a non-empty list of names")
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise fail(f"{key}[{index}]", f"expected a name, got {item!r}")
        if item in seen:
            raise fail(f"{key}[{index}]", f"duplicate {item!r}")
        seen.add(item)
    return tuple(value)


def _seeds(value: Any, fail: Callable[[str, str], ConfigError]) -> tuple[int, ...]:
    def count_of(raw: Any, where: str) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_SEEDS:
            raise fail(where, f"expected a number of seeds from 1 to {MAX_SEEDS}, got {raw!r}")
        return raw

    def seed_of(raw: Any, where: str) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2**31:
            raise fail(where, f"expected a seed from 0 to {2**31 - 1}, got {raw!r}")
        return raw

    if isinstance(value, dict):
        extra = sorted(set(value) - {"start", "count"})
        if extra:
            raise fail(f"seeds.{extra[0]}", "unknown field (expected start, count)")
        start = seed_of(value.get("start", 0), "seeds.start")
        count = count_of(value.get("count"), "seeds.count")
        if start + count > 2**31:
            raise fail("seeds", f"start + count must stay below {2**31}")
        return tuple(range(start, start + count))
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_SEEDS:
            raise fail("seeds", f"expected 1 to {MAX_SEEDS} seeds, got {len(value)}")
        seeds = tuple(seed_of(raw, f"seeds[{i}]") for i, raw in enumerate(value))
        for index, seed in enumerate(seeds):
            if seed in seeds[:index]:
                raise fail(f"seeds[{index}]", f"duplicate seed {seed}")
        return seeds
    return tuple(range(count_of(value, "seeds")))


# ----- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySpec:
    """One study of a sweep: everything a worker needs to run it, and its folder."""

    label: str
    method: str
    options: Mapping[str, Any]
    task: str
    backend: str
    seed: int
    folder: Path
    protocol: Protocol
    pool: str
    agent: str | None = None

    @property
    def partial(self) -> Path:
        """The folder the study runs into; renamed to :attr:`folder` when it finishes."""
        return self.folder.with_name(self.folder.name + PARTIAL)

    @property
    def key(self) -> str:
        """``label/task/backend/seed-n``: the study's name in reports."""
        return f"{self.label}/{self.task}/{self.backend}/seed-{self.seed}"


def plan(config: SweepConfig, out: Path) -> list[StudySpec]:
    """Every study of the sweep, in order label, task, backend, seed; one stable folder each."""
    specs = []
    for entry in config.methods:
        agent = config.agent if entry.uses_agent else None
        for task in config.tasks:
            for backend in config.backends:
                for seed in config.seeds:
                    folder = out / "studies" / entry.label / task / backend / f"seed-{seed}"
                    specs.append(
                        StudySpec(entry.label, entry.name, entry.options, task, backend, seed,
                                  folder, config.protocol, config.pool, agent)
                    )  # fmt: skip
    return specs


def study_finished(folder: Path) -> bool:
    """Whether ``folder`` holds a trace whose last record is ``final``."""
    path = folder / "trace.jsonl"
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            chunk = 1 << 16
            while True:
                handle.seek(max(0, size - chunk))
                lines = handle.read().rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or chunk >= size:
                    break
                chunk *= 4
    except OSError:
        return False
    try:
        record = json.loads(lines[-1])
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("type") == "final"


def _check_same_study(spec: StudySpec, entry: MethodEntry, config: SweepConfig) -> dict[str, Any]:
    """Refuse a finished folder whose manifest describes another study; return the manifest."""
    try:
        manifest = json.loads((spec.folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{spec.folder}: finished trace but no readable manifest.json") from None
    agent = manifest.get("agent") or {}
    recorded = {
        "method": manifest.get("method"),
        "task": (manifest.get("task") or {}).get("name"),
        "backend": (manifest.get("backend") or {}).get("name"),
        "seed": manifest.get("seed"),
        "protocol": manifest.get("protocol"),
        "pool": manifest.get("pool"),
        "agent": agent.get("spec"),
    }
    expected = {
        "method": dict(entry.describe), "task": spec.task, "backend": spec.backend,
        "seed": spec.seed, "protocol": config.protocol.to_json(), "pool": config.pool_name,
        "agent": spec.agent,
    }  # fmt: skip
    for key, value in expected.items():
        if recorded[key] != value:
            raise UserError(
                f"{spec.folder}: finished with another {key} than {config.source} asks "
                f"({recorded[key]!r}, not {value!r}); use another --out or delete that folder"
            )
    return dict(manifest)


def _backend_identity(described: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs of a backend comparable: not where its files lie."""
    return {k: v for k, v in described.items() if k not in ("cache", "params")}


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, UserError) else f"{type(exc).__name__}: {message}"


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


# ----- bundles and the report -------------------------------------------------------------


def bundle_name(config: SweepConfig, label: str, backend: str) -> str:
    """A bundle's folder name: the label, with the backend when the sweep has several."""
    return label if len(config.backends) == 1 else f"{label}-{backend}"


def _write_bundles(config: SweepConfig, out: Path, report: SweepReport) -> None:
    """One bundle per (label, backend) whose studies all finished; rebuilt by a swap."""
    try:
        from harness.bundle import write_bundle
    except ImportError as exc:
        report.notes.append(f"bundles skipped: harness.bundle is not available ({exc})")
        return
    if sorted(config.seeds) != list(range(len(config.seeds))):
        report.notes.append(
            "bundles skipped: a bundle holds seeds 0..N-1, and this sweep's are not"
        )
        return
    failed = {(o.spec.label, o.spec.backend) for o in report.failed}
    specs = plan(config, out)
    for entry in config.methods:
        for backend in config.backends:
            name = bundle_name(config, entry.label, backend)
            if (entry.label, backend) in failed:
                report.notes.append(f"bundle {name} not written: some of its studies failed")
                continue
            dirs = [s.folder for s in specs if s.label == entry.label and s.backend == backend]
            target = out / "bundles" / name
            try:
                _swap_in(target, functools.partial(_bundle, write_bundle, entry.label, dirs))
            except (HarnessError, OSError) as exc:
                report.bundle_errors.append(f"bundle {name}: {_one_line(exc)}")
                continue
            report.bundles.append(target)


def _bundle(write_bundle: Any, name: str, dirs: list[Path], folder: Path) -> None:
    write_bundle(folder, name=name, study_dirs=dirs)


def _swap_in(target: Path, write: Callable[[Path], Any]) -> None:
    """Write a folder beside ``target`` and swap it in, so a reader never sees half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        fresh = scratch / "new"
        write(fresh)
        if target.exists():
            os.rename(target, scratch / "old")
        os.rename(fresh, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _report_json(config: SweepConfig, report: SweepReport) -> dict[str, Any]:
    return {
        "name": config.name,
        "config": str(config.source),
        "protocol": config.protocol.to_json(),
        "pool": config.pool_name,
        "total": report.total,
        "done": sorted(o.spec.key for o in report.done),
        "skipped": sorted(s.key for s in report.skipped),
        "failed": [{"study": o.spec.key, "error": o.error} for o in report.failed],
        "bundles": [str(p.relative_to(report.out)) for p in report.bundles],
        "notes": report.notes + report.bundle_errors,
        "wall_s": round(report.wall_s, 2),
    }
