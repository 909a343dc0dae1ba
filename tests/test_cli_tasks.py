"""``harness tasks``: listing, sources, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.cli import main

DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"])


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_lists_every_task_from_the_local_folder(capsys):
    status, out, err = run(capsys, "tasks", "--data-dir", str(DATA_DIR), "--json")
    assert status == 0, err
    rows = {row["task"]: row for row in json.loads(out)}
    assert set(rows) == {"math", "gsm8k", "mmlu", "humaneval"}
    assert {name: (r["search"], r["heldout"]) for name, r in rows.items()} == {
        "math": (200, 300),
        "gsm8k": (300, 1019),
        "mmlu": (300, 13742),
        "humaneval": (131, 33),
    }
    assert all(r["source"] == "local" for r in rows.values())
    assert rows["math"]["lengths"] == [202, 275]


def test_table_names_the_source(capsys):
    status, out, _ = run(capsys, "tasks", "humaneval", "--data-dir", str(DATA_DIR))
    assert status == 0
    header, row = out.splitlines()
    assert "source" in header and "local" in row and "131" in row and "33" in row


def test_a_broken_local_file_is_an_error_not_a_fall_through(tmp_path, capsys):
    (tmp_path / "math500").mkdir()
    (tmp_path / "math500" / "test.jsonl").write_text('{"problem": "1+1", "answer": "2"\n')
    status, out, err = run(capsys, "tasks", "math", "--data-dir", str(tmp_path))
    assert status == 2
    assert out == ""  # nothing half-written
    assert f"{tmp_path}/math500/test.jsonl:1: not valid JSON" in err
    assert err.count("\n") == 1


def test_missing_dataset_with_only_the_local_source(tmp_path, capsys):
    status, out, err = run(
        capsys, "tasks", "gsm8k", "--data-dir", str(tmp_path), "--source", "local"
    )
    assert status == 2 and out == ""
    assert "gsm8k/test.jsonl: file not found" in err


def test_unknown_task_and_source(capsys):
    status, _, err = run(capsys, "tasks", "chess")
    assert status == 2 and "unknown task 'chess'" in err and "gsm8k" in err
    status, _, err = run(capsys, "tasks", "--source", "ftp")
    assert status == 2 and "invalid choice: 'ftp'" in err
