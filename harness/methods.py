"""The method API: search methods are small ask/tell classes (STYLE.md: Optuna, Bayesmark).

The harness owns the loop, the budget, seeds, caching and logs; a method only proposes graphs
and learns from what it is told::

    method.setup(env)            # once: the search space, a seeded RNG, the budget left
    trial = method.ask()         # a graph to evaluate (and how many questions, optionally)
    method.tell(outcome)         # what happened: evaluated, refused (over the cap), or failed
    graph = method.recommend()   # at checkpoints and at the end: the graph to score held out

A method never calls a backend and never sees held-out questions. Built-in and third-party
methods register the same way, under the ``harness.methods`` entry-point group::

    [project.entry-points."harness.methods"]
    my-method = "my_package.module:MyMethod"

Example:
    >>> from harness.methods import load_method, method_names
    >>> "random" in method_names()
    True
    >>> method = load_method("random", {})
    >>> method.name, method.options
    ('random', {'edge_prob': 0.5, 'fuser_prob': 0.5, 'questions': None})
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import random
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from harness.errors import ConfigError
from harness.graph import Graph
from harness.space import Space

__all__ = [
    "ENTRY_POINT_GROUP",
    "Method",
    "Outcome",
    "SearchEnv",
    "Trial",
    "load_method",
    "method_class",
    "method_names",
]

ENTRY_POINT_GROUP = "harness.methods"


@dataclass(frozen=True)
class Trial:
    """A method's request: evaluate ``graph`` on ``questions`` search questions.

    ``questions=None`` means the protocol's batch size. The harness may grant fewer when the
    budget is nearly spent.
    """

    graph: Graph
    questions: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What the harness tells a method about one trial.

    Attributes:
        trial: the trial as asked.
        status: ``evaluated``; ``refused`` (the graph is invalid for the space or over the FLOPs
            cap: nothing was charged); or ``failed`` (the evaluation itself failed).
        graph: the graph as evaluated (models resolved to full names); the asked graph otherwise.
        accuracy: fraction of the trial's questions answered right (None unless evaluated).
        correct: per question, right or wrong.
        flops_units: FLOPs per question in units of the 1B call.
        latency_s: estimated or measured latency per question (critical path).
        reason: why a trial was refused or failed.
        evals_used: question evaluations used by the study after this trial.
    """

    trial: Trial
    status: str
    graph: Graph
    accuracy: float | None = None
    correct: tuple[bool, ...] = ()
    flops_units: float | None = None
    latency_s: float | None = None
    reason: str | None = None
    evals_used: int = 0

    @property
    def evaluated(self) -> bool:
        """Whether the graph ran."""
        return self.status == "evaluated"


@dataclass
class SearchEnv:
    """What a method may use: given once, in :meth:`Method.setup`.

    Attributes:
        space: the search space (pool, budget cap, node limit) with sampling, repair, encoding.
        task: the task's name (methods must not look at its questions).
        seed: the study's seed.
        rng: a random generator seeded for this method; use it (not the global one) so that a
            study is reproducible.
        batch_size: the protocol's questions per evaluation.
        question_evals_left: the search budget still available (a callable: it changes).
        extras: further resources a method may need (pilot tables, an agent), by name.
    """

    space: Space
    task: str
    seed: int
    rng: random.Random
    batch_size: int
    question_evals_left: Callable[[], int]
    extras: Mapping[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Base class of search methods.

    Subclasses set :attr:`name`, :attr:`description` and :attr:`version`, accept their options
    as keyword arguments (the harness records them so that a trace can rebuild the method), and
    implement :meth:`ask` and :meth:`tell`. :meth:`recommend` defaults to the best graph evaluated
    so far (highest accuracy; then fewer FLOPs; then the earliest).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: True for LLM-based methods: the harness then puts the study's agent (``rules`` unless
    #: one is configured), wrapped in its ledger, in ``env.extras["agent"]``.
    uses_agent: ClassVar[bool] = False
    #: True for methods that read the backend's pilot tables (``env.extras["pilot"]``).
    uses_pilot: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = dict(options)
        self.history: list[Outcome] = []
        self.env: SearchEnv | None = None

    def setup(self, env: SearchEnv) -> None:
        """Receive the search environment (override to initialise, and call ``super()``)."""
        self.env = env

    @property
    def space(self) -> Space:
        """The search space (after :meth:`setup`)."""
        if self.env is None:
            raise RuntimeError(f"method {self.name!r} used before setup()")
        return self.env.space

    @property
    def rng(self) -> random.Random:
        """The method's seeded random generator (after :meth:`setup`)."""
        if self.env is None:
            raise RuntimeError(f"method {self.name!r} used before setup()")
        return self.env.rng

    @abstractmethod
    def ask(self) -> Trial:
        """The next graph to evaluate."""

    @abstractmethod
    def tell(self, outcome: Outcome) -> None:
        """Learn from one trial's outcome (``self.history`` already holds it)."""

    def recommend(self) -> Graph:
        """The graph to score on the held-out split now.

        Raises:
            LookupError: nothing has been evaluated yet.
        """
        evaluated = [o for o in self.history if o.evaluated]
        if not evaluated:
            raise LookupError("no graph has been evaluated yet")
        best = max(
            enumerate(evaluated),
            key=lambda pair: (pair[1].accuracy or 0.0, -(pair[1].flops_units or 0.0), -pair[0]),
        )
        return best[1].graph

    def observe(self, outcome: Outcome) -> None:
        """Called by the harness: record ``outcome`` in :attr:`history`, then :meth:`tell`."""
        self.history.append(outcome)
        self.tell(outcome)

    def describe(self) -> dict[str, Any]:
        """Name, version and options, as the manifest records them."""
        return {"name": self.name, "version": self.version, "options": dict(self.options)}


def _registry() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    """Names of every registered method (built-in and installed third-party ones)."""
    return sorted(_registry())


def method_class(name: str) -> type[Method]:
    """The method class that ``name`` refers to.

    ``name`` is a registered name (``harness methods``), ``path/to/file.py:ClassName`` (a
    submitter's file, loaded as a module of its own) or ``package.module:ClassName``. The name a
    trace records is the class's :attr:`Method.name`, whichever way it was loaded.

    Raises:
        ConfigError: unknown name (the message lists the registered ones), a file or module
            that is missing or fails to import, no such class, or a class that is not a
            :class:`Method` subclass.
    """
    registry = _registry()
    if name in registry:
        try:
            cls = registry[name].load()
        except Exception as exc:
            raise ConfigError(f"method {name!r}: its entry point failed to load ({exc})") from None
        where = "entry point"
    elif ":" in name:
        cls, where = _class_from_spec(name), "class"
    else:
        known = ", ".join(sorted(registry)) or "none (is the package installed?)"
        raise ConfigError(
            f"unknown method {name!r} (registered: {known}; or give FILE.py:Class or "
            "package.module:Class)"
        )
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {name!r}: {where} is not a harness.methods.Method subclass")
    return cls


def _class_from_spec(spec: str) -> Any:
    """The attribute ``Class`` of ``FILE.py:Class`` or ``package.module:Class``."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr.isidentifier():
        raise ConfigError(f"method {spec!r}: expected FILE.py:Class or package.module:Class")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = import_file(Path(where), spec)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise ConfigError(
                f"method {spec!r}: cannot import {where} ({_first_line(exc)})"
            ) from None
    if not hasattr(module, attr):
        raise ConfigError(f"method {spec!r}: {where} has no class {attr!r}")
    return getattr(module, attr)


def import_file(path: Path, spec: str | None = None) -> ModuleType:
    """Import a Python file as a module of its own (a method written in a single file).

    The module is named after the file's resolved path, so that importing the same file again
    replaces the earlier module rather than adding another.

    Raises:
        ConfigError: the file is missing or its code raises while importing (first line).
    """
    label = spec or str(path)
    if not path.is_file():
        raise ConfigError(f"method {label!r}: file {path} not found")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_harness_method_{resolved.stem.replace('-', '_')}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"method {label!r}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(loader_spec)
    # Registered before it runs, as `import` does: dataclasses and pickling look it up.
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigError(
            f"method {label!r}: importing {path} failed ({_first_line(exc)})"
        ) from None
    return module


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_method(name: str, options: Mapping[str, Any] | None = None) -> Method:
    """A new method instance from its name (see :func:`method_class`) and options.

    Raises:
        ConfigError: unknown method, or options its constructor rejects.
    """
    cls = method_class(name)
    try:
        method = cls(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"method {name!r}: bad options ({exc})") from None
    if not method.name:
        method_cls_name = cls.__name__
        raise ConfigError(f"method {name!r}: class {method_cls_name} does not set a name")
    return method
