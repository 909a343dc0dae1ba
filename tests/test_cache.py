"""The shared call cache: keys, hits, concurrent writers, corrupt rows, export/import, the CLI."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import re
import sqlite3
import time
import traceback

import pytest

from harness.cache import CacheEntry, CallCache, call_key
from harness.cli import main
from harness.errors import ConfigError

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
PARAMS = {"temperature": 0.7, "max_tokens": 64}


def entry(i: int, dollars: float | None = 0.001) -> CacheEntry:
    return CacheEntry(f"reply {i} é", 10 + i, i, 0.25 * i, dollars)


def rows(n: int, start: int = 0) -> list[tuple[str, str, str, CacheEntry]]:
    return [
        (call_key("openai", "m", [], {}, str(i)), "openai", "m", entry(i))
        for i in range(start, start + n)
    ]


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_round_trip(tmp_path):
    path = tmp_path / "deep" / "calls.sqlite"
    with CallCache(path) as cache:
        assert cache.path == path
        data = [
            *rows(3),
            (call_key("anthropic", "c", [], {}, "0"), "anthropic", "c", entry(7, None)),
        ]
        cache.put_many(data)
        for key, _, _, original in data:
            assert cache.get(key) == original
    with CallCache(str(path)) as reopened:  # persisted, and a str path works
        assert reopened.get(data[0][0]) == data[0][3]
        assert reopened.get(data[3][0]).dollars is None


def test_int_latency_and_dollars_are_stored_as_floats(tmp_path):
    key = call_key("p", "m", [], {}, "0")
    with CallCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([(key, "p", "m", CacheEntry("x", 1, 2, 3, 4))])  # type: ignore[arg-type]
        got = cache.get(key)
        assert got == CacheEntry("x", 1, 2, 3.0, 4.0) and not cache.corrupt
        with pytest.raises(TypeError, match="prompt_tokens is bool"):
            cache.put_many([(key, "p", "m", CacheEntry("x", True, 2, 3.0, None))])


def test_key_depends_on_each_field_and_not_on_dict_order():
    base = call_key("openai", "gpt", MESSAGES, PARAMS, "0")
    assert len(base) == 64 and int(base, 16) >= 0
    variants = [
        call_key("anthropic", "gpt", MESSAGES, PARAMS, "0"),
        call_key("openai", "gpt-2", MESSAGES, PARAMS, "0"),
        call_key("openai", "gpt", [*MESSAGES, {"role": "user", "content": "3+3?"}], PARAMS, "0"),
        call_key("openai", "gpt", [MESSAGES[1], MESSAGES[0]], PARAMS, "0"),
        call_key("openai", "gpt", MESSAGES, {**PARAMS, "temperature": 0.8}, "0"),
        call_key("openai", "gpt", MESSAGES, {"temperature": 0.7}, "0"),
        call_key("openai", "gpt", MESSAGES, PARAMS, "1"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    reordered_messages = [dict(reversed(list(m.items()))) for m in MESSAGES]
    reordered_params = dict(reversed(list(PARAMS.items())))
    assert call_key("openai", "gpt", reordered_messages, reordered_params, "0") == base
    assert call_key("openai", "gpt", tuple(MESSAGES), PARAMS, "0") == base


def test_key_is_fast():
    messages = [{"role": "user", "content": "x" * 2000}]
    start = time.perf_counter()
    for i in range(2000):
        call_key("openai", "gpt", messages, PARAMS, str(i))
    assert time.perf_counter() - start < 0.2  # >10,000 keys/s with room for a slow machine


def test_get_many_hits_and_misses(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        stored = rows(1200)  # more than one IN (...) chunk
        cache.put_many(stored[::2])
        keys = [key for key, *_ in stored]
        found = cache.get_many([*keys, keys[0]])
        assert set(found) == set(keys[::2])
        assert all(found[key] == e for key, _, _, e in stored[::2])
        assert cache.get_many([]) == {}
        assert cache.get("f" * 64) is None


def test_first_writer_wins(tmp_path):
    key = call_key("p", "m", [], {}, "0")
    with CallCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([(key, "p", "m", entry(1))])
        cache.put_many([(key, "p", "m", entry(2))])
        assert cache.get(key) == entry(1)


def _writer(path: str, worker: int, barrier, errors) -> None:
    try:
        barrier.wait()
        with CallCache(path) as cache:
            # 40 keys shared by every worker (in a different order each) and 40 of its own.
            shared = rows(40)[worker::1] + rows(40)[:worker]
            own = rows(40, start=1000 + 100 * worker)
            for batch in range(8):
                cache.put_many(shared[batch * 5 : batch * 5 + 5] + own[batch * 5 : batch * 5 + 5])
                cache.get_many([key for key, *_ in shared])
            if cache.corrupt:
                errors.put(f"worker {worker}: corrupt {cache.corrupt}")
    except BaseException:
        errors.put(f"worker {worker}: {traceback.format_exc()}")
        raise


def test_four_processes_write_one_new_file(tmp_path):
    path = tmp_path / "shared" / "calls.sqlite"
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_writer, args=(str(path), w, barrier, errors)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == [] and [w.exitcode for w in workers] == [0, 0, 0, 0]
    raw = sqlite3.connect(path)
    counts = raw.execute("SELECT count(*), count(DISTINCT key) FROM calls").fetchone()
    raw.close()
    assert counts == (40 + 4 * 40, 40 + 4 * 40)
    with CallCache(path) as cache:
        expected = rows(40) + [r for w in range(4) for r in rows(40, start=1000 + 100 * w)]
        found = cache.get_many([key for key, *_ in expected])
        assert found == {key: e for key, _, _, e in expected}


def _corrupt_one(path, key: str) -> None:
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE calls SET reply = 'tampered' WHERE key = ?", (key,))
    raw.close()


def test_corrupt_row_is_reported_never_served_and_replaced_by_a_put(tmp_path):
    path = tmp_path / "c.sqlite"
    stored = rows(3)
    bad_key = stored[1][0]
    with CallCache(path) as cache:
        cache.put_many(stored)
    _corrupt_one(path, bad_key)
    with CallCache(path) as cache:
        found = cache.get_many([key for key, *_ in stored])
        assert bad_key not in found and len(found) == 2
        assert cache.get(bad_key) is None
        assert cache.corrupt == [(bad_key, "checksum mismatch")]  # recorded once
        assert cache.stats()["corrupt"] == 1
        assert cache.stats()["entries"] == 2
        cache.put_many([stored[1]])  # the call was made again: its fresh reply replaces the bad row
        assert cache.get(bad_key) == stored[1][3]
        assert cache.stats()["corrupt"] == 0


def test_wrong_type_row_is_corrupt(tmp_path):
    path = tmp_path / "c.sqlite"
    stored = rows(2)
    with CallCache(path) as cache:
        cache.put_many(stored)
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE calls SET prompt_tokens = 'many' WHERE key = ?", (stored[0][0],))
    raw.close()
    with CallCache(path) as cache:
        assert cache.get(stored[0][0]) is None
        assert cache.corrupt == [(stored[0][0], "prompt_tokens is str")]


def test_non_database_files_are_one_line_config_errors(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, not a database " * 100)
    with pytest.raises(ConfigError, match="not a harness call cache") as caught:
        CallCache(text)
    assert str(text) in str(caught.value) and "\n" not in str(caught.value)

    other = tmp_path / "other.sqlite"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE t (x)")
    raw.close()
    with pytest.raises(ConfigError, match="another SQLite database"):
        CallCache(other)

    with CallCache(tmp_path / "old.sqlite"):
        pass
    raw = sqlite3.connect(tmp_path / "old.sqlite")
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(ConfigError, match="schema version 99, expected 1"):
        CallCache(tmp_path / "old.sqlite")
    with pytest.raises(ConfigError, match="does not exist"):
        CallCache(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(ConfigError, match="cannot open"):
        CallCache(tmp_path)  # a folder


def test_stats(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(rows(3))
        cache.put_many([(call_key("x", "y", [], {}, "0"), "x", "y", entry(5, None))])
        stats = cache.stats()
    assert stats["entries"] == 4 and stats["corrupt"] == 0 and stats["bytes"] > 0
    by_model = {(m["provider"], m["model"]): m for m in stats["models"]}
    openai = by_model["openai", "m"]
    assert (openai["entries"], openai["prompt_tokens"], openai["output_tokens"]) == (3, 33, 3)
    assert openai["dollars"] == pytest.approx(0.003)
    assert openai["latency_s"] == pytest.approx(0.75)
    assert by_model["x", "y"]["dollars"] is None


@pytest.mark.parametrize("name", ["calls.jsonl", "calls.jsonl.gz"])
def test_export_import_round_trip(tmp_path, name):
    source = CallCache(tmp_path / "a.sqlite")
    stored = rows(5)
    source.put_many(stored)
    _corrupt_one(source.path, stored[4][0])
    target_file = tmp_path / "out" / name
    assert source.export(target_file) == 4
    assert [key for key, _ in source.corrupt] == [stored[4][0]]
    source.close()
    if name.endswith(".gz"):
        assert target_file.read_bytes()[:2] == b"\x1f\x8b"
        lines = gzip.decompress(target_file.read_bytes()).decode().splitlines()
    else:
        lines = target_file.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "harness-call-cache", "version": 1, "entries": 4}
    with CallCache(tmp_path / "b.sqlite") as target:
        assert target.import_(target_file) == (4, 0)
        assert target.import_(target_file) == (0, 4)
        found = target.get_many([key for key, *_ in stored])
        assert found == {key: e for key, _, _, e in stored[:4]}


def test_import_of_a_malformed_file_imports_nothing(tmp_path):
    with CallCache(tmp_path / "a.sqlite") as source:
        source.put_many(rows(3))
        good = tmp_path / "good.jsonl"
        source.export(good)
    lines = good.read_text().splitlines()
    cases = {
        "bad-json": ([*lines[:2], "{not json", *lines[3:]], ":3: "),
        "bad-type": (
            [*lines[:3], re.sub(r'"output_tokens": \d+', '"output_tokens": "2"', lines[3])],
            ":4: output_tokens is str",
        ),
        "edited": ([*lines[:2], lines[2].replace('"reply ', '"reply X')], ":3: checksum mismatch"),
        "header": (['{"format": "other"}', *lines[1:]], ":1: expected a harness-call-cache header"),
        "count": (lines[:3], "header says 3 entries, the file has 2"),
        "empty": ([], ":1: empty file"),
    }
    with CallCache(tmp_path / "b.sqlite") as target:
        for name, (content, message) in cases.items():
            bad = tmp_path / f"{name}.jsonl"
            bad.write_text("".join(f"{line}\n" for line in content))
            with pytest.raises(ConfigError, match=message) as caught:
                target.import_(bad)
            assert str(bad) in str(caught.value), name
            assert target.stats()["entries"] == 0, name
        with pytest.raises(ConfigError, match="cannot read"):
            target.import_(tmp_path / "missing.jsonl")


def test_cli_stats_export_import(tmp_path, capsys, monkeypatch):
    path = tmp_path / "c.sqlite"
    with CallCache(path) as cache:
        cache.put_many(rows(2))
    status, out, err = run(capsys, "cache", "stats", "--cache", str(path))
    assert status == 0, err
    assert "2 entries" in out and "openai" in out and "0.0020" in out
    monkeypatch.setenv("HARNESS_CALL_CACHE", str(path))  # the default when --cache is not given
    status, out, err = run(capsys, "cache", "stats", "--json")
    assert status == 0 and json.loads(out)["entries"] == 2

    exported = tmp_path / "calls.jsonl.gz"
    status, out, err = run(capsys, "cache", "export", str(exported))
    assert status == 0 and out.strip() == f"exported 2 entries from {path} to {exported}"
    fresh = tmp_path / "fresh.sqlite"
    status, out, err = run(capsys, "cache", "import", str(exported), "--cache", str(fresh))
    assert status == 0 and "2 added, 0 already present" in out

    _corrupt_one(path, rows(1)[0][0])
    status, out, err = run(capsys, "cache", "export", str(tmp_path / "again.jsonl"))
    assert status == 0 and "exported 1 entries" in out
    assert "warning" in err and "1 corrupt row" in err


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"\x00garbage" * 64)
    for argv in (["stats"], ["export", str(tmp_path / "x.jsonl")], ["import", str(tmp_path / "x")]):
        status, out, err = run(capsys, "cache", *argv, "--cache", str(broken))
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"harness: error: {broken}: not a harness call cache")
    status, out, err = run(capsys, "cache", "stats", "--cache", str(tmp_path / "none.sqlite"))
    assert status == 2 and "does not exist" in err
    assert not (tmp_path / "none.sqlite").exists()
