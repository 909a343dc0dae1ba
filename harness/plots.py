"""The leaderboard's figures, drawn from :func:`harness.stats.leaderboard_stats` output.

Every function writes one figure as ``out_stem.with_suffix(".png")`` and ``.svg`` (so a stem
must not carry a dot of its own) and returns both paths. The figures are:

- :func:`plot_curves`: sample-efficiency curves of every entry on a task, 95% CI bands;
- :func:`plot_rank_vs_budget`: each entry's average rank over tasks along the search budget;
- :func:`plot_pareto`: accuracy against latency of the graphs found, the Pareto front marked;
- :func:`plot_graph`: one collaboration graph as a diagram, nodes in columns by level.

Colours are the Okabe-Ito palette (safe for the common colour-vision deficiencies), and each
entry also gets its own marker and line style, so no figure relies on colour alone. An entry
keeps its style across figures (its place among all entries). Files are reproducible: SVG ids
come from a fixed salt, text stays text (searchable, accessible), and neither format records a
date or the matplotlib version, so rebuilding the site leaves unchanged figures unchanged.

Example:
    >>> import tempfile
    >>> graph = {"nodes": [{"id": 0, "model": "1B", "role": "assistant"}],
    ...          "output": {"model": "3B"}, "edges": [[0, "output"]]}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     [p.name for p in plot_graph(graph, Path(out) / "graph")]
    ['graph.png', 'graph.svg']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness._pilot_plots import OKABE_ITO
from harness.errors import ConfigError
from harness.graph import ASSISTANT, FUSER, OUTPUT, from_json
from harness.paths import atomic_path
from harness.pool import DEFAULT_POOL, load_pool

__all__ = ["plot_curves", "plot_graph", "plot_pareto", "plot_rank_vs_budget"]

# Yellow last: it is the palette's least visible colour on white.
COLOURS = (*(c for c in OKABE_ITO if c != "#F0E442"), "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 against 8 colours: 56 distinct pairs
LINESTYLES = ("-", "--", "-.", ":")
ROLE_MARKERS = {ASSISTANT: "o", FUSER: "s", "output": "h"}
_DPI = 120


@contextmanager
def _figure(size: tuple[float, float] = (7.2, 4.4)) -> Iterator[tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A fixed salt gives stable SVG ids; "none" keeps text as text rather than glyph paths.
    with plt.rc_context({"svg.hashsalt": "harness-leaderboard", "svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=size, dpi=_DPI)
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def _save(fig: Any, out_stem: Path) -> list[Path]:
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # "tight" keeps legends placed outside the axes inside the file.
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    with atomic_path(paths[1]) as tmp:
        fig.savefig(
            tmp, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None}
        )
    return paths


def _style(stats: dict[str, Any], entry: str) -> dict[str, Any]:
    index = sorted(stats["entries"]).index(entry)
    return {
        "color": COLOURS[index % len(COLOURS)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
    }


def _budget_axis(ax: Any, marks: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    if 0 < len(marks) <= 12:
        ax.set_xticks(marks)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _sorted_legend(ax: Any, extra: list[Any] | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    pairs = sorted(zip(labels, handles, strict=True), key=lambda p: p[0])
    # Outside the axes: a leaderboard has many entries, and no corner is reliably empty.
    ax.legend(
        handles=[h for _, h in pairs] + (extra or []),
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )


def _task(stats: dict[str, Any], task: str) -> dict[str, Any]:
    if task not in stats["tasks"]:
        known = ", ".join(sorted(stats["tasks"])) or "none"
        raise ConfigError(f"no studies of task {task!r} (tasks: {known})")
    return dict(stats["tasks"][task])


def plot_curves(stats: dict[str, Any], task: str, out_stem: Path) -> list[Path]:
    """Sample-efficiency curves of every entry on ``task``: mean and 95% CI band over seeds.

    Raises:
        ConfigError: the stats have no studies of ``task``.
    """
    from matplotlib.patches import Patch

    info = _task(stats, task)
    with _figure() as (fig, ax):
        for label, entry in info["entries"].items():
            style = _style(stats, label)
            x = [p["evals_used"] for p in entry["curve"]]
            ax.plot(
                x,
                [p["mean"] * 100 for p in entry["curve"]],
                label=f"{label} (n={entry['n']})",
                **style,
            )
            low, high = ([p[k] * 100 for p in entry["curve"]] for k in ("low", "high"))
            ax.fill_between(x, low, high, color=style["color"], alpha=0.15, linewidth=0)
        band = Patch(color="#777777", alpha=0.3, label="95% bootstrap CI over seeds")
        _sorted_legend(ax, [band])
        _budget_axis(ax, info["marks"])
        ax.set_xlabel("question evaluations used (search budget)")
        ax.set_ylabel("held-out accuracy of the recommendation (%)")
        ax.set_title(f"{task}: sample efficiency (budget {info['budget']} question evaluations)")
        ax.grid(alpha=0.3)
        return _save(fig, out_stem)


def plot_rank_vs_budget(stats: dict[str, Any], out_stem: Path) -> list[Path]:
    """Each entry's average rank over tasks at every checkpoint (1 = best, drawn on top)."""
    ranking = stats["rank_vs_budget"]
    by_evals = ranking["evals_used"] is not None
    x = ranking["evals_used"] if by_evals else [f * 100 for f in ranking["fractions"]]
    with _figure() as (fig, ax):
        for label, ranks in ranking["ranks"].items():
            points = [(a, r) for a, r in zip(x, ranks, strict=True) if r is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=label, **_style(stats, label))
        ax.invert_yaxis()
        if by_evals:
            _budget_axis(ax, x)
        ax.set_xlabel(
            "question evaluations used (search budget)" if by_evals else "search budget used (%)"
        )
        ax.set_ylabel("average rank over tasks (1 = best)")
        ax.set_title(f"Rank versus search budget ({len(stats['tasks'])} task(s))")
        ax.grid(alpha=0.3)
        _sorted_legend(ax)
        return _save(fig, out_stem)


def plot_pareto(stats: dict[str, Any], task: str, out_stem: Path) -> list[Path]:
    """The graphs found on ``task``: latency against held-out accuracy, the front marked.

    A graph found by several entries is drawn once per entry, smaller markers on top.

    Raises:
        ConfigError: the stats have no studies of ``task``.
    """
    points = _task(stats, task)["pareto"]
    with _figure() as (fig, ax):
        drawn: set[str] = set()
        for point in points:
            for order, label in enumerate(point["entries"]):
                style = _style(stats, label)
                ax.scatter(
                    point["latency_s"],
                    point["heldout_accuracy"] * 100,
                    s=max(20, 70 - 22 * order),
                    color=style["color"],
                    marker=style["marker"],
                    alpha=0.85,
                    zorder=3,
                    label=None if label in drawn else label,
                )
                drawn.add(label)
        for backend in sorted({p["backend"] for p in points}):
            front = [p for p in points if p["backend"] == backend and p["front"]]
            front.sort(key=lambda p: (p["latency_s"], p["heldout_accuracy"]))
            xs = [p["latency_s"] for p in front]
            ys = [p["heldout_accuracy"] * 100 for p in front]
            name = "Pareto front" if backend == "sim" else f"Pareto front [{backend}]"
            ax.step(xs, ys, where="post", color="#000000", linewidth=1.2, zorder=2, label=name)
            ax.scatter(xs, ys, s=150, facecolors="none", edgecolors="#000000", zorder=4)
        ax.set_xlabel("latency per question (s)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_title(f"{task}: accuracy versus latency of the graphs found")
        ax.grid(alpha=0.3)
        _sorted_legend(ax)
        return _save(fig, out_stem)


def _text_colour(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#000000" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "#FFFFFF"


def plot_graph(
    graph_json: dict[str, Any],
    out_stem: Path,
    title: str | None = None,
    pool: str | Path = DEFAULT_POOL,
) -> list[Path]:
    """A collaboration graph as a diagram.

    Agent nodes stand in columns by level (:meth:`Graph.levels`), the output node last; edges are
    arrows (curved when they skip a level). Fill colour says the model (legend with the pool's
    short names), marker shape the role: circle assistant, square fuser, hexagon output.

    Args:
        graph_json: the graph's JSON form (as traces store it).
        out_stem: where to write (``.png`` and ``.svg`` are added).
        title: the figure's title (default: the graph id, size, width and depth).
        pool: the pool whose model order and short names to use (models outside it keep their
            names and come after the pool's, in name order).

    Raises:
        GraphError: ``graph_json`` is not a valid graph.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    graph = from_json(graph_json)
    try:
        models = load_pool(pool).models
    except ConfigError:
        models = ()
    short = {m.name: m.short for m in models} | {m.short: m.short for m in models}
    order = [m.name for m in models]
    used = {n.model for n in graph.nodes} | {graph.output_model}
    full = {
        name: next((m.name for m in models if name in (m.name, m.short)), name) for name in used
    }
    # A model keeps its colour from graph to graph: its place in the pool, strangers after.
    strangers = sorted(set(full.values()) - set(order))
    everyone = [*order, *strangers]
    ranked = [m for m in everyone if m in full.values()]
    colour = {m: COLOURS[everyone.index(m) % len(COLOURS)] for m in ranked}

    levels = graph.levels()
    levels[OUTPUT] = max(levels.values()) + 1
    columns: dict[int, list[int]] = {}
    for node_id in [*graph.node_ids, OUTPUT]:
        columns.setdefault(levels[node_id], []).append(node_id)
    where = {
        node_id: (float(level), (len(ids) - 1) / 2 - row)
        for level, ids in columns.items()
        for row, node_id in enumerate(ids)
    }
    tallest = max(len(ids) for ids in columns.values())
    size = (max(6.0, 1.3 * len(columns) + 3.2), max(3.6, 0.9 * tallest + 1.6))
    with _figure(size) as (fig, ax):
        for src, dst in graph.edges:
            span = levels[dst] - levels[src]
            # Skips curve (so they do not run through the nodes between), all by a similar bulge.
            bend = min(0.25, 0.6 / span) if span > 1 else 0.0
            ax.annotate(
                "",
                xy=where[dst],
                xytext=where[src],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "#555555",
                    "linewidth": 1.0,
                    "shrinkA": 14,
                    "shrinkB": 14,
                    "connectionstyle": f"arc3,rad={bend}",
                },
            )
        for node_id in [*graph.node_ids, OUTPUT]:
            model = full[graph.model_of(node_id)]
            role = "output" if node_id == OUTPUT else graph.node(node_id).role
            ax.scatter(
                *where[node_id],
                s=650,
                marker=ROLE_MARKERS[role],
                color=colour[model],
                edgecolors="#000000",
                linewidths=2.2 if role == "output" else 1.0,
                zorder=3,
            )
            ax.text(
                *where[node_id],
                "out" if node_id == OUTPUT else str(node_id),
                ha="center",
                va="center",
                fontsize=8,
                color=_text_colour(colour[model]),
                zorder=4,
            )
        model_handles = [Patch(color=colour[m], label=short.get(m, m)) for m in ranked]
        role_handles = [
            Line2D(
                [],
                [],
                marker=ROLE_MARKERS[r],
                linestyle="none",
                markersize=10,
                markerfacecolor="#FFFFFF",
                markeredgecolor="#000000",
                label=r,
            )
            for r in (ASSISTANT, FUSER, "output")
        ]
        first = ax.legend(
            handles=model_handles,
            title="model",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
        )
        ax.add_artist(first)
        ax.legend(
            handles=role_handles,
            title="role",
            loc="lower left",
            bbox_to_anchor=(1.01, 0.0),
            fontsize=8,
        )
        ax.set_xticks(sorted(columns), [*map(str, sorted(columns)[:-1]), "output"])
        ax.set_yticks([])
        ax.set_xlim(0.4, levels[OUTPUT] + 0.6)
        ax.set_ylim(-tallest / 2 - 0.1, tallest / 2 + 0.1)
        ax.set_xlabel("level (agent nodes on the longest path into the node)")
        ax.set_ylabel("parallel branches")
        ax.set_title(
            title
            or f"Graph {graph.id}: {len(graph.nodes)} agent node(s), "
            f"width {graph.width}, depth {graph.depth}"
        )
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        return _save(fig, out_stem)
