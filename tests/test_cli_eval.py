"""``harness eval`` end to end, offline, on real items from the data folder."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.graph import from_json
from harness.trace import read_trace


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_eval_random_on_math_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run(
        capsys, "eval", "--method", "random", "--task", "math", "--seeds", "3", "--out", str(out)
    )
    assert status == 0, err
    assert "held-out accuracy:" in stdout and "95% bootstrap CI" in stdout
    assert "FLOPs units per question" in stdout and "latency" in stdout
    assert "question evaluations used: 40 of 40" in stdout
    # The found graph in its text form: one line per node, the output node last.
    graph_lines = [line for line in stdout.splitlines() if line.count(" | ") == 4]
    assert graph_lines and graph_lines[-1].startswith("output | ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "random" and summary["task"] == "math"
    assert summary["backend"] == "sim" and summary["agent"] is None
    assert summary["seeds"] == [0, 1, 2]
    acc = summary["heldout_accuracy"]
    assert acc["low"] <= acc["mean"] <= acc["high"]
    assert [p["evals_used"] for p in summary["curve"]] == [6, 12, 18, 24, 30, 36, 40]
    for seed in (0, 1, 2):
        records = read_trace(out / "studies" / f"seed-{seed}" / "trace.jsonl")
        assert records[0]["type"] == "start" and records[-1]["type"] == "final"
        assert (out / "studies" / f"seed-{seed}" / "manifest.json").is_file()
    for name in ("curve.png", "curve.svg"):
        assert (out / name).stat().st_size > 1000
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "curve.svg").read_bytes()[:2000]
    found = from_json(summary["studies"][0]["graph"])
    assert found.id == summary["studies"][0]["graph_id"]


def test_eval_json_and_budget_and_options(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, _ = run(
        capsys, "eval", "--method", "parallel", "--task", "mmlu", "--seeds", "2", "--budget", "9",
        "--option", "width=2", "--option", "model=3B", "--out", str(out), "--json",
    )  # fmt: skip
    assert status == 0
    summary = json.loads(stdout)
    assert summary["evals_used"] == 9
    assert summary["method_options"]["width"] == 2
    graph = from_json(summary["studies"][0]["graph"])
    assert graph.width == 2 and set(graph.model_counts()) == {"llama-3.2-3b"}
    assert summary["refusals"] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "nope", "--task", "math"], "unknown method 'nope'"),
        (["--method", "random", "--task", "chess"], "unknown task 'chess'"),
        (["--method", "random", "--task", "math", "--backend", "cloud"], "unknown backend 'cloud'"),
        (["--method", "random", "--task", "math", "--backend", "live"], "says nothing about how"),
        (["--method", "random", "--task", "math", "--budget", "0"], "--budget must be a positive"),
        (["--method", "random", "--task", "math", "--budget", "-5"], "--budget must be a positive"),
        (["--method", "random", "--task", "math", "--seeds", "0"], "--seeds must be between 1"),
        (["--method", "random", "--task", "math", "--seeds", "5000"], "--seeds must be between 1"),
        (["--method", "random", "--task", "math", "--seed-start", "-1"], "--seed-start"),
        (["--method", "random", "--task", "math", "--option", "colour=red"], "bad options"),
        (["--method", "random", "--task", "math", "--option", "oops"], "expected KEY=VALUE"),
        (["--method", "random", "--task", "math", "--protocol", "tiny"], "unknown protocol 'tiny'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    status, stdout, err = run(capsys, "eval", *args, "--out", str(out))
    assert status == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert stdout == ""
    assert not out.exists()


def test_unwritable_or_used_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    status, _, err = run(
        capsys, "eval", "--method", "random", "--task", "math", "--out", str(blocker / "run")
    )
    assert status == 2 and "is not a writable folder" in err
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    status, _, err = run(capsys, "eval", "--method", "random", "--task", "math", "--out", str(used))
    assert status == 2 and "folder is not empty" in err
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]


def test_methods_lists_the_builtins(capsys):
    status, out, _ = run(capsys, "methods")
    assert status == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"random", "parallel", "chain"} <= set(names)
    assert all(len(line.split(None, 2)) == 3 for line in out.splitlines())
