"""Fit the simulator's structural parameters to PAPER.md section 6.

Run as ``python -m harness.sim._calibrate``.

The abilities need no fitting (the backend bisects them at bind time); what is fitted here are
the parameters of nodes with inputs (judging, herding, re-solving per role, the context
penalty, overwriting, the models' capacities) and MMLU's distractor structure. The objective,
on the real held-out items through :func:`harness.pilot.run_pilot` (the same code as
``harness pilot``):

- the equal-budget combinations of MATH and MMLU: squared error in units of 3 points and a
  steep wall past 4 points, plus a hinge penalty on every pair not in the paper's order by at
  least 1.5 points;
- the single-model graphs (``m -> output m``) of all four tasks: squared error in units of 2
  points and a steep wall past 1.2 points (the tests allow 2);
- the width and depth sweeps on MATH (1B and 3B): a hinge penalty unless the best interior
  point beats both ends by 2.5 points;
- the MATH grid (1B and 3B): a hinge penalty unless the (smoothed) best depth at width 6 is at
  least 1.5 below that at width 1, and the best width at depth 6 1.5 below that at depth 1.

A seeded evolution strategy (:func:`evolve`), started from the committed values, searches the
box :data:`FITTED`; the best vector is printed as YAML fields, with the table it reaches, and
``--write`` writes it into ``tasks/sim/llama3.yaml``. A step (four offspring) takes about 20 s
with one worker on a 2-core machine; ``--iterations 0`` only evaluates the committed file.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from harness._yaml import read_yaml
from harness.paths import atomic_write_text
from harness.pilot import PAPER, run_pilot
from harness.pool import load_pool
from harness.sim._backend import SimBackend
from harness.sim._params import SimParams, _Reader, sim_dir
from harness.tasks import Item, load_task

__all__ = ["FITTED", "apply_vector", "evaluate", "objective"]

_MODELS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b")
_SIZES = (1.0, 3.0, 8.0, 70.0)

# (field path in the YAML, low, high). "capacity" and "capacity_exponent" set every model's
# capacity as capacity * (params / 1e9) ** capacity_exponent.
FITTED: tuple[tuple[str, float, float], ...] = (
    *(
        (f"{prefix}structure/roles/{role}/{field}", low, high)
        for prefix in ("", "tasks/mmlu/")
        for role in ("assistant", "fuser", "output")
        for field, low, high in (("judge", -2.0, 4.0), ("resolve", 0.0, 1.0), ("herd", 0.0, 1.0))
        # The output node decides among its inputs: it never re-solves (an assumption).
        if not (role == "output" and field == "resolve")
    ),
    ("structure/judge_scale", 0.0, 3.0),
    ("tasks/mmlu/structure/judge_scale", 0.0, 3.0),
    ("structure/sway", 0.0, 2.0),
    ("tasks/mmlu/structure/sway", 0.0, 2.0),
    ("structure/distraction", 0.0, 0.8),
    ("tasks/mmlu/structure/distraction", 0.0, 0.8),
    ("tasks/math/distractors/trap", 0.0, 0.9),
    ("tasks/mmlu/distractors/trap", 0.0, 0.9),
    ("structure/context_penalty", 0.0, 4.0),
    ("structure/overwrite", 0.0, 0.05),
    ("structure/overwrite_growth", 0.5, 3.0),
    ("structure/overwrite_width", 0.0, 1.5),
    ("tasks/math/difficulty/spread", 0.2, 3.0),
    ("tasks/math/difficulty/model_spread", 0.0, 2.0),
    ("tasks/mmlu/difficulty/spread", 0.5, 6.0),
    ("tasks/mmlu/difficulty/model_spread", 0.0, 8.0),
    # Copies of one model must share their mistakes more than different models do
    # (tests/test_sim.py); below about 0.35 MMLU's three distractors hide it.
    ("tasks/mmlu/distractors/own", 0.35, 1.0),
    ("tasks/mmlu/distractors/decay", 0.0, 1.0),
    ("capacity", 200.0, 2000.0),
    ("capacity_exponent", 0.0, 1.2),
)


def _set(data: dict[str, Any], path: str, value: float) -> None:
    node = data
    parts = path.split("/")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def apply_vector(data: dict[str, Any], vector: Sequence[float]) -> dict[str, Any]:
    """A copy of the YAML content with the fitted fields set from ``vector``.

    MMLU's structure is the shared one except for the fields it fits itself.
    """
    out = copy.deepcopy(data)
    values = dict(zip([path for path, _, _ in FITTED], vector, strict=True))
    for path, value in values.items():
        if path.startswith("structure/"):
            _set(out, path, float(value))
    out["tasks"]["mmlu"]["structure"] = copy.deepcopy(out["structure"])
    for path, value in values.items():
        if path.startswith("tasks/"):
            _set(out, path, float(value))
    for model, size in zip(_MODELS, _SIZES, strict=True):
        capacity = values["capacity"] * size ** values["capacity_exponent"]
        out["models"][model]["capacity"] = round(float(capacity), 1)
    return out


def vector_of(data: dict[str, Any]) -> list[float]:
    """The fitted fields' current values in ``data`` (the starting point of a fit)."""
    capacities = [float(data["models"][m]["capacity"]) for m in _MODELS]
    out = []
    for path, low, high in FITTED:
        if path == "capacity":
            value = capacities[0]
        elif path == "capacity_exponent":
            value = float(np.log(capacities[1] / capacities[0]) / np.log(_SIZES[1]))
        else:
            node: Any = data
            for part in path.split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if not isinstance(node, int | float):
                # A task without its own structure starts from the shared value.
                node = vector_of_shared(data, path)
            value = float(node)
        out.append(min(max(value, low), high))
    return out


def vector_of_shared(data: dict[str, Any], path: str) -> float:
    """The shared structure's value for a task-specific structure field."""
    node: Any = data["structure"]
    for part in path.split("/structure/", 1)[1].split("/"):
        node = node[part]
    return float(node)


class _Data:
    """The tasks, pool and items the objective evaluates on (loaded once)."""

    def __init__(self, mmlu_items: int) -> None:
        self.pool = load_pool("llama3")
        # GSM8K and HumanEval share MATH's structure: only their single-model accuracies are
        # fitted (their difficulty is set by their targets), but a structure change moves them.
        self.tasks = {name: load_task(name) for name in ("math", "mmlu", "gsm8k", "humaneval")}
        self.items: dict[str, tuple[Item, ...]] = {}
        for name, task in self.tasks.items():
            items = task.load().heldout
            self.items[name] = items[:mmlu_items] if name == "mmlu" else items


def evaluate(params: SimParams, data: _Data, graphs: int, min_evals: int) -> dict[str, Any]:
    """The pilot tables of MATH and MMLU under ``params``."""
    out = {}
    for name, task in data.tasks.items():
        backend = SimBackend(params=params)
        backend.bind(task, data.pool, items=data.items[name])
        math = name == "math"
        if name in SINGLES_ONLY:
            out[name] = run_pilot(
                task, data.pool, backend, data.items[name], combos=["1x3B"], graphs=1,
                min_evals=min_evals, sweep=(1,), grid=(1,),
            )  # fmt: skip
            continue
        out[name] = run_pilot(
            task,
            data.pool,
            backend,
            data.items[name],
            graphs=graphs,
            min_evals=min_evals,
            sweep=tuple(range(1, 9)) if math else (1,),
            grid=tuple(range(1, 7)) if math else (1,),
            grid_evals=min_evals // 4,
        )
    return out


SINGLES_ONLY = ("gsm8k", "humaneval")


def _interior(curve: Sequence[float]) -> float:
    gap = max(curve[1:-1]) - max(curve[0], curve[-1])
    return 30 * max(0.0, 2.5 - gap) ** 2


def _interaction(grid: npt.NDArray[np.float64]) -> float:
    """Hinges unless the best depth falls with width and the best width with depth."""
    best_depth = _soft_best(grid)  # per width (rows)
    best_width = _soft_best(grid.T)  # per depth (columns)
    return 30 * (
        max(0.0, 1.5 + best_depth[-1] - best_depth[0]) ** 2
        + max(0.0, 1.5 + best_width[-1] - best_width[0]) ** 2
    )


def _miss(error: float, scale: float, allowed: float, wall: float = 10.0) -> float:
    # A mild pull towards the target, and a steep wall past what the tests allow.
    return (error / scale) ** 2 + wall * max(0.0, abs(error) - allowed) ** 2


def objective(tables: dict[str, Any]) -> float:
    """The loss the fit minimises (see the module docstring)."""
    loss = 0.0
    for name, table in tables.items():
        paper = PAPER[name]
        for row in table["single"]:
            # The tests allow 2 points; the wall starts at 1.2 so that the held-out split's
            # noise (the fit sees fewer MMLU items) cannot push a model past 2.
            loss += _miss(row["accuracy"] - paper["single"][row["short"]], 2.0, 1.2, 60.0)
        if name in SINGLES_ONLY:
            continue
        sim = {row["combo"]: row["accuracy"] for row in table["combos"]}
        ref = paper["combos"]
        loss += sum(_miss(sim[c] - ref[c], 3.0, 4.0) for c in ref)
        for a in ref:
            for b in ref:
                if ref[a] > ref[b]:
                    loss += 10 * max(0.0, 1.5 - (sim[a] - sim[b])) ** 2
        if name == "math":
            for curve in (*table["width"].values(), *table["depth"].values()):
                loss += _interior(curve)
            for grid in table["grid"].values():
                loss += _interaction(np.array(grid))
    return loss


def _rounded(value: Any) -> Any:
    # Three decimals are well inside the fit's noise; capacities (hundreds of tokens) keep one.
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, 3) if abs(value) < 100 else round(value, 1)
    return value


def _soft_best(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # A smooth argmax (1-based), so that the loss sees an optimum move before it jumps.
    weights = np.exp((rows - rows.max(axis=1, keepdims=True)) / 1.0)
    return (weights * np.arange(1, rows.shape[1] + 1)).sum(axis=1) / weights.sum(axis=1)


def _report(tables: dict[str, Any]) -> str:
    lines = []
    for name, table in tables.items():
        lines.append(f"{name}: sim (paper)")
        single = ", ".join(f"{r['short']} {r['accuracy']} ({r['paper']})" for r in table["single"])
        combos = ", ".join(f"{r['combo']} {r['accuracy']} ({r['paper']})" for r in table["combos"])
        lines += [f"  single: {single}", f"  combos: {combos}"]
        for model in table["width"]:
            lines.append(f"  width {model}: {table['width'][model]}")
            lines.append(f"  depth {model}: {table['depth'][model]}")
    return "\n".join(lines)


class _Objective:
    """A picklable objective for the worker processes of differential evolution."""

    def __init__(
        self, base: dict[str, Any], path: Path, mmlu_items: int, graphs: int, min_evals: int
    ) -> None:
        self.base, self.path, self.mmlu_items = base, path, mmlu_items
        self.graphs, self.min_evals = graphs, min_evals
        self._data: _Data | None = None

    def __call__(self, vector: npt.NDArray[np.float64]) -> float:
        if self._data is None:
            self._data = _Data(self.mmlu_items)
        fitted = apply_vector(self.base, [float(v) for v in vector])
        params = _Reader(self.path).sim(fitted, "llama3")
        return objective(evaluate(params, self._data, self.graphs, self.min_evals))


def evolve(
    fit: _Objective,
    start: Sequence[float],
    iterations: int,
    seed: int,
    workers: int,
    offspring: int = 4,
) -> tuple[list[float], float]:
    """A seeded (1 + offspring) evolution strategy in the box of :data:`FITTED`.

    Steps are Gaussian in coordinates scaled to the box; the step size follows the 1/5 success
    rule (grow on success, shrink otherwise). Returns the best vector and its loss.
    """
    import multiprocessing

    low = np.array([lo for _, lo, _ in FITTED])
    high = np.array([hi for _, _, hi in FITTED])
    rng = np.random.default_rng(seed)
    best = (np.array(start) - low) / (high - low)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        best_loss = pool.map(fit, [low + best * (high - low)])[0]
        sigma = 0.05
        for step in range(iterations):
            kids = [
                np.clip(best + sigma * rng.normal(size=len(best)), 0, 1) for _ in range(offspring)
            ]
            losses = pool.map(fit, [low + kid * (high - low) for kid in kids])
            pick = int(np.argmin(losses))
            if losses[pick] < best_loss:
                best, best_loss = kids[pick], losses[pick]
                sigma = min(0.3, sigma * 1.5)
                # The best point so far, so that an interrupted fit can be resumed from it.
                point = [round(float(v), 4) for v in low + best * (high - low)]
                print(f"best {best_loss:.3f} {point}", flush=True)
            else:
                sigma *= 1.5 ** (-1 / 4)
                if sigma < 0.01:
                    sigma = 0.08  # stuck: restart the search around the best point so far
            print(f"step {step + 1}: loss {best_loss:.3f} sigma {sigma:.3f}", flush=True)
    return [float(v) for v in low + best * (high - low)], float(best_loss)


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, print the fitted fields and the table they give."""
    parser = argparse.ArgumentParser(prog="python -m harness.sim._calibrate")
    parser.add_argument("--iterations", type=int, default=150, help="steps (0: evaluate only)")
    parser.add_argument("--seed", type=int, default=2511)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mmlu-items", type=int, default=3000, help="MMLU items while fitting")
    parser.add_argument("--graphs", type=int, default=32, help="random graphs per combo")
    parser.add_argument("--min-evals", type=int, default=6000, help="evaluations per accuracy")
    parser.add_argument("--write", action="store_true", help="write the fit into the YAML file")
    args = parser.parse_args(argv)
    path = sim_dir() / "llama3.yaml"
    base = read_yaml(path)
    if args.iterations > 0:
        fit = _Objective(base, path, args.mmlu_items, args.graphs, args.min_evals)
        vector, loss = evolve(fit, vector_of(base), args.iterations, args.seed, args.workers)
        fitted = apply_vector(base, vector)
        print(f"loss {loss:.3f} (fitting settings)")
        for (field, _, _), value in zip(FITTED, vector, strict=True):
            print(f"{field}: {value:.3f}")
        if args.write:
            atomic_write_text(path, yaml.safe_dump(_rounded(fitted), sort_keys=False))
            print(f"wrote {path}")
    else:
        fitted = base
    params = _Reader(path).sim(fitted, "llama3")
    tables = evaluate(params, _Data(100_000), graphs=32, min_evals=6000)
    print(_report(tables))
    print(f"loss {objective(tables):.3f} (full held-out, 32 graphs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
