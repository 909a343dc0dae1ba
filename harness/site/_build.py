"""``build_site``: every valid bundle under ``results/`` into one static, self-contained site.

The steps, each robust to one bad bundle (a bundle that fails any of them is *rejected*, with a
one-line reason the site lists; the build goes on):

1. find every folder holding a ``bundle.json`` under the results folder (sorted; a bundle's own
   sub-folders are not searched);
2. validate each with :func:`harness.bundle.validate_bundle` (``rerun`` studies re-run);
3. read its studies with :func:`harness.stats.study_summary`, label every one with the bundle's
   name (the row label; a second bundle of the same name is rejected), check that they are one
   entry (one method and options, backend and agent) and that the found graphs parse;
4. per task, keep the bundles run under the protocol most bundles used (results under different
   budgets are not comparable), reject the others;
5. compute :func:`harness.stats.leaderboard_stats` and render the pages (:mod:`._pages`).

The site is written into a temporary folder beside ``out`` and swapped in at the end, so a
failed build leaves the previous site as it was and a rebuild leaves no stale files. ``out`` is
refused when it is the results folder, inside it or above it, a repository root, or a non-empty
folder that no previous build made (a build marks its folder with a ``.harness-site`` file).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bundle import Bundle, load_bundle, validate_bundle
from harness.errors import UserError
from harness.graph import Graph, from_json
from harness.paths import repo_root
from harness.stats import leaderboard_stats, study_summary

__all__ = ["MARKER", "RejectedBundle", "SiteReport", "build_site"]

MARKER = ".harness-site"
_MARKER_TEXT = (
    "This folder was written by `harness leaderboard build`; every build replaces it whole.\n"
)
_NEUTRAL_PROTOCOL_FIELDS = ("name", "seeds")  # as harness.stats: they do not change results
_REASON_CHARS = 400


@dataclass(frozen=True)
class RejectedBundle:
    """A bundle the site leaves out, and why.

    Attributes:
        path: the bundle folder, relative to the results folder (POSIX form).
        name: its name, when its ``bundle.json`` could be read.
        reasons: one line each.
    """

    path: str
    name: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SiteReport:
    """What :func:`build_site` did.

    Attributes:
        out: the site folder.
        index: its ``index.html``.
        found: every bundle folder found, relative to the results folder.
        accepted: the names of the accepted bundles (the leaderboard's rows), sorted.
        rejected: the rejected bundles with their reasons.
        pages: every HTML page written.
        warnings: what the site could not show (a plot that failed), one line each.
    """

    out: Path
    index: Path
    found: tuple[str, ...]
    accepted: tuple[str, ...]
    rejected: tuple[RejectedBundle, ...]
    pages: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


@dataclass
class Entry:
    """An accepted bundle, read: the unit :mod:`._pages` renders."""

    name: str
    path: str
    bundle: Bundle
    summaries: list[dict[str, Any]]
    graphs: dict[str, Graph] = field(default_factory=dict)


def build_site(results: Path, out: Path, rerun: int = 0) -> SiteReport:
    """Build the leaderboard site from every valid bundle under ``results`` into ``out``.

    Args:
        results: the folder searched (recursively) for bundles.
        out: the site folder (created, or replaced whole when a previous build made it).
        rerun: studies per bundle that validation re-runs (0: every other check only).

    Returns:
        What was found, accepted, rejected (with reasons) and written.

    Raises:
        UserError: ``results`` is not a folder, ``out`` is unsafe (see the module docstring), or
            ``rerun`` is negative.
    """
    if isinstance(rerun, bool) or not isinstance(rerun, int) or rerun < 0:
        raise UserError(f"--rerun must be a whole number of studies, 0 or more, got {rerun!r}")
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist (give --results DIR)")
    check_out(results, out)
    root = results.resolve()
    found = find_bundles(root)
    entries, rejected = _read_all(found, root, rerun)
    for entry, reason in _protocol_outliers(entries):
        rejected[entry.path] = RejectedBundle(entry.path, entry.name, (reason,))
    entries = [e for e in entries if e.path not in rejected]
    stats, late = _stats(entries)
    for entry, reason in late:
        rejected[entry.path] = RejectedBundle(entry.path, entry.name, (_clean(reason, root),))
    entries = [e for e in entries if e.path not in rejected]
    ordered_rejected = tuple(rejected[k] for k in sorted(rejected))
    found_rel = tuple(_rel(f, root) for f in found)

    from harness.site._pages import write_site

    target = out.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".building", dir=target.parent)
    )
    try:
        os.chmod(staging, 0o755)
        pages, warnings = write_site(staging, entries, ordered_rejected, stats, found_rel)
        (staging / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SiteReport(
        out=target,
        index=target / "index.html",
        found=found_rel,
        accepted=tuple(sorted(e.name for e in entries)),
        rejected=ordered_rejected,
        pages=tuple(target / p for p in pages),
        warnings=tuple(warnings),
    )


def check_out(results: Path, out: Path) -> None:
    """Refuse an unsafe site folder (see the module docstring).

    Raises:
        UserError: one line naming the folder and what to do instead.
    """
    res, dst = results.resolve(), out.resolve()
    hint = "choose a new or empty folder, such as site"
    if dst == res:
        raise UserError(f"--out {out} is the results folder; {hint}")
    if res.is_relative_to(dst):
        raise UserError(f"--out {out} contains the results folder {results}; {hint}")
    if dst.is_relative_to(res):
        raise UserError(f"--out {out} is inside the results folder {results}; {hint}")
    if dst == repo_root().resolve() or (dst / ".git").exists() or (dst / "pyproject.toml").exists():
        raise UserError(f"--out {out} is a repository root; {hint}")
    if dst.exists() and not dst.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; {hint}")
    if dst.is_dir() and not (dst / MARKER).is_file() and any(dst.iterdir()):
        raise UserError(
            f"--out {out} is not empty and no earlier `harness leaderboard build` made it "
            f"(it has no {MARKER} file); {hint}"
        )


def find_bundles(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a ``bundle.json``, sorted."""
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if "bundle.json" in files:
            found.append(Path(folder))
            subfolders.clear()  # a bundle's own folders are its studies, not more bundles
        else:
            subfolders[:] = [s for s in subfolders if not s.startswith(".")]
    return sorted(found, key=lambda p: _rel(p, root))


def _read_all(
    found: list[Path], root: Path, rerun: int
) -> tuple[list[Entry], dict[str, RejectedBundle]]:
    """Read every bundle found: the accepted entries, and the rejected ones by path."""
    entries: list[Entry] = []
    rejected: dict[str, RejectedBundle] = {}
    names: dict[str, str] = {}
    for folder in found:
        rel = _rel(folder, root)
        try:
            entry, reasons = _read_bundle(folder, rel, rerun)
        except Exception as exc:  # whatever one bundle does, the build goes on
            entry, reasons = None, [_one_line(exc)]
        if entry is not None and entry.name in names:
            reasons = [f"duplicate name {entry.name!r}: bundle {names[entry.name]} has it already"]
        if reasons or entry is None:
            name = entry.name if entry is not None else _name_of(folder)
            clean = tuple(_clean(r, root) for r in reasons) or ("rejected",)
            rejected[rel] = RejectedBundle(rel, name, clean)
            continue
        names[entry.name] = rel
        entries.append(entry)
    return entries, rejected


def _read_bundle(folder: Path, rel: str, rerun: int) -> tuple[Entry | None, list[str]]:
    verdict = validate_bundle(folder, rerun=rerun)
    if not verdict.ok:
        return None, [str(r) for r in verdict.reasons] or ["validation failed"]
    bundle = verdict.bundle if verdict.bundle is not None else load_bundle(folder)
    name = bundle.name
    if not isinstance(name, str) or not name.strip():
        return None, ["the bundle has no name"]
    if not bundle.studies:
        return None, ["the bundle holds no studies"]
    summaries = []
    for study in bundle.studies:
        summary = study_summary(Path(study.dir))
        summary["entry"] = name
        summaries.append(summary)
    kinds = {
        _fmt_kind(s["method"], s["method_options"], s["backend"], s["agent"]) for s in summaries
    }
    if len(kinds) > 1:
        listed = "; ".join(sorted(kinds))
        return None, [f"its studies are not one entry (method, options, backend, agent): {listed}"]
    entry = Entry(name=name, path=rel, bundle=bundle, summaries=summaries)
    for summary in summaries:
        where = f"{summary['task']} seed {summary['seed']}: found graph"
        graph = from_json(summary["graph"], where=where)
        entry.graphs[graph.id] = graph
        summary["graph_id"] = graph.id
    leaderboard_stats(summaries, baseline=name)  # its own problems (two runs of one seed) show here
    return entry, []


def _fmt_kind(method: Any, options: Any, backend: Any, agent: Any) -> str:
    blob = json.dumps([method, options, backend, agent], sort_keys=True, default=str)
    return blob[:200]


def _protocol_key(protocol: dict[str, Any], pool: Any) -> str:
    kept = {k: v for k, v in protocol.items() if k not in _NEUTRAL_PROTOCOL_FIELDS}
    return json.dumps({**kept, "pool": pool}, sort_keys=True, default=str)


def _official_key() -> str | None:
    """The official protocol's settings, as :func:`_protocol_key` writes them (None: none)."""
    try:
        from harness.protocol import load_protocol

        official = load_protocol("official").to_json()
    except Exception:  # a checkout without leaderboard/protocol.yaml: the majority decides
        return None
    return _protocol_key(official, official.get("pool"))


def _protocol_outliers(entries: list[Entry]) -> list[tuple[Entry, str]]:
    """Bundles that ran a task under another protocol than the leaderboard's for that task.

    The leaderboard's protocol for a task is the official one (``leaderboard/protocol.yaml``)
    when some bundle ran it, else the one most bundles ran (the first found on a tie).
    """
    official = _official_key()
    by_task: dict[str, Counter[str]] = {}
    first_seen: dict[str, dict[str, int]] = {}
    for position, entry in enumerate(entries):
        ran = {(_protocol_key(s["protocol"], s["pool"]), s["task"]) for s in entry.summaries}
        for key, task in ran:
            by_task.setdefault(task, Counter())[key] += 1
            first_seen.setdefault(task, {}).setdefault(key, position)
    chosen: dict[str, str] = {}
    for task, counts in by_task.items():
        majority = min(counts, key=lambda k: (-counts[k], first_seen[task][k]))
        chosen[task] = official if official is not None and official in counts else majority
    out = []
    for entry in entries:
        for s in entry.summaries:
            if _protocol_key(s["protocol"], s["pool"]) != chosen[s["task"]]:
                out.append((entry, _protocol_reason(s, chosen[s["task"]])))
                break
    return out


def _protocol_reason(summary: dict[str, Any], chosen: str) -> str:
    mine = json.loads(_protocol_key(summary["protocol"], summary["pool"]))
    theirs = json.loads(chosen)
    diff = next(k for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k))
    return (
        f"task {summary['task']} ran under another protocol than the leaderboard's "
        f"({diff} {mine.get(diff)!r}, leaderboard {theirs.get(diff)!r}): not comparable"
    )


def baseline_name(entries: list[Entry], method: str = "random") -> str:
    """The entry that scores 0 in the normalised score: the first bundle of ``method``.

    Bundles are labelled by their names, so the baseline is named by the bundle that ran the
    baseline method (on the ``sim`` backend, without an agent); ``method`` itself when none did.
    """
    for entry in sorted(entries, key=lambda e: e.name):
        first = entry.summaries[0]
        if first["method"] == method and first["backend"] == "sim" and first["agent"] is None:
            return entry.name
    return method


def _stats(entries: list[Entry]) -> tuple[dict[str, Any] | None, list[tuple[Entry, str]]]:
    """The leaderboard's stats, and the bundles that had to go for them to compute."""
    if not entries:
        return None, []
    try:
        summaries = [s for e in entries for s in e.summaries]
        return leaderboard_stats(summaries, baseline=baseline_name(entries)), []
    except Exception:
        pass
    # One bundle breaks the whole: add them one at a time and leave out those that break it.
    kept: list[Entry] = []
    late: list[tuple[Entry, str]] = []
    for entry in entries:
        try:
            trial = [*kept, entry]
            leaderboard_stats([s for e in trial for s in e.summaries], baseline="random")
            kept.append(entry)
        except Exception as exc:
            late.append((entry, _one_line(exc)))
    if not kept:
        return None, late
    summaries = [s for e in kept for s in e.summaries]
    return leaderboard_stats(summaries, baseline=baseline_name(kept)), late


def _swap(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, trash / "site")
    os.replace(staging, target)
    shutil.rmtree(trash, ignore_errors=True)


def _name_of(folder: Path) -> str | None:
    try:
        name = json.loads((folder / "bundle.json").read_text(encoding="utf-8")).get("name")
    except Exception:
        return None
    return name if isinstance(name, str) else None


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "." if rel == "" else rel


def _one_line(exc: BaseException) -> str:
    # A user error says what is wrong with the bundle; anything else is named by its type.
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def _clean(reason: str, root: Path) -> str:
    """One line, no longer than the site shows, with the results folder's path left out."""
    text = " ".join(str(reason).replace(str(root) + os.sep, "").replace(str(root), ".").split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."
