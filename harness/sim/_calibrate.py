"""Fit the simulator's structural parameters to the anchors marked ``fitted`` (docs/sim.md).

Run as ``python -m harness.sim._calibrate``.

The abilities need no fitting (the backend fits them at bind time so that every single-model
graph scores its target); what is fitted here are the parameters of :data:`FITTED`: the
roles' weights on their own attempt, the context penalty and capacities, the overwrite
chance, MATH's and MMLU's difficulty spreads, MATH's trap and the vote and discern weights of
MATH and MMLU. Everything else in ``tasks/sim/llama3.yaml`` is set from a source or is a
stated assumption, and the held-out anchors are never seen here. The objective, on the
held-out items (``$HARNESS_DATA_DIR``, else the mirror), through :func:`harness.pilot.run_pilot`:

- the equal-budget combinations of MATH and MMLU (PAPER.md section 6): squared error in units
  of 3 points and a steep wall past 4, plus a hinge on every pair not in the paper's order;
- MATH's width sweep (3B fans of 1, 3, 5, 8 and 12 into a 3B output): a hinge unless an
  interior width beats both ends by 1.5 points (PAPER.md section 5, insight 2);
- the self-consistency gain of eight 1B answers on MATH (anchor ``math.vote.1B``, USC Table 1:
  +4.8 to +7.1): squared error from 6 points in units of 1.5, a steep wall past 2. It holds the
  voting strength against the paper's larger collaboration gains.

``discern`` is bounded to [0, 0.4] before fitting (USC, arXiv 2311.17311: a reader choosing
among answers does no better than a majority vote), so the fit cannot buy the paper's larger
collaboration gains with a near-oracle reader. A seeded (1+1) evolution strategy with the 1/5
success rule searches the box; ``--write`` writes the best point into the YAML file, keeping
its comments. ``--iterations 0`` only evaluates the committed file.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness._yaml import read_yaml
from harness.backends import Batch
from harness.paths import atomic_write_text
from harness.pilot import PAPER, run_pilot
from harness.pool import load_pool
from harness.sim._backend import SimBackend
from harness.sim._check import shaped_graph
from harness.sim._optimum import expected_accuracy
from harness.sim._params import SimParams, _Reader, sim_dir
from harness.tasks import Item, load_task

__all__ = ["FITTED", "apply_vector", "objective", "write_fields"]

# (field path in the YAML, low, high). "capacity" sets every model's capacity as
# capacity * (params / 1e9) ** 0.5.
FITTED: tuple[tuple[str, float, float], ...] = (
    ("structure/roles/assistant/self_weight", -2.0, 3.0),
    ("structure/roles/fuser/self_weight", -3.0, 2.0),
    ("structure/roles/output/self_weight", -4.0, 1.0),
    ("structure/context_penalty", 0.0, 3.0),
    ("structure/overwrite", 0.0, 0.05),
    ("structure/overwrite_growth", 0.5, 2.0),
    ("tasks/math/difficulty/spread", 0.3, 3.0),
    ("tasks/math/difficulty/model_spread", 0.2, 1.2),
    ("tasks/math/reading/vote", 1.0, 6.0),
    ("tasks/math/reading/discern", 0.0, 0.4),
    ("tasks/math/distractors/trap", 0.0, 0.6),
    ("tasks/mmlu/difficulty/spread", 1.5, 6.0),
    ("tasks/mmlu/difficulty/model_spread", 0.3, 2.0),
    ("tasks/mmlu/reading/vote", 1.0, 6.0),
    ("tasks/mmlu/reading/discern", 0.0, 0.4),
    ("capacity", 300.0, 2000.0),
)
_SIZES = {"llama-3.2-1b": 1.0, "llama-3.2-3b": 3.0, "llama-3.1-8b": 8.0, "llama-3.1-70b": 70.0}
_WIDTHS = (1, 3, 5, 8, 12)


def _get(data: dict[str, Any], path: str) -> float:
    if path == "capacity":
        return float(data["models"]["llama-3.2-1b"]["capacity"])
    node: Any = data
    for part in path.split("/"):
        node = node[part]
    return float(node)


def apply_vector(data: dict[str, Any], vector: Sequence[float]) -> dict[str, Any]:
    """A copy of the YAML content with the fitted fields set from ``vector``."""
    out = copy.deepcopy(data)
    for (path, _, _), value in zip(FITTED, vector, strict=True):
        if path == "capacity":
            for model, size in _SIZES.items():
                out["models"][model]["capacity"] = round(float(value) * size**0.5, 1)
            continue
        node = out
        parts = path.split("/")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = round(float(value), 3)
    # GSM8K's answers are of MATH's kind (comparable final answers): its reading follows.
    for field in ("vote", "discern"):
        out["tasks"]["gsm8k"]["reading"][field] = out["tasks"]["math"]["reading"][field]
    return out


def write_fields(text: str, data: dict[str, Any]) -> str:
    r"""``text`` (the YAML file) with the fitted fields' values replaced, comments kept.

    Example:
        >>> write_fields("a:\n  b: 1  # why\n", {"a": {"b": 2.5}})
        'a:\n  b: 2.5  # why\n'
    """
    out: list[str] = []
    path: list[str] = []
    for line in text.splitlines(keepends=True):
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(\s*)([^#\n]*?)(\s*(#.*)?)$", line.rstrip("\n"))
        if match is None or line.lstrip().startswith("#"):
            out.append(line)
            continue
        depth = len(match.group(1)) // 2
        path = [*path[:depth], match.group(2)]
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if match.group(4) and isinstance(node, int | float) and not isinstance(node, bool):
            line = f"{match.group(1)}{match.group(2)}:{match.group(3)}{node}{match.group(5)}\n"
        out.append(line)
    return "".join(out)


def _accuracy(task: Any, pool: Any, backend: SimBackend, batch: Batch, graph: Any) -> float:
    # Expected accuracy (percent) on 3000 question evaluations, on one batch for every graph.
    return 100 * expected_accuracy(graph, task, pool, backend, batch, 3000)[0]


def evaluate(params: SimParams, items: dict[str, tuple[Item, ...]]) -> dict[str, Any]:
    """The fitted quantities under ``params``: combinations, and MATH's 3B width sweep."""
    pool = load_pool("llama3")
    out: dict[str, Any] = {}
    for name, task_items in items.items():
        task = load_task(name)
        backend = SimBackend(params=params)
        backend.bind(task, pool, items=task_items)
        table = run_pilot(
            task, pool, backend, task_items, sweep=(1,), grid=(1,), min_evals=1500, graphs=24
        )
        out[name] = {"combos": {row["combo"]: row["accuracy"] for row in table["combos"]}}
        if name == "math":
            batch = Batch(tuple(task_items), "heldout")
            lone = shaped_graph({"fan": ["1B"], "output": "1B"})
            eight = shaped_graph({"fan": ["1B"] * 8, "output": "1B"})
            out[name]["vote"] = _accuracy(task, pool, backend, batch, eight) - _accuracy(
                task, pool, backend, batch, lone
            )
            out[name]["width"] = [
                _accuracy(
                    task,
                    pool,
                    backend,
                    batch,
                    shaped_graph({"fan": ["3B"] * w, "output": "3B"}),
                )
                for w in _WIDTHS
            ]
    return out


def objective(tables: dict[str, Any]) -> float:
    """The loss the fit minimises (see the module docstring)."""
    loss = 0.0
    for name in ("math", "mmlu"):
        sim, ref = tables[name]["combos"], PAPER[name]["combos"]
        for combo in ref:
            error = sim[combo] - ref[combo]
            loss += (error / 3) ** 2 + 10 * max(0.0, abs(error) - 4) ** 2
        for a in ref:
            for b in ref:
                if ref[a] > ref[b]:
                    loss += 10 * max(0.0, 1.0 - (sim[a] - sim[b])) ** 2
    vote_error = tables["math"]["vote"] - 6.0
    loss += (vote_error / 1.5) ** 2 + 10 * max(0.0, abs(vote_error) - 2) ** 2
    curve = tables["math"]["width"]
    loss += 5 * max(0.0, 1.5 - (max(curve[1:-1]) - max(curve[0], curve[-1]))) ** 2
    return loss


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, print the fitted fields and the loss; ``--write`` writes them into the YAML."""
    parser = argparse.ArgumentParser(prog="python -m harness.sim._calibrate")
    parser.add_argument("--iterations", type=int, default=200, help="steps (0: evaluate only)")
    parser.add_argument("--seed", type=int, default=2511)
    parser.add_argument("--mmlu-items", type=int, default=2000, help="MMLU items while fitting")
    parser.add_argument("--write", action="store_true", help="write the fit into the YAML file")
    args = parser.parse_args(argv)
    path: Path = sim_dir() / "llama3.yaml"
    base = read_yaml(path)
    items = {
        "math": load_task("math").load().heldout,
        "mmlu": load_task("mmlu").load().heldout[: args.mmlu_items],
    }

    def loss_of(vector: Sequence[float]) -> float:
        params = _Reader(path).sim(apply_vector(base, vector), "llama3")
        return objective(evaluate(params, items))

    low = np.array([lo for _, lo, _ in FITTED])
    high = np.array([hi for _, _, hi in FITTED])
    rng = np.random.default_rng(args.seed)
    unit = (np.clip([_get(base, p) for p, _, _ in FITTED], low, high) - low) / (high - low)
    best = loss_of(list(low + unit * (high - low)))
    print(f"committed: loss {best:.3f}", flush=True)
    sigma = 0.15
    for step in range(args.iterations):
        kid = np.clip(unit + sigma * rng.normal(size=len(unit)), 0, 1)
        loss = loss_of(list(low + kid * (high - low)))
        if loss < best:
            unit, best, sigma = kid, loss, min(0.3, sigma * 1.5)
            print(f"step {step + 1}: loss {best:.3f}", flush=True)
        else:
            sigma = max(0.02, sigma * 1.5**-0.25)  # the 1/5 success rule
    vector = list(low + unit * (high - low))
    for (field, _, _), value in zip(FITTED, vector, strict=True):
        print(f"{field}: {value:.3f}")
    if args.write and args.iterations > 0:
        text = path.read_text(encoding="utf-8")
        atomic_write_text(path, write_fields(text, apply_vector(base, vector)))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
