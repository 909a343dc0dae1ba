"""Summaries of studies: bootstrap confidence intervals, the JSON summary and the curve plot.

Example:
    >>> mean, low, high = bootstrap_ci([0.5, 0.6, 0.7])
    >>> round(mean, 2), low <= mean <= high
    (0.6, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.paths import atomic_path

if TYPE_CHECKING:
    from harness.study import StudyResult

__all__ = ["BOOTSTRAP_RESAMPLES", "bootstrap_ci", "plot_curve", "summarize"]

BOOTSTRAP_RESAMPLES = 10_000
# Colour-blind-safe (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean over ``values``.

    With a single value the interval is that value (one seed says nothing about spread).
    The resampling is seeded, so a summary is reproducible.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to summarise")
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(BOOTSTRAP_RESAMPLES, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return mean, float(low), float(high)


def summarize(results: Sequence[StudyResult], header: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary of a set of studies (one method, one task, several seeds)."""
    acc = bootstrap_ci([r.heldout_accuracy for r in results])
    marks = sorted({mark for r in results for mark, _ in r.checkpoints})
    curve = []
    for mark in marks:
        values = [dict(r.checkpoints)[mark] for r in results if mark in dict(r.checkpoints)]
        mean, low, high = bootstrap_ci(values)
        curve.append({"evals_used": mark, "mean": mean, "low": low, "high": high, "n": len(values)})
    graphs = {r.graph.id for r in results}
    ledgers = [r.agent for r in results if r.agent is not None]
    agent_ledger = None
    if ledgers:
        costs = [entry["cost_usd"] for entry in ledgers]
        agent_ledger = {
            key: sum(entry[key] for entry in ledgers)
            for key in ("calls", "failed_calls", "prompt_tokens", "completion_tokens", "latency_s")
        }
        agent_ledger["cost_usd"] = None if None in costs else float(sum(costs))
    call_totals = [r.calls for r in results if r.calls]
    calls_ledger = None
    if call_totals:
        dollars = [c["search_dollars"] for c in call_totals]
        calls_ledger = {
            "search_calls": sum(c["search_calls"] for c in call_totals),
            "search_cache_hits": sum(c["search_cache_hits"] for c in call_totals),
            "search_dollars": None if None in dollars else float(sum(dollars)),
        }
    return {
        **header,
        "calls_ledger": calls_ledger,
        "seeds": [r.seed for r in results],
        "heldout_accuracy": {"mean": acc[0], "low": acc[1], "high": acc[2], "confidence": 0.95},
        "flops_units": float(np.mean([r.flops_units for r in results])),
        "latency_s": float(np.mean([r.latency_s for r in results])),
        "evals_used": float(np.mean([r.evals_used for r in results])),
        "refusals": sum(r.refusals for r in results),
        "events": sum(len(r.events) for r in results),
        "distinct_graphs": len(graphs),
        "agent_ledger": agent_ledger,
        "curve": curve,
        "studies": [
            {
                "seed": r.seed,
                "heldout_accuracy": r.heldout_accuracy,
                "heldout_n": r.heldout_n,
                "graph_id": r.graph.id,
                "graph": r.graph.to_json(),
                "flops_units": r.flops_units,
                "latency_s": r.latency_s,
                "evals_used": r.evals_used,
                "evaluations": r.evaluations,
                "refusals": r.refusals,
                "events": len(r.events),
                "checkpoints": [list(c) for c in r.checkpoints],
                "agent": r.agent,
                "wall_s": r.wall_s,
            }
            for r in results
        ],
    }


def plot_curve(summary: dict[str, Any], stem: Path) -> list[Path]:
    """Write the sample-efficiency curve as ``stem.png`` and ``stem.svg``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = summary["curve"]
    x = [p["evals_used"] for p in curve]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    label = f"{summary['method']} ({len(summary['seeds'])} seeds)"
    ax.plot(x, [p["mean"] * 100 for p in curve], marker="o", color=PALETTE[0], label=label)
    ax.fill_between(
        x,
        [p["low"] * 100 for p in curve],
        [p["high"] * 100 for p in curve],
        color=PALETTE[0],
        alpha=0.2,
        label="95% bootstrap CI over seeds",
    )
    ax.set_xlabel("question evaluations used (search budget)")
    ax.set_ylabel("held-out accuracy of the recommendation (%)")
    ax.set_title(f"{summary['task']}: sample efficiency ({summary['backend']} backend)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:])
    plt.close(fig)
    return paths
