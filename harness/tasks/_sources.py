"""The data sources (``local``, ``hub``, ``mirror``) and the item cache.

Each source turns a task's data entries into items. ``hub`` and ``mirror`` results are cached
as JSON under ``cache_dir()/items/<task>/`` (written atomically), keyed by a hash of
everything that decides their content, so a later load needs neither network nor zip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError, DataUnavailable
from harness.paths import atomic_write_text, cache_dir
from harness.tasks._config import Entry, TaskConfig
from harness.tasks._mirror import find_wheel, read_member
from harness.tasks._records import assign_ids, content_hash, parse_record
from harness.tasks._types import Item

__all__ = ["HUB_PROBE_TIMEOUT_S", "Loaded", "hub_offline", "load_source", "probe_hub"]

CACHE_VERSION = 1
HUB_PROBE_TIMEOUT_S = 3.0
_log = logging.getLogger("harness.tasks")


@dataclass(frozen=True)
class Loaded:
    """The parts a source served: held-out items, search items (None: none at hand), label."""

    heldout: list[Item]
    search: list[Item] | None
    label: str
    why_no_search: str = ""


def _rows_from_lines(
    lines: Iterator[str] | Sequence[str], where: str
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{where}:{number}: expected a JSON object, got {type(row).__name__}")
        yield where, number, row


def _items(entry: Entry, rows: Iterator[tuple[str, int, dict[str, Any]]]) -> list[Item]:
    items = []
    for where, number, row in rows:
        try:
            item = parse_record(entry.record, row)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where}:{number}: {exc}") from exc
        if item is not None:
            items.append(item)
    return items


def _local(entry: Entry, data_dir: Path) -> list[Item]:
    path = data_dir / str(entry.path)
    try:
        with path.open(encoding="utf-8") as handle:
            return _items(entry, _rows_from_lines(handle, str(path)))
    except FileNotFoundError as exc:
        raise DataUnavailable(
            f"local: {path}: file not found (see docs/tasks.md for the layout)"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"local: {path}: not UTF-8 text ({exc.reason})") from exc


def hub_offline() -> bool:
    """Whether the user switched the Hub off (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def probe_hub(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> None:
    """Fail fast when the Hub's endpoint does not answer within ``timeout_s`` seconds.

    Without this, ``datasets`` spends about 23 s on retries before giving up. In offline mode
    nothing is probed: ``datasets`` then fails at once, or serves its own cache.

    Raises:
        DataError: the endpoint did not answer in time.
    """
    if hub_offline():
        return
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            urllib.request.urlopen(
                urllib.request.Request(endpoint, method="HEAD"), timeout=timeout_s
            ).close()
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # an HTTP answer, even an error status, means it is reachable
        except Exception as exc:
            outcome.append(exc)

    # A thread bounds the whole probe: the socket timeout does not cover name resolution.
    worker = threading.Thread(target=attempt, daemon=True, name="harness-hub-probe")
    worker.start()
    worker.join(timeout_s + 0.5)
    if not outcome:
        raise DataUnavailable(
            f"hub: {endpoint} did not answer within {timeout_s:g} s "
            "(set HF_HUB_OFFLINE=1 to skip it)"
        )
    if outcome[0] is not None:
        reason = getattr(outcome[0], "reason", outcome[0])
        raise DataUnavailable(
            f"hub: {endpoint} not reachable ({reason}); set HF_HUB_OFFLINE=1 to skip it"
        )


def _hub(entry: Entry) -> list[Item]:
    try:
        import datasets
    except ImportError as exc:
        raise DataUnavailable(
            "hub: the 'datasets' package is missing: pip install datasets"
        ) from exc
    where = f"hub: {entry.describe()}"
    try:
        table = datasets.load_dataset(entry.dataset, entry.config, split=entry.split)
    except Exception as exc:
        # datasets raises many types (ConnectionError, FileNotFoundError, ValueError, ...);
        # all mean the same to the caller: this source cannot serve the entry.
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataUnavailable(f"{where}: {first_line[:300]}") from exc
    rows = ((where, number, dict(row)) for number, row in enumerate(table, start=1))
    return _items(entry, rows)


def _mirror(entry: Entry) -> list[Item]:
    assert entry.wheel is not None and entry.member is not None and entry.sha256 is not None
    wheel = find_wheel(entry.wheel)
    raw = read_member(wheel, entry.member, entry.sha256)
    where = f"mirror: {entry.wheel.filename}:{entry.member}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text ({exc.reason})") from exc
    items = _items(entry, _rows_from_lines(text.splitlines(), where))
    if entry.select is None:
        return items
    return _select(items, entry.select, where)


def _select(items: list[Item], hash_file: Path, where: str) -> list[Item]:
    wanted = {
        line.strip()
        for line in hash_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    chosen = [item for item in items if content_hash(item.question) in wanted]
    found = {content_hash(item.question) for item in chosen}
    if found != wanted or len(chosen) != len(wanted):
        raise DataError(
            f"{where}: {len(wanted - found)} of the {len(wanted)} hashes pinned in "
            f"{hash_file.name} not found ({len(chosen)} items matched)"
        )
    return chosen


def _load_entries(entries: Sequence[Entry], source: str, data_dir: Path | None) -> list[Item]:
    items: list[Item] = []
    for entry in entries:
        if source == "local":
            assert data_dir is not None
            items.extend(_local(entry, data_dir))
        elif source == "hub":
            items.extend(_hub(entry))
        else:
            items.extend(_mirror(entry))
    return assign_ids(items)


def _cache_path(config: TaskConfig, source: str) -> Path:
    spec = {
        "version": CACHE_VERSION,
        "source": source,
        "parts": [
            [(entry.describe(), entry.record, entry.sha256, entry.wheel and entry.wheel.sha256,
              entry.select and content_hash(entry.select.read_text(encoding="utf-8")))
             for entry in part.entries.get(source, ())]
            for part in (config.heldout, config.search) if part is not None
        ],
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir() / "items" / config.name / f"{source}-{key}.json"


def _read_cache(path: Path) -> Loaded | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION:
            return None
        search = data["search"]
        return Loaded(
            [Item.from_json(row) for row in data["heldout"]],
            None if search is None else [Item.from_json(row) for row in search],
            data["label"],
            data.get("why_no_search", ""),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # A damaged cache file is not the user's data: reload and overwrite it.
        _log.warning("ignoring unreadable item cache %s (%s)", path, exc)
        return None


def _write_cache(path: Path, loaded: Loaded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": CACHE_VERSION,
        "label": loaded.label,
        "why_no_search": loaded.why_no_search,
        "heldout": [item.to_json() for item in loaded.heldout],
        "search": None if loaded.search is None else [item.to_json() for item in loaded.search],
    }
    atomic_write_text(path, json.dumps(data, ensure_ascii=False))


def load_source(
    config: TaskConfig, source: str, data_dir: Path | None, *, use_cache: bool = True
) -> Loaded:
    """Load a task's held-out and search parts from one source.

    Args:
        config: the task's checked YAML.
        source: ``local``, ``hub`` or ``mirror``.
        data_dir: the local data folder (``local`` only).
        use_cache: read and write the item cache (``hub`` and ``mirror`` only).

    Raises:
        DataError: the source cannot serve the held-out part (the message says why).
    """
    heldout_entries = config.heldout.entries.get(source, ())
    if not heldout_entries:
        raise DataError(
            f"{source}: task {config.name!r} names no {source} entry for its held-out data"
        )
    cache = _cache_path(config, source) if use_cache and source != "local" else None
    if cache is not None:
        cached = _read_cache(cache)
        if cached is not None:
            return Loaded(cached.heldout, cached.search, f"{source} (cached)", cached.why_no_search)
    if source == "local" and data_dir is None:
        raise DataError(
            "local: no data folder given (pass a data directory or set HARNESS_DATA_DIR)"
        )
    if source == "hub":
        probe_hub()
    heldout = _load_entries(heldout_entries, source, data_dir)
    search, why = _load_search(config, source, data_dir)
    loaded = Loaded(heldout, search, source, why)
    failed_search = (
        search is None and config.search is not None and bool(config.search.entries.get(source))
    )
    if cache is not None and not failed_search:
        # A search part that failed to load is not cached, so the next load tries it again.
        _write_cache(cache, loaded)
    return loaded


def _load_search(
    config: TaskConfig, source: str, data_dir: Path | None
) -> tuple[list[Item] | None, str]:
    part = config.search
    entries = part.entries.get(source, ()) if part is not None else ()
    if part is None or not entries:
        return None, ""
    if source == "local":
        assert data_dir is not None
        # Search files are optional extras in the local layout: use those that exist.
        present = [entry for entry in entries if (data_dir / str(entry.path)).is_file()]
        if not present:
            return (
                None,
                f"no {part.label} at hand ({', '.join(str(e.path) for e in entries)} absent)",
            )
        return _load_entries(present, source, data_dir), ""
    try:
        return _load_entries(entries, source, data_dir), ""
    except DataError as exc:
        if source == "mirror":
            raise  # pinned files: a failure is a real fault, not a missing extra
        warnings.warn(
            f"{part.label} unavailable, using a seeded split instead: {exc}", stacklevel=3
        )
        return None, f"{part.label} unavailable from {source}"
