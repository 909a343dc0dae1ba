"""The simulator's answer model: vector work over the questions of a batch (docs/sim.md).

An item-response core gives each question a difficulty and each model an ability; a call with
no inputs is right with probability ``(1 - no_answer) * sigmoid(ability - difficulty)``. A node
with inputs may *judge* them (skill ``sigmoid(ability + judge - difficulty)``): it keeps a right
input when one is there, or solves afresh when it sees that none is; a node that has not judged
follows the plurality of its inputs (probability ``herd``) or solves afresh. Long prompts lower
the ability (past the model's capacity), and a node at level ``l`` spoils a right answer with
probability ``overwrite * (l - 1)``. Wrong answers are the question's distractors: a shared,
geometrically decaying distribution mixed with the model's own preferred one.

Example:
    >>> import numpy as np
    >>> from harness.sim._params import load_sim_params
    >>> params = load_sim_params("llama3")
    >>> keys = np.arange(1, 6, dtype=np.uint64)
    >>> world = prepare_world(params, "mmlu", ("llama-3.2-1b",), [None] * 5, keys)
    >>> world.difficulty.shape, world.preferred.shape
    ((1, 5), (1, 5))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit, ndtri

from harness.sim._params import DistractorParams, SimParams, StructureParams
from harness.sim._random import mix, name_key, uniforms

__all__ = [
    "DRAWS",
    "LONE_DRAWS",
    "NodeSpec",
    "World",
    "answer_node",
    "calibrate_abilities",
    "prepare_world",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int32]

# Uniform rows drawn per call: solve (and judge: the same number, see answer_node), no-answer,
# own-distractor, shared-distractor, resolve, herd, tie-break, overwrite. Fixed, so that a
# call's numbers never depend on its in-degree or role.
DRAWS = 8
_SOLVE, _MALFORMED, _OWN, _SHARED, _RESOLVE, _HERD, _TIE, _OVERWRITE = range(DRAWS)
LONE_DRAWS = 4
"""A call without inputs reads only the first four rows (row ``j`` never depends on the rest)."""


@dataclass(frozen=True, eq=False)
class World:
    """The per-question facts of a batch, the same for every call (kept in ``Batch.cache``).

    Attributes:
        models: the model names, in the row order of the arrays.
        difficulty: per model and question, the difficulty that model faces (logits).
        preferred: per model and question, the model's own preferred wrong answer (1..K).
        cdf: per model, the cumulative shared distractor distribution over 1..K.
    """

    models: tuple[str, ...]
    difficulty: Floats
    preferred: Ints
    cdf: Floats

    def row(self, model: str) -> int:
        """The array row of ``model``."""
        return self.models.index(model)


@dataclass(frozen=True)
class NodeSpec:
    """What the answer model needs to know about one call.

    Attributes:
        model: the model's row in the :class:`World`.
        ability: the model's ability on the task (logits), before the context penalty.
        role: ``assistant``, ``fuser`` or ``output``.
        level: the node's level (sources: 1).
        prompt_tokens: prompt length (A + d*B).
        capacity: the model's capacity in prompt tokens.
        no_answer: the model's probability of giving no answer.
        doublings: ``log2(parameters / 1e9)``, which scales the judging bonus.
    """

    model: int
    ability: float
    role: str
    level: int
    prompt_tokens: int
    capacity: float
    no_answer: float
    doublings: float = 0.0


def _normal(key: int, item_keys: npt.NDArray[np.uint64]) -> Floats:
    # Clipped away from 0 and 1 so that the inverse normal stays finite.
    u = np.clip(uniforms(key, item_keys, 1)[0], 1e-12, 1 - 1e-12)
    return np.asarray(ndtri(u), dtype=np.float64)


def prepare_world(
    params: SimParams,
    task: str,
    models: Sequence[str],
    levels: Sequence[int | None],
    item_keys: npt.NDArray[np.uint64],
    doublings: Sequence[float] | None = None,
) -> World:
    """Difficulties and preferred distractors of every question, for every model.

    Args:
        params: the pool's parameters.
        task: the task's name.
        models: model names (rows of the result).
        levels: per question, its MATH level (1-5) or None.
        item_keys: per question, its 64-bit key.
        doublings: per model, ``log2(parameters / 1e9)`` (default 0: every model falls into
            traps like a 1B one).
    """
    spec = params.tasks[task]
    world = mix(params.world_seed, name_key(task))
    diff = spec.difficulty
    base = diff.spread * _normal(mix(world, name_key("difficulty")), item_keys)
    if diff.level_means:
        means = np.array(diff.level_means)
        # An item without a level (MATH train has a few "Level ?") gets the middle level.
        index = np.array([(lvl if lvl in (1, 2, 3, 4, 5) else 3) - 1 for lvl in levels])
        base = base + (means[index] if len(index) else 0.0)
    rows, prefs = [], []
    count = spec.distractors.count
    for model in models:
        own = mix(world, name_key(model))
        rows.append(base + diff.model_spread * _normal(mix(own, 1), item_keys))
        pick = uniforms(mix(own, 2), item_keys, 1)[0]
        prefs.append(1 + np.minimum((pick * count).astype(np.int32), count - 1))
    shape = (len(models), len(item_keys))
    return World(
        models=tuple(models),
        difficulty=np.array(rows, dtype=np.float64).reshape(shape),
        preferred=np.array(prefs, dtype=np.int32).reshape(shape),
        cdf=np.array(
            [_distractor_cdf(spec.distractors, k) for k in doublings or [0.0] * len(models)]
        ).reshape(len(models), count),
    )


def _distractor_cdf(dist: DistractorParams, doublings: float) -> Floats:
    weights = dist.decay ** np.arange(dist.count, dtype=np.float64)
    trap = dist.trap / (1.0 + max(0.0, doublings))
    cdf = trap + (1 - trap) * np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def calibrate_abilities(
    world: World, targets: Sequence[float], no_answer: Sequence[float]
) -> Floats:
    """Per model, the ability whose mean single-call accuracy over the questions is its target.

    Bisection on all models at once: accuracy is increasing in ability, so 60 halvings of
    [-20, 20] pin it to 1e-16 logits.
    """
    goal = np.asarray(targets, dtype=np.float64) / (1 - np.asarray(no_answer, dtype=np.float64))
    low = np.full(len(goal), -20.0)
    high = np.full(len(goal), 20.0)
    for _ in range(60):
        mid = (low + high) / 2
        accuracy = expit(mid[:, None] - world.difficulty).mean(axis=1)
        above = accuracy > goal
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    return (low + high) / 2


def _tally(inputs: Ints, u_tie: Floats) -> tuple[Ints, npt.NDArray[np.bool_], Ints, Ints]:
    """Count the inputs' answers per question.

    Returns:
        The plurality answer (ties at random), whether there is one, the number of right inputs
        and the count of the most common wrong answer.
    """
    right = (inputs == 0).sum(axis=0)
    if len(inputs) == 1:
        return inputs[0], inputs[0] >= 0, right, (inputs[0] > 0).astype(np.int64)
    valid = inputs >= 0
    counts = ((inputs[:, None, :] == inputs[None, :, :]) & valid[None, :, :]).sum(axis=1)
    counts = np.where(valid, counts, 0)
    best = counts.max(axis=0)
    is_best = (counts == best) & valid
    tied = is_best.sum(axis=0)
    pick = np.floor(u_tie * tied)
    chosen = np.argmax(np.cumsum(is_best, axis=0) > pick, axis=0)
    top_wrong = np.where(inputs > 0, counts, 0).max(axis=0)
    return inputs[chosen, np.arange(inputs.shape[1])], best > 0, right, top_wrong


def answer_node(
    world: World,
    node: NodeSpec,
    structure: StructureParams,
    distractors: DistractorParams,
    inputs: Sequence[Ints],
    u: Floats,
) -> Ints:
    """One call's answer symbols on every question.

    Args:
        world: the batch's per-question facts.
        node: the call.
        structure: the task's structure parameters.
        distractors: the task's distractor parameters.
        inputs: the predecessors' symbols.
        u: ``(DRAWS, n)`` uniforms for this call (see :func:`harness.sim._random.uniforms`);
            ``(LONE_DRAWS, n)`` suffice for a call without inputs.
    """
    overload = max(0.0, node.prompt_tokens / node.capacity - 1.0)
    ability = node.ability - structure.context_penalty * overload
    difficulty = world.difficulty[node.model]
    shared = np.searchsorted(world.cdf[node.model], u[_SHARED], side="right").astype(np.int32) + 1
    wrong = np.where(u[_OWN] < distractors.own, world.preferred[node.model], shared)
    solved = np.where(u[_SOLVE] < expit(ability - difficulty), 0, wrong)
    # No answer is a failure to write a solution out; keeping an input's answer cannot fail so.
    fresh = np.where(u[_MALFORMED] < node.no_answer, -1, solved).astype(np.int32)
    if not inputs:
        return fresh
    role = structure.roles[node.role]
    stacked = np.asarray(inputs, dtype=np.int32)
    crowd, has_crowd, right, top_wrong = _tally(stacked, u[_TIE])
    any_right = right > 0
    # Judging and solving share one draw: a node that can solve the question can also tell a
    # right answer (judge >= 0: verifying is that much easier than solving). Every wrong input
    # distracts the judge, and a wrong answer repeated by more inputs than the right one sways
    # it (conformity).
    judge = role.judge + structure.judge_scale * node.doublings
    wrong_inputs = (stacked > 0).sum(axis=0)
    sway = structure.sway * np.maximum(top_wrong - right, 0) + structure.distraction * wrong_inputs
    judged = u[_SOLVE] < expit(ability + judge - sway - difficulty)
    # Past capacity a node also loses track of who said what: it herds less, solves more.
    follow = np.where(u[_HERD] < role.herd / (1.0 + overload), crowd, fresh)
    fallback = np.where(has_crowd, follow, fresh)
    # Judged: keep a right input; seeing none, solve afresh (resolve) or fall back.
    rejected = np.where(u[_RESOLVE] < role.resolve, fresh, fallback)
    answer = np.where(judged, np.where(any_right, 0, rejected), fallback)
    # Deep nodes spoil right answers more, and more so when they read many inputs.
    spoil_chance = (
        structure.overwrite
        * (node.level - 1) ** structure.overwrite_growth
        * len(inputs) ** structure.overwrite_width
    )
    spoil = (answer == 0) & (u[_OVERWRITE] < spoil_chance)
    return np.where(spoil, wrong, answer).astype(np.int32)
