"""``harness sweep``: config validation, the plan, executors, resuming after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import ConfigError, UserError
from harness.sweep import load_sweep, plan, run_sweep, study_finished
from harness.trace import read_trace, without_times

PROTOCOL = {
    "name": "tiny", "question_evals": 6, "batch_size": 3, "budget_level": 12, "max_nodes": 12,
    "checkpoint_every": 3, "heldout_size": 40, "seeds": 2, "pool": "llama3",
}  # fmt: skip
SWEEP = {
    "name": "tiny-sweep",
    "protocol": "protocol.yaml",
    "tasks": ["math", "gsm8k"],
    "seeds": 3,
    "methods": ["random", {"name": "parallel", "options": {"width": 2}}],
}
STUDIES = 2 * 2 * 3


def write_config(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "protocol.yaml").write_text(yaml.safe_dump(PROTOCOL))
    path = folder / "sweep.yaml"
    data = {k: v for k, v in {**SWEEP, **changes}.items() if v is not None}  # None: drop it
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def traces(out: Path) -> dict[str, list[dict[str, object]]]:
    """Every finished study's trace without clock fields, by its folder under ``studies``."""
    return {
        str(path.parent.relative_to(out / "studies")): without_times(read_trace(path))
        for path in sorted((out / "studies").glob("*/*/*/seed-*/trace.jsonl"))
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The config and an uninterrupted sweep of it on a pool of two worker processes."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder)
    report = run_sweep(load_sweep(config), folder / "out", workers=2)
    assert report.ok and len(report.done) == STUDIES, report.failed
    return config, folder / "out"


# ----- the config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"colour": "red"}, "colour", "unknown field"),
        ({"name": "a b"}, "name", "folder-safe"),
        ({"protocol": "nope"}, "protocol", "unknown protocol 'nope'"),
        ({"protocol": "missing.yaml"}, "protocol", "cannot read"),
        ({"pool": "nope"}, "pool", "unknown pool"),
        ({"backends": ["sim", "cloud"]}, "backends[1]", "unknown backend 'cloud'"),
        ({"tasks": ["math", "chess"]}, "tasks[1]", "unknown task 'chess'"),
        ({"tasks": ["math", "math"]}, "tasks[1]", "duplicate"),
        ({"tasks": []}, "tasks", "non-empty list"),
        ({"seeds": 0}, "seeds", "from 1 to 1000"),
        ({"seeds": [0, 1, 1]}, "seeds[2]", "duplicate seed 1"),
        ({"seeds": [0, -1]}, "seeds[1]", "seed from 0"),
        ({"seeds": {"start": 2}}, "seeds.count", "number of seeds"),
        ({"seeds": {"start": 0, "count": 2, "step": 1}}, "seeds.step", "unknown field"),
        ({"agent": "gpt"}, "agent", "unknown agent"),
        ({"methods": []}, "methods", "non-empty list"),
        ({"methods": ["random", "nope"]}, "methods[1].name", "unknown method 'nope'"),
        ({"methods": ["random", "parallel", {"name": "chain", "options": [1]}]},
         "methods[2].options", "expected a mapping"),
        ({"methods": [{"name": "parallel", "options": {"colour": 1}}]},
         "methods[0].options", "bad options"),
        ({"methods": [{"name": "random", "size": 3}]}, "methods[0].size", "unknown field"),
        ({"methods": ["random", {"name": "parallel", "label": "random"}]},
         "methods[1].label", "duplicate label 'random'"),
        ({"methods": [{"name": "random", "label": "../x"}]}, "methods[0].label", "folder-safe"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_file_and_field(tmp_path, changes, field, needle):
    path = write_config(tmp_path, **changes)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: "), message
    assert needle in message, message


def test_config_defaults_seed_forms_and_relative_paths(tmp_path):
    config = load_sweep(write_config(tmp_path / "deep", seeds={"start": 5, "count": 2}))
    assert config.protocol.name == "tiny" and config.protocol.source == tmp_path / "deep" / (
        "protocol.yaml"
    )
    assert config.seeds == (5, 6) and config.backends == ("sim",) and config.agent == "rules"
    assert config.pool == "llama3" and config.pool_name == "llama3"
    assert [m.label for m in config.methods] == ["random", "parallel"]
    assert load_sweep(write_config(tmp_path, seeds=[3, 1])).seeds == (3, 1)
    # A protocol by name; seeds default to the protocol's.
    named = load_sweep(write_config(tmp_path, protocol="paper", seeds=None))
    assert named.protocol.name == "paper" and named.seeds == tuple(range(5))


def test_official_config_is_valid_and_covers_every_method():
    from harness.methods import method_names
    from harness.paths import repo_root

    config = load_sweep(repo_root() / "leaderboard" / "sweeps" / "official.yaml")
    assert sorted(m.name for m in config.methods) == method_names()
    assert config.tasks == ("math", "gsm8k", "mmlu", "humaneval")
    assert config.seeds == tuple(range(10)) and config.backends == ("sim",)
    assert len(plan(config, Path("out"))) == len(method_names()) * 4 * 10


def test_plan_layout(tmp_path):
    config = load_sweep(write_config(tmp_path, methods=["random", "agent-reinforce"]))
    specs = plan(config, tmp_path / "out")
    assert len(specs) == 2 * 2 * 3
    assert [s.folder.relative_to(tmp_path / "out").as_posix() for s in specs[:4]] == [
        "studies/random/math/sim/seed-0",
        "studies/random/math/sim/seed-1",
        "studies/random/math/sim/seed-2",
        "studies/random/gsm8k/sim/seed-0",
    ]
    assert specs[0].partial.name == "seed-0.partial"
    assert specs[0].key == "random/math/sim/seed-0"
    # The agent goes only to the methods that consult one.
    assert {s.agent for s in specs if s.method == "random"} == {None}
    assert {s.agent for s in specs if s.method == "agent-reinforce"} == {"rules"}
    assert plan(config, tmp_path / "out") == specs  # stable


# ----- running ----------------------------------------------------------------------------


def test_sweep_on_two_workers_writes_studies_bundles_and_report(reference):
    _, out = reference
    found = traces(out)
    assert len(found) == STUDIES
    for records in found.values():
        assert records[0]["type"] == "start" and records[-1]["type"] == "final"
        assert records[-1]["evals_used"] == PROTOCOL["question_evals"]
    assert found["parallel/math/sim/seed-0"][0]["method"]["options"]["width"] == 2
    assert not list(out.glob("studies/**/*.partial"))
    report = json.loads((out / "sweep.json").read_text())
    assert report["total"] == STUDIES and len(report["done"]) == STUDIES
    assert report["failed"] == [] and report["skipped"] == []
    try:
        from harness.bundle import load_bundle
    except ImportError:
        pytest.skip("harness.bundle is not available: bundles are not written")
    for label in ("random", "parallel"):
        bundle = load_bundle(out / "bundles" / label)
        assert len(bundle.studies) == 2 * 3


def test_rerun_skips_every_finished_study(reference, tmp_path):
    config_path, out = reference
    before = {p: p.stat().st_mtime_ns for p in out.glob("studies/**/trace.jsonl")}
    seen = []
    report = run_sweep(load_sweep(config_path), out, workers=2, on_progress=seen.append)
    assert report.ok and report.done == [] and len(report.skipped) == STUDIES
    assert {p: p.stat().st_mtime_ns for p in out.glob("studies/**/trace.jsonl")} == before
    assert seen[-1].done == STUDIES and seen[-1].running == 0
    # A finished folder that another configuration made is refused, not silently kept.
    changed = write_config(tmp_path, methods=["random", {"name": "parallel", "options": {}}])
    with pytest.raises(UserError, match="finished with another method"):
        run_sweep(load_sweep(changed), out, workers=1)


def test_rerun_refuses_studies_of_another_simulator(reference, tmp_path):
    import shutil

    config_path, reference_out = reference
    out = tmp_path / "out"
    shutil.copytree(reference_out, out)
    manifest_path = out / "studies" / "random" / "gsm8k" / "sim" / "seed-2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["backend"]["abilities"]["llama-3.2-1b"] += 0.5  # as if recalibrated since
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="finished on another sim backend"):
        run_sweep(load_sweep(config_path), out, workers=1)


def test_sweep_killed_mid_run_and_restarted_matches_an_uninterrupted_one(reference, tmp_path):
    config_path, uninterrupted = reference
    out = tmp_path / "out"
    specs = plan(load_sweep(config_path), out)
    command = [sys.executable, "-m", "harness", "sweep", str(config_path), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--workers", "1"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        # Kill mid-study: once a study has finished and the next one's .partial folder exists.
        while time.monotonic() < deadline and process.poll() is None:
            finished = any(s.folder.is_dir() for s in specs)
            if finished and any(s.partial.is_dir() for s in specs):
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        else:
            _, err = process.communicate(timeout=5)
            pytest.fail(f"the sweep ended (or hung) before it could be killed: {err!r}")
    finally:
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    done = [s for s in specs if study_finished(s.folder)]
    assert 1 <= len(done) < STUDIES
    assert any(s.partial.is_dir() for s in specs)
    restarted = subprocess.run(
        [*command, "--workers", "1"], capture_output=True, text=True, timeout=120
    )
    assert restarted.returncode == 0, restarted.stderr
    assert f"{len(done)} already done" in restarted.stdout
    assert not list(out.glob("studies/**/*.partial"))
    assert traces(out) == traces(uninterrupted)


def test_failed_study_is_reported_and_the_sweep_goes_on(tmp_path, capsys, monkeypatch):
    from harness.study import Bench

    real_run = Bench.run

    def flaky_run(self, method, options=None, seed=0, **kwargs):
        if method == "random" and seed == 1:
            raise RuntimeError("disk on fire\nsecond line")
        return real_run(self, method, options, seed, **kwargs)

    monkeypatch.setattr(Bench, "run", flaky_run)
    config = write_config(tmp_path, tasks=["math"], seeds=2)
    out = tmp_path / "out"
    status = main(["sweep", str(config), "--out", str(out), "--workers", "1"])
    stdout, err = capsys.readouterr()
    assert status == 1, err
    assert "3/4 studies finished" in stdout and "1 failed" in stdout
    assert "failed random/math/sim/seed-1: RuntimeError: disk on fire\n" in stdout
    assert "random/math/sim/seed-1 FAILED" in err and "seed-0 done" in err
    report = json.loads((out / "sweep.json").read_text())
    assert report["failed"] == [
        {"study": "random/math/sim/seed-1", "error": "RuntimeError: disk on fire"}
    ]
    # The other studies finished; the method with a failed study gets no bundle.
    assert study_finished(out / "studies" / "random" / "math" / "sim" / "seed-0")
    assert "bundle random not written" in stdout
    monkeypatch.setattr(Bench, "run", real_run)
    assert main(["sweep", str(config), "--out", str(out), "--workers", "1"]) == 0
    assert "3 already done, 1 run" in capsys.readouterr().out


def test_cli_dry_run_and_usage_errors(reference, tmp_path, capsys):
    config_path, out = reference
    assert main(["sweep", str(config_path), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    stdout = capsys.readouterr().out
    assert f"{STUDIES} studies (2 methods x 2 tasks x 1 backends x 3 seeds)" in stdout
    assert "already done: 0, to run: 12" in stdout
    assert not (tmp_path / "new").exists()
    assert main(["sweep", str(config_path), "--out", str(out), "--dry-run"]) == 0
    assert "already done: 12, to run: 0" in capsys.readouterr().out
    bad = write_config(tmp_path, seeds=0)
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: seeds:" in err
    assert main(["sweep", str(config_path), "--workers", "0"]) == 2
    assert "--workers must be a positive" in capsys.readouterr().err
    assert main(["sweep", str(config_path), "--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err


def test_ray_executor_runs_a_two_study_sweep_locally(reference, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    _, uninterrupted = reference
    config = load_sweep(write_config(tmp_path, tasks=["math"], seeds=2, methods=["random"]))
    out = tmp_path / "out"
    report = run_sweep(config, out, executor="ray", workers=2)
    assert report.ok and len(report.done) == 2, report.failed
    # The same studies as on the process pool, record for record.
    expected = {k: v for k, v in traces(uninterrupted).items() if k.startswith("random/math/")}
    assert traces(out) == {k: v for k, v in expected.items() if k.endswith(("seed-0", "seed-1"))}


def test_ray_executor_without_ray_is_one_line(reference, monkeypatch):
    config_path, _ = reference
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError) as caught:
        run_sweep(load_sweep(config_path), Path("unused"), executor="ray")
    assert str(caught.value) == "the ray executor needs ray: pip install 'harness[ray]'"
