"""The CLI commands of the core: graph check, pools, and bad input handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import main
from harness.graph import Graph

FUSED = Graph.create(
    [(0, "1B", "assistant"), (1, "1B", "assistant"), (2, "3B", "fuser")],
    [(0, 2), (1, 2), (2, "output")],
    "3B",
)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_graph_check_text_file(tmp_path, capsys):
    path = tmp_path / "g.txt"
    path.write_text(FUSED.to_text())
    status, out, err = run(capsys, "graph", "check", str(path), "--task", "math", "--budget", "12")
    assert status == 0, err
    assert FUSED.replace_models({"1B": "llama-3.2-1b", "3B": "llama-3.2-3b"}).to_text() in out
    assert "13.30 units" in out
    assert "cap 79.15 units: fits" in out
    assert "latency estimate" in out


def test_graph_check_json_report(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(FUSED.to_json()))
    status, out, _ = run(capsys, "graph", "check", str(path), "--json", "--budget", "3")
    report = json.loads(out)
    assert status == 1  # 13.30 units is over the level-3 cap of 13.15
    assert report["fits"] is False
    assert report["flops_units"] == pytest.approx(13.3041143558)
    assert report["cap_units"] == pytest.approx(13.1453566845)
    assert (report["width"], report["depth"]) == (2, 2)


def test_graph_check_repair(tmp_path, capsys):
    path = tmp_path / "g.txt"
    path.write_text(FUSED.to_text())
    status, out, _ = run(capsys, "graph", "check", str(path), "--budget", "3", "--repair")
    assert status == 1
    # Level 3: 2x1B + 1x3B + the 3B output cost 8 > 3 + 3, so both 1B nodes go (smallest first).
    assert "# repaired (1 agent node):" in out
    assert "2 | llama-3.2-3b | assistant | in: - | out: output" in out


def test_graph_check_charges_the_output_node(tmp_path, capsys):
    # Twelve 1B agents into an 8B output node: inside the FLOPs cap, over the integer budget.
    nodes = [(i, "1B", "assistant") for i in range(12)]
    graph = Graph.create(nodes, [(i, "output") for i in range(12)], "8B")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph.to_json()))
    status, out, _ = run(capsys, "graph", "check", str(path), "--json", "--repair")
    report = json.loads(out)
    assert status == 1 and report["cap_fits"] is True and report["fits"] is False
    assert (report["combo_cost"], report["combo_budget"]) == (21, 15)
    assert "integer budget 15" in report["why_not"][0]
    assert len(report["repaired"]["nodes"]) == 6  # 6 + 9 = 15


def test_graph_check_reports_dropped_nodes(tmp_path, capsys):
    path = tmp_path / "g.txt"
    path.write_text(
        "0 | 1B | assistant | in: - | out: output\n"
        "1 | 8B | assistant | in: - | out: -\n"
        "output | 3B | output | in: 0 | out: -\n"
    )
    status, out, _ = run(capsys, "graph", "check", str(path))
    assert status == 0
    assert "dropped (no path to the output node): 1" in out


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        (
            "0 | 1B | fuser | in: - | out: output\noutput | 3B | output | in: 0 | out: -",
            [],
            "node 0: a fuser needs at least one assistant parent",
        ),
        ("{not json", [], "invalid JSON at line 1"),
        (
            "0 | 9B | assistant | in: - | out: output\noutput | 3B | output | in: 0 | out: -",
            [],
            "node 0: unknown model '9B'",
        ),
        (FUSED.to_text(), ["--task", "chess"], "unknown task 'chess'"),
        (FUSED.to_text(), ["--pool", "nope"], "unknown pool 'nope'"),
        (FUSED.to_text(), ["--budget", "0"], "--budget must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args, needle):
    path = tmp_path / "g.txt"
    path.write_text(content)
    status, _, err = run(capsys, "graph", "check", str(path), *args)
    assert status == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_and_unknown_command(capsys, tmp_path):
    status, _, err = run(capsys, "graph", "check", str(tmp_path / "absent.txt"))
    assert status == 2 and "absent.txt: cannot read" in err
    status, _, err = run(capsys, "frobnicate")
    assert status == 2 and "invalid choice" in err and err.count("\n") == 1


def test_pools_lists_models_with_call_costs(capsys):
    status, out, _ = run(capsys, "pools", "--json")
    rows = json.loads(out)
    assert status == 0
    by_short = {(r["pool"], r["short"]): r for r in rows}
    assert by_short[("llama3", "8B")]["combo_cost"] == 9
    assert by_short[("llama3", "8B")]["call_units"] == pytest.approx(7.938, abs=1e-3)
    assert by_short[("qwen2.5", "7B")]["combo_cost"] == 8
    status, out, _ = run(capsys, "pools", "qwen2.5", "--task", "humaneval")
    assert status == 0 and "qwen2.5-72b" in out and "llama" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["graph", "--help"],
        ["graph", "check", "--help"],
        ["tasks", "--help"],
        ["pools", "--help"],
    ],
)
def test_help_everywhere(argv):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "usage: harness" in proc.stdout


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "graph", "check", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("harness: error: ") and "Traceback" not in proc.stderr
