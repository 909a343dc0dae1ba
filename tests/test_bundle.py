"""Result bundles: writing, strict loading, and validation that catches tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.bundle import (
    BUNDLE_FORMAT,
    BundleError,
    load_bundle,
    sha256_file,
    validate_bundle,
    write_bundle,
)
from harness.errors import ConfigError
from harness.methods import load_method, method_class
from harness.protocol import OFFICIAL, Protocol, load_protocol
from harness.study import Bench

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "leaderboard" / "template_method.py"
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Protocol:
    path = tmp_path_factory.mktemp("protocol") / "tiny.yaml"
    path.write_text(TINY)
    return load_protocol(path)


@pytest.fixture(scope="module")
def benches(tiny: Protocol) -> dict[str, Bench]:
    return {task: Bench(task, tiny, "sim") for task in ("math", "gsm8k")}


@pytest.fixture(scope="module")
def studies(benches: dict[str, Bench], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real sim studies of random search: math and gsm8k, seed 0."""
    root = tmp_path_factory.mktemp("studies")
    for task, bench in benches.items():
        bench.run("random", {}, seed=0, out_dir=root / task)
    return [root / "math", root / "gsm8k"]


@pytest.fixture(scope="module")
def pristine(studies: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "bundle"
    write_bundle(out, "random-tiny", studies)
    return out


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid bundle, to tamper with."""
    return Path(shutil.copytree(pristine, tmp_path / "bundle"))


def index(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "bundle.json").read_text())


def save_index(bundle: Path, data: dict[str, Any]) -> None:
    (bundle / "bundle.json").write_text(json.dumps(data, indent=2))


def rehash(bundle: Path) -> None:
    """Recompute bundle.json's hashes, as a careful forger would."""
    data = index(bundle)
    for entry in data["studies"]:
        entry["trace_sha256"] = sha256_file(bundle / entry["dir"] / "trace.jsonl")
        entry["manifest_sha256"] = sha256_file(bundle / entry["dir"] / "manifest.json")
    save_index(bundle, data)


def records(bundle: Path, task: str = "math") -> list[dict[str, Any]]:
    lines = (bundle / "studies" / task / "seed-0" / "trace.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def save_records(bundle: Path, rows: list[dict[str, Any]], task: str = "math") -> None:
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    (bundle / "studies" / task / "seed-0" / "trace.jsonl").write_text(text)


def reasons(bundle: Path, rerun: int = 0) -> str:
    verdict = validate_bundle(bundle, rerun=rerun)
    assert not verdict.ok and verdict.reasons
    assert all("\n" not in r for r in verdict.reasons)
    return "\n".join(verdict.reasons)


# ----- writing and loading ---------------------------------------------------------------------


def test_write_load_and_validate(pristine: Path, studies: list[Path]) -> None:
    data = index(pristine)
    assert data["format"] == BUNDLE_FORMAT and data["version"] == 1
    assert data["name"] == "random-tiny" and data["backend"] == "sim" and data["agent"] is None
    assert data["method"]["entry_point"] == "baselines.random_search:RandomSearch"
    assert data["method"]["source"] is None and data["method"]["description"]
    assert data["protocol"]["name"] == "tiny" and data["protocol"]["question_evals"] == 6
    assert [(s["task"], s["seed"], s["dir"]) for s in data["studies"]] == [
        ("gsm8k", 0, "studies/gsm8k/seed-0"),
        ("math", 0, "studies/math/seed-0"),
    ]
    final = json.loads((studies[0] / "trace.jsonl").read_text().splitlines()[-1])
    assert data["studies"][1]["heldout_accuracy"] == final["heldout_accuracy"]
    assert data["studies"][1]["graph_id"] == final["graph_id"]
    bundle = load_bundle(pristine / "bundle.json")
    assert bundle.path == pristine and [s.task for s in bundle.studies] == ["gsm8k", "math"]
    assert bundle.studies[1].dir == pristine / "studies" / "math" / "seed-0"
    verdict = validate_bundle(pristine, rerun=1)
    assert verdict.ok, verdict.reasons
    assert any("re-run reproduced its trace" in note for note in verdict.notes)


def test_write_bundle_refuses_mismatched_or_unfinished_studies(
    benches: dict[str, Bench], studies: list[Path], tmp_path: Path
) -> None:
    other = tmp_path / "parallel"
    benches["math"].run("random", {"edge_prob": 0.3}, seed=1, out_dir=other)
    with pytest.raises(BundleError, match=r"manifest.json: field 'method'.*differs"):
        write_bundle(tmp_path / "b1", "x", [studies[0], other])
    with pytest.raises(BundleError, match="appears twice"):
        write_bundle(tmp_path / "b2", "x", [studies[0], studies[0]])
    unfinished = Path(shutil.copytree(studies[0], tmp_path / "unfinished"))
    lines = (unfinished / "trace.jsonl").read_text().splitlines()[:-1]
    (unfinished / "trace.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match="not a finished study"):
        write_bundle(tmp_path / "b3", "x", [unfinished])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(BundleError, match="not an empty folder"):
        write_bundle(tmp_path / "full", "x", studies)
    with pytest.raises(BundleError, match="bundle name"):
        write_bundle(tmp_path / "b4", "no spaces", studies)
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


# ----- tampering -------------------------------------------------------------------------------


def test_edited_score_with_hashes_fixed_is_caught_by_the_rerun(bundle: Path) -> None:
    rows = records(bundle)
    rows[-1]["heldout_accuracy"] = 0.99
    save_records(bundle, rows)
    data = index(bundle)
    data["studies"][1]["heldout_accuracy"] = 0.99
    save_index(bundle, data)
    rehash(bundle)
    assert validate_bundle(bundle, rerun=0).ok  # consistent files: only a re-run can tell
    text = reasons(bundle, rerun=2)
    assert "studies/math/seed-0: re-run differs" in text
    assert f"record {len(rows) - 1} (final), field 'heldout_accuracy'" in text


def test_edited_score_without_fixing_hashes(bundle: Path) -> None:
    data = index(bundle)
    data["studies"][1]["heldout_accuracy"] = 0.99
    save_index(bundle, data)
    assert "final heldout_accuracy" in reasons(bundle) and "0.99" in reasons(bundle)
    rows = records(bundle, "gsm8k")
    rows[-1]["heldout_accuracy"] = 0.99
    save_records(bundle, rows, "gsm8k")
    assert "studies/gsm8k/seed-0/trace.jsonl: SHA-256 does not match" in reasons(bundle)


def test_trace_over_budget(bundle: Path) -> None:
    rows = records(bundle)
    extra = dict(next(r for r in reversed(rows) if r["type"] == "evaluation"))
    extra["evals_used"] += len(extra["questions"])
    rows.insert(len(rows) - 1, extra)
    rows[-1]["evals_used"] = extra["evals_used"]
    save_records(bundle, rows)
    data = index(bundle)
    data["studies"][1]["evals_used"] = extra["evals_used"]
    save_index(bundle, data)
    rehash(bundle)
    text = reasons(bundle)
    assert "evaluation after the budget was used (6 of 6)" in text
    assert "over the budget of 6" in text


def test_over_the_cap_and_out_of_range_scores(bundle: Path) -> None:
    rows = records(bundle)
    next(r for r in rows if r["type"] == "evaluation")["flops_units"] = 1000.0
    rows[-1]["heldout_accuracy"] = 1.5
    save_records(bundle, rows)
    data = index(bundle)
    data["studies"][1]["heldout_accuracy"] = 1.5
    save_index(bundle, data)
    rehash(bundle)
    text = reasons(bundle)
    assert "flops_units 1000.0 over the cap" in text and "must be a number in [0, 1]" in text


def test_broken_hash_and_missing_file(bundle: Path) -> None:
    data = index(bundle)
    data["studies"][0]["manifest_sha256"] = "0" * 64
    save_index(bundle, data)
    assert "studies/gsm8k/seed-0/manifest.json: SHA-256 does not match" in reasons(bundle)
    (bundle / "studies" / "math" / "seed-0" / "trace.jsonl").unlink()
    assert "studies/math/seed-0/trace.jsonl: missing" in reasons(bundle)


def test_manifest_that_disagrees_with_the_index(bundle: Path) -> None:
    path = bundle / "studies" / "math" / "seed-0" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["seed"] = 7
    path.write_text(json.dumps(manifest))
    rehash(bundle)
    assert "studies/math/seed-0/manifest.json: seed 7 differs" in reasons(bundle)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(format="zip"), "field 'format'"),
        (lambda d: d.update(version=2), "field 'version'"),
        (lambda d: d.update(colour="red"), "field 'colour' is unknown"),
        (lambda d: d["studies"][0].update(seed="zero"), "field 'studies[0].seed'"),
        (lambda d: d["studies"][1].pop("trace_sha256"), "field 'studies[1].trace_sha256'"),
        (lambda d: d["method"].update(options=[]), "field 'method.options'"),
        (lambda d: d["protocol"].update(batch_size=0), "'batch_size' must be a positive"),
        (lambda d: d.update(studies=[]), "field 'studies'"),
    ],
)
def test_malformed_index_names_the_field(bundle: Path, edit: Any, needle: str) -> None:
    data = index(bundle)
    edit(data)
    save_index(bundle, data)
    with pytest.raises(BundleError, match="bundle.json: ") as info:
        load_bundle(bundle)
    assert needle in str(info.value)
    assert needle in reasons(bundle)


@pytest.mark.parametrize("escape", ["../outside", "/etc", "studies/../../x"])
def test_paths_that_escape_the_bundle(bundle: Path, escape: str) -> None:
    data = index(bundle)
    data["studies"][0]["dir"] = escape
    save_index(bundle, data)
    assert "field 'studies[0].dir' must be a relative path inside the bundle" in reasons(bundle)


def test_a_link_out_of_the_bundle(bundle: Path, tmp_path: Path) -> None:
    trace = bundle / "studies" / "math" / "seed-0" / "trace.jsonl"
    outside = tmp_path / "elsewhere.jsonl"
    shutil.copyfile(trace, outside)
    trace.unlink()
    trace.symlink_to(outside)
    assert "trace.jsonl: a link that leaves the bundle" in reasons(bundle)


def test_not_a_bundle(tmp_path: Path) -> None:
    verdict = validate_bundle(tmp_path)
    assert not verdict.ok and verdict.bundle is None
    assert "bundle.json: not found" in verdict.reasons[0]


# ----- methods from files ----------------------------------------------------------------------


def test_bundle_of_a_method_from_a_file(benches: dict[str, Bench], tmp_path: Path) -> None:
    spec = f"{TEMPLATE}:TemplateSearch"
    result = benches["math"].run(spec, {}, seed=0, out_dir=tmp_path / "study")
    assert result.method == "template-search"
    out = tmp_path / "bundle"
    bundle = write_bundle(out, "template", [tmp_path / "study"], method_source=TEMPLATE)
    method = bundle.meta["method"]
    assert method["entry_point"] == "method/template_method.py:TemplateSearch"
    assert method["source"] == "method/template_method.py"
    assert method["source_sha256"] == sha256_file(TEMPLATE)
    assert method["description"].startswith("Greedy local search")
    verdict = validate_bundle(out, rerun=1)
    assert verdict.ok, verdict.reasons
    with (out / "method" / "template_method.py").open("a") as handle:
        handle.write("\n# edited\n")
    assert "method/template_method.py: SHA-256 does not match" in reasons(out, rerun=1)


def test_a_method_that_cannot_be_loaded(bundle: Path) -> None:
    data = index(bundle)
    data["method"]["entry_point"] = "no_such_package.module:Method"
    save_index(bundle, data)
    text = reasons(bundle, rerun=1)
    assert "method no_such_package.module:Method cannot be loaded" in text
    assert "ModuleNotFoundError" in text


def test_method_class_from_files_and_modules(tmp_path: Path) -> None:
    assert method_class("baselines.random_search:RandomSearch").name == "random"
    assert load_method(f"{TEMPLATE}:TemplateSearch", {"restarts": 2}).options["restarts"] == 2
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom\\nmore')\n")
    plain = tmp_path / "plain.py"
    plain.write_text("class NotAMethod:\n    pass\n")
    cases = {
        f"{tmp_path / 'absent.py'}:X": "not found",
        f"{plain}:Missing": "has no class 'Missing'",
        f"{plain}:NotAMethod": "is not a harness.methods.Method subclass",
        f"{broken}:X": "importing",
        "no_such_package.module:X": "cannot import no_such_package.module",
        "no-such-method": "unknown method",
    }
    for spec, needle in cases.items():
        with pytest.raises(ConfigError) as info:
            method_class(spec)
        message = str(info.value)
        assert needle in message and "\n" not in message, message
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        method_class(f"{broken}:X")


# ----- protocols -------------------------------------------------------------------------------


def test_official_protocol_and_from_json(tmp_path: Path) -> None:
    official = load_protocol(REPO / "leaderboard" / "protocol.yaml")
    assert official.name == "official" and official.seeds == 10
    assert official.tasks == ("math", "gsm8k", "mmlu", "humaneval") and official.backend == "sim"
    paper = load_protocol("paper")
    assert official.budget == paper.budget and official.checkpoint_every == 6
    assert load_protocol(OFFICIAL).to_json() == official.to_json()
    assert Protocol.from_json(official.to_json()).to_json() == official.to_json()
    assert official.with_budget(9).tasks == official.tasks
    with pytest.raises(ConfigError, match="missing field 'seeds'"):
        Protocol.from_json({k: v for k, v in paper.to_json().items() if k != "seeds"})
    bad = tmp_path / "p.yaml"
    bad.write_text(TINY.replace("tasks: [math, gsm8k]", "tasks: math"))
    with pytest.raises(ConfigError, match="field 'tasks' must be a list"):
        load_protocol(bad)
