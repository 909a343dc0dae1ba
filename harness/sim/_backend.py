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
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from harness.backends import Answers, Backend, Batch, EvalContext, NodeCall
from harness.errors import ConfigError
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


def _levels(items: Sequence[Item]) -> list[int | None]:
    levels: list[int | None] = []
    for item in items:
        level = item.meta.get("level")
        levels.append(level if isinstance(level, int) and not isinstance(level, bool) else None)
    return levels


def _doublings_of(params: float) -> float:
    # Parameter doublings past 1e9: what scales judging and trap-proneness with model size.
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
        keys = Batch(tuple(items)).keys
        world = prepare_world(params, task.name, pool.names, _levels(items), keys, _doublings(pool))
        abilities = calibrate_abilities(
            world,
            [spec.targets[m] for m in pool.names],
            [params.models[m].no_answer for m in pool.names],
        )
        super().bind(task, pool)
        self.params = params
        self.abilities = {m: float(a) for m, a in zip(pool.names, abilities, strict=True)}
        digest = hashlib.sha256(repr(params).encode()).hexdigest()[:16]
        self._cache_key = f"sim:{digest}:{task.name}:{','.join(pool.names)}"

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
            doublings=_doublings_of(call.model.params),
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
            world, node, self.params.structure(self.task.name), spec.distractors, symbols, u
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
            "params": str(self.params.source) if self.params else None,
            "cache_key": self._cache_key,
            "abilities": dict(self.abilities),
        }
