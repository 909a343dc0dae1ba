"""``harness pilot``: tables end to end, plots, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from harness.backends import get_backend
from harness.cli import main
from harness.graph import OUTPUT
from harness.pilot import PAPER_COMBOS, chain_graph, layered_graph, parallel_graph, run_pilot
from harness.pool import load_pool
from harness.tasks import load_task


@pytest.fixture(scope="module")
def math_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pilot") / "math"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["pilot", "--task", "math", "--json", "--out", str(out)])
    return status, json.loads(buffer.getvalue()), out


def test_pilot_json_end_to_end(math_run):
    status, tables, _ = math_run
    assert status == 0
    assert tables["task"] == "math" and tables["backend"] == "sim"
    assert [r["short"] for r in tables["single"]] == ["1B", "3B", "8B", "70B"]
    assert [r["paper"] for r in tables["single"]] == [31, 40, 49, 68]
    assert [r["combo"] for r in tables["combos"]] == list(PAPER_COMBOS)
    assert all(isinstance(r["accuracy"], float) for r in tables["combos"])
    assert set(tables["width"]) == {"1B", "3B"} and len(tables["width"]["1B"]) == 8
    assert len(tables["grid"]["3B"]) == 6 and len(tables["grid"]["3B"][0]) == 6
    assert tables["settings"]["graphs"] == 32 and tables["settings"]["edge_prob"] == 0.5


def test_pilot_writes_png_and_svg(math_run):
    _, tables, out = math_run
    for name in ("models", "sweeps", "grid"):
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:1000]
    assert json.loads((out / "pilot.json").read_text())["combos"] == tables["combos"]


def test_pilot_prints_the_table_beside_the_paper(tmp_path, capsys):
    status = main(
        [
            "pilot",
            "--task",
            "mmlu",
            "--combos",
            "1x8B,3x3B",
            "--graphs",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    text = capsys.readouterr().out
    assert status == 0
    assert "measured" in text and "paper" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("1x8B"))
    assert line.split()[2] == "64"  # the paper's number beside the measured one


def test_pilot_is_deterministic_per_seed():
    task, pool = load_task("math"), load_pool("llama3")
    items = task.load().heldout
    backend = get_backend("sim")
    backend.bind(task, pool)
    kwargs = dict(graphs=3, min_evals=300, sweep=(1, 2, 3), grid=(1, 2))
    first = run_pilot(task, pool, backend, items, seed=5, **kwargs)
    assert run_pilot(task, pool, backend, items, seed=5, **kwargs) == first
    assert run_pilot(task, pool, backend, items, seed=6, **kwargs) != first


@pytest.mark.parametrize("combos", ["3x3B,2xQB", "3x3B,bogus", "0x3B", "3x3B,,x", "", "3y3B"])
def test_bad_combos_exit_2_in_one_line(combos, tmp_path, capsys):
    status = main(["pilot", "--task", "math", "--combos", combos, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("harness: error:") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "unknown task"),
        (["--task", "math", "--backend", "nope"], "unknown backend"),
        (["--task", "math", "--pool", "nope"], "unknown pool"),
        (["--task", "math", "--graphs", "0"], "--graphs"),
    ],
)
def test_bad_arguments_exit_2(args, message, tmp_path, capsys):
    status = main(["pilot", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_unwritable_out_exits_2_with_nothing_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    for out in (blocker, blocker / "sub"):
        status = main(["pilot", "--task", "math", "--out", str(out)])
        err = capsys.readouterr().err
        assert status == 2 and "--out" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert blocker.read_text() == "keep me"


def test_the_sweep_graphs_have_the_stated_shape():
    assert (parallel_graph("1B", 5).width, parallel_graph("1B", 5).depth) == (5, 1)
    assert (chain_graph("1B", 4).width, chain_graph("1B", 4).depth) == (1, 4)
    layered = layered_graph("3B", 3, 4)
    assert (layered.width, layered.depth, layered.in_degree(OUTPUT)) == (3, 4, 3)
    # Every node past the first layer reads the whole layer before it.
    assert all(layered.in_degree(n) == 3 for n in range(3, 12))
