"""Leaderboard statistics over finished studies: pure functions, numpy in, JSON out.

:func:`study_summary` reads one study folder into a flat dict; :func:`leaderboard_stats` turns
many of them into the leaderboard's numbers. The definitions, as the site and the docs cite them:

- **entry**: one leaderboard row, labelled by :func:`entry_label`: the method name, plus
  ``" [BACKEND]"`` when the backend is not ``sim`` and ``" (agent SPEC)"`` when the method
  consulted an agent (``agent-reinforce (agent rules)``). Seeds of one entry on one task are
  its samples; two studies of one entry, task and seed are refused.
- **accuracy**: the held-out accuracy of the final recommendation; mean over seeds with a 95%
  percentile-bootstrap interval over seeds (the resampling of :func:`harness.report.bootstrap_ci`).
- **best known** (per task and backend): the best mean held-out accuracy of any graph that any
  entry recommended at the end of a study, the mean taken over the studies that found it.
- **normalised score** (Bayesmark's): ``(mean - baseline mean) / (best known - baseline mean)``,
  where the baseline is the ``baseline`` method's entry on the same task and backend (same
  protocol, so equal budget; the entry labelled by the method's name, else the first, by
  label, that ran the method without an agent): 0 is the baseline, 1 the best known. None
  without a baseline or when best known equals the baseline mean.
- **AUC**: the area under the mean sample-efficiency curve, x = question evaluations / budget,
  by the trapezoid rule, so 0..1 (:func:`curve_auc`). Nothing is recommended before the first
  checkpoint, so the first value is held back to x = 0 (and the last held on to x = 1 when a
  study stopped early): a flat curve at accuracy a has AUC a.
- **rank**: per task by mean accuracy, 1 = best, ties share the average rank; the average rank
  is over the tasks an entry has (their count is reported). **Rank versus budget**: the same at
  each checkpoint, as a fraction of the budget, on the mean curve values.
- **win rate** of A over B: over the (task, seed) pairs both have, the fraction where A's
  held-out accuracy is higher, ties counting half; None where they share none and on the diagonal.
- **Pareto front** (per task and backend): of the graphs found, those that no other graph
  dominates (latency lower or equal and accuracy higher or equal, one of them strictly).

Example:
    >>> def study(method, seed, acc, gid):
    ...     return {"method": method, "entry": method, "task": "math", "backend": "sim",
    ...             "pool": "llama3", "agent": None, "seed": seed, "heldout_accuracy": acc,
    ...             "flops_units": 10.0, "latency_s": 2.0, "evals_used": 6, "graph": {},
    ...             "graph_id": gid, "curve": [[3, acc - 0.1], [6, acc]], "ledger": None,
    ...             "calls": None, "protocol": {"question_evals": 6, "checkpoint_every": 3}}
    >>> studies = [study("random", 0, 0.4, "a"), study("random", 1, 0.5, "b"),
    ...            study("evolution", 0, 0.6, "c"), study("evolution", 1, 0.6, "c")]
    >>> stats = leaderboard_stats(studies)
    >>> math = stats["tasks"]["math"]["entries"]
    >>> math["random"]["normalised_score"], math["evolution"]["normalised_score"]
    (0.0, 1.0)
    >>> round(math["evolution"]["auc"], 3), stats["average_rank"]["evolution"]
    (0.525, {'rank': 1.0, 'tasks': 1})
    >>> stats["win_rate"]["matrix"]["evolution"]["random"]
    1.0
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from harness.errors import ConfigError, DataError
from harness.trace import read_trace

__all__ = [
    "STATS_SCHEMA",
    "curve_auc",
    "entry_label",
    "leaderboard_stats",
    "pareto_front",
    "study_summary",
]

STATS_SCHEMA = 1
CONFIDENCE = 0.95
_LEDGER_KEYS = (
    "calls", "failed_calls", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd",
)  # fmt: skip
_CALL_KEYS = ("search_calls", "search_cache_hits", "search_dollars")
_POINT_KEYS = ("heldout_accuracy", "latency_s", "flops_units")
# Protocol fields that do not change results: a protocol's name and its default seed count.
_NEUTRAL_PROTOCOL_FIELDS = frozenset({"name", "seeds"})

Summary = dict[str, Any]


def entry_label(method: str, backend: str, agent: dict[str, Any] | None) -> str:
    """A leaderboard row's label (see the module docstring).

    Example:
        >>> entry_label("opro", "live", {"spec": "openai:gpt-4o-mini", "is_llm": True})
        'opro [live] (agent openai:gpt-4o-mini)'
    """
    label = method if backend == "sim" else f"{method} [{backend}]"
    return label if agent is None else f"{label} (agent {agent['spec']})"


def study_summary(study_dir: Path) -> Summary:
    """One finished study as a flat JSON-able dict (read from its ``trace.jsonl``).

    Keys: method, method_options, method_version, entry, task, backend, pool, agent, seed,
    protocol, heldout_accuracy, heldout_n, flops_units, latency_s, evals_used, graph, graph_id,
    curve (``[[evals_used, heldout_accuracy], ...]``), ledger (the agent's totals or None) and
    calls (the search's LLM calls on cached backends, else None). The pool comes from
    ``manifest.json`` when present (a study may override the protocol's pool).

    Raises:
        DataError: the trace cannot be read, or has no start or no final record.
    """
    path = study_dir / "trace.jsonl"
    records = read_trace(path)
    start = next((r for r in records if r["type"] == "start"), None)
    final = next((r for r in reversed(records) if r["type"] == "final"), None)
    if start is None:
        raise DataError(f"{path}: no start record")
    if final is None:
        raise DataError(f"{path}: no final record (the study did not finish)")
    pool = start["protocol"].get("pool")
    manifest = study_dir / "manifest.json"
    if manifest.is_file():
        try:
            pool = json.loads(manifest.read_text(encoding="utf-8")).get("pool", pool)
        except (OSError, json.JSONDecodeError, AttributeError):
            raise DataError(f"{manifest}: not a readable JSON manifest") from None
    method, backend, agent = start["method"], start["backend"], start.get("agent")
    ledger = final.get("agent") or {}
    return {
        "method": method["name"],
        "method_options": method.get("options", {}),
        "method_version": method.get("version"),
        "entry": entry_label(method["name"], backend, agent),
        "task": start["task"],
        "backend": backend,
        "pool": pool,
        "agent": None if agent is None else {"spec": agent["spec"], "is_llm": agent["is_llm"]},
        "seed": start["seed"],
        "protocol": start["protocol"],
        "heldout_accuracy": final["heldout_accuracy"],
        "heldout_n": final.get("heldout_n"),
        "flops_units": final["flops_units"],
        "latency_s": final["latency_s"],
        "evals_used": final["evals_used"],
        "graph": final["graph"],
        "graph_id": final["graph_id"],
        "curve": [
            [r["evals_used"], r["heldout_accuracy"]] for r in records if r["type"] == "checkpoint"
        ],
        "ledger": {k: v for k, v in ledger.items() if k not in ("spec", "is_llm")} or None,
        "calls": {k: final[k] for k in _CALL_KEYS} if "search_calls" in final else None,
    }


def curve_auc(marks: Sequence[float], values: Sequence[float], budget: float) -> float:
    """Area under a sample-efficiency curve with x = ``marks / budget`` (see module docstring).

    Example:
        >>> curve_auc([6, 12], [0.2, 0.4], budget=12)  # 0.5 * 0.2 + 0.5 * (0.2 + 0.4) / 2
        0.25
    """
    if not marks or len(marks) != len(values):
        raise ValueError("a curve needs as many values as marks, at least one")
    x = [m / budget for m in marks]
    y = [float(v) for v in values]
    if x[0] > 0:
        x, y = [0.0, *x], [y[0], *y]
    if x[-1] < 1:
        x, y = [*x, 1.0], [*y, y[-1]]
    xs, ys = np.asarray(x), np.asarray(y)
    return round(float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2)), 12)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(latency, accuracy)`` points no other point dominates.

    Example:
        >>> pareto_front([(1.0, 0.5), (2.0, 0.7), (2.0, 0.6), (3.0, 0.7)])
        [True, True, False, False]
    """
    if not points:
        return []
    lat, acc = np.asarray(points, dtype=float).T
    no_worse = (lat[None, :] <= lat[:, None]) & (acc[None, :] >= acc[:, None])
    better = (lat[None, :] < lat[:, None]) | (acc[None, :] > acc[:, None])
    return [not bool(row.any()) for row in no_worse & better]


def leaderboard_stats(
    summaries: Sequence[Summary], baseline: str = "random", n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The leaderboard's statistics over study summaries (deterministic, JSON-able).

    Args:
        summaries: dicts as :func:`study_summary` returns (any order).
        baseline: the method whose entry scores 0 in the normalised score.
        n_boot: bootstrap resamples per confidence interval.
        seed: seed of the bootstrap.

    Returns:
        ``{"schema", "baseline", "confidence", "n_boot", "entries", "tasks", "average_rank",
        "win_rate", "rank_vs_budget"}``; see the module docstring for the definitions.

    Raises:
        ConfigError: one task's studies ran under different protocols (names the entries).
        DataError: two studies of one entry, task and seed.
    """
    groups: dict[str, dict[str, list[Summary]]] = {}
    for s in sorted(summaries, key=lambda s: (s["task"], s["entry"], s["seed"])):
        runs = groups.setdefault(s["task"], {}).setdefault(s["entry"], [])
        if runs and runs[-1]["seed"] == s["seed"]:
            raise DataError(f"{s['entry']}: two studies of task {s['task']} at seed {s['seed']}")
        runs.append(s)
    tasks = {task: _task_stats(task, by, baseline, n_boot, seed) for task, by in groups.items()}
    labels = sorted({s["entry"] for s in summaries})
    return {
        "schema": STATS_SCHEMA,
        "baseline": baseline,
        "confidence": CONFIDENCE,
        "n_boot": n_boot,
        "entries": {label: _entry_info(label, groups) for label in labels},
        "tasks": tasks,
        "average_rank": _average_rank(tasks, labels),
        "win_rate": _win_rate(groups, labels),
        "rank_vs_budget": _rank_vs_budget(tasks, labels),
    }


def _entry_info(label: str, groups: dict[str, dict[str, list[Summary]]]) -> dict[str, Any]:
    runs = [s for by_entry in groups.values() for s in by_entry.get(label, [])]
    options = {json.dumps(s.get("method_options"), sort_keys=True) for s in runs}
    return {
        "method": runs[0]["method"],
        "backend": runs[0]["backend"],
        "agent": runs[0]["agent"],
        "versions": sorted({str(s.get("method_version")) for s in runs}),
        "options": [json.loads(o) for o in sorted(options)],
        "tasks": [task for task, by_entry in groups.items() if label in by_entry],
    }


def _ci(values: Sequence[float], n_boot: int, seed: int) -> dict[str, float]:
    # harness.report.bootstrap_ci's resampling, with the number of resamples as a parameter.
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size == 1:
        return {"mean": mean, "low": mean, "high": mean}
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return {"mean": mean, "low": float(low), "high": float(high)}


def _check_protocol(task: str, by_entry: dict[str, list[Summary]]) -> dict[str, Any]:
    def settings(s: Summary) -> dict[str, Any]:
        kept = {k: v for k, v in s["protocol"].items() if k not in _NEUTRAL_PROTOCOL_FIELDS}
        return {**kept, "pool": s["pool"]}

    runs = [s for group in by_entry.values() for s in group]
    first = settings(runs[0])
    for other in runs[1:]:
        theirs = settings(other)
        if theirs != first:
            field = next(
                k for k in sorted(first.keys() | theirs.keys()) if first.get(k) != theirs.get(k)
            )
            raise ConfigError(
                f"task {task}: {runs[0]['entry']} (seed {runs[0]['seed']}) and {other['entry']} "
                f"(seed {other['seed']}) ran under different protocols ({field} "
                f"{first.get(field)!r} vs {theirs.get(field)!r}); results at different budgets "
                "are not comparable"
            )
    return dict(runs[0]["protocol"])


def _mean_fields(dicts: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any] | None:
    if not dicts:
        return None
    out: dict[str, Any] = {}
    for key in keys:
        values: list[Any] = [d.get(key) for d in dicts]
        out[key] = None if None in values else float(np.mean(values))
    return out


def _task_stats(
    task: str, by_entry: dict[str, list[Summary]], baseline: str, n_boot: int, seed: int
) -> dict[str, Any]:
    protocol = _check_protocol(task, by_entry)
    budget = protocol["question_evals"]
    points, best_known = _found_graphs([s for group in by_entry.values() for s in group])
    entries = {
        label: _entry_stats(group, budget, n_boot, seed) for label, group in by_entry.items()
    }
    for label, stats in entries.items():
        backend = by_entry[label][0]["backend"]
        base = entries.get(entry_label(baseline, backend, None))
        if base is None:
            # Entries may be labelled otherwise (the site labels them by bundle name): the
            # baseline is then the entry that ran the baseline method on this backend, no agent.
            named = sorted(
                other
                for other, group in by_entry.items()
                if group[0]["method"] == baseline
                and group[0]["backend"] == backend
                and group[0]["agent"] is None
            )
            base = entries[named[0]] if named else None
        if base is not None:
            span = best_known[backend]["heldout_accuracy"] - base["accuracy"]["mean"]
            if span > 1e-12:
                score = (stats["accuracy"]["mean"] - base["accuracy"]["mean"]) / span
                stats["normalised_score"] = round(score, 12)
    ranks = _ranks({label: e["accuracy"]["mean"] for label, e in entries.items()})
    for label, stats in entries.items():
        stats["rank"] = ranks[label]
    return {
        "protocol": protocol,
        "budget": budget,
        "marks": sorted({p["evals_used"] for e in entries.values() for p in e["curve"]}),
        "best_known": best_known,
        "entries": entries,
        "pareto": points,
    }


def _found_graphs(runs: list[Summary]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The distinct graphs found (per backend) with their front flags, and the best known."""
    graphs: dict[tuple[str, str], list[Summary]] = {}
    for s in runs:
        graphs.setdefault((s["backend"], s["graph_id"]), []).append(s)
    points: list[dict[str, Any]] = [
        {
            "backend": backend,
            "graph_id": graph_id,
            **{k: float(np.mean([s[k] for s in found])) for k in _POINT_KEYS},
            "studies": len(found),
            "entries": sorted({s["entry"] for s in found}),
        }
        for (backend, graph_id), found in sorted(graphs.items())
    ]
    best_known: dict[str, Any] = {}
    for backend in sorted({p["backend"] for p in points}):
        mine = [p for p in points if p["backend"] == backend]
        front = pareto_front([(p["latency_s"], p["heldout_accuracy"]) for p in mine])
        for point, on_front in zip(mine, front, strict=True):
            point["front"] = on_front
        best = max(mine, key=lambda p: (p["heldout_accuracy"], p["graph_id"]))
        best_known[backend] = {k: best[k] for k in ("graph_id", "heldout_accuracy")}
    points.sort(key=lambda p: (p["backend"], p["latency_s"], -p["heldout_accuracy"], p["graph_id"]))
    return points, best_known


def _entry_stats(runs: list[Summary], budget: int, n_boot: int, seed: int) -> dict[str, Any]:
    curve = []
    marks = sorted({mark for s in runs for mark, _ in s["curve"]})
    for mark in marks:
        # A study stopped early lacks its last marks: those means are over fewer seeds (n).
        values = [dict(s["curve"])[mark] for s in runs if mark in dict(s["curve"])]
        curve.append({"evals_used": mark, **_ci(values, n_boot, seed), "n": len(values)})
    counts = Counter(s["graph_id"] for s in runs)
    accuracy = {
        g: np.mean([s["heldout_accuracy"] for s in runs if s["graph_id"] == g]) for g in counts
    }
    # The most frequent graph; among equals the more accurate one, then the smaller id.
    top = min(counts, key=lambda g: (-counts[g], -accuracy[g], g))
    ledgers = [s["ledger"] for s in runs if s["ledger"] is not None]
    return {
        "n": len(runs),
        "seeds": [s["seed"] for s in runs],
        "accuracy": _ci([s["heldout_accuracy"] for s in runs], n_boot, seed),
        "normalised_score": None,  # filled in by _task_stats, which knows the baseline
        "rank": None,
        "auc": curve_auc(marks, [p["mean"] for p in curve], budget) if curve else None,
        "flops_units": float(np.mean([s["flops_units"] for s in runs])),
        "latency_s": float(np.mean([s["latency_s"] for s in runs])),
        "evals_used": float(np.mean([s["evals_used"] for s in runs])),
        "ledger": _mean_fields(ledgers, _LEDGER_KEYS),
        "calls": _mean_fields([s["calls"] for s in runs if s["calls"] is not None], _CALL_KEYS),
        "graphs": {
            "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "top": top,
            "top_graph": next(s["graph"] for s in runs if s["graph_id"] == top),
        },
        "curve": curve,
    }


def _ranks(scores: dict[str, float]) -> dict[str, float]:
    labels = sorted(scores)
    # Rounded so that means equal up to float noise tie, as they should.
    ranked = rankdata([-round(scores[k], 12) for k in labels], method="average")
    return {k: float(r) for k, r in zip(labels, ranked, strict=True)}


def _average_rank(tasks: dict[str, Any], labels: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for label in labels:
        ranks = [t["entries"][label]["rank"] for t in tasks.values() if label in t["entries"]]
        out[label] = {"rank": float(np.mean(ranks)), "tasks": len(ranks)}
    return out


def _win_rate(groups: dict[str, dict[str, list[Summary]]], labels: list[str]) -> dict[str, Any]:
    acc = {
        label: {
            (t, s["seed"]): s["heldout_accuracy"]
            for t, by in groups.items()
            for s in by.get(label, ())
        }
        for label in labels
    }

    def rate(a: str, b: str) -> float | None:
        shared = sorted(acc[a].keys() & acc[b].keys())
        if a == b or not shared:
            return None
        # sign: 1 a win, 0 a tie (half a win), -1 a loss.
        return sum(float(np.sign(acc[a][k] - acc[b][k])) / 2 + 0.5 for k in shared) / len(shared)

    return {
        "entries": labels,
        "matrix": {a: {b: rate(a, b) for b in labels} for a in labels},
        "pairs": {a: {b: len(acc[a].keys() & acc[b].keys()) for b in labels} for a in labels},
    }


def _rank_vs_budget(tasks: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    ranks: dict[float, dict[str, list[float]]] = {}
    for task in tasks.values():
        for mark in task["marks"]:
            values = {
                label: point["mean"]
                for label, e in task["entries"].items()
                for point in e["curve"]
                if point["evals_used"] == mark
            }
            bucket = ranks.setdefault(round(mark / task["budget"], 9), {})
            for label, rank in _ranks(values).items():
                bucket.setdefault(label, []).append(rank)
    fractions = sorted(ranks)
    budgets = {t["budget"] for t in tasks.values()}
    budget = budgets.pop() if len(budgets) == 1 else None
    return {
        "fractions": fractions,
        "evals_used": None if budget is None else [round(f * budget) for f in fractions],
        "ranks": {
            label: [
                float(np.mean(ranks[f][label])) if label in ranks[f] else None for f in fractions
            ]
            for label in labels
        },
        "tasks": {label: [len(ranks[f].get(label, [])) for f in fractions] for label in labels},
    }
