"""The checks behind :func:`harness.bundle.validate_bundle` (docs/submitting.md, "Rules").

Each check appends one-line reasons naming the file (and the record or field); nothing here
raises for a bad bundle. Re-runs execute the bundle's method on the ``sim`` backend.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any, TypeGuard

from harness.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    HEX64,
    NAME_PATTERN,
    Bundle,
    BundleError,
    BundleStudy,
    Verdict,
    file_part,
    load_bundle,
    method_spec,
    safe_relative,
    seeds_problem,
    sha256_file,
)
from harness.errors import ConfigError, UserError
from harness.protocol import Protocol
from harness.trace import read_trace, without_times

CAP_EPSILON = 1e-9
"""Relative slack on the FLOPs cap: float noise, not a budget."""
_Records = list[dict[str, Any]]


def check_bundle(path: Path, rerun: int, data_dir: Path | None) -> Verdict:
    """Every check, in order: index, files, hashes, source, seeds, traces, re-runs."""
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        return Verdict(path, False, [str(exc)], None)
    reasons: list[str] = []
    notes: list[str] = []
    loaded = [(s, _read_files(bundle, s, reasons)) for s in bundle.studies]
    _check_source(bundle, reasons)
    problem = seeds_problem([(s.task, s.seed) for s in bundle.studies])
    if problem:
        reasons.append(f"bundle.json: {problem}")
    for study, files in loaded:
        if files is not None:
            reasons.extend(_check_study(bundle, study, *files))
    meta = bundle.meta
    if rerun > 0:
        if meta["backend"] != "sim":
            notes.append(f"no re-runs: only sim studies can be re-run (backend {meta['backend']})")
        elif reasons:
            notes.append("re-runs skipped: the bundle is already invalid")
        elif meta["agent"] is not None and meta["agent"]["is_llm"]:
            notes.append(f"no re-runs: the method consulted an LLM agent ({meta['agent']['spec']})")
        else:
            reasons.extend(_rerun(bundle, chosen(bundle.studies, rerun), data_dir, notes))
    return Verdict(bundle.path, not reasons, reasons, bundle, notes)


def parse_index(root: Path, index: Path, data: Any) -> Bundle:
    """The bundle an index describes, checked strictly (see :func:`harness.bundle.load_bundle`)."""
    check = _Schema(index)
    check.keys(data, "", _TOP)
    if data["format"] != BUNDLE_FORMAT:
        check.fail("format", f"must be {BUNDLE_FORMAT!r}, got {data['format']!r}")
    if data["version"] != BUNDLE_VERSION or isinstance(data["version"], bool):
        check.fail("version", f"version {data['version']!r} is not supported ({BUNDLE_VERSION})")
    if not isinstance(data["name"], str) or not NAME_PATTERN.match(data["name"]):
        check.fail("name", "must be 1-64 letters, digits, '.', '_', '-'")
    for key in ("created", "harness_version", "backend", "pool"):
        check.text(data[key], key)
    if data["git"] is not None and not isinstance(data["git"], dict):
        check.fail("git", "must be an object or null")
    _check_method(check, data["method"])
    agent = data["agent"]
    if agent is not None:
        check.keys(agent, "agent", {"spec": str, "is_llm": bool})
    try:
        Protocol.from_json(data["protocol"], where=f"{index}: field 'protocol'")
    except ConfigError as exc:
        raise BundleError(str(exc)) from None
    if not isinstance(data["studies"], list) or not data["studies"]:
        check.fail("studies", "must be a non-empty list")
    studies = []
    for i, entry in enumerate(data["studies"]):
        where = f"studies[{i}]"
        check.keys(entry, where, _STUDY)
        if not NAME_PATTERN.match(entry["task"]):
            check.fail(f"{where}.task", f"must be a task name, got {entry['task']!r}")
        if not isinstance(entry["seed"], int) or entry["seed"] < 0:
            check.fail(f"{where}.seed", "must be a non-negative integer")
        if not safe_relative(entry["dir"]):
            inside = "must be a relative path inside the bundle"
            check.fail(f"{where}.dir", f"{inside}, got {entry['dir']!r}")
        for key in ("trace_sha256", "manifest_sha256"):
            if not HEX64.match(entry[key]):
                check.fail(f"{where}.{key}", "must be a SHA-256 in lower-case hex")
        studies.append(
            BundleStudy(
                entry["task"], entry["seed"], root / entry["dir"], entry["trace_sha256"],
                entry["manifest_sha256"], float(entry["heldout_accuracy"]), entry["evals_used"],
                float(entry["flops_units"]), float(entry["latency_s"]), entry["graph_id"],
            )
        )  # fmt: skip
    return Bundle(root, data["name"], data, tuple(studies))


_Number = (int, float)
_TOP: dict[str, Any] = {
    "format": object, "version": int, "name": object, "created": object,
    "harness_version": object, "git": object, "method": dict, "backend": object, "pool": object,
    "agent": object, "protocol": dict, "studies": object,
}  # fmt: skip
_METHOD: dict[str, Any] = {
    "name": str, "version": str, "options": dict, "entry_point": str, "description": str,
    "source": (str, type(None)), "source_sha256": (str, type(None)),
}  # fmt: skip
_STUDY: dict[str, Any] = {
    "task": str, "seed": int, "dir": str, "trace_sha256": str, "manifest_sha256": str,
    "heldout_accuracy": _Number, "evals_used": int, "flops_units": _Number,
    "latency_s": _Number, "graph_id": str,
}  # fmt: skip


def _check_method(check: _Schema, method: dict[str, Any]) -> None:
    check.keys(method, "method", _METHOD)
    point, source, sha = method["entry_point"], method["source"], method["source_sha256"]
    module, _, cls = point.rpartition(":")
    if not module or not cls.isidentifier():
        forms = "package.module:Class or FILE.py:Class"
        check.fail("method.entry_point", f"must be {forms}, got {point!r}")
    if (source is None) != (sha is None):
        check.fail("method.source_sha256", "must be given exactly when method.source is")
    if source is None:
        if file_part(point):
            check.fail("method.source", f"a method from a file ({point}) must carry its source")
        return
    if not safe_relative(source) or not source.startswith("method/") or not source.endswith(".py"):
        check.fail("method.source", f"must be method/<file>.py inside the bundle, got {source!r}")
    if module != source:
        check.fail("method.entry_point", f"must be {source}:Class, got {point!r}")
    if not HEX64.match(sha):
        check.fail("method.source_sha256", "must be a SHA-256 in lower-case hex")


class _Schema:
    """Type checks of one index file; every failure is one line naming the file and field."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, field_name: str, message: str) -> None:
        raise BundleError(f"{self.file}: field '{field_name}' {message}")

    def text(self, value: Any, field_name: str) -> None:
        if not isinstance(value, str) or not value:
            self.fail(field_name, "must be a non-empty string")

    def keys(self, data: Any, where: str, types: dict[str, Any]) -> None:
        prefix = f"{where}." if where else ""
        if not isinstance(data, dict):
            self.fail(where or "(top level)", f"must be an object, got {type(data).__name__}")
        for key in types:
            if key not in data:
                self.fail(f"{prefix}{key}", "is missing")
        for key, value in data.items():
            if key not in types:
                self.fail(f"{prefix}{key}", f"is unknown (expected {', '.join(types)})")
            wanted = types[key]
            bad_bool = isinstance(value, bool) and wanted in (int, _Number)
            if bad_bool or not isinstance(value, wanted):
                self.fail(f"{prefix}{key}", f"has the wrong type ({type(value).__name__})")
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"{prefix}{key}", "must be a finite number")


def _rel(bundle: Bundle, path: Path) -> str:
    return path.relative_to(bundle.path).as_posix()


def _read_files(
    bundle: Bundle, study: BundleStudy, reasons: list[str]
) -> tuple[dict[str, Any], _Records] | None:
    """The study's manifest and trace, if both are there, inside the bundle, and hash right."""
    root = bundle.path.resolve()
    ok = True
    for name, want in (
        ("manifest.json", study.manifest_sha256),
        ("trace.jsonl", study.trace_sha256),
    ):
        file = study.dir / name
        where = _rel(bundle, file)
        if not file.is_file():
            reasons.append(f"{where}: missing")
            ok = False
        elif not file.resolve().is_relative_to(root):
            reasons.append(f"{where}: a link that leaves the bundle")
            ok = False
        elif _digest(file) != want:
            reasons.append(f"{where}: SHA-256 does not match bundle.json (the file was changed)")
            ok = False
    if not ok:
        return None
    try:
        manifest = json.loads((study.dir / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        reasons.append(f"{_rel(bundle, study.dir)}/manifest.json: not a JSON object ({exc})")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn last line shows up as a missing final
            records = read_trace(study.dir / "trace.jsonl")
    except UserError as exc:
        reasons.append(f"{_rel(bundle, study.dir)}/trace.jsonl: does not parse ({exc})")
        return None
    return manifest, records


def _check_source(bundle: Bundle, reasons: list[str]) -> None:
    method = bundle.meta["method"]
    if method["source"] is None:
        return
    file = bundle.path / method["source"]
    if not file.is_file():
        reasons.append(f"{method['source']}: missing (bundle.json's method.source)")
    elif not file.resolve().is_relative_to(bundle.path.resolve()):
        reasons.append(f"{method['source']}: a link that leaves the bundle")
    elif _digest(file) != method["source_sha256"]:
        reasons.append(f"{method['source']}: SHA-256 does not match bundle.json's source_sha256")


def _check_study(
    bundle: Bundle, study: BundleStudy, manifest: dict[str, Any], records: _Records
) -> list[str]:
    """What the study's own files say: agreement with the index, budget, cap, scores."""
    at = f"{_rel(bundle, study.dir)}/trace.jsonl"
    if not records or records[0]["type"] != "start" or records[-1]["type"] != "final":
        return [f"{at}: must open with a 'start' record and close with a 'final' one"]
    out: list[str] = []
    types = [r["type"] for r in records]
    if types.count("start") != 1 or types.count("final") != 1:
        out.append(f"{at}: must have exactly one 'start' and one 'final' record")
    meta = bundle.meta
    method = {k: meta["method"][k] for k in ("name", "version", "options")}
    start = records[0]
    want = {"method": method, "task": study.task, "seed": study.seed}
    want |= {"backend": meta["backend"], "protocol": meta["protocol"], "agent": meta["agent"]}
    for key, value in want.items():
        if start.get(key) != value:
            got = _short(start.get(key))
            out.append(
                f"{at}: start record's {key} {got} differs from bundle.json's {_short(value)}"
            )
    task = manifest.get("task")
    backend = manifest.get("backend")
    seen = {key: manifest.get(key) for key in ("method", "seed", "protocol", "agent", "pool")}
    seen["task"] = task.get("name") if isinstance(task, dict) else task
    seen["backend"] = backend.get("name") if isinstance(backend, dict) else backend
    at_manifest = f"{_rel(bundle, study.dir)}/manifest.json"
    for key, value in seen.items():
        expected = meta["pool"] if key == "pool" else want[key]
        if value != expected:
            got = _short(value)
            out.append(f"{at_manifest}: {key} {got} differs from bundle.json's {_short(expected)}")
    cap = manifest.get("cap_units")
    if not _number(cap):
        out.append(f"{at_manifest}: cap_units must be a number")
        cap = math.inf
    out.extend(_check_budget(at, records, int(meta["protocol"]["question_evals"]), float(cap)))
    final = records[-1]
    score = final.get("heldout_accuracy")
    if not _number(score) or not 0.0 <= score <= 1.0:
        out.append(f"{at}: final heldout_accuracy must be a number in [0, 1], got {_short(score)}")
    entry: dict[str, Any] = {"heldout_accuracy": study.heldout_accuracy}
    entry |= {"evals_used": study.evals_used}
    entry |= {"flops_units": study.flops_units, "latency_s": study.latency_s}
    entry |= {"graph_id": study.graph_id}
    for key, value in entry.items():
        stated = _short(final.get(key))
        if not _close(final.get(key), value):
            out.append(f"{at}: final {key} {stated} differs from bundle.json's {_short(value)}")
    return out


def _check_budget(at: str, records: _Records, budget: int, cap: float) -> list[str]:
    """Budget compliance, from the evaluation records themselves."""
    out: list[str] = []
    used = 0
    last_mark = 0.0
    for i, record in enumerate(records):
        kind = record["type"]
        if kind == "evaluation":
            questions, correct = record.get("questions"), record.get("correct")
            if not isinstance(questions, list) or not isinstance(correct, list) or not questions:
                return [*out, f"{at}: record {i}: an evaluation needs lists of questions, correct"]
            if used >= budget:
                spent = f"{used} of {budget}"
                out.append(f"{at}: record {i}: an evaluation after the budget was used ({spent})")
            used += len(questions)
            if record.get("evals_used") != used:
                got = _short(record.get("evals_used"))
                out.append(f"{at}: record {i}: evals_used {got}, but evaluations add up to {used}")
                used = record["evals_used"] if _number(record.get("evals_used")) else used
            flops = record.get("flops_units")
            if not _number(flops) or flops > cap * (1 + CAP_EPSILON) + CAP_EPSILON:
                over = f"flops_units {_short(flops)} over the cap of {cap:.4f}"
                out.append(f"{at}: record {i}: {over}")
            accuracy = sum(bool(c) for c in correct) / len(correct) if correct else None
            stated = record.get("accuracy")
            if len(correct) != len(questions) or not _close(stated, accuracy):
                out.append(f"{at}: record {i}: accuracy and correct do not match its questions")
        elif kind == "checkpoint":
            mark = record.get("evals_used")
            if not _number(mark) or mark < last_mark or mark > budget:
                out.append(
                    f"{at}: record {i}: checkpoint at evals_used {_short(mark)} out of order"
                )
            else:
                last_mark = mark
        elif _number(record.get("evals_used")) and record["evals_used"] > budget:
            out.append(f"{at}: record {i}: evals_used {record['evals_used']} over the budget")
    total = sum(len(r["questions"]) for r in records if r["type"] == "evaluation")
    final = records[-1].get("evals_used")
    if total > budget:
        out.append(
            f"{at}: evaluations use {total} question evaluations, over the budget of {budget}"
        )
    if final != total:
        out.append(f"{at}: final evals_used {_short(final)}, but the evaluations add up to {total}")
    return out


def chosen(studies: tuple[BundleStudy, ...], count: int) -> list[BundleStudy]:
    """``count`` studies, evenly spaced in (task, seed) order (all when count >= their number).

    Example:
        >>> from pathlib import Path
        >>> s = [BundleStudy("math", i, Path(), "", "", 0.0, 0, 0.0, 0.0, "") for i in range(8)]
        >>> [x.seed for x in chosen(tuple(s), 2)]
        [2, 6]
    """
    ordered = sorted(studies, key=lambda s: (s.task, s.seed))
    n = len(ordered)
    if count >= n:
        return ordered
    return [ordered[(2 * i + 1) * n // (2 * count)] for i in range(count)]


def _rerun(
    bundle: Bundle, studies: list[BundleStudy], data_dir: Path | None, notes: list[str]
) -> list[str]:
    """Re-run ``studies`` on sim; each must reproduce its trace, clock fields aside."""
    from harness.agents import load_agent
    from harness.methods import method_class
    from harness.study import Bench

    meta = bundle.meta
    spec = method_spec(bundle)
    try:
        cls = method_class(spec)
    except UserError as exc:
        return [f"method {meta['method']['entry_point']} cannot be loaded: {exc}"]
    if (cls.name, cls.version) != (meta["method"]["name"], meta["method"]["version"]):
        loads = f"loads as {cls.name!r} version {cls.version!r}"
        return [f"method {meta['method']['entry_point']} {loads}, not as bundle.json says"]
    protocol = Protocol.from_json(meta["protocol"])
    out: list[str] = []
    benches: dict[str, Bench] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="harness-validate-") as tmp:
            for study in studies:
                where = _rel(bundle, study.dir)
                try:
                    if study.task not in benches:
                        benches[study.task] = Bench(
                            study.task, protocol, "sim", data_dir, meta["pool"]
                        )
                    agent = load_agent(meta["agent"]["spec"]) if meta["agent"] else None
                    rerun_dir = Path(tmp) / where
                    benches[study.task].run(
                        spec, meta["method"]["options"], study.seed, rerun_dir, agent
                    )
                except Exception as exc:  # the method's own code runs here: report, go on
                    first = (str(exc).strip().splitlines() or [""])[0]
                    out.append(f"{where}: re-run failed ({type(exc).__name__}: {first})")
                    continue
                theirs = json.loads((rerun_dir / "manifest.json").read_text(encoding="utf-8"))
                ours = json.loads((study.dir / "manifest.json").read_text(encoding="utf-8"))
                differs = _setting_difference(ours, theirs)
                if differs:
                    out.append(f"{where}: cannot be re-run comparably here: {differs}")
                    continue
                first_diff = _first_difference(
                    without_times(read_trace(study.dir / "trace.jsonl")),
                    without_times(read_trace(rerun_dir / "trace.jsonl")),
                )
                if first_diff:
                    out.append(f"{where}: re-run differs from the bundle's trace: {first_diff}")
                else:
                    notes.append(f"{where}: re-run reproduced its trace")
    finally:
        for bench in benches.values():
            bench.backend.close()
    return out


def _setting_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """What makes a re-run incomparable: other task data, cap or sim parameters (not paths)."""
    tasks = [m["task"] if isinstance(m.get("task"), dict) else {} for m in (ours, theirs)]
    for key in ("scheme", "search_items", "heldout_items", "lengths"):
        a, b = (task.get(key) for task in tasks)
        if a != b:
            return f"task data differ ({key}: bundle {_short(a)}, here {_short(b)})"
    if ours.get("cap_units") != theirs.get("cap_units"):
        return f"cap_units differ (bundle {ours.get('cap_units')}, here {theirs.get('cap_units')})"
    backends = [m["backend"] if isinstance(m.get("backend"), dict) else {} for m in (ours, theirs)]
    a, b = ({k: v for k, v in backend.items() if k != "params"} for backend in backends)
    if a != b:
        key = next(k for k in [*a, *b] if a.get(k) != b.get(k))
        return (
            f"sim backend differs ({key}: bundle {_short(a.get(key))}, here {_short(b.get(key))})"
        )
    return None


def _first_difference(ours: _Records, theirs: _Records) -> str | None:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            key = next(k for k in [*a, *b] if a.get(k) != b.get(k))
            values = f"bundle {_short(a.get(key))}, re-run {_short(b.get(key))}"
            return f"record {i} ({a.get('type')}), field '{key}': {values}"
    if len(ours) != len(theirs):
        counts = f"the bundle's trace has {len(ours)} records, the re-run {len(theirs)}"
        return f"record {min(len(ours), len(theirs))}: {counts}"
    return None


def _digest(file: Path) -> str | None:
    try:
        return sha256_file(file)
    except OSError:
        return None  # unreadable: reported as a mismatch


def _close(a: Any, b: Any) -> bool:
    return abs(a - b) <= 1e-9 if _number(a) and _number(b) else bool(a == b)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
