"""The ``sim`` backend: a calibrated simulator of a model pool, answering in symbols.

Example:
    >>> from harness.backends import Batch, EvalContext
    >>> from harness.executor import run_graph
    >>> from harness.graph import Graph
    >>> from harness.pool import load_pool
    >>> from harness.tasks import load_task
    >>> task, pool = load_task("mmlu"), load_pool("llama3")
    >>> backend = SimBackend()
    >>> backend.bind(task, pool)
    >>> g = Graph.create([(0, "8B", "assistant")], [(0, "output")], "3B")
    >>> items = task.load().heldout
    >>> run = run_graph(g, Batch(items, "heldout"), backend, task, pool, EvalContext(seed=0))
    >>> 0.60 < run.accuracy < 0.68   # PAPER.md section 6: 1x8B on MMLU, 64
    True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from harness.backends import Answers, Backend, Batch, EvalContext, NodeCall
from harness.errors import ConfigError
from harness.paths import tasks_dir
from harness.pool import Pool
from harness.sim._model import (
    DRAWS,
    LONE_DRAWS,
    NodeSpec,
    World,
    answer_node,
    calibrate_abilities,
    prepare_world,
)
from harness.sim._params import SimParams, load_sim_params
from harness.sim._random import mix, name_key, uniforms
from harness.sim._render import render_symbols
from harness.tasks import Item, Task

__all__ = ["SimBackend"]

# Abilities are a pure function of the parameters, task, pool and calibration items: computed
# once per process for each, since a test session or a sweep binds the same backend many times.
_SINGLE_GRAPH_ABILITIES: dict[str, dict[str, float]] = {}
_CALIBRATION_SEED = 2**31 - 1  # beyond every study seed `harness eval` accepts
_CALIBRATION_EVALS = 24_000


def _levels(items: Sequence[Item]) -> list[int | None]:
    levels: list[int | None] = []
    for item in items:
        level = item.meta.get("level")
        levels.append(level if isinstance(level, int) and not isinstance(level, bool) else None)
    return levels


def _doublings_of(params: float) -> float:
    # Parameter doublings past 1e9: what scales trap-proneness with model size.
    return math.log2(params / 1e9)


def _doublings(pool: Pool) -> list[float]:
    return [_doublings_of(spec.params) for spec in pool.models]


class SimBackend(Backend):
    """The embedded simulator (DESIGN.md section 4; the model is described in docs/sim.md).

    Binding reads ``tasks/sim/<pool>.yaml`` and calibrates each model's ability so that its
    mean single-call accuracy over the task's held-out items equals the file's target.

    Args:
        data_dir: where :meth:`bind` loads the held-out items it calibrates on (default: the
            task's usual sources, ``$HARNESS_DATA_DIR`` first).
        params_path: a parameter file to use instead of ``tasks/sim/<pool>.yaml``.
        params: parameters already loaded (the calibration script varies them); they win over
            ``params_path``.
    """

    name: ClassVar[str] = "sim"
    produces: ClassVar[str] = "symbols"

    def __init__(
        self,
        data_dir: Path | str | None = None,
        params_path: Path | None = None,
        params: SimParams | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.params_path = params_path
        self._given = params
        self.params: SimParams | None = None
        self.abilities: dict[str, float] = {}
        self._cache_key = ""

    def bind(self, task: Task, pool: Pool, *, items: Sequence[Item] | None = None) -> None:
        """Load the pool's parameters and calibrate the abilities on ``task``.

        Args:
            task: the task.
            pool: the pool; every model needs parameters and a target for the task.
            items: the items to calibrate on (default: the task's held-out split).

        Raises:
            ConfigError: no parameter file for the pool, a bad field, or a model or task the
                file does not cover.
        """
        params = self._given or load_sim_params(pool.name, self.params_path)
        where = params.source
        if task.name not in params.tasks:
            raise ConfigError(f"{where}: no sim parameters for task {task.name!r}")
        spec = params.tasks[task.name]
        for model in pool.names:
            if model not in params.models:
                raise ConfigError(f"{where}: no sim parameters for model {model!r}")
            if model not in spec.targets:
                raise ConfigError(
                    f"{where}: field 'tasks.{task.name}.targets': no target for {model!r}"
                )
        if task.config.scorer == "mmlu" and spec.distractors.count > 3:
            raise ConfigError(
                f"{where}: field 'tasks.{task.name}.distractors.count': at most 3 wrong options"
            )
        if items is None:
            items = task.load(self.data_dir).heldout
        super().bind(task, pool)
        self.params = params
        # The parameters' values, not where the file lies: the same parameters give the same key
        # in every checkout, so a manifest's key tells whether a re-run is comparable.
        digest = hashlib.sha256(repr(replace(params, source=Path())).encode()).hexdigest()[:16]
        self._cache_key = f"sim:{digest}:{task.name}:{','.join(pool.names)}"
        batch = Batch(tuple(items), "heldout")
        memo = f"{self._cache_key}:{hashlib.sha256(batch.keys.tobytes()).hexdigest()[:16]}"
        if memo not in _SINGLE_GRAPH_ABILITIES:
            world = self._world(batch)  # kept in the batch: the fit's graph runs reuse it
            lone_call = calibrate_abilities(
                world,
                [spec.targets[m] for m in pool.names],
                [params.models[m].no_answer for m in pool.names],
            )
            self.abilities = {m: float(a) for m, a in zip(pool.names, lone_call, strict=True)}
            targets = {m: spec.targets[m] for m in pool.names}  # fractions, like accuracies
            _SINGLE_GRAPH_ABILITIES[memo] = self._fit_single_graphs(batch, targets)
        self.abilities = dict(_SINGLE_GRAPH_ABILITIES[memo])

    def _fit_single_graphs(self, batch: Batch, targets: dict[str, float]) -> dict[str, float]:
        """Abilities whose single-model graphs (``m -> output m``) hit the targets.

        The harness's smallest graph is two calls: an assistant and the output node reading it,
        which takes a second look (it may re-solve a wrong input, or spoil a right one). The
        paper's single-model accuracy is what a method can get from that graph, so each model's
        ability is moved until the graph's accuracy on ``batch`` equals the target: a secant
        search from the one-call ability, on a calibration seed no study uses, over enough
        epochs for about 24,000 question evaluations (so the fit's own noise is ~0.3 points).
        """
        from harness.executor import run_graph
        from harness.graph import Graph

        assert self.task is not None and self.pool is not None
        task, pool = self.task, self.pool
        epochs = max(1, math.ceil(_CALIBRATION_EVALS / len(batch)))
        contexts = [EvalContext(_CALIBRATION_SEED, e) for e in range(epochs)]
        graphs = {m: Graph.create([(0, m, "assistant")], [(0, "output")], m) for m in pool.names}

        def error(abilities: dict[str, float]) -> dict[str, float]:
            self.abilities = abilities
            return {
                m: float(
                    np.mean([run_graph(g, batch, self, task, pool, c).accuracy for c in contexts])
                )
                - targets[m]
                for m, g in graphs.items()
            }

        low = dict(self.abilities)
        f_low = error(low)
        # Accuracy moves by about p(1 - p) per logit: the first step is a Newton step.
        high = {m: a - f_low[m] / max(0.05, targets[m] * (1 - targets[m])) for m, a in low.items()}
        f_high = error(high)
        for _ in range(6):
            if all(abs(v) < 0.0005 for v in f_high.values()):
                break
            step = {}
            for m in pool.names:
                slope = (f_high[m] - f_low[m]) / (high[m] - low[m]) if high[m] != low[m] else 0.0
                step[m] = (
                    high[m] - f_high[m] / slope
                    if slope > 1e-6
                    else high[m] - f_high[m] / max(0.05, targets[m] * (1 - targets[m]))
                )
            low, f_low = high, f_high
            high, f_high = step, error(step)
        return high

    def _world(self, batch: Batch) -> World:
        world = batch.cache.get(self._cache_key)
        if world is None:
            assert self.params is not None and self.task is not None and self.pool is not None
            world = prepare_world(
                self.params,
                self.task.name,
                self.pool.names,
                _levels(batch.items),
                batch.keys,
                _doublings(self.pool),
            )
            batch.cache[self._cache_key] = world
        return world

    def answer(
        self,
        call: NodeCall,
        batch: Batch,
        inputs: Sequence[Answers],
        context: EvalContext,
        prompts: Callable[[], list[list[dict[str, str]]]],
    ) -> Answers:
        """Answer one node's call on every question of the batch, as symbols."""
        if self.params is None or self.task is None:
            raise RuntimeError("SimBackend.answer called before bind")
        world = self._world(batch)
        model = call.model.name
        node = NodeSpec(
            model=world.row(model),
            ability=self.abilities[model],
            role=call.role,
            level=call.level,
            prompt_tokens=call.prompt_tokens,
            capacity=self.params.models[model].capacity,
            no_answer=self.params.models[model].no_answer,
        )
        symbols: list[npt.NDArray[np.int32]] = []
        for answers in inputs:
            if answers.symbols is None:
                raise TypeError("the sim backend reads symbol answers only")
            symbols.append(answers.symbols)
        key = mix(context.seed, context.epoch, name_key(call.graph_id), call.position)
        u = uniforms(key, batch.keys, DRAWS if symbols else LONE_DRAWS)
        spec = self.params.tasks[self.task.name]
        result = answer_node(
            world, node, self.params.shared, spec.reading, spec.distractors, symbols, u
        )
        return Answers(symbols=result)

    def render(self, symbols: npt.NDArray[np.int32], batch: Batch) -> tuple[str, ...]:
        """Texts a model could have written: the task's scorer judges them as the symbols say."""
        if self.task is None:
            raise RuntimeError("SimBackend.render called before bind")
        return render_symbols(self.task, batch.items, [int(s) for s in symbols])

    def describe(self) -> dict[str, Any]:
        """The backend's name, parameter file and calibrated abilities."""
        return {
            "name": self.name,
            "params": _shown(self.params.source) if self.params else None,
            "cache_key": self._cache_key,
            "abilities": dict(self.abilities),
        }


def _shown(source: Path) -> str:
    """The parameter file as a manifest names it; a shipped one as ``tasks/sim/<pool>.yaml``.

    Manifests then name no folder of the machine that wrote them; other files stay as given.
    """
    try:
        return (Path("tasks") / source.resolve().relative_to(tasks_dir().resolve())).as_posix()
    except ValueError:
        return str(source)
