"""The shared call cache: a real LLM call is paid for once, then replayed from SQLite.

A call's key hashes only what changes its output (provider, model, messages, output-changing
generation parameters and the sample label), never retries or timeouts, so a rerun of a study
replays every call it has made before. Each row carries a checksum; a row that fails it is never
served, only reported (in :attr:`CallCache.corrupt`). Several processes may share one file:
SQLite's WAL mode lets them read while one writes, and the first writer of a key wins (the same
key is the same call). The default file is ``$HARNESS_CALL_CACHE``, else ``calls.sqlite`` in
:func:`harness.paths.cache_dir`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> key = call_key("openai", "gpt-4o-mini", [{"role": "user", "content": "2+2?"}],
    ...                {"temperature": 0.0}, sample="0")
    >>> with CallCache(folder / "calls.sqlite") as cache:
    ...     cache.put_many([(key, "openai", "gpt-4o-mini", CacheEntry("4", 12, 1, 0.4, 1e-5))])
    ...     cache.get(key).reply, cache.get("0" * 64)
    ('4', None)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.paths import atomic_path, cache_dir

__all__ = ["KEY_VERSION", "CacheEntry", "CallCache", "call_key", "default_cache_path"]

KEY_VERSION = 1  # bump when what goes into a key changes: old rows then simply miss
SCHEMA_VERSION = 1  # PRAGMA user_version of a cache file
EXPORT_VERSION = 1  # the "version" in an export file's header line
EXPORT_FORMAT = "harness-call-cache"
_APPLICATION_ID = 0x48434331  # "HCC1": tells our files from any other SQLite database
_TIMEOUT_S = 30.0  # how long to wait for another process's write lock
_CHUNK = 500  # keys per IN (...) list, well under SQLite's bound-variable limit
_FIELDS = (
    "key", "provider", "model", "reply", "prompt_tokens", "output_tokens", "latency_s",
    "dollars", "created",
)  # fmt: skip
_TYPES: tuple[tuple[type, ...], ...] = (
    (str,), (str,), (str,), (str,), (int,), (int,), (float,), (float, type(None)), (float,),
)  # fmt: skip
_COLUMNS = ", ".join(_FIELDS)
_SELECT = f"SELECT {_COLUMNS}, checksum FROM calls"
_SCHEMA = (
    """CREATE TABLE calls (
        key TEXT NOT NULL PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL,
        reply TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        latency_s REAL NOT NULL, dollars REAL, created REAL NOT NULL, checksum TEXT NOT NULL
    ) WITHOUT ROWID""",
    f"PRAGMA application_id = {_APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


@dataclass(frozen=True)
class CacheEntry:
    """One cached reply and what the original call cost."""

    reply: str  # the model's text
    prompt_tokens: int
    output_tokens: int
    latency_s: float  # measured latency of the original call, replayed as the call's latency
    dollars: float | None  # cost of the original call (None: price unknown)


def call_key(
    provider: str,
    model: str,
    messages: Sequence[Mapping[str, str]],
    params: Mapping[str, Any],
    sample: str,
) -> str:
    """The cache key of one call: sha256 hex of its canonical JSON.

    Args:
        provider: the API provider (``"openai"``).
        model: the provider's model name.
        messages: the chat messages, in order.
        params: only generation parameters that change the output (temperature, max tokens,
            stop); never retries or timeouts. ``1`` and ``1.0`` give different keys.
        sample: which sample of the same request this is (repeated samples must not collide).
    """
    # Plain dicts pass straight to json (the replay hot path); other mappings are copied.
    payload = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "messages": [m if type(m) is dict else dict(m) for m in messages],
        "params": params if type(params) is dict else dict(params),
        "sample": sample,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_path() -> Path:
    """``$HARNESS_CALL_CACHE`` if set, else ``calls.sqlite`` in the harness cache folder."""
    override = os.environ.get("HARNESS_CALL_CACHE")
    return Path(override) if override else cache_dir() / "calls.sqlite"


def _checksum(fields: Sequence[Any]) -> str:
    # Over every stored field, so an edit to any column (or a row under another key) is caught.
    text = json.dumps(list(fields), separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _problem(fields: Sequence[Any], checksum: Any) -> str | None:
    """Why a row's :data:`_FIELDS` must not be stored or served, or None (checksum None: new)."""
    for name, value, types in zip(_FIELDS, fields, _TYPES, strict=True):
        if type(value) not in types:  # type(), not isinstance: a bool is not a token count
            return f"{name} is {type(value).__name__}"
    return None if checksum in (None, _checksum(fields)) else "checksum mismatch"


def _real(value: Any) -> Any:
    # SQLite stores 3 in a REAL column as 3.0, and a checksum is over what is read back.
    return float(value) if type(value) is int else value


class CallCache:
    """A SQLite file of cached calls, safe to share between threads and processes.

    Args:
        path: the file (default :func:`default_cache_path`); created with its folders if absent.
        create: when False, a missing file is a :class:`~harness.errors.ConfigError`.

    Raises:
        ConfigError: the file is not a SQLite database, or not a call cache of this version.
    """

    def __init__(self, path: Path | str | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.corrupt: list[tuple[str, str]] = []  # (key, reason) of each bad row found, once
        self._bad: dict[str, Any] = {}  # key -> checksum of its bad row, so a put replaces it
        self._bad_seen = 0  # bad rows met, repeats included (stats counts its own scan)
        self._lock = threading.Lock()
        if not create and not self.path.exists():
            raise ConfigError(f"{self.path}: no call cache (file does not exist)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Explicit transactions (isolation_level None); one connection, shared under a lock.
            self._db = sqlite3.connect(
                self.path, _TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            try:
                self._open()
            except BaseException:
                self._db.close()
                raise
        except (OSError, sqlite3.OperationalError) as exc:  # unreadable, locked past the timeout
            raise ConfigError(f"{self.path}: cannot open call cache ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a harness call cache ({exc})") from None

    def _open(self) -> None:
        if not self._check():
            # A new, empty file. The check is repeated under the write lock: of several
            # processes creating the file at once, one creates the schema, the rest find it.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not self._check():
                    for statement in _SCHEMA:  # not executescript: it would commit first
                        self._db.execute(statement)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        # WAL lets readers and one writer share the file; NORMAL syncs at checkpoints only,
        # which in WAL mode may lose the last calls on power loss but never corrupts the file.
        # Switching needs the file to itself, and SQLite says "locked" at once instead of
        # waiting (two switchers would deadlock), so the switch is retried up to the timeout.
        deadline = time.monotonic() + _TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self._db.execute("PRAGMA synchronous = NORMAL")

    def _check(self) -> bool:
        """True if the file has our schema, False if it is empty; otherwise raise."""
        # One statement, so one snapshot: another process may create the schema meanwhile.
        app_id, version, tables = self._db.execute(
            "SELECT (SELECT * FROM pragma_application_id), (SELECT * FROM pragma_user_version),"
            " (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
        if app_id == 0 and version == 0 and tables == 0:
            return False
        if app_id != _APPLICATION_ID:
            raise ConfigError(f"{self.path}: not a harness call cache (another SQLite database)")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: call cache schema version {version}, expected {SCHEMA_VERSION}"
            )
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(calls)")]
        if columns != [*_FIELDS, "checksum"]:
            raise ConfigError(f"{self.path}: not a harness call cache (table calls is malformed)")
        return True

    def _verified(self, rows: Iterable[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
        """The fields of the valid rows; bad ones are recorded in :attr:`corrupt` instead."""
        for row in rows:
            fields, checksum = tuple(row[:-1]), row[-1]
            problem = _problem(fields, str(checksum))  # str: a NULL must not pass as unchecked
            if problem is None:
                yield fields
                continue
            self._bad_seen += 1
            if fields[0] not in self._bad:
                self._bad[fields[0]] = checksum
                self.corrupt.append((str(fields[0]), problem))

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """The cached entries among ``keys``; misses and corrupt rows are left out."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, CacheEntry] = {}
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                sql = f"{_SELECT} WHERE key IN ({','.join('?' * len(chunk))})"
                for fields in self._verified(self._db.execute(sql, chunk)):
                    found[fields[0]] = CacheEntry(*fields[3:8])
        return found

    def get(self, key: str) -> CacheEntry | None:
        """The cached entry for ``key``, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, rows: Sequence[tuple[str, str, str, CacheEntry]]) -> None:
        """Store ``(key, provider, model, entry)`` rows in one transaction; first writer wins.

        Raises:
            TypeError: an entry's field has the wrong type (a bug in the caller).
        """
        created = time.time()
        self._insert(
            [_row(key, provider, model, entry, created) for key, provider, model, entry in rows]
        )

    def _insert(self, rows: list[list[Any]]) -> int:
        """Add rows (fields, checksum appended here) in one transaction; returns rows added."""
        if not rows:
            return 0
        values = [[*fields, _checksum(fields)] for fields in rows]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # A row found corrupt is replaced, or its call would miss forever; matching its
                # checksum leaves alone a good row that another process wrote meanwhile.
                bad = [(r[0], self._bad.pop(r[0])) for r in rows if r[0] in self._bad]
                self._db.executemany("DELETE FROM calls WHERE key = ? AND checksum IS ?", bad)
                sql = f"INSERT OR IGNORE INTO calls ({_COLUMNS}, checksum) VALUES ({'?,' * 9}?)"
                added = self._db.executemany(sql, values).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return max(added, 0)

    def _scan(self) -> Iterator[tuple[Any, ...]]:
        with self._lock:
            yield from self._verified(self._db.execute(f"{_SELECT} ORDER BY key"))

    def stats(self) -> dict[str, Any]:
        """Totals of the whole cache, from a full scan that verifies every row.

        Returns:
            ``path``, ``bytes`` (file plus write-ahead log), ``entries`` (valid rows),
            ``corrupt`` (bad rows in this scan) and ``models``: per (provider, model), a dict
            of ``provider``, ``model``, ``entries``, ``prompt_tokens``, ``output_tokens``,
            ``dollars`` (None if any call's price is unknown) and ``latency_s`` (the sum).
        """
        bad_before = self._bad_seen
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for _, provider, model, _, prompt, output, latency, dollars, _ in self._scan():
            group = groups.setdefault((provider, model), _empty_group(provider, model))
            group["entries"] += 1
            group["prompt_tokens"] += prompt
            group["output_tokens"] += output
            group["latency_s"] += latency
            known = group["dollars"] is not None and dollars is not None
            group["dollars"] = group["dollars"] + dollars if known else None
        files = [self.path, Path(f"{self.path}-wal")]
        return {
            "path": str(self.path),
            "bytes": sum(f.stat().st_size for f in files if f.exists()),
            "entries": sum(g["entries"] for g in groups.values()),
            "corrupt": self._bad_seen - bad_before,
            "models": [groups[k] for k in sorted(groups)],
        }

    def export(self, path: Path) -> int:
        """Write every valid row to ``path`` as JSON Lines (gzip if it ends in ``.gz``).

        The first line is a header, ``{"format": "harness-call-cache", "version": 1,
        "entries": n}``; each further line is one row with its checksum. The file appears
        whole or not at all.

        Returns:
            The rows written; corrupt rows are skipped and recorded in :attr:`corrupt`.
        """
        records = ({**dict(zip(_FIELDS, f, strict=True)), "checksum": _checksum(f)}
                   for f in self._scan())  # fmt: skip
        lines = [json.dumps(record, ensure_ascii=False) for record in records]
        header = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "entries": len(lines)}
        data = "".join(f"{line}\n" for line in [json.dumps(header), *lines]).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write call cache export ({exc})") from None
        return len(lines)

    def import_(self, path: Path) -> tuple[int, int]:
        """Add the rows of an :meth:`export` file (plain or gzip), all or nothing.

        Returns:
            ``(added, already present)``.

        Raises:
            ConfigError: the file is missing or unreadable, its header is wrong or a line is
                malformed (named by its number); nothing is imported then.
        """
        try:
            data = path.read_bytes()
            lines = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).split(b"\n")
        except (OSError, EOFError, zlib.error) as exc:  # a missing file, a broken gzip
            raise ConfigError(f"{path}: cannot read call cache export ({exc})") from None
        lines = lines[:-1] if not lines[-1] else lines  # the last line's newline
        rows = [self._parse(path, number, line) for number, line in enumerate(lines, 1)]
        if not rows:
            raise ConfigError(f"{path}:1: empty file, expected a {EXPORT_FORMAT} header")
        header, records = rows[0], rows[1:]
        if header != len(records):
            raise ConfigError(f"{path}: header says {header} entries, the file has {len(records)}")
        added = self._insert([fields for fields in records if isinstance(fields, list)])
        return added, len(records) - added

    @staticmethod
    def _parse(path: Path, number: int, line: bytes) -> list[Any] | int:
        """One export line: the header gives its entry count, a row its fields."""
        try:
            record = json.loads(line)  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            if not isinstance(record, dict):
                raise ValueError("expected a JSON object")
            if number == 1:
                version = record.get("version")
                if record.get("format") != EXPORT_FORMAT or type(record.get("entries")) is not int:
                    raise ValueError(f"expected a {EXPORT_FORMAT} header with an entry count")
                if version != EXPORT_VERSION:
                    raise ValueError(f"export version {version!r}, expected {EXPORT_VERSION}")
                return int(record["entries"])
            checksum = record.pop("checksum", None)
            if set(record) != set(_FIELDS):
                raise ValueError(f"expected the keys {', '.join(_FIELDS)} (and checksum)")
            fields = [record[name] for name in _FIELDS]
            fields[6:] = [_real(value) for value in fields[6:]]  # other writers may write 3
            if problem := _problem(fields, checksum):
                raise ValueError(problem)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        return fields

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row(key: str, provider: str, model: str, entry: CacheEntry, created: float) -> list[Any]:
    fields = [key, provider, model, entry.reply, entry.prompt_tokens, entry.output_tokens,
              _real(entry.latency_s), _real(entry.dollars), _real(created)]  # fmt: skip
    if problem := _problem(fields, None):
        raise TypeError(f"call cache row {key!r}: {problem}")
    return fields


def _empty_group(provider: str, model: str) -> dict[str, Any]:
    return {"provider": provider, "model": model, "entries": 0, "prompt_tokens": 0,
            "output_tokens": 0, "dollars": 0.0, "latency_s": 0.0}  # fmt: skip
