"""Result bundles: the unit of submission to the leaderboard (DESIGN.md sections 1 and 2).

A bundle is a folder of finished studies of one method (same name, version and options, the
same backend, pool, agent and protocol), each with its manifest and trace, plus the method's
source file when it came from one, and ``bundle.json``, the index, written last::

    bundle.json                          the index (format, method, protocol, per-study scores)
    method/<file>.py                     the submitted method's source (when it came from a file)
    studies/<task>/seed-<seed>/manifest.json
    studies/<task>/seed-<seed>/trace.jsonl

A folder without ``bundle.json`` is an incomplete bundle. :func:`write_bundle` makes one,
:func:`load_bundle` reads its index with a strict schema check, and :func:`validate_bundle`
checks it for the leaderboard: files and hashes, budget compliance read from the traces
themselves, and, on the ``sim`` backend, re-runs of some studies that must reproduce their
traces record for record (docs/submitting.md).

Example:
    >>> load_bundle(Path("no-such-bundle"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    harness.bundle.BundleError: no-such-bundle/bundle.json: not found (not a bundle, or ...)
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import ConfigError, DataError
from harness.manifest import git_revision
from harness.methods import ENTRY_POINT_GROUP, Method, import_file, method_class
from harness.paths import atomic_write_text, sha256_file
from harness.trace import read_trace

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "Bundle",
    "BundleError",
    "BundleStudy",
    "Verdict",
    "load_bundle",
    "method_spec",
    "validate_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "harness-bundle"
BUNDLE_VERSION = 1
INDEX = "bundle.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""Bundle names: a folder name and a leaderboard label (letters, digits, ``.``, ``_``, ``-``)."""
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(ConfigError):
    """A bundle that cannot be written or read; one line naming the file and field."""


@dataclass(frozen=True)
class BundleStudy:
    """One study of a bundle, as its index lists it (``dir`` is inside the bundle folder)."""

    task: str
    seed: int
    dir: Path
    trace_sha256: str
    manifest_sha256: str
    heldout_accuracy: float
    evals_used: int
    flops_units: float
    latency_s: float
    graph_id: str


@dataclass(frozen=True)
class Bundle:
    """A bundle: its folder, name, the whole parsed ``bundle.json`` and its studies."""

    path: Path
    name: str
    meta: dict[str, Any]
    studies: tuple[BundleStudy, ...]


@dataclass
class Verdict:
    """What :func:`validate_bundle` found.

    Attributes:
        path: the bundle folder.
        ok: valid (no reasons).
        reasons: why it is rejected, one line each.
        bundle: the loaded bundle (None when its index does not load).
        notes: what was checked or skipped, one line each (re-runs and their outcome).
    """

    path: Path
    ok: bool
    reasons: list[str]
    bundle: Bundle | None
    notes: list[str] = field(default_factory=list)


def safe_relative(text: str) -> bool:
    r"""Whether ``text`` is a relative POSIX path that stays inside its folder.

    Example:
        >>> [safe_relative(p) for p in ("studies/math/seed-0", "../x", "/etc", "a\\b", "")]
        [True, False, False, False, False]
    """
    if not text or "\\" in text or "\0" in text or re.match(r"^[A-Za-z]:", text):
        return False
    path = PurePosixPath(text)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


# ----- writing ---------------------------------------------------------------------------------

_SHARED = ("method", "backend", "pool", "agent", "protocol")
"""Manifest fields every study of a bundle must share."""


def write_bundle(
    out: Path,
    name: str,
    study_dirs: Sequence[Path],
    *,
    method_source: Path | None = None,
    entry_point: str | None = None,
) -> Bundle:
    """Bundle finished studies of one method into ``out`` (which must not exist, or be empty).

    Args:
        out: the bundle folder.
        name: the bundle's name (letters, digits, ``.``, ``_``, ``-``; at most 64).
        study_dirs: folders with a finished study's ``manifest.json`` and ``trace.jsonl``.
        method_source: the submitter's method file, copied to ``method/<file name>``.
        entry_point: how the method loads: ``package.module:Class`` or a registered name
            (default: the entry point registered under the studies' method name); with
            ``method_source``, ``Class`` or ``FILE.py:Class`` names the class (default: the
            file's one :class:`Method` subclass with the studies' method name).

    Raises:
        BundleError: a bad name or folder, an unfinished study, studies that differ in method,
            backend, pool, agent or protocol, a (task, seed) twice, seeds that are not
            0..N-1 per task, or a method that does not load as the studies recorded it.
    """
    if not NAME_PATTERN.match(name):
        raise BundleError(f"bundle name {name!r}: use 1-64 letters, digits, '.', '_', '-'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out}: exists and is not an empty folder")
    if not study_dirs:
        raise BundleError(f"{out}: no studies to bundle")
    studies = [_read_study(Path(d)) for d in study_dirs]
    first_dir, first = studies[0][0], studies[0][1]
    for study_dir, manifest, _ in studies[1:]:
        for key in _SHARED:
            if _shared(manifest, key) != _shared(first, key):
                raise BundleError(
                    f"{study_dir}/manifest.json: field '{key}' ({_short(_shared(manifest, key))})"
                    f" differs from {first_dir}/manifest.json ({_short(_shared(first, key))})"
                )
    keys = [(m["task"]["name"], m["seed"]) for _, m, _ in studies]
    for task, seed in keys:
        if not NAME_PATTERN.match(str(task)) or isinstance(seed, bool) or not isinstance(seed, int):
            raise BundleError(f"study {task!r} seed {seed!r}: not a bundleable task name and seed")
    problem = seeds_problem(keys)
    if problem:
        raise BundleError(f"{out}: {problem}")
    if method_source is None and entry_point and file_part(entry_point):
        method_source = Path(file_part(entry_point) or "")
    method = _method_meta(first["method"], method_source, entry_point)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for study_dir, manifest, records in sorted(studies, key=lambda s: _key(s[1])):
        task, seed = _key(manifest)
        rel = f"studies/{task}/seed-{seed}"
        (out / rel).mkdir(parents=True)
        for file in ("manifest.json", "trace.jsonl"):
            shutil.copyfile(study_dir / file, out / rel / file)
        final = records[-1]
        entries.append(
            {
                "task": task,
                "seed": seed,
                "dir": rel,
                "trace_sha256": sha256_file(out / rel / "trace.jsonl"),
                "manifest_sha256": sha256_file(out / rel / "manifest.json"),
                "heldout_accuracy": final["heldout_accuracy"],
                "evals_used": final["evals_used"],
                "flops_units": final["flops_units"],
                "latency_s": final["latency_s"],
                "graph_id": final["graph_id"],
            }
        )
    if method_source is not None:
        (out / "method").mkdir()
        shutil.copyfile(method_source, out / str(method["source"]))
        method["source_sha256"] = sha256_file(out / str(method["source"]))
    from harness import __version__

    meta = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "harness_version": __version__,
        "git": git_revision(),
        "method": method,
        **{key: _shared(first, key) for key in ("backend", "pool", "agent", "protocol")},
        "studies": entries,
    }
    # Written last and atomically: a folder without bundle.json is an incomplete bundle.
    atomic_write_text(out / INDEX, json.dumps(meta, indent=2) + "\n")
    return load_bundle(out)


def _read_study(study_dir: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    path = study_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot read the study's manifest ({exc})") from None
    if not isinstance(manifest, dict) or not all(
        key in manifest for key in (*_SHARED, "task", "seed")
    ):
        raise BundleError(f"{path}: not a study manifest (fields {', '.join(_SHARED)}, ...)")
    try:
        records = read_trace(study_dir / "trace.jsonl")
    except DataError as exc:
        raise BundleError(str(exc)) from None
    last = records[-1]["type"] if records else "none"
    if not records or records[0]["type"] != "start" or last != "final":
        raise BundleError(
            f"{study_dir}/trace.jsonl: not a finished study (last record {last!r}, not 'final')"
        )
    return study_dir, manifest, records


def _shared(manifest: dict[str, Any], key: str) -> Any:
    value = manifest[key]
    return value.get("name") if key == "backend" and isinstance(value, dict) else value


def _key(manifest: dict[str, Any]) -> tuple[str, int]:
    return str(manifest["task"]["name"]), int(manifest["seed"])


def seeds_problem(keys: Sequence[tuple[str, int]]) -> str | None:
    """What is wrong with a bundle's (task, seed) pairs: a pair twice, or seeds not 0..N-1.

    Seeds must be consecutive from 0 for every task, so that no seed can be left out.

    Example:
        >>> seeds_problem([("math", 0), ("math", 1), ("gsm8k", 0)]) is None
        True
        >>> seeds_problem([("math", 0), ("math", 2)])
        'task math: seeds must be 0..N-1 (no seed left out), got 0, 2'
    """
    seen: dict[str, list[int]] = {}
    for task, seed in keys:
        if seed in seen.setdefault(task, []):
            return f"task {task}: seed {seed} appears twice"
        seen[task].append(seed)
    for task, seeds in sorted(seen.items()):
        if sorted(seeds) != list(range(len(seeds))):
            got = ", ".join(map(str, sorted(seeds)))
            return f"task {task}: seeds must be 0..N-1 (no seed left out), got {got}"
    return None


def file_part(spec: str) -> str | None:
    where = spec.rpartition(":")[0]
    return where if where.endswith(".py") or "/" in where or "\\" in where else None


def _method_meta(
    recorded: dict[str, Any], source: Path | None, entry_point: str | None
) -> dict[str, Any]:
    """The index's ``method`` object; loads the class to check it is what the studies ran."""
    name = recorded.get("name")
    if source is not None:
        module = import_file(source)
        wanted = entry_point.rpartition(":")[2] if entry_point else None
        found = [
            value
            for attr, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, Method)
            and value.__module__ == module.__name__
            and (attr == wanted if wanted else value.name == name)
        ]
        if len(found) != 1:
            what = f"class {wanted!r}" if wanted else f"one Method subclass named {name!r}"
            raise BundleError(f"{source}: expected {what}, found {len(found)}")
        cls = found[0]
        point = f"method/{source.name}:{cls.__name__}"
    else:
        registry = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
        point = entry_point or registry.get(str(name), "")
        point = registry.get(point, point)
        if not point:
            raise BundleError(
                f"method {name!r} is not registered: give its entry point (package.module:Class)"
                " or its source file"
            )
        cls = method_class(point)
    if (cls.name, cls.version) != (name, recorded.get("version")):
        raise BundleError(
            f"method {point}: loads as {cls.name!r} version {cls.version!r}, but the studies ran "
            f"{name!r} version {recorded.get('version')!r}"
        )
    own_doc = (cls.__dict__.get("__doc__") or "").strip()
    return {
        "name": name,
        "version": recorded["version"],
        "options": recorded["options"],
        "entry_point": point,
        "description": own_doc.splitlines()[0] if own_doc else cls.description,
        "source": f"method/{source.name}" if source is not None else None,
        "source_sha256": None,
    }


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----- reading ---------------------------------------------------------------------------------


def method_spec(bundle: Bundle) -> str:
    """The ``method_class`` spec that loads a bundle's method (a file from the bundle's copy)."""
    point = str(bundle.meta["method"]["entry_point"])
    if bundle.meta["method"]["source"] is not None:
        return f"{bundle.path / bundle.meta['method']['source']}:{point.rpartition(':')[2]}"
    return point


def load_bundle(path: Path) -> Bundle:
    """Read a bundle's index (``path``: the folder, or its ``bundle.json``), strictly.

    Raises:
        BundleError: a missing or malformed index: not JSON, an unknown format or version, a
            missing, unknown or mistyped field, a path that leaves the bundle (naming it).
    """
    path = Path(path)
    root = path.parent if path.name == INDEX and path.is_file() else path
    index = root / INDEX
    if not index.is_file():
        raise BundleError(f"{index}: not found (not a bundle, or an incomplete one)")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{index}: not a JSON file ({exc})") from None
    from harness._bundle_check import parse_index

    return parse_index(root, index, data)


def validate_bundle(path: Path, rerun: int = 2, data_dir: Path | None = None) -> Verdict:
    """Check a bundle for the leaderboard; never raises for a bad bundle.

    Checks the index (:func:`load_bundle`), the files and their hashes, the method source, and
    the traces themselves (they agree with the index and manifests, stay within the budget and
    the FLOPs cap); then, on the ``sim`` backend, re-runs ``rerun`` studies (evenly spaced in
    (task, seed) order; all of them when ``rerun`` is at least their number) and compares their
    traces with the bundle's, clock fields aside. Re-running executes the method's code.

    Args:
        path: the bundle folder (or its ``bundle.json``).
        rerun: how many studies to re-run (0: none; the method's code is then not run).
        data_dir: the task data for re-runs (default: as ``harness eval`` finds it).
    """
    from harness._bundle_check import check_bundle

    return check_bundle(Path(path), rerun, data_dir)
