"""The evaluation protocol: identical budgets for every method (DESIGN.md section 5).

A :class:`Protocol` is data (``leaderboard/protocols/*.yaml``): the search budget in question
evaluations, the batch size, the FLOPs budget level, checkpoints, the held-out size and the
default number of seeds. A study turns it into one frozen :class:`Budget` and one
:class:`Ledger` that charges it; :meth:`Ledger.charge` is the one place where the budget is
checked, so no method can spend past it.

The unit of search budget is one **question evaluation**: one graph run on one question.

Example:
    >>> protocol = load_protocol("paper")
    >>> protocol.budget
    Budget(question_evals=40, batch_size=3, level=12, max_nodes=12)
    >>> ledger = Ledger(protocol.budget)
    >>> ledger.grant(3), ledger.charge(3), ledger.question_evals_left
    (3, None, 37)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import BudgetError, ConfigError
from harness.paths import repo_root

__all__ = [
    "OFFICIAL",
    "Budget",
    "Ledger",
    "Protocol",
    "load_protocol",
    "official_protocol_path",
    "protocol_names",
    "protocols_dir",
]

OFFICIAL = "official"
"""The name under which :func:`load_protocol` finds the leaderboard's protocol."""


def official_protocol_path() -> Path:
    """The leaderboard's official protocol (``leaderboard/protocol.yaml``, packaged in a wheel)."""
    packaged = Path(__file__).resolve().parent / "_data" / "protocol.yaml"
    return packaged if packaged.is_file() else repo_root() / "leaderboard" / "protocol.yaml"


def protocols_dir() -> Path:
    """The folder of protocol YAML files (``leaderboard/protocols/``)."""
    packaged = Path(__file__).resolve().parent / "_data" / "protocols"
    return packaged if packaged.is_dir() else repo_root() / "leaderboard" / "protocols"


@dataclass(frozen=True)
class Budget:
    """What one study may spend.

    Attributes:
        question_evals: search budget, in question evaluations.
        batch_size: questions per graph evaluation when a method does not say.
        level: the FLOPs budget level k; graphs over its cap are refused, not charged.
        max_nodes: most agent nodes a graph may have.
    """

    question_evals: int
    batch_size: int
    level: int
    max_nodes: int


class Ledger:
    """Charges question evaluations against a :class:`Budget`; the only budget check.

    Example:
        >>> ledger = Ledger(Budget(question_evals=4, batch_size=3, level=12, max_nodes=12))
        >>> ledger.grant(3), ledger.charge(3), ledger.grant(3)
        (3, None, 1)
        >>> ledger.charge(2)
        Traceback (most recent call last):
        ...
        harness.errors.BudgetError: 2 question evaluations asked, 1 left of 4
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.used = 0

    @property
    def question_evals_left(self) -> int:
        """Question evaluations still available."""
        return self.budget.question_evals - self.used

    def grant(self, wanted: int | None) -> int:
        """Questions a request may have: ``wanted`` (default: the batch) capped by what is left."""
        want = self.budget.batch_size if wanted is None else wanted
        return max(0, min(want, self.question_evals_left))

    def charge(self, question_evals: int) -> None:
        """Spend ``question_evals``; refuses to go past the budget.

        Raises:
            BudgetError: the charge would exceed the budget (nothing is charged).
        """
        if question_evals < 0:
            raise BudgetError(f"cannot charge {question_evals} question evaluations")
        if question_evals > self.question_evals_left:
            raise BudgetError(
                f"{question_evals} question evaluations asked, {self.question_evals_left} left "
                f"of {self.budget.question_evals}"
            )
        self.used += question_evals


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol (see the module docstring).

    Attributes:
        name: the protocol's name.
        description: one line.
        budget: the per-study budget.
        checkpoint_every: score the current recommendation on the held-out split every this many
            question evaluations (and at the end).
        heldout_size: held-out questions scored (None: the whole split; otherwise a fixed,
            seed-independent subset, the same for every method and seed).
        seeds: default number of seeds.
        pool: the model pool.
        source: the YAML file it came from.
        tasks: the tasks a leaderboard submission runs (``harness submit``); empty when the
            protocol names none. Not part of a study's record (:meth:`to_json`).
        backend: the backend a submission runs on (default ``sim``); not part of the record.
    """

    name: str
    description: str
    budget: Budget
    checkpoint_every: int
    heldout_size: int | None
    seeds: int
    pool: str
    source: Path | None = None
    tasks: tuple[str, ...] = ()
    backend: str = "sim"

    def with_budget(self, question_evals: int) -> Protocol:
        """The same protocol with another search budget (``harness eval --budget``)."""
        if isinstance(question_evals, bool) or question_evals < 1:
            raise ConfigError(
                f"the search budget must be a positive number of question evaluations, "
                f"got {question_evals}"
            )
        b = self.budget
        budget = Budget(question_evals, b.batch_size, b.level, b.max_nodes)
        return dataclasses.replace(self, budget=budget)

    def checkpoints(self) -> list[int]:
        """Question-evaluation counts at which the recommendation is scored on held-out data."""
        total = self.budget.question_evals
        marks = list(range(self.checkpoint_every, total, self.checkpoint_every))
        return [*marks, total]

    def to_json(self) -> dict[str, Any]:
        """The protocol as a manifest records it."""
        b = self.budget
        return {
            "name": self.name,
            "question_evals": b.question_evals,
            "batch_size": b.batch_size,
            "budget_level": b.level,
            "max_nodes": b.max_nodes,
            "checkpoint_every": self.checkpoint_every,
            "heldout_size": self.heldout_size,
            "seeds": self.seeds,
            "pool": self.pool,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "protocol JSON") -> Protocol:
        """The protocol a manifest recorded (:meth:`to_json`'s inverse; no description).

        Raises:
            ConfigError: a missing, unknown or mistyped field (named, with ``where``).

        Example:
            >>> paper = load_protocol("paper")
            >>> Protocol.from_json(paper.to_json()).to_json() == paper.to_json()
            True
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        expected = set(_JSON_FIELDS)
        unknown = sorted(set(data) - expected)
        missing = sorted(expected - set(data))
        if unknown or missing:
            which = f"unknown field {unknown[0]!r}" if unknown else f"missing field {missing[0]!r}"
            raise ConfigError(f"{where}: {which} (expected {', '.join(_JSON_FIELDS)})")

        def positive(key: str, optional: bool = False) -> Any:
            value = data[key]
            if optional and value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{where}: field '{key}' must be a positive integer, got {value!r}"
                )
            return value

        for key in ("name", "pool"):
            if not isinstance(data[key], str) or not data[key]:
                raise ConfigError(f"{where}: field '{key}' must be a non-empty string")
        budget = Budget(
            positive("question_evals"), positive("batch_size"), positive("budget_level"),
            positive("max_nodes"),
        )  # fmt: skip
        return cls(
            name=data["name"],
            description="",
            budget=budget,
            checkpoint_every=positive("checkpoint_every"),
            heldout_size=positive("heldout_size", optional=True),
            seeds=positive("seeds"),
            pool=data["pool"],
        )


_JSON_FIELDS = (
    "name", "question_evals", "batch_size", "budget_level", "max_nodes", "checkpoint_every",
    "heldout_size", "seeds", "pool",
)  # fmt: skip


def protocol_names() -> list[str]:
    """The shipped protocols."""
    return sorted(p.stem for p in protocols_dir().glob("*.yaml"))


def load_protocol(name_or_path: str | Path = "paper") -> Protocol:
    """Load a protocol by name (``paper``, ``large``, ``official``) or from a YAML file.

    Besides the budget fields, a protocol may name the ``tasks`` and the ``backend`` of a
    leaderboard submission (``leaderboard/protocol.yaml`` does).

    Raises:
        ConfigError: unknown protocol or malformed file (naming the file and field).
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        path = candidate
    elif str(name_or_path) == OFFICIAL:
        path = official_protocol_path()
    else:
        path = protocols_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join([*protocol_names(), OFFICIAL])
            raise ConfigError(f"unknown protocol {str(name_or_path)!r} (expected one of {known})")
    data = read_yaml(path)

    def positive(key: str) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{path}: field '{key}' must be a positive integer, got {value!r}")
        return value

    heldout = data.get("heldout_size")
    if heldout is not None:
        heldout = positive("heldout_size")
    name = data.get("name", path.stem)
    pool = data.get("pool", "llama3")
    for key, value in (("name", name), ("pool", pool)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: field '{key}' must be a non-empty string")
    budget = Budget(
        question_evals=positive("question_evals"),
        batch_size=positive("batch_size"),
        level=positive("budget_level"),
        max_nodes=positive("max_nodes"),
    )
    tasks = data.get("tasks", [])
    if (
        not isinstance(tasks, list)
        or not all(isinstance(t, str) and t for t in tasks)
        or len(set(tasks)) != len(tasks)
    ):
        raise ConfigError(f"{path}: field 'tasks' must be a list of distinct task names")
    backend = data.get("backend", "sim")
    if not isinstance(backend, str) or not backend:
        raise ConfigError(f"{path}: field 'backend' must be a non-empty string")
    fields = {
        "name", "description", "question_evals", "batch_size", "budget_level", "max_nodes",
        "checkpoint_every", "heldout_size", "seeds", "pool", "tasks", "backend",
    }  # fmt: skip
    unknown = sorted(set(data) - fields)
    if unknown:
        expected = ", ".join(sorted(fields))
        raise ConfigError(f"{path}: unknown field {unknown[0]!r} (expected {expected})")
    return Protocol(
        name=str(name),
        description=str(data.get("description", "")),
        budget=budget,
        checkpoint_every=positive("checkpoint_every"),
        heldout_size=heldout,
        seeds=positive("seeds"),
        pool=str(pool),
        source=path,
        tasks=tuple(tasks),
        backend=backend,
    )
