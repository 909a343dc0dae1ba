"""Plots of the pilot tables (:func:`harness.pilot.run_pilot`): PNG and SVG, matplotlib Agg.

Three figures, each written as ``<name>.png`` and ``<name>.svg``:

- ``models``: single-model and equal-budget combination accuracy, measured beside the paper's;
- ``sweeps``: accuracy against width and against depth, one line per model, optimum marked;
- ``grid``: the width x depth heat map per model, the best depth of each width marked.

Colours are the Okabe-Ito palette (safe for the common colour-vision deficiencies) and the heat
map uses viridis (perceptually uniform, readable in grey).

Example:
    >>> import tempfile
    >>> tables = {"task": "t", "backend": "sim",
    ...           "single": [{"short": "1B", "accuracy": 30.0, "paper": 31}],
    ...           "combos": [{"combo": "9x1B", "accuracy": 38.0, "sd_over_graphs": 3.0,
    ...                       "paper": 39}],
    ...           "width": {"1B": [30.0, 35.0, 33.0]}, "depth": {"1B": [30.0, 32.0, 31.0]},
    ...           "grid": {"1B": [[30.0, 32.0], [35.0, 33.0]]},
    ...           "settings": {"sweep": [1, 2, 3], "grid": [1, 2]}}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     sorted(p.name for p in write_plots(tables, Path(out)))[:2]
    ['grid.png', 'grid.svg']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["OKABE_ITO", "write_plots"]

OKABE_ITO = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Stable SVG element ids, so that the same tables give the same file.
    plt.rcParams["svg.hashsalt"] = "harness-pilot"
    return plt


def _save(fig: Any, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=130, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def _bars(ax: Any, labels: list[str], sim: list[float], paper: list[Any], title: str) -> None:
    xs = range(len(labels))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], sim, width, label="measured", color=OKABE_ITO[3])
    known = [(x, p) for x, p in zip(xs, paper, strict=True) if p is not None]
    if known:
        ax.bar(
            [x + width / 2 for x, _ in known],
            [p for _, p in known],
            width,
            label="paper",
            color=OKABE_ITO[0],
        )
    ax.set_xticks(list(xs), labels, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(frameon=False)


def write_plots(tables: dict[str, Any], out: Path) -> list[Path]:
    """Write the three figures under ``out`` (which must exist); returns the files written."""
    plt = _pyplot()
    where = f"{tables['task']}, {tables['backend']}"
    written: list[Path] = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    single = tables["single"]
    _bars(
        axes[0],
        [r["short"] for r in single],
        [r["accuracy"] for r in single],
        [r["paper"] for r in single],
        f"single model ({where})",
    )
    combos = tables["combos"]
    _bars(
        axes[1],
        [r["combo"] for r in combos],
        [r["accuracy"] for r in combos],
        [r["paper"] for r in combos],
        "random graphs at equal budget",
    )
    written += _save(fig, out, "models")
    plt.close(fig)

    sweep = tables["settings"]["sweep"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, key, label in (
        (axes[0], "width", "width (parallel assistants)"),
        (axes[1], "depth", "depth (chain length)"),
    ):
        for i, (model, curve) in enumerate(tables[key].items()):
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(sweep, curve, marker="o", color=colour, label=model)
            best = max(range(len(curve)), key=curve.__getitem__)
            ax.plot(sweep[best], curve[best], marker="*", markersize=16, color=colour)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{key} sweep ({where}); star = optimum")
        ax.legend(frameon=False, title="model")
    written += _save(fig, out, "sweeps")
    plt.close(fig)

    sizes = tables["settings"]["grid"]
    models = list(tables["grid"])
    fig, axes = plt.subplots(
        1, len(models), figsize=(5.5 * len(models), 4.6), constrained_layout=True, squeeze=False
    )
    for ax, model in zip(axes[0], models, strict=True):
        grid = tables["grid"][model]
        image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        for w, row in enumerate(grid):
            best = max(range(len(row)), key=row.__getitem__)
            for d, value in enumerate(row):
                bold = "bold" if d == best else "normal"
                ax.text(
                    d,
                    w,
                    f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white"
                    if value < (min(map(min, grid)) + max(map(max, grid))) / 2
                    else "black",
                    fontweight=bold,
                )
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_yticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("depth (layers)")
        ax.set_ylabel("width (nodes per layer)")
        ax.set_title(f"{model}: accuracy (%); bold = best depth per width")
        fig.colorbar(image, ax=ax, label="accuracy (%)")
    written += _save(fig, out, "grid")
    plt.close(fig)
    return written
