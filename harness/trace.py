"""Study traces: append-only JSON Lines, one record per line, flushed as written.

Like Optuna's journal storage, a trace has two operations: :meth:`TraceWriter.append` and
:func:`read_trace`. Every record carries ``type`` and the trace ``schema`` version; the first is
``start``. A trace is never rewritten: a crash leaves every record written before it intact
(a torn last line is ignored on reading, and reported).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "trace.jsonl"
    >>> with TraceWriter(path) as trace:
    ...     trace.append({"type": "start", "seed": 0})
    >>> [r["type"] for r in read_trace(path)]
    ['start']
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.errors import DataError

__all__ = ["TIME_FIELDS", "TRACE_SCHEMA", "TraceWriter", "read_trace", "without_times"]

TRACE_SCHEMA = 1
TIME_FIELDS = frozenset({"time", "wall_s"})
"""Fields that hold clock readings: the only ones that differ between two runs of a study."""


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays reach traces through results; store them as plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class TraceWriter:
    """Appends records to a trace file, one JSON object per line, flushed per record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (``schema`` and ``time`` are added) and flush it to the file."""
        if self._handle is None:
            raise ValueError(f"trace {self.path} is closed")
        full = {"schema": TRACE_SCHEMA, **record, "time": round(time.time(), 3)}
        line = json.dumps(full, default=_json_default, allow_nan=False, separators=(",", ":"))
        self._handle.write(line + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_trace(path: Path) -> list[dict[str, Any]]:
    """Every record of a trace.

    Raises:
        DataError: the file cannot be read, a line other than the last is not a JSON object,
            or a record has an unsupported schema version.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise DataError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    if lines and lines[-1] == "":
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                # A crash mid-write tears at most the last line; everything before it stands.
                warnings.warn(f"{path}:{number}: torn last record ignored", stacklevel=2)
                break
            raise DataError(f"{path}:{number}: not a JSON record") from None
        if not isinstance(record, dict) or "type" not in record:
            raise DataError(f"{path}:{number}: a record must be an object with a 'type'")
        if record.get("schema") != TRACE_SCHEMA:
            raise DataError(
                f"{path}:{number}: trace schema {record.get('schema')!r} is not supported "
                f"(expected {TRACE_SCHEMA})"
            )
        records.append(record)
    return records


def without_times(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without their clock fields (to compare two runs of a study)."""
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in records]


def finite(value: float | None) -> float | None:
    """A float fit for JSON (None for NaN or infinity)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
