"""The sweep config: methods x tasks x backends x seeds, validated (see :mod:`harness.sweep`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import ConfigError, UserError
from harness.protocol import Protocol

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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, UserError) else f"{type(exc).__name__}: {message}"
