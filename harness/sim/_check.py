"""The sim's error, stated: every anchor the simulator is held to, with its value and verdict.

An *anchor* is a published measurement the sim should reproduce: a single model's accuracy, an
equal-budget combination of PAPER.md section 6, or a finding of the literature on how LLMs
collaborate (voting gains, self-review, correlated errors, no judge better than the evidence).
Anchors are data, in ``tasks/sim/anchors.yaml``: each names its task, what is measured, the
target, the check (``within`` a tolerance of ``target``, ``at_most`` or ``at_least`` ``target``,
``between`` the two ends of ``range``), its source,
and whether the parameters were *fitted* to it or it is *held out* (never seen by the fit), the
way NAS-Bench-301 states a surrogate's error in sample and out of sample.

Measures (``measure:`` in the file):

- ``accuracy: GRAPH``: expected held-out accuracy of a graph (percent);
- ``gain: [GRAPH, BASE]``: accuracy of ``GRAPH`` minus that of ``BASE`` (points);
- ``combo: LABEL``: mean accuracy of random graphs of one model combination at level 9 (the
  paper's pilot, :func:`harness.pilot.run_pilot`);
- ``order: [LABEL, ...]``: pairs of combinations out of the listed (increasing) order;
- ``wrong_agreement: [M1, M2]``: among questions both models' lone calls get wrong, the share
  where they give the same wrong answer (percent);
- ``correlation: [M1, M2]``: correlation over questions of the two models' per-question
  accuracy (lone calls, many epochs);
- ``optimum_gain``: the shipped optimum's accuracy minus the best single-model graph of the
  models it uses (points); ``optimum_over_sc``: minus the best self-consistency graph (the
  widest fan of copies of one model into an output node of any model) that fits the same
  budget;
- ``shape: {model: M, insight: I}``: over the layered graphs of model ``M`` (each node of a
  layer reading the whole layer before, an output node of ``M``) that fit the level-12 space,
  whether the best accuracy by width and by depth peaks inside the range (``interior_width``,
  ``interior_depth``: 1 or 0) and whether the widest graphs want a shallower depth than width
  1 does (``interaction``: 1 or 0), PAPER.md section 5's insights 2 and 3 inside the space.

A GRAPH is ``{fan: [MODELS], output: MODEL}`` (every agent feeds the output node) or
``{chain: [MODELS], output: MODEL}`` (each agent reads the one before).

Example:
    >>> anchors = load_anchors()
    >>> sorted({a.check for a in anchors}) == sorted(CHECKS)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness._yaml import read_yaml
from harness.backends import Batch, EvalContext, NodeCall
from harness.errors import ConfigError
from harness.graph import ASSISTANT, OUTPUT, Graph, Node
from harness.pilot import layered_graph, run_pilot
from harness.pool import Pool
from harness.sim._backend import SimBackend
from harness.sim._optimum import expected_accuracy
from harness.sim._optimum_data import load_optimum
from harness.sim._params import sim_dir
from harness.space import Space
from harness.tasks import Item, Task

__all__ = ["CHECKS", "Anchor", "Verdict", "check_anchors", "load_anchors", "shaped_graph"]

CHECKS = ("within", "at_most", "at_least", "between")
MEASURES = (
    "accuracy",
    "gain",
    "combo",
    "order",
    "wrong_agreement",
    "correlation",
    "optimum_gain",
    "optimum_over_sc",
    "shape",
)
_EVALS = 6000
"""Question evaluations behind each accuracy: its sampling error is about 0.6 points."""


@dataclass(frozen=True)
class Anchor:
    """One measurement the sim is held to (see the module docstring)."""

    id: str
    task: str
    measure: str
    args: Any
    check: str
    target: float
    tolerance: float
    fitted: bool
    source: str
    low: float = 0.0
    high: float = 0.0

    def passes(self, value: float) -> bool:
        """Whether ``value`` meets the anchor."""
        if self.check == "within":
            return abs(value - self.target) <= self.tolerance
        if self.check == "at_most":
            return value <= self.target
        if self.check == "at_least":
            return value >= self.target
        return self.low <= value <= self.high

    @property
    def wanted(self) -> str:
        """The check in words, for tables."""
        if self.check == "within":
            return f"{self.target:g} ± {self.tolerance:g}"
        if self.check == "at_most":
            return f"<= {self.target:g}"
        if self.check == "at_least":
            return f">= {self.target:g}"
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Verdict:
    """An anchor, the sim's value and whether it passes."""

    anchor: Anchor
    value: float

    @property
    def passed(self) -> bool:
        """Whether the value meets the anchor."""
        return self.anchor.passes(self.value)

    @property
    def error(self) -> float:
        """How far the value is from the target (``within``) or outside the bound (else)."""
        a = self.anchor
        if a.check == "within":
            return self.value - a.target
        if a.check == "at_most":
            return max(0.0, self.value - a.target)
        if a.check == "at_least":
            return min(0.0, self.value - a.target)
        return min(0.0, self.value - a.low) + max(0.0, self.value - a.high)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able record."""
        a = self.anchor
        return {
            "id": a.id,
            "task": a.task,
            "measure": a.measure,
            "check": a.check,
            "wanted": a.wanted,
            "value": round(self.value, 2),
            "error": round(self.error, 2),
            "passed": self.passed,
            "fitted": a.fitted,
            "source": a.source,
        }


def anchors_path(pool: str) -> Path:
    """The anchor file of a pool (``tasks/sim/<pool>.anchors.yaml``)."""
    return sim_dir() / f"{pool}.anchors.yaml"


def load_anchors(pool: str = "llama3", path: Path | None = None) -> list[Anchor]:
    """Read and check a pool's anchors.

    Raises:
        ConfigError: no file, or a bad entry (one line naming the file and the anchor).
    """
    where = path or anchors_path(pool)
    if not where.is_file():
        raise ConfigError(f"no sim anchors for pool {pool!r} ({where.name} in tasks/sim/)")
    data = read_yaml(where)
    entries = data.get("anchors") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a mapping with a list 'anchors'")
    out, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: anchor {i}: expected a mapping, got {entry!r}")
        anchor = _anchor(entry, f"{where}: anchor {entry.get('id', i)!r}")
        if anchor.id in seen:
            raise ConfigError(f"{where}: anchor {anchor.id!r} appears twice")
        seen.add(anchor.id)
        out.append(anchor)
    return out


def _anchor(entry: Mapping[str, Any], at: str) -> Anchor:
    known = {"id", "task", "measure", "check", "target", "tolerance", "range", "fitted", "source"}
    extra = sorted(set(entry) - known)
    if extra:
        raise ConfigError(f"{at}: unknown field {extra[0]!r}")
    needed = ("id", "task", "measure", "check", "source")
    for field in (*needed, "range" if entry.get("check") == "between" else "target"):
        if field not in entry:
            raise ConfigError(f"{at}: missing field {field!r}")
    measure = entry["measure"]
    if not isinstance(measure, Mapping) or len(measure) != 1:
        raise ConfigError(f"{at}: field 'measure': expected one of {', '.join(MEASURES)}")
    ((kind, args),) = measure.items()
    if kind not in MEASURES:
        raise ConfigError(f"{at}: field 'measure': expected one of {', '.join(MEASURES)}")
    if not _args_fit(str(kind), args):
        raise ConfigError(
            f"{at}: field 'measure.{kind}': expected {_ARGS[str(kind)]}, got {args!r}"
        )
    check = entry["check"]
    if check not in CHECKS:
        raise ConfigError(f"{at}: field 'check': expected one of {', '.join(CHECKS)}")
    numbers = {}
    for field in ("target", "tolerance"):
        value = entry.get(field, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{at}: field {field!r}: expected a number, got {value!r}")
        numbers[field] = float(value)
    bounds = entry.get("range", [0.0, 0.0])
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in bounds)
        or bounds[0] > bounds[1]
    ):
        raise ConfigError(f"{at}: field 'range': expected [LOW, HIGH] with LOW <= HIGH")
    return Anchor(
        id=str(entry["id"]),
        task=str(entry["task"]),
        measure=str(kind),
        args=args,
        check=str(check),
        target=numbers["target"],
        tolerance=numbers["tolerance"],
        fitted=bool(entry.get("fitted", False)),
        source=str(entry["source"]),
        low=float(bounds[0]),
        high=float(bounds[1]),
    )


_ARGS = {
    "accuracy": "a graph {fan|chain: [MODELS], output: MODEL}",
    "gain": "[GRAPH, BASE], two graphs",
    "combo": "a combination such as 3x3B",
    "order": "a list of two or more combinations",
    "wrong_agreement": "[MODEL, MODEL]",
    "correlation": "[MODEL, MODEL]",
    "optimum_gain": "any value (unused)",
    "optimum_over_sc": "any value (unused)",
    "shape": "{model: MODEL, insight: interior_width|interior_depth|interaction}",
}
_INSIGHTS = ("interior_width", "interior_depth", "interaction")


def _args_fit(kind: str, args: Any) -> bool:
    """Whether a measure's arguments have the shape it needs (graphs are checked when built)."""
    if kind == "accuracy":
        return isinstance(args, Mapping)
    if kind == "gain":
        return isinstance(args, list) and len(args) == 2
    if kind == "combo":
        return isinstance(args, str)
    if kind == "order":
        return isinstance(args, list) and len(args) >= 2 and all(isinstance(a, str) for a in args)
    if kind in ("wrong_agreement", "correlation"):
        return isinstance(args, list) and len(args) == 2 and all(isinstance(a, str) for a in args)
    if kind == "shape":
        return (
            isinstance(args, Mapping)
            and isinstance(args.get("model"), str)
            and args.get("insight") in _INSIGHTS
        )
    return True


def shaped_graph(spec: Any, where: str = "graph") -> Graph:
    """A graph from ``{fan: [MODELS], output: M}`` or ``{chain: [MODELS], output: M}``.

    Example:
        >>> shaped_graph({"chain": ["3B", "3B"], "output": "3B"}).depth
        2
    """
    if not isinstance(spec, Mapping) or "output" not in spec or len(spec) != 2:
        raise ConfigError(f"{where}: expected {{fan|chain: [MODELS], output: MODEL}}")
    shape = next(k for k in spec if k != "output")
    models = spec[shape]
    if shape not in ("fan", "chain") or not isinstance(models, list) or not models:
        raise ConfigError(f"{where}: expected {{fan|chain: [MODELS], output: MODEL}}")
    nodes = [Node(i, str(m), ASSISTANT) for i, m in enumerate(models)]
    if shape == "fan":
        edges: list[tuple[int, int | str]] = [(i, OUTPUT) for i in range(len(models))]
    else:
        edges = [(i, i + 1) for i in range(len(models) - 1)]
        edges.append((len(models) - 1, OUTPUT))
    return Graph.create(nodes, edges, str(spec["output"]))


class _Meter:
    """Measures on one task: expected accuracies (memoised by graph id) and lone calls."""

    def __init__(
        self, task: Task, pool: Pool, backend: SimBackend, items: Sequence[Item], seed: int
    ) -> None:
        self.task, self.pool, self.backend, self.seed = task, pool, backend, seed
        self.batch = Batch(tuple(items), "heldout")
        self._memo: dict[str, float] = {}

    def accuracy(self, graph: Graph) -> float:
        """Expected accuracy in percent (:func:`harness.sim._optimum.expected_accuracy`)."""
        graph = self.pool.resolve(graph)
        if graph.id not in self._memo:
            mean, _ = expected_accuracy(
                graph, self.task, self.pool, self.backend, self.batch, _EVALS, self.seed
            )
            self._memo[graph.id] = 100 * mean
        return self._memo[graph.id]

    def lone(self, model: str, position: int, epoch: int) -> np.ndarray:
        spec = self.pool.model(model)
        a, b = self.task.config.lengths
        call = NodeCall("anchor", position, position, spec, "assistant", 1, (), a, b)
        symbols = self.backend.answer(call, self.batch, [], EvalContext(self.seed, epoch), list)
        assert symbols.symbols is not None
        return symbols.symbols


def _measure(anchor: Anchor, meter: _Meter, extra: Mapping[str, Any]) -> float:
    kind, args, at = anchor.measure, anchor.args, f"anchor {anchor.id!r}"
    if kind == "accuracy":
        return meter.accuracy(shaped_graph(args, at))
    if kind == "gain":
        graph, base = args
        return meter.accuracy(shaped_graph(graph, at)) - meter.accuracy(shaped_graph(base, at))
    if kind in ("combo", "order"):
        combos = extra["combos"]()
        if kind == "combo":
            return float(combos[args])
        return float(
            sum(combos[low] >= combos[high] for i, low in enumerate(args) for high in args[i + 1 :])
        )
    if kind == "wrong_agreement":
        same = both = 0
        for epoch in range(8):
            x, y = meter.lone(args[0], 0, epoch), meter.lone(args[1], 1, epoch)
            wrong = (x > 0) & (y > 0)
            both += int(wrong.sum())
            same += int((wrong & (x == y)).sum())
        return 100 * same / max(1, both)
    if kind == "correlation":
        rows = [
            np.mean([meter.lone(m, i, e) == 0 for e in range(32)], axis=0)
            for i, m in enumerate(args)
        ]
        return float(np.corrcoef(rows[0], rows[1])[0, 1])
    if kind == "shape":
        grid = extra["grid"](str(args["model"]))
        return float(_shape(grid, str(args["insight"])))
    optimum = extra["optimum"]()
    if kind in ("optimum_gain", "optimum_over_sc"):
        # The shipped graph, re-scored on these items (the optimum was searched on the
        # mirror's split; the check may run on other items of the same task).
        found = meter.accuracy(optimum.graph)
        if kind == "optimum_gain":
            models = set(optimum.graph.model_counts()) | {optimum.graph.output_model}
            return found - max(
                meter.accuracy(shaped_graph({"fan": [m], "output": m})) for m in models
            )
        return found - max(_self_consistency(meter, extra["space"]()))
    raise AssertionError(f"unhandled measure {kind!r}")  # load_anchors admits no other


def _self_consistency(meter: _Meter, space: Any) -> Iterable[float]:
    """Accuracy of the widest fitting fan of copies of each model, into each output model.

    Self-consistency (Wang et al. 2023) at equal budget: the output node counts the votes and
    may be of any model, since it is paid for like any node.
    """
    for spec in meter.pool.models:
        for out in meter.pool.models:
            best = None
            for width in range(1, space.max_nodes + 1):
                graph = shaped_graph({"fan": [spec.name] * width, "output": out.name})
                if space.fits(graph):
                    best = graph
            if best is not None:
                yield meter.accuracy(best)


def in_space_grid(meter: _Meter, space: Any, model: str) -> dict[tuple[int, int], float]:
    """Accuracy of every layered graph of ``model`` (width x depth) that fits ``space``.

    Each of ``depth`` layers has ``width`` assistants reading the whole layer before; the
    output node, of ``model`` too, reads the last layer (:func:`harness.pilot.layered_graph`).
    """
    grid = {}
    for width in range(1, space.max_nodes + 1):
        for depth in range(1, space.max_nodes // width + 1):
            graph = meter.pool.resolve(layered_graph(model, width, depth))
            if space.fits(graph):
                grid[(width, depth)] = meter.accuracy(graph)
    return grid


def _shape(grid: Mapping[tuple[int, int], float], insight: str) -> int:
    """1 if the in-space grid shows the named insight of PAPER.md section 5, else 0.

    ``interior_width``: the best accuracy over depths, as a function of width, peaks strictly
    inside the widths that fit; ``interior_depth`` likewise; ``interaction``: the best depth of
    the widest graphs that fit in more than one depth is below the best depth at width 1.
    """

    def best_over(axis: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for shape, acc in grid.items():
            out[shape[axis]] = max(out.get(shape[axis], -1.0), acc)
        return out

    if insight in ("interior_width", "interior_depth"):
        curve = best_over(0 if insight == "interior_width" else 1)
        keys = sorted(curve)
        top = max(keys, key=lambda k: curve[k])
        return int(keys[0] < top < keys[-1])
    if insight != "interaction":
        raise ConfigError(f"shape: unknown insight {insight!r}")

    def best_depth(width: int) -> int:
        cells = {d: a for (w, d), a in grid.items() if w == width}
        return max(cells, key=lambda d: cells[d])

    wide = max(w for w, _ in grid if sum(1 for x, _ in grid if x == w) > 1)
    return int(best_depth(wide) < best_depth(1))


def check_anchors(
    task: Task,
    pool: Pool,
    items: Sequence[Item],
    anchors: Sequence[Anchor],
    *,
    backend: SimBackend | None = None,
    seed: int = 0,
) -> list[Verdict]:
    """Measure every anchor of ``task`` on the sim and return the verdicts.

    Args:
        task: the task.
        pool: the pool (it needs sim parameters).
        items: the held-out items.
        anchors: the anchors; those of other tasks are skipped.
        backend: a bound sim backend (default: a new one bound to ``items``).
        seed: the study seed of every measurement.
    """
    mine = [a for a in anchors if a.task == task.name]
    if backend is None:
        backend = SimBackend()
        backend.bind(task, pool, items=items)
    meter = _Meter(task, pool, backend, items, seed)
    found: dict[str, Any] = {}

    def combos() -> dict[str, float]:
        if "combos" not in found:
            labels = sorted(
                {a.args for a in mine if a.measure == "combo"}
                | {x for a in mine if a.measure == "order" for x in a.args}
            )
            table = run_pilot(
                task, pool, backend, items, seed=seed, combos=labels, sweep=(1,), grid=(1,)
            )
            found["combos"] = {row["combo"]: row["accuracy"] for row in table["combos"]}
        return dict(found["combos"])

    def optimum() -> Any:
        if "optimum" not in found:
            shipped = load_optimum(pool.name, task.name)
            current = str(backend.describe()["cache_key"])
            if shipped.cache_key != current:
                # Found under other parameters: its accuracy and its very graph may be stale.
                raise ConfigError(
                    f"tasks/sim/optimum/{pool.name}.json: the {task.name} optimum was found "
                    f"under other sim parameters ({shipped.cache_key}, now {current}); "
                    f"regenerate it: harness sim optimum --task {task.name} --write"
                )
            found["optimum"] = shipped
        return found["optimum"]

    def space() -> Space:
        return Space(pool, task.lengths, level=optimum().level, task=task.name)

    def grid(model: str) -> dict[tuple[int, int], float]:
        key = f"grid:{model}"
        if key not in found:
            level12 = Space(pool, task.lengths, level=12, task=task.name)
            found[key] = in_space_grid(meter, level12, model)
        return dict(found[key])

    extra = {"combos": combos, "optimum": optimum, "space": space, "grid": grid}
    return [Verdict(a, _measure(a, meter, extra)) for a in mine]
