"""``harness graph eval``: a graph scored on the held-out split, offline on ``sim``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.backends import Batch, EvalContext, get_backend
from harness.cli import main
from harness.executor import run_graph
from harness.graph import Graph
from harness.pool import load_pool
from harness.tasks import load_task

FUSED = Graph.create(
    [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
    [(0, 2), (1, 2), (2, "output")],
    "3B",
)
KEYS = {
    "id", "text", "task", "backend", "pool", "epochs", "accuracy", "stderr", "per_epoch",
    "flops_units", "latency_s", "level", "cap_units", "combo_cost", "combo_budget", "fits",
    "why_not",
}  # fmt: skip


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def fused_file(tmp_path):
    path = tmp_path / "fused.txt"
    path.write_text(FUSED.to_text())
    return path


def parallel(n, model, output):
    nodes = [(i, model, "assistant") for i in range(n)]
    return Graph.create(nodes, [(i, "output") for i in range(n)], output)


def test_a_three_node_graph_on_math_sim(fused_file, capsys):
    argv = ("graph", "eval", str(fused_file), "--task", "math", "--epochs", "5", "--json")
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    report = json.loads(out)
    assert set(report) >= KEYS
    assert (report["task"], report["backend"], report["pool"]) == ("math", "sim", "llama3")
    assert report["epochs"] == 5 and len(report["per_epoch"]) == 5
    assert 0 <= report["accuracy"] <= 1 and all(0 <= a <= 1 for a in report["per_epoch"])
    assert report["accuracy"] == pytest.approx(np.mean(report["per_epoch"]))
    # The standard error: the sample sd of the per-epoch accuracies over sqrt(epochs).
    assert report["stderr"] > 0
    assert report["stderr"] == pytest.approx(np.std(report["per_epoch"], ddof=1) / math.sqrt(5))
    assert report["flops_units"] == pytest.approx(13.3041143558)
    assert report["cap_units"] == pytest.approx(79.1459593236)
    assert (report["level"], report["combo_cost"], report["combo_budget"]) == (12, 8, 15)
    assert report["fits"] is True and report["why_not"] == []
    assert report["latency_s"] > 0 and report["text"].endswith("in: 2 | out: -")
    # Deterministic for a seed: the same report twice; another seed draws other answers.
    assert run(capsys, *argv)[1] == out
    other = json.loads(run(capsys, *argv, "--seed", "7")[1])
    assert other["per_epoch"] != report["per_epoch"]


def test_human_output_is_a_few_aligned_lines(fused_file, capsys):
    status, out, err = run(capsys, "graph", "eval", str(fused_file), "--task", "math")
    assert status == 0, err
    lines = out.splitlines()
    resolved = load_pool("llama3").resolve(FUSED)
    assert lines[0].startswith(f"# graph {resolved.id}: 3 agent nodes + output, width 2, depth 2")
    assert "accuracy: " in out and "(standard error over 20 epochs)" in out  # sim's default
    assert "FLOPs:    13.30 units per question (cap 79.15 at budget level 12)" in out
    assert "integer:  8 of 15 (output node included)" in out
    assert lines[-1] == "fits:     yes"
    assert run(capsys, "graph", "eval", str(fused_file), "--task", "math")[1] == out


def test_one_epoch_has_no_standard_error(fused_file, capsys):
    argv = ("graph", "eval", str(fused_file), "--task", "math", "--epochs", "1")
    status, out, _ = run(capsys, *argv, "--json")
    assert status == 0 and json.loads(out)["stderr"] is None
    assert "(1 epoch: no standard error)" in run(capsys, *argv)[1]


def test_the_epochs_are_the_executors_epochs(fused_file, capsys):
    # Epoch e is EvalContext(seed, e) on the whole held-out split, as a study scores it.
    task, pool = load_task("math"), load_pool("llama3")
    backend = get_backend("sim")
    backend.bind(task, pool)
    batch = Batch(task.load().heldout, "heldout")
    expected = [
        run_graph(FUSED, batch, backend, task, pool, EvalContext(3, epoch)).accuracy
        for epoch in range(2)
    ]
    argv = ("graph", "eval", str(fused_file), "--task", "math", "--epochs", "2", "--seed", "3")
    report = json.loads(run(capsys, *argv, "--json")[1])
    assert report["per_epoch"] == pytest.approx(expected)
    assert report["heldout_items"] == len(batch)


def test_heldout_size_scores_the_protocols_subset(fused_file, capsys):
    argv = ("graph", "eval", str(fused_file), "--task", "math", "--epochs", "2", "--json")
    report = json.loads(run(capsys, *argv, "--heldout-size", "40")[1])
    assert report["heldout_items"] == 40
    everything = json.loads(run(capsys, *argv, "--heldout-size", "100000")[1])
    assert everything["heldout_items"] == len(load_task("math").load().heldout)


def test_a_graph_over_the_budget_is_reported_not_refused(tmp_path, capsys):
    # Twelve 1B agents into an 8B output node fit the FLOPs cap (78.23 of 79.15 units) but not
    # the integer budget, where the output node pays too: 12 + 9 > 12 + 3.
    loophole = tmp_path / "loophole.json"
    loophole.write_text(json.dumps(parallel(12, "1B", "8B").to_json()))
    argv = ("graph", "eval", str(loophole), "--task", "math", "--epochs", "3", "--json")
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    report = json.loads(out)
    assert report["fits"] is False and report["flops_units"] < report["cap_units"]
    assert (report["combo_cost"], report["combo_budget"]) == (21, 15)
    assert len(report["why_not"]) == 1 and "integer budget 15" in report["why_not"][0]
    assert 0 <= report["accuracy"] <= 1
    # Over the cap and the node limit too: every reason, in the human form as well.
    huge = tmp_path / "huge.txt"
    huge.write_text(parallel(13, "8B", "8B").to_text())
    status, out, _ = run(capsys, "graph", "eval", str(huge), "--task", "math", "--epochs", "2")
    assert status == 0
    assert "fits:     no (a study would refuse it):" in out
    assert "- 13 agent nodes, more than the space's max_nodes=12" in out
    assert "over the cap of 79.15" in out and "integer budget 15" in out


def test_help_says_live_epochs_may_cost_money():
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "graph", "eval", "--help"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "usage: harness graph eval" in proc.stdout
    assert "may cost money" in " ".join(proc.stdout.split())


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        ("{not json", [], "bad.txt: invalid JSON at line 1"),
        (b"\xff\xfe0 | 1B", [], "bad.txt: not UTF-8 text"),
        (
            "0 | 9B | assistant | in: - | out: output\noutput | 3B | output | in: 0 | out: -",
            [],
            "bad.txt: node 0: unknown model '9B'",
        ),
        (
            "0 | 1B | fuser | in: - | out: output\noutput | 3B | output | in: 0 | out: -",
            [],
            "node 0: a fuser needs at least one assistant parent",
        ),
        (FUSED.to_text(), ["--epochs", "0"], "--epochs must be between 1 and 10000, got 0"),
        (FUSED.to_text(), ["--epochs", "100000"], "--epochs must be between 1 and 10000"),
        (FUSED.to_text(), ["--epochs", "many"], "argument --epochs: invalid int value"),
        (FUSED.to_text(), ["--budget", "0"], "--budget must be a positive integer"),
        (FUSED.to_text(), ["--seed", "-1"], "--seed must be between 0 and"),
        (FUSED.to_text(), ["--pool", "nope"], "unknown pool 'nope'"),
        (FUSED.to_text(), ["--backend", "cloud"], "unknown backend 'cloud'"),
        (FUSED.to_text(), ["--heldout-size", "0"], "--heldout-size must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, monkeypatch, content, args, needle
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    status, out, err = run(capsys, "graph", "eval", str(path), "--task", "math", *args)
    assert status == 2
    assert needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["bad.txt"]


def test_unknown_task_and_missing_file(tmp_path, fused_file, capsys):
    status, _, err = run(capsys, "graph", "eval", str(fused_file), "--task", "chess")
    assert status == 2 and "unknown task 'chess'" in err and err.count("\n") == 1
    status, _, err = run(capsys, "graph", "eval", str(tmp_path / "absent.txt"), "--task", "math")
    assert status == 2 and "absent.txt: cannot read" in err and err.count("\n") == 1
