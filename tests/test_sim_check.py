"""The sim's stated error: every anchor of tasks/sim/llama3.anchors.yaml, each tolerance asserted.

The anchors are measured on the pinned mirror's data (the paper's splits, the data of the
official protocol and of docs/sim.md's table), as ``harness sim check --source mirror`` does;
the README's test command fetches it. Five anchors are known misses (docs/sim.md, "Where the
sim and the paper disagree"): four of the paper's pilot figures, which the literature's
held-out anchors and the paper cannot both meet, and one held-out anchor that shows what
coming near them costs. They are strict expected failures, so that a refit that meets them
must say so here.
"""

from __future__ import annotations

import json

import pytest
import yaml

from harness.cli import main
from harness.errors import ConfigError
from harness.pool import load_pool
from harness.sim import SimBackend
from harness.sim._check import CHECKS, check_anchors, load_anchors, shaped_graph
from harness.tasks import load_task

TASKS = ("math", "gsm8k", "mmlu", "humaneval")
ANCHORS = load_anchors("llama3")

KNOWN_MISSES = {
    "math.combo.3x3B": "the paper's +14 over one 3B from four 3B calls exceeds every held-out "
    "voting and self-review anchor (docs/sim.md)",
    "math.combo.order": "follows from math.combo.3x3B: 3x3B is not above 1x8B",
    "mmlu.combo.2x3B+3x1B": "the paper's 45 (above one 3B, 43) needs 1B models to help a 3B "
    "vote; Wang et al. Table 12 and Kim et al. 2025 find mixed-in weaker models drag it down",
    "mmlu.combo.order": "follows from mmlu.combo.2x3B+3x1B: it is not above 3x3B",
    # Held out: the fit pushes MATH's voting to the top of its fitted range to come near the
    # paper's pilot; this anchor shows the cost (docs/sim.md).
    "math.optimum.gain": "MATH's optimum gains 11.7 over its best member with nine calls, "
    "above the bound of 10 from the self-consistency evidence",
}


@pytest.fixture(scope="module")
def verdicts():
    pool = load_pool("llama3")
    out = {}
    for name in TASKS:
        task = load_task(name)
        items = task.load(source="mirror").heldout
        backend = SimBackend()
        backend.bind(task, pool, items=items)
        for verdict in check_anchors(task, pool, items, ANCHORS, backend=backend):
            out[verdict.anchor.id] = verdict
    return out


@pytest.mark.parametrize(
    "anchor_id",
    [
        pytest.param(
            a.id,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[a.id])
            if a.id in KNOWN_MISSES
            else (),
        )
        for a in ANCHORS
    ],
)
def test_every_anchor_holds_within_its_tolerance(anchor_id, verdicts):
    verdict = verdicts[anchor_id]
    a = verdict.anchor
    assert verdict.passed, f"{a.id}: sim {verdict.value:.2f}, wanted {a.wanted} ({a.source})"


def test_every_task_has_anchors_in_sample_and_held_out():
    for name in TASKS:
        mine = [a for a in ANCHORS if a.task == name]
        assert any(a.fitted for a in mine), name
        assert any(not a.fitted for a in mine), name
    # Every mechanism docs/sim.md names has held-out evidence.
    held_out = {a.id.split(".")[1] for a in ANCHORS if not a.fitted}
    assert {"vote", "self_review", "optimum", "insight"} <= held_out, held_out


def test_a_near_oracle_reader_would_fail_the_held_out_anchors(tmp_path):
    """The anchors can fail: a reader that always spots the right answer breaks them."""
    from harness.sim._params import _Reader, sim_dir

    data = yaml.safe_load((sim_dir() / "llama3.yaml").read_text(encoding="utf-8"))
    data["tasks"]["humaneval"]["reading"]["discern"] = 5.0
    data["tasks"]["humaneval"]["reading"]["self_bias"] = 0.0
    params = _Reader(sim_dir() / "llama3.yaml").sim(data, "llama3")
    task, pool = load_task("humaneval"), load_pool("llama3")
    items = task.load().heldout
    backend = SimBackend(params=params)
    backend.bind(task, pool, items=items)
    mine = [a for a in ANCHORS if a.id in ("humaneval.select.3B", "humaneval.weak_to_strong")]
    found = check_anchors(task, pool, items, mine, backend=backend)
    assert found and not any(v.passed for v in found), [(v.anchor.id, v.value) for v in found]


def test_shaped_graphs():
    fan = shaped_graph({"fan": ["1B", "1B", "3B"], "output": "8B"})
    assert (fan.width, fan.depth, fan.output_model) == (3, 1, "8B")
    chain = shaped_graph({"chain": ["3B"] * 4, "output": "3B"})
    assert (chain.width, chain.depth) == (1, 4)
    with pytest.raises(ConfigError, match="fan\\|chain"):
        shaped_graph({"ring": ["3B"], "output": "3B"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("anchors: 3\n", "list 'anchors'"),
        ("anchors:\n- {id: a, task: math, measure: {guess: 1}, check: within, target: 1,"
         " source: s}\n", "field 'measure'"),
        ("anchors:\n- {id: a, task: math, measure: {combo: 3x3B}, check: roughly, target: 1,"
         " source: s}\n", "field 'check'"),
        ("anchors:\n- {id: a, task: math, measure: {combo: 3x3B}, check: between, range: [3, 1],"
         " source: s}\n", "field 'range'"),
        ("anchors:\n- {id: a, task: math, measure: {combo: 3x3B}, check: within, target: x,"
         " source: s}\n", "field 'target'"),
        ("anchors:\n- {id: a, task: math, measure: {combo: 3x3B}, check: within, source: s}\n",
         "missing field 'target'"),
        ("anchors:\n- {id: a, task: math, measure: {gain: [{fan: [3B], output: 3B}]},"
         " check: at_most, target: 1, source: s}\n", "field 'measure.gain'"),
        ("anchors:\n- {id: a, task: math, measure: {shape: {model: 1B, insight: wide}},"
         " check: at_least, target: 1, source: s}\n", "field 'measure.shape'"),
    ],
)  # fmt: skip
def test_bad_anchor_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "x.anchors.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_anchors("llama3", path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_the_checks_are_the_documented_ones():
    assert {a.check for a in ANCHORS} <= set(CHECKS)


def test_sim_check_cli_json_and_exit_status(capsys):
    status = main(["sim", "check", "--task", "gsm8k", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == {a.id for a in ANCHORS if a.task == "gsm8k"}
    assert {"wanted", "value", "error", "passed", "fitted", "source"} <= set(rows[0])
    assert status == (0 if all(r["passed"] for r in rows) else 1)


def test_sim_check_cli_text_names_fitted_and_held_out(capsys):
    main(["sim", "check", "--task", "gsm8k"])
    out = capsys.readouterr().out
    assert "fitted:" in out and "held out:" in out and "gsm8k.vote.3B" in out


@pytest.mark.parametrize("argv", [["--pool", "qwen2.5"], ["--task", "chess"], ["--seed", "x"]])
def test_sim_check_bad_input_is_one_line(argv, capsys):
    assert main(["sim", "check", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_stale_optimum_is_refused_in_one_line(tmp_path, monkeypatch):
    import harness.sim._optimum_data as data

    shipped = data.load_optimum("llama3", "gsm8k")
    stale = data.Optimum(**{**shipped.__dict__, "cache_key": "sim:0000:gsm8k:old"})
    path = tmp_path / "llama3.json"
    data.save_optimum(stale, path)
    monkeypatch.setattr(data, "optimum_path", lambda pool: path)
    task, pool = load_task("gsm8k"), load_pool("llama3")
    items = task.load().heldout[:200]
    mine = [a for a in ANCHORS if a.id == "gsm8k.optimum.gain"]
    with pytest.raises(ConfigError, match="regenerate it: harness sim optimum --task gsm8k"):
        check_anchors(task, pool, items, mine)
