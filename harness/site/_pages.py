"""The site's files: pages, figures, data and static files, written into a fresh folder.

Layout (every link relative, so the folder works from ``file://`` and from any static host)::

    index.html                    overview: a table per task, figures, ranks, win rates, ...
    entries/<slug>.html           one page per entry (accepted bundle)
    plots/*.png, plots/*.svg      the figures (pages show the PNG, link the SVG)
    graphs/<graph id>.png|.svg    the found graphs as diagrams
    sources/<slug>.py.txt         a file method's source, copied from its bundle
    data/leaderboard.json         the statistics; data/summaries.json; data/bundles.json
    static/site.css, sort.js      the only style sheet and script

Pages embed no JSON and no inline script: the script only reorders table rows by the numbers
the build wrote into ``data-sort`` attributes. Everything is written in sorted order with no
clock, so the same bundles give the same bytes.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.paths import site_dir
from harness.site._render import agent_label, environment, fmt_json, slug

if TYPE_CHECKING:
    from harness.site._build import Entry, RejectedBundle

__all__ = ["write_site"]

_POOL_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_SOURCE_CHARS = 200_000


def write_site(
    out: Path,
    entries: Sequence[Entry],
    rejected: Sequence[RejectedBundle],
    stats: dict[str, Any] | None,
    found: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Write the whole site into the empty folder ``out``; returns (pages, warnings)."""
    from harness import __version__

    warnings: list[str] = []
    env = environment()
    entries = sorted(entries, key=lambda e: e.name)
    slugs = {e.name: slug(e.name) for e in entries}
    common = {"harness_version": __version__}
    for folder in ("entries", "plots", "graphs", "sources", "data", "static"):
        (out / folder).mkdir()
    for file in sorted((site_dir() / "static").iterdir()):
        if file.is_file():
            shutil.copyfile(file, out / "static" / file.name)

    drawn: dict[str, dict[str, Any]] = {}  # graph id -> its figure, drawn once for all entries
    views = [_entry_view(out, e, slugs[e.name], stats, warnings, drawn) for e in entries]
    tasks = _task_views(out, stats, slugs, views, warnings)
    index = env.get_template("index.html.j2").render(
        root="",
        tasks=tasks,
        entries=views,
        rejected=rejected,
        found=len(found),
        baseline=_baseline(stats),
        average_rank=_average_rank(stats, slugs),
        win_rate=_win_rate(stats, slugs),
        rank_vs_budget=_plot(out, "plots/rank-vs-budget", warnings, "plot_rank_vs_budget", stats)
        if tasks
        else {},
        **common,
    )
    pages = ["index.html"]
    _write(out / "index.html", index)
    template = env.get_template("entry.html.j2")
    for view in views:
        page = f"entries/{view['slug']}.html"
        _write(out / page, template.render(root="../", entry=view, **common))
        pages.append(page)
    _write_data(out, entries, rejected, stats, slugs)
    return pages, warnings


def _plot(
    out: Path, stem: str, warnings: list[str], function: str, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """Draw one figure with ``harness.plots.<function>(*args, out / stem, **kwargs)``.

    A figure that fails to draw becomes a note on the page and a warning in the report: the
    site goes on without it.
    """
    from harness import plots

    try:
        getattr(plots, function)(*args, out / stem, **kwargs)
    except Exception as exc:
        warnings.append(f"{stem}: not drawn ({type(exc).__name__}: {exc})")
        for suffix in (".png", ".svg"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
        return {"png": None, "error": f"{type(exc).__name__}"}
    width, height = _png_size(out / f"{stem}.png")
    return {"png": f"{stem}.png", "svg": f"{stem}.svg", "width": width, "height": height}


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def _relative(plot: dict[str, Any], root: str) -> dict[str, Any]:
    if not plot.get("png"):
        return plot
    return {**plot, "png": root + plot["png"], "svg": root + plot["svg"]}


def _row_numbers(stats_entry: dict[str, Any]) -> dict[str, Any]:
    ledger = stats_entry.get("ledger") or {}
    return {
        "rank": stats_entry.get("rank"),
        "n": stats_entry.get("n"),
        "accuracy": stats_entry["accuracy"],
        "normalised": stats_entry.get("normalised_score"),
        "auc": stats_entry.get("auc"),
        "flops": stats_entry.get("flops_units"),
        "latency": stats_entry.get("latency_s"),
        "agent_calls": ledger.get("calls"),
        "agent_cost": ledger.get("cost_usd"),
    }


def _task_views(
    out: Path,
    stats: dict[str, Any] | None,
    slugs: dict[str, str],
    views: list[dict[str, Any]],
    warnings: list[str],
) -> list[dict[str, Any]]:
    if not stats:
        return []
    by_name = {v["name"]: v for v in views}
    tasks = []
    for task in sorted(stats["tasks"]):
        info = stats["tasks"][task]
        task_slug = slug(task)
        rows = []
        for label, numbers in info["entries"].items():
            view = by_name[label]
            rows.append(
                {
                    "name": label,
                    "href": f"entries/{slugs[label]}.html",
                    "method": view["method"],
                    "backend": view["backend"],
                    "agent": view["agent"],
                    **_row_numbers(numbers),
                }
            )
        rows.sort(key=lambda r: (r["rank"], r["name"]))
        best = max((b["heldout_accuracy"] for b in info["best_known"].values()), default=None)
        tasks.append(
            {
                "name": task,
                "slug": task_slug,
                "rows": rows,
                "best_known": best,
                "protocol_text": _protocol_text(info["protocol"]),
                "curves": _plot(
                    out, f"plots/curves-{task_slug}", warnings, "plot_curves", stats, task
                ),
                "pareto": _plot(
                    out, f"plots/pareto-{task_slug}", warnings, "plot_pareto", stats, task
                ),
            }
        )
    return tasks


def _protocol_text(protocol: dict[str, Any]) -> str:
    parts = [
        f"{protocol.get('question_evals')} question evaluations",
        f"batches of {protocol.get('batch_size')}",
        f"budget level {protocol.get('budget_level')}",
        f"at most {protocol.get('max_nodes')} nodes",
        f"checkpoint every {protocol.get('checkpoint_every')}",
        "all held-out questions"
        if protocol.get("heldout_size") is None
        else f"{protocol.get('heldout_size')} held-out questions",
        f"pool {protocol.get('pool')}",
    ]
    return ", ".join(parts)


def _baseline(stats: dict[str, Any] | None) -> str | None:
    if not stats:
        return None
    name = stats["baseline"]
    return name if name in stats["entries"] else None


def _average_rank(stats: dict[str, Any] | None, slugs: dict[str, str]) -> list[dict[str, Any]]:
    if not stats:
        return []
    rows = [
        {"name": k, "href": f"entries/{slugs[k]}.html", "rank": v["rank"], "tasks": v["tasks"]}
        for k, v in stats["average_rank"].items()
    ]
    return sorted(rows, key=lambda r: (r["rank"], r["name"]))


def _win_rate(stats: dict[str, Any] | None, slugs: dict[str, str]) -> dict[str, Any]:
    if not stats:
        return {"columns": [], "rows": []}
    win = stats["win_rate"]
    labels = list(win["entries"])
    rows = [
        {
            "name": a,
            "href": f"entries/{slugs[a]}.html",
            "cells": [
                {"self": a == b, "value": win["matrix"][a][b], "pairs": win["pairs"][a][b]}
                for b in labels
            ],
        }
        for a in labels
    ]
    return {"columns": labels, "rows": rows}


def _entry_view(
    out: Path,
    entry: Entry,
    entry_slug: str,
    stats: dict[str, Any] | None,
    warnings: list[str],
    drawn: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    meta = entry.bundle.meta
    method = meta.get("method") or {}
    first = entry.summaries[0]
    view: dict[str, Any] = {
        "name": entry.name,
        "slug": entry_slug,
        "href": f"entries/{entry_slug}.html",
        "path": entry.path,
        "method": str(method.get("name", first["method"])),
        "version": str(method.get("version", first["method_version"])),
        "description": str(method.get("description") or ""),
        "entry_point": str(method.get("entry_point") or "-"),
        "options": [(str(k), fmt_json(v)) for k, v in sorted(first["method_options"].items())],
        "protocol": [(str(k), fmt_json(v)) for k, v in sorted(first["protocol"].items())],
        "backend": str(first["backend"]),
        "agent": agent_label(first["agent"]),
        "pool": str(first["pool"]),
        "created": str(meta.get("created", "-")),
        "bundle_harness": str(meta.get("harness_version", "-")),
        "git": (meta.get("git") or {}).get("commit") if isinstance(meta.get("git"), dict) else None,
        "task_names": sorted({s["task"] for s in entry.summaries}),
        "source_href": None,
        "source_name": None,
        "source_sha256": method.get("source_sha256"),
        "source_text": None,
    }
    source = method.get("source")
    if isinstance(source, str) and source:
        data = (Path(entry.bundle.path) / source).read_bytes()
        name = f"sources/{entry_slug}.py.txt"
        (out / name).write_bytes(data)
        text = data.decode("utf-8", errors="replace")
        view["source_href"] = f"../{name}"
        view["source_name"] = Path(source).name
        view["source_text"] = text if len(text) <= _SOURCE_CHARS else text[:_SOURCE_CHARS] + "\n..."
    studies = sorted(entry.summaries, key=lambda s: (s["task"], s["seed"]))
    view["studies"] = [
        {
            "task": s["task"],
            "task_slug": slug(s["task"]),
            "seed": s["seed"],
            "heldout_accuracy": s["heldout_accuracy"],
            "flops_units": s["flops_units"],
            "latency_s": s["latency_s"],
            "evals_used": s["evals_used"],
            "graph_id": s["graph_id"],
        }
        for s in studies
    ]
    view["results"] = []
    for task in view["task_names"]:
        info = (stats or {}).get("tasks", {}).get(task, {})
        numbers = info.get("entries", {}).get(entry.name)
        if numbers is not None:
            view["results"].append(
                {
                    "task": task,
                    "task_slug": slug(task),
                    "of": len(info["entries"]),
                    **_row_numbers(numbers),
                }
            )
    view["graph_groups"] = _graph_groups(out, entry, studies, warnings, drawn)
    return view


def _graph_groups(
    out: Path,
    entry: Entry,
    studies: list[dict[str, Any]],
    warnings: list[str],
    drawn: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    pool = str(studies[0]["pool"])
    pool_arg = pool if pool and set(pool) <= _POOL_NAME else "llama3"
    groups = []
    for task in sorted({s["task"] for s in studies}):
        runs = [s for s in studies if s["task"] == task]
        graphs = []
        for graph_id in sorted({s["graph_id"] for s in runs}):
            found = [s for s in runs if s["graph_id"] == graph_id]
            graph = entry.graphs[graph_id]
            if graph_id not in drawn:
                drawn[graph_id] = _plot(
                    out,
                    f"graphs/{graph_id}",
                    warnings,
                    "plot_graph",
                    graph.to_json(),
                    pool=pool_arg,
                )
            graphs.append(
                {
                    "id": graph_id,
                    "seeds": [s["seed"] for s in found],
                    "accuracy": sum(s["heldout_accuracy"] for s in found) / len(found),
                    "flops": sum(s["flops_units"] for s in found) / len(found),
                    "latency": sum(s["latency_s"] for s in found) / len(found),
                    "plot": _relative(drawn[graph_id], "../"),
                    "text": graph.to_text(),
                }
            )
        graphs.sort(key=lambda g: (-len(g["seeds"]), -g["accuracy"], g["id"]))
        groups.append({"task": task, "task_slug": slug(task), "graphs": graphs})
    return groups


def _write_data(
    out: Path,
    entries: Sequence[Entry],
    rejected: Sequence[RejectedBundle],
    stats: dict[str, Any] | None,
    slugs: dict[str, str],
) -> None:
    summaries = sorted(
        (s for e in entries for s in e.summaries), key=lambda s: (s["entry"], s["task"], s["seed"])
    )
    bundles = {
        "accepted": [
            {
                "name": e.name,
                "path": e.path,
                "page": f"entries/{slugs[e.name]}.html",
                "index": e.bundle.meta,
            }
            for e in entries
        ],
        "rejected": [
            {"path": r.path, "name": r.name, "reasons": list(r.reasons)} for r in rejected
        ],
    }
    _write(out / "data" / "leaderboard.json", _dumps(stats))
    _write(out / "data" / "summaries.json", _dumps(summaries))
    _write(out / "data" / "bundles.json", _dumps(bundles))


def _json_safe(value: Any) -> Any:
    """JSON that any parser reads: non-finite floats become null, tuples lists, sets sorted."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_json_safe(v) for v in value)
    if isinstance(value, Path):
        return value.as_posix()
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_json_safe(value), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
