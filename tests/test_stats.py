"""Leaderboard statistics: real sim studies for the shapes, synthetic summaries for the maths."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, DataError
from harness.graph import from_json
from harness.protocol import load_protocol
from harness.report import BOOTSTRAP_RESAMPLES, bootstrap_ci
from harness.stats import (
    _ci,
    curve_auc,
    entry_label,
    leaderboard_stats,
    pareto_front,
    study_summary,
)
from harness.study import Bench
from harness.trace import read_trace

SEEDS = (0, 1, 2)
RUNS = {"math": ("random", "parallel", "evolution", "opro"), "gsm8k": ("random", "evolution")}


@pytest.fixture(scope="module")
def study_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("studies")
    protocol = load_protocol("paper").with_budget(12)
    dirs = []
    for task, methods in RUNS.items():
        bench = Bench(task, protocol, "sim")
        for method in methods:
            for seed in SEEDS:
                folder = out / task / method / f"seed-{seed}"
                bench.run(method, seed=seed, out_dir=folder)
                dirs.append(folder)
    return dirs


@pytest.fixture(scope="module")
def summaries(study_dirs: list[Path]) -> list[dict[str, Any]]:
    return [study_summary(d) for d in study_dirs]


@pytest.fixture(scope="module")
def stats(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    return leaderboard_stats(summaries)


PROTOCOL = {"name": "paper", "question_evals": 12, "checkpoint_every": 6, "seeds": 5}


def fake(
    entry: str,
    seed: int,
    acc: float,
    task: str = "math",
    graph_id: str | None = None,
    curve: list[list[float]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A synthetic study summary (only the fields leaderboard_stats reads)."""
    return {
        "method": entry, "method_options": {}, "method_version": "1", "entry": entry,
        "task": task, "backend": "sim", "pool": "llama3", "agent": None, "seed": seed,
        "protocol": dict(PROTOCOL), "heldout_accuracy": acc, "flops_units": 10.0,
        "latency_s": 1.0, "evals_used": 12, "graph": {"id": graph_id},
        "graph_id": graph_id or f"{entry}-{seed}", "curve": curve or [[6, acc], [12, acc]],
        "ledger": None, "calls": None, **extra,
    }  # fmt: skip


# ----- summaries ------------------------------------------------------------------------------


def test_summary_reads_the_trace(study_dirs: list[Path], summaries: list[dict[str, Any]]) -> None:
    records = read_trace(study_dirs[0] / "trace.jsonl")
    final = records[-1]
    first = summaries[0]
    assert first["entry"] == "random" and first["task"] == "math" and first["seed"] == 0
    assert first["backend"] == "sim" and first["pool"] == "llama3" and first["agent"] is None
    assert first["heldout_accuracy"] == final["heldout_accuracy"]
    assert from_json(first["graph"]).id == first["graph_id"] == final["graph_id"]
    checkpoints = [r for r in records if r["type"] == "checkpoint"]
    assert first["curve"] == [[r["evals_used"], r["heldout_accuracy"]] for r in checkpoints]
    assert [m for m, _ in first["curve"]] == [6, 12]
    assert first["ledger"] is None and first["calls"] is None
    json.dumps(summaries, allow_nan=False)


def test_summary_of_an_agent_study(summaries: list[dict[str, Any]]) -> None:
    opro = next(s for s in summaries if s["method"] == "opro")
    assert opro["entry"] == "opro (agent rules)"
    assert opro["agent"] == {"spec": "rules", "is_llm": False}
    assert opro["ledger"]["calls"] >= 1 and "spec" not in opro["ledger"]


def test_entry_labels() -> None:
    assert entry_label("random", "sim", None) == "random"
    assert entry_label("random", "replay", None) == "random [replay]"
    agent = {"spec": "rules", "is_llm": False}
    assert entry_label("opro", "live", agent) == "opro [live] (agent rules)"


def test_unfinished_trace_is_refused(study_dirs: list[Path], tmp_path: Path) -> None:
    lines = (study_dirs[0] / "trace.jsonl").read_text().splitlines()
    (tmp_path / "trace.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="trace.jsonl: no final record") as info:
        study_summary(tmp_path)
    assert "\n" not in str(info.value)


# ----- the statistics on real studies ---------------------------------------------------------


def test_stats_shape(stats: dict[str, Any]) -> None:
    assert set(stats) == {
        "schema", "baseline", "confidence", "n_boot", "entries", "tasks", "average_rank",
        "win_rate", "rank_vs_budget",
    }  # fmt: skip
    assert list(stats["entries"]) == ["evolution", "opro (agent rules)", "parallel", "random"]
    assert stats["entries"]["random"]["tasks"] == ["gsm8k", "math"]
    math = stats["tasks"]["math"]
    assert math["budget"] == 12 and math["marks"] == [6, 12]
    assert set(math["entries"]) == {"evolution", "opro (agent rules)", "parallel", "random"}
    entry = math["entries"]["evolution"]
    assert entry["n"] == 3 and entry["seeds"] == [0, 1, 2]
    acc = entry["accuracy"]
    assert acc["low"] <= acc["mean"] <= acc["high"]
    assert 0 <= entry["auc"] <= 1
    assert [p["evals_used"] for p in entry["curve"]] == [6, 12]
    assert all(p["low"] <= p["mean"] <= p["high"] and p["n"] == 3 for p in entry["curve"])
    assert sum(entry["graphs"]["counts"].values()) == 3
    assert from_json(entry["graphs"]["top_graph"]).id == entry["graphs"]["top"]
    assert entry["ledger"] is None and entry["calls"] is None
    assert math["entries"]["opro (agent rules)"]["ledger"]["calls"] >= 1
    best = math["best_known"]["sim"]["heldout_accuracy"]
    assert all(e["accuracy"]["mean"] <= best + 1e-12 for e in math["entries"].values())
    assert stats["average_rank"]["parallel"]["tasks"] == 1
    assert stats["average_rank"]["random"]["tasks"] == 2
    json.dumps(stats, allow_nan=False)


def test_baseline_scores_zero(stats: dict[str, Any]) -> None:
    for task in stats["tasks"].values():
        assert task["entries"]["random"]["normalised_score"] == 0.0


def test_win_rates_are_complementary(stats: dict[str, Any]) -> None:
    matrix, pairs = stats["win_rate"]["matrix"], stats["win_rate"]["pairs"]
    for a in matrix:
        assert matrix[a][a] is None
        for b in matrix:
            if a != b and pairs[a][b]:
                assert matrix[a][b] + matrix[b][a] == pytest.approx(1.0)
    assert pairs["random"]["evolution"] == 6 and pairs["parallel"]["evolution"] == 3


def test_pareto_points_of_real_studies(stats: dict[str, Any]) -> None:
    points = stats["tasks"]["math"]["pareto"]
    assert sum(p["studies"] for p in points) == 12
    assert any(p["front"] for p in points)
    expected = pareto_front([(p["latency_s"], p["heldout_accuracy"]) for p in points])
    assert [p["front"] for p in points] == expected


def test_rank_versus_budget(stats: dict[str, Any]) -> None:
    ranking = stats["rank_vs_budget"]
    assert ranking["fractions"] == [0.5, 1.0] and ranking["evals_used"] == [6, 12]
    assert ranking["tasks"]["random"] == [2, 2] and ranking["tasks"]["parallel"] == [1, 1]
    for ranks in ranking["ranks"].values():
        assert all(1 <= r <= 4 for r in ranks)


def test_deterministic(summaries: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    shuffled = list(summaries)
    random.Random(7).shuffle(shuffled)
    again = leaderboard_stats(shuffled)
    assert json.dumps(again, sort_keys=False) == json.dumps(stats, sort_keys=False)


# ----- the definitions on synthetic summaries -------------------------------------------------


def test_normalised_score_is_one_at_best_known() -> None:
    studies = [fake("random", s, 0.3 + 0.1 * s) for s in SEEDS]
    studies += [fake("star", s, 0.9, graph_id="best") for s in SEEDS]
    studies += [fake("half", s, 0.6) for s in SEEDS]
    entries = leaderboard_stats(studies)["tasks"]["math"]["entries"]
    assert entries["star"]["normalised_score"] == 1.0
    assert entries["random"]["normalised_score"] == 0.0
    assert entries["half"]["normalised_score"] == pytest.approx(0.4)  # (0.6-0.4)/(0.9-0.4)


def test_normalised_score_without_baseline_is_none() -> None:
    entries = leaderboard_stats([fake("a", 0, 0.5), fake("b", 0, 0.6)])["tasks"]["math"]["entries"]
    assert entries["a"]["normalised_score"] is None


def test_auc_by_hand() -> None:
    assert curve_auc([6, 12], [0.2, 0.4], budget=12) == pytest.approx(0.25)
    # A curve from x = 0: no extension; 0.25 * (0.0 + 0.5) / 2 + 0.75 * 0.5.
    assert curve_auc([0, 3, 12], [0.0, 0.5, 0.5], budget=12) == pytest.approx(0.4375)
    assert curve_auc([4, 8, 12], [0.3, 0.3, 0.3], budget=12) == pytest.approx(0.3)
    # Stopped early: the last value holds to the end of the budget.
    assert curve_auc([6], [0.5], budget=12) == pytest.approx(0.5)
    studies = [fake("a", 0, 0.4, curve=[[6, 0.2], [12, 0.4]])]
    assert leaderboard_stats(studies)["tasks"]["math"]["entries"]["a"]["auc"] == 0.25


def test_ranks_share_ties_and_count_tasks() -> None:
    studies = [fake("a", 0, 0.5), fake("b", 0, 0.5), fake("c", 0, 0.2)]
    studies += [fake("a", 0, 0.1, task="gsm8k"), fake("c", 0, 0.3, task="gsm8k")]
    stats = leaderboard_stats(studies)
    ranks = {k: e["rank"] for k, e in stats["tasks"]["math"]["entries"].items()}
    assert ranks == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert stats["average_rank"] == {
        "a": {"rank": 1.75, "tasks": 2},
        "b": {"rank": 1.5, "tasks": 1},
        "c": {"rank": 2.0, "tasks": 2},
    }


def test_win_rate_counts_ties_half() -> None:
    studies = [fake("a", 0, 0.5), fake("a", 1, 0.7), fake("a", 2, 0.1), fake("a", 3, 0.2)]
    studies += [fake("b", 0, 0.5), fake("b", 1, 0.6), fake("b", 2, 0.3)]
    studies += [fake("c", 9, 0.5)]
    win = leaderboard_stats(studies)["win_rate"]
    assert win["matrix"]["a"]["b"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert win["matrix"]["b"]["a"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert win["matrix"]["a"]["c"] is None and win["pairs"]["a"]["c"] == 0


def test_ledger_means() -> None:
    ledger = {"calls": 2, "failed_calls": 0, "prompt_tokens": 100, "completion_tokens": 50,
              "latency_s": 1.0, "cost_usd": 0.5}  # fmt: skip
    studies = [
        fake("x", 0, 0.5, ledger=ledger, calls={"search_calls": 10, "search_cache_hits": 2,
                                                "search_dollars": None}),
        fake("x", 1, 0.5, ledger={**ledger, "calls": 4, "cost_usd": 1.5}, calls=None),
    ]  # fmt: skip
    entry = leaderboard_stats(studies)["tasks"]["math"]["entries"]["x"]
    assert entry["ledger"]["calls"] == 3.0 and entry["ledger"]["cost_usd"] == 1.0
    assert entry["calls"] == {"search_calls": 10.0, "search_cache_hits": 2.0,
                              "search_dollars": None}  # fmt: skip


def test_mixed_protocols_are_refused() -> None:
    other = {**PROTOCOL, "question_evals": 40}
    studies = [fake("random", 0, 0.5), fake("evolution", 0, 0.6, protocol=other)]
    with pytest.raises(
        ConfigError,
        match=r"math: evolution \(seed 0\) and random \(seed 0\).*question_evals 40 vs 12",
    ):
        leaderboard_stats(studies)
    # A different protocol name or default seed count is not a different experiment.
    same = {**PROTOCOL, "name": "copy", "seeds": 3}
    leaderboard_stats([fake("random", 0, 0.5), fake("evolution", 0, 0.6, protocol=same)])
    # Different tasks may run under different protocols.
    leaderboard_stats([fake("random", 0, 0.5), fake("random", 0, 0.6, "gsm8k", protocol=other)])


def test_duplicate_studies_are_refused() -> None:
    with pytest.raises(DataError, match="random: two studies of task math at seed 0"):
        leaderboard_stats([fake("random", 0, 0.5), fake("random", 0, 0.6)])


def test_ci_matches_report_bootstrap() -> None:
    values = [0.31, 0.42, 0.38, 0.5]
    ours = _ci(values, BOOTSTRAP_RESAMPLES, seed=0)
    assert (ours["mean"], ours["low"], ours["high"]) == bootstrap_ci(values)


points = st.lists(
    st.tuples(st.integers(0, 6).map(float), st.integers(0, 6).map(lambda a: a / 6)),
    max_size=25,
)


def dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
    return q[0] <= p[0] and q[1] >= p[1] and q != p


@given(points)
def test_pareto_front_property(pts: list[tuple[float, float]]) -> None:
    front = pareto_front(pts)
    assert len(front) == len(pts)
    for p, on_front in zip(pts, front, strict=True):
        dominated = any(dominates(q, p) for q in pts)
        assert on_front == (not dominated)


def test_pareto_front_by_hand() -> None:
    pts = [(1.0, 0.5), (2.0, 0.7), (2.0, 0.6), (3.0, 0.7), (0.5, 0.2), (1.0, 0.5)]
    assert pareto_front(pts) == [True, True, False, False, True, True]
    assert pareto_front([]) == []
