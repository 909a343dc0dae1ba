"""Leaderboard figures: written, readable, labelled and byte-for-byte reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from harness.errors import ConfigError
from harness.plots import plot_curves, plot_graph, plot_pareto, plot_rank_vs_budget
from harness.protocol import load_protocol
from harness.stats import leaderboard_stats, study_summary
from harness.study import Bench


@pytest.fixture(scope="module")
def stats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("studies")
    bench = Bench("math", load_protocol("paper").with_budget(12), "sim")
    summaries = []
    for method in ("random", "parallel", "evolution"):
        for seed in (0, 1):
            folder = out / method / f"seed-{seed}"
            bench.run(method, seed=seed, out_dir=folder)
            summaries.append(study_summary(folder))
    return leaderboard_stats(summaries)


def check(paths: list[Path], *texts: str) -> None:
    png, svg = paths
    assert (png.suffix, svg.suffix) == (".png", ".svg")
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    body = svg.read_text(encoding="utf-8")
    for text in texts:
        assert text in body, text
    assert "<dc:date>" not in body


def test_curves(stats: dict[str, Any], tmp_path: Path) -> None:
    paths = plot_curves(stats, "math", tmp_path / "curves-math")
    check(
        paths,
        "math: sample efficiency (budget 12 question evaluations)",
        "question evaluations used (search budget)",
        "held-out accuracy of the recommendation (%)",
        "random (n=2)",
        "95% bootstrap CI over seeds",
    )


def test_rank_vs_budget(stats: dict[str, Any], tmp_path: Path) -> None:
    check(
        plot_rank_vs_budget(stats, tmp_path / "rank"),
        "Rank versus search budget (1 task(s))",
        "average rank over tasks (1 = best)",
        "question evaluations used (search budget)",
        "evolution",
    )


def test_pareto(stats: dict[str, Any], tmp_path: Path) -> None:
    check(
        plot_pareto(stats, "math", tmp_path / "pareto"),
        "math: accuracy versus latency of the graphs found",
        "latency per question (s)",
        "held-out accuracy (%)",
        "Pareto front",
        "parallel",
    )


def test_graph(stats: dict[str, Any], tmp_path: Path) -> None:
    graphs = stats["tasks"]["math"]["entries"]["random"]["graphs"]
    paths = plot_graph(graphs["top_graph"], tmp_path / "graph")
    check(
        paths,
        f"Graph {graphs['top']}",
        "level (agent nodes on the longest path into the node)",
        "model",
        "role",
        "fuser",
        "1B",
    )
    titled = plot_graph(graphs["top_graph"], tmp_path / "titled", title="Best graph on MATH")
    check(titled, "Best graph on MATH")


def test_same_call_same_bytes(stats: dict[str, Any], tmp_path: Path) -> None:
    graph = stats["tasks"]["math"]["entries"]["evolution"]["graphs"]["top_graph"]
    calls = [
        lambda stem: plot_curves(stats, "math", stem),
        lambda stem: plot_rank_vs_budget(stats, stem),
        lambda stem: plot_pareto(stats, "math", stem),
        lambda stem: plot_graph(graph, stem),
    ]
    for number, call in enumerate(calls):
        first = [p.read_bytes() for p in call(tmp_path / f"a{number}")]
        second = [p.read_bytes() for p in call(tmp_path / f"b{number}")]
        assert first == second, number


def test_unknown_task(stats: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no studies of task 'mmlu' \\(tasks: math\\)"):
        plot_curves(stats, "mmlu", tmp_path / "x")
