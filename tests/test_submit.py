"""``harness submit`` and ``harness validate`` end to end; the template method's conformance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.study
from harness.bundle import load_bundle
from harness.cli import main
from harness.testing import MethodConformance
from harness.trace import read_trace

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_SPEC = "leaderboard/template_method.py:TemplateSearch"
TINY = """name: tiny
question_evals: 6
batch_size: 3
budget_level: 12
max_nodes: 12
checkpoint_every: 3
heldout_size: 50
seeds: 2
pool: llama3
tasks: [math, gsm8k]
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, as the docs' commands do."""
    monkeypatch.chdir(REPO)


class TestTemplateMethod(MethodConformance):
    """The template a submitter starts from passes the conformance suite, loaded from its file."""

    @pytest.fixture
    def method_spec(self) -> tuple[str, dict[str, int]]:
        return f"{REPO / TEMPLATE_SPEC}", {}


def test_eval_a_method_from_a_file(in_repo: None, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    status, stdout, err = run(
        capsys, "eval", "--method", TEMPLATE_SPEC, "--task", "math", "--budget", "6",
        "--seeds", "1", "--out", str(out),
    )  # fmt: skip
    assert status == 0, err
    assert " on math (sim backend" in stdout and "question evaluations used: 6 of 6" in stdout
    records = read_trace(out / "studies" / "seed-0" / "trace.jsonl")
    assert records[0]["method"]["name"] == "template-search" and records[-1]["evals_used"] == 6


def test_submit_then_validate_a_method_from_a_file(
    in_repo: None, tiny: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "bundle"
    status, stdout, err = run(
        capsys, "submit", "--method", TEMPLATE_SPEC, "--name", "template", "--protocol",
        str(tiny), "--tasks", "math", "--seeds", "1", "--out", str(out),
    )  # fmt: skip
    assert status == 0, err
    assert f"wrote bundle {out} (1 studies of template-search, protocol tiny)" in stdout
    assert "math: mean held-out accuracy" in stdout and "harness validate" in stdout
    assert "study 1/1: math seed 0" in err
    bundle = load_bundle(out)
    assert bundle.meta["method"]["entry_point"] == "method/template_method.py:TemplateSearch"
    copied = (out / "method" / "template_method.py").read_text()
    assert copied == (REPO / "leaderboard" / "template_method.py").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "tiny.yaml"]  # no staging left
    status, stdout, _ = run(capsys, "validate", str(out), "--rerun", "1")
    assert status == 0 and stdout.startswith(f"OK {out}: 1 studies of template-search")
    assert "re-run reproduced its trace" in stdout
    status, stdout, _ = run(capsys, "validate", str(out), "--json", "--rerun", "0")
    verdict = json.loads(stdout)
    assert status == 0 and verdict["ok"] and verdict["reasons"] == [] and verdict["studies"] == 1


def test_submit_runs_every_task_and_seed_of_the_protocol(tiny: Path, tmp_path: Path, capsys):
    out = tmp_path / "sub" / "random"
    status, stdout, err = run(
        capsys, "submit", "--method", "random", "--name", "random", "--protocol", str(tiny),
        "--option", "edge_prob=0.4", "--out", str(out),
    )  # fmt: skip
    assert status == 0, err
    bundle = load_bundle(out)
    assert [(s.task, s.seed) for s in bundle.studies] == [
        ("gsm8k", 0), ("gsm8k", 1), ("math", 0), ("math", 1),
    ]  # fmt: skip
    assert bundle.meta["method"]["options"]["edge_prob"] == 0.4
    assert bundle.meta["method"]["entry_point"] == "baselines.random_search:RandomSearch"
    assert "study 4/4: gsm8k seed 1" in err and "gsm8k: mean held-out accuracy" in stdout
    # Tamper with it: validate says INVALID with the reason, status 1 (not a usage error).
    index = json.loads((out / "bundle.json").read_text())
    index["studies"][0]["trace_sha256"] = "0" * 64
    (out / "bundle.json").write_text(json.dumps(index))
    status, stdout, _ = run(capsys, "validate", str(out))
    assert status == 1 and stdout.startswith(f"INVALID {out}: 1 reason(s)")
    assert "studies/gsm8k/seed-0/trace.jsonl: SHA-256 does not match" in stdout


def test_validate_usage_errors_and_non_bundles(tmp_path: Path, capsys) -> None:
    status, stdout, err = run(capsys, "validate", str(tmp_path / "absent"))
    assert status == 2 and stdout == ""
    assert err.strip() == f"harness: error: {tmp_path / 'absent'}: no such bundle folder"
    status, _, err = run(capsys, "validate", str(tmp_path), "--rerun", "-1")
    assert status == 2 and err.count("\n") == 1 and "--rerun" in err
    status, stdout, _ = run(capsys, "validate", str(tmp_path))
    assert status == 1 and "bundle.json: not found" in stdout


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--name", "bad name"], "--name 'bad name'"),
        (["--method", "no-such-method"], "unknown method 'no-such-method'"),
        (["--method", "missing.py:X"], "file missing.py not found"),
        (["--option", "colour=red"], "bad options"),
        (["--tasks", "no-such-task"], "no-such-task"),
        (["--seeds", "0"], "--seeds must be between 1"),
        (["--protocol", "paper"], "protocol 'paper' names no tasks: give --tasks"),
    ],
)
def test_submit_checks_everything_first(tiny: Path, tmp_path: Path, capsys, argv, needle):
    out = tmp_path / "out"
    base = {"--method": "random", "--name": "ok", "--protocol": str(tiny), "--out": str(out)}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    status, _, err = run(capsys, "submit", *[x for pair in base.items() for x in pair])
    assert status == 2, err
    assert needle in err and err.count("\n") == 1 and err.startswith("harness: error: ")
    assert not out.exists()


def test_submit_refuses_a_full_out_dir(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "x").write_text("keep me")
    status, _, err = run(
        capsys, "submit", "--method", "random", "--name", "x", "--protocol", str(tiny),
        "--out", str(out),
    )  # fmt: skip
    assert status == 2 and "folder is not empty" in err
    assert [p.name for p in out.iterdir()] == ["x"]


def test_interrupted_submit_leaves_nothing_at_out(
    tiny: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = harness.study.Bench.run
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(harness.study.Bench, "run", interrupted)
    out = tmp_path / "subs" / "x"
    status, _, err = run(
        capsys, "submit", "--method", "random", "--name", "x", "--protocol", str(tiny),
        "--out", str(out),
    )  # fmt: skip
    assert status == 130 and "interrupted" in err
    assert not out.exists()
    assert list((tmp_path / "subs").iterdir()) == []  # the staging folder is gone too
