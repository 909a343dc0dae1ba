"""The simulator's parameters: read from ``tasks/sim/<pool>.yaml`` and checked field by field.

Every mistake is one :class:`~harness.errors.ConfigError` line naming the file and the field,
for example ``tasks/sim/llama3.yaml: field 'tasks.math.targets.llama-3.2-1b': expected a
number in (0, 100), got 'many'``. The meaning and source of every number is in docs/sim.md and
in the comments of the YAML file itself.

Example:
    >>> params = load_sim_params("llama3")
    >>> params.tasks["math"].targets["llama-3.2-1b"]
    0.31
    >>> sorted(params.shared.roles)
    ['assistant', 'fuser', 'output']
    >>> params.tasks["humaneval"].reading.kind
    'program'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import ConfigError
from harness.paths import tasks_dir

__all__ = [
    "ANSWER_KINDS",
    "ROLE_NAMES",
    "DifficultyParams",
    "DistractorParams",
    "ModelParams",
    "ReadingParams",
    "RoleParams",
    "SimParams",
    "StructureParams",
    "TaskParams",
    "load_sim_params",
    "sim_dir",
]

ROLE_NAMES = ("assistant", "fuser", "output")


def sim_dir() -> Path:
    """The folder of simulator parameter files (``tasks/sim/``)."""
    return tasks_dir() / "sim"


@dataclass(frozen=True)
class ModelParams:
    """What the simulator knows about one model, whatever the task.

    Attributes:
        no_answer: probability that a call gives no extractable answer.
        capacity: prompt tokens past which the model's reading degrades.
    """

    no_answer: float
    capacity: float


@dataclass(frozen=True)
class RoleParams:
    """How a node of one role treats its own attempt among the answers it reads.

    Attributes:
        self_weight: log-weight added to the node's own attempt when it picks its final answer
            among its inputs' answers and its own (positive: it sticks to its own answer;
            negative: it defers to its inputs).
    """

    self_weight: float


@dataclass(frozen=True)
class StructureParams:
    """How nodes with inputs behave whatever the task (docs/sim.md, "Nodes with inputs").

    A node reads its inputs, writes its own attempt, and picks one of these candidate answers
    with weight ``count ** vote * exp(discern * right + self_weight * own)``; ``vote`` and
    ``discern`` depend on the kind of answer (:class:`ReadingParams`), the rest on the role and
    the node's place in the graph.

    Attributes:
        roles: :class:`RoleParams` for ``assistant`` (with inputs), ``fuser`` and ``output``.
        context_penalty: logits of ability lost per capacity-multiple of prompt past capacity;
            ``vote`` and ``discern`` are divided by ``1 + overload`` as well.
        overwrite: the chance that a node at level 2 talks itself out of a right answer.
        overwrite_growth: how that chance grows with the level ``l``:
            ``overwrite * (l - 1) ** overwrite_growth``.
    """

    roles: Mapping[str, RoleParams]
    context_penalty: float
    overwrite: float
    overwrite_growth: float


ANSWER_KINDS = ("final", "option", "program")


@dataclass(frozen=True)
class ReadingParams:
    """What a reader can do with its inputs' answers, by the kind of answer.

    Attributes:
        kind: ``final`` (comparable final answers: math, gsm8k), ``option`` (a choice among a
            few options: mmlu) or ``program`` (code that cannot be judged without running it).
        vote: how strongly agreement counts (0: every distinct answer alike; 1: a blind pick
            of one candidate; large: the plurality).
        discern: logit bonus of the right answer among the candidates: how well a reader tells
            right from wrong without external feedback.
        self_bias: log-weight added to the reader's own attempt on top of its role's: where
            answers cannot be compared (programs), a reader mostly keeps its own try.
    """

    kind: str
    vote: float
    discern: float
    self_bias: float = 0.0


@dataclass(frozen=True)
class DifficultyParams:
    """Per-question difficulty, in logits.

    Attributes:
        level_means: MATH only: mean difficulty of levels 1-5 (empty: no levels).
        spread: standard deviation of the question's shared difficulty.
        model_spread: standard deviation of each model's own deviation on a question.
    """

    level_means: tuple[float, ...]
    spread: float
    model_spread: float


@dataclass(frozen=True)
class DistractorParams:
    """The wrong answers of a question.

    Attributes:
        count: how many distinct wrong answers a question has (K).
        decay: the k-th most common wrong answer is drawn ``decay`` times as often as the one
            before it (near 1: scattered errors; small: one dominant distractor).
        own: probability that a wrong answer is the model's own preferred one for the question
            rather than a draw from the shared distribution.
        trap: probability that a 1B model's shared draw is the question's most common wrong
            answer (a trap weak models fall into); for a model of ``2**k`` billion parameters
            it is ``trap / (1 + k)``.
    """

    count: int
    decay: float
    own: float
    trap: float = 0.0


@dataclass(frozen=True)
class TaskParams:
    """One task's parameters.

    Attributes:
        targets: single-call accuracy (a fraction) per model name.
        difficulty: per-question difficulty.
        distractors: per-question wrong answers.
        reading: what a reader can do with this task's answers.
    """

    targets: Mapping[str, float]
    difficulty: DifficultyParams
    distractors: DistractorParams
    reading: ReadingParams


@dataclass(frozen=True)
class SimParams:
    """A pool's simulator parameters.

    Attributes:
        pool: the pool's name.
        world_seed: the seed of the simulated world (question difficulties, distractors): fixed
            per file, independent of any study's seed.
        models: per model name.
        shared: the structure of nodes with inputs, the same for every task.
        tasks: per task name.
        source: the file read.
    """

    pool: str
    world_seed: int
    models: Mapping[str, ModelParams]
    shared: StructureParams
    tasks: Mapping[str, TaskParams]
    source: Path


def load_sim_params(pool: str, path: Path | None = None) -> SimParams:
    """Read and check a pool's simulator parameters.

    Args:
        pool: the pool's name (``llama3``).
        path: the file; default ``tasks/sim/<pool>.yaml``.

    Raises:
        ConfigError: no file for the pool, or a bad field (one line naming file and field).
    """
    if path is None:
        path = sim_dir() / f"{pool}.yaml"
        if not path.is_file():
            raise ConfigError(f"no sim parameters for pool {pool!r} (tasks/sim/{pool}.yaml)")
    return _Reader(path).sim(read_yaml(path), pool)


class _Reader:
    """Checks one file's fields, naming the file and the dotted field in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.path}: field '{where}': expected {expected}, got {value!r}")

    def mapping(self, data: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(where, "a mapping", data)
        return data

    def get(self, data: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in data:
            raise ConfigError(f"{self.path}: missing field '{where}{key}'")
        return data[key]

    def number(
        self, data: Mapping[str, Any], key: str, where: str, low: float, high: float
    ) -> float:
        value = self.get(data, key, where)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(f"{where}{key}", f"a number in [{low:g}, {high:g}]", value)
        return float(value)

    def integer(self, data: Mapping[str, Any], key: str, where: str, low: int) -> int:
        value = self.get(data, key, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(f"{where}{key}", f"an integer >= {low}", value)
        return value

    def unknown(self, data: Mapping[str, Any], known: set[str], where: str) -> None:
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(
                f"{self.path}: unknown field '{where}{extra[0]}' (expected one of "
                f"{', '.join(sorted(known))})"
            )

    def sim(self, data: Mapping[str, Any], pool: str) -> SimParams:
        self.unknown(data, {"pool", "world_seed", "models", "structure", "tasks"}, "")
        name = self.get(data, "pool", "")
        if name != pool:
            raise self.fail("pool", f"{pool!r} (the pool this file is for)", name)
        models_raw = self.mapping(self.get(data, "models", ""), "models")
        models = {
            str(model): self.model(self.mapping(entry, f"models.{model}"), f"models.{model}.")
            for model, entry in models_raw.items()
        }
        shared = self.structure(self.mapping(self.get(data, "structure", ""), "structure"), "")
        tasks_raw = self.mapping(self.get(data, "tasks", ""), "tasks")
        tasks = {
            str(task): self.task(self.mapping(entry, f"tasks.{task}"), f"tasks.{task}.", models)
            for task, entry in tasks_raw.items()
        }
        return SimParams(
            pool=pool,
            world_seed=self.integer(data, "world_seed", "", 0),
            models=models,
            shared=shared,
            tasks=tasks,
            source=self.path,
        )

    def model(self, data: Mapping[str, Any], where: str) -> ModelParams:
        self.unknown(data, {"no_answer", "capacity"}, where)
        return ModelParams(
            no_answer=self.number(data, "no_answer", where, 0.0, 0.5),
            capacity=self.number(data, "capacity", where, 1.0, 1e7),
        )

    def structure(self, data: Mapping[str, Any], prefix: str) -> StructureParams:
        where = f"{prefix}structure."
        known = {"roles", "context_penalty", "overwrite", "overwrite_growth"}
        self.unknown(data, known, where)
        roles_raw = self.mapping(self.get(data, "roles", where), f"{where}roles")
        self.unknown(roles_raw, set(ROLE_NAMES), f"{where}roles.")
        roles = {}
        for role in ROLE_NAMES:
            at = f"{where}roles.{role}."
            entry = self.mapping(self.get(roles_raw, role, f"{where}roles."), at[:-1])
            self.unknown(entry, {"self_weight"}, at)
            roles[role] = RoleParams(self_weight=self.number(entry, "self_weight", at, -10.0, 10.0))
        return StructureParams(
            roles=roles,
            context_penalty=self.number(data, "context_penalty", where, 0.0, 100.0),
            overwrite=self.number(data, "overwrite", where, 0.0, 1.0),
            overwrite_growth=self.number(data, "overwrite_growth", where, 0.0, 4.0),
        )

    def task(
        self, data: Mapping[str, Any], where: str, models: Mapping[str, ModelParams]
    ) -> TaskParams:
        self.unknown(data, {"targets", "difficulty", "distractors", "reading"}, where)
        targets_raw = self.mapping(self.get(data, "targets", where), f"{where}targets")
        targets = {}
        for model in targets_raw:
            if model not in models:
                raise ConfigError(
                    f"{self.path}: field '{where}targets.{model}': model not listed under 'models'"
                )
            at = f"{where}targets."
            targets[str(model)] = self.number(targets_raw, model, at, 0.01, 99.99) / 100
        diff = self.mapping(self.get(data, "difficulty", where), f"{where}difficulty")
        at = f"{where}difficulty."
        self.unknown(diff, {"level_means", "spread", "model_spread"}, at)
        levels = diff.get("level_means", [])
        if not isinstance(levels, list) or len(levels) not in (0, 5):
            raise self.fail(f"{at}level_means", "a list of 5 numbers (MATH levels 1-5)", levels)
        for value in levels:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"{at}level_means", "a list of 5 numbers", levels)
        difficulty = DifficultyParams(
            level_means=tuple(float(v) for v in levels),
            spread=self.number(diff, "spread", at, 0.0, 10.0),
            model_spread=self.number(diff, "model_spread", at, 0.0, 10.0),
        )
        dist = self.mapping(self.get(data, "distractors", where), f"{where}distractors")
        at = f"{where}distractors."
        self.unknown(dist, {"count", "decay", "own", "trap"}, at)
        distractors = DistractorParams(
            count=self.integer(dist, "count", at, 1),
            decay=self.number(dist, "decay", at, 0.0, 1.0),
            own=self.number(dist, "own", at, 0.0, 1.0),
            trap=self.number(dist, "trap", at, 0.0, 1.0),
        )
        raw = self.mapping(self.get(data, "reading", where), f"{where}reading")
        at = f"{where}reading."
        self.unknown(raw, {"kind", "vote", "discern", "self_bias"}, at)
        kind = self.get(raw, "kind", at)
        if kind not in ANSWER_KINDS:
            raise self.fail(f"{at}kind", f"one of {', '.join(ANSWER_KINDS)}", kind)
        reading = ReadingParams(
            kind=kind,
            vote=self.number(raw, "vote", at, 0.0, 20.0),
            discern=self.number(raw, "discern", at, -5.0, 5.0),
            self_bias=self.number(raw, "self_bias", at, -10.0, 10.0),
        )
        return TaskParams(targets, difficulty, distractors, reading)
