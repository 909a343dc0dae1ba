"""The simulator's answer model: vector work over the questions of a batch (docs/sim.md).

An item-response core gives each question a difficulty and each model an ability; a call with
no inputs is right with probability ``(1 - no_answer) * sigmoid(ability - difficulty)``. A node
with inputs reads its inputs' answers, writes its own attempt, and picks one of these candidates
with weight ``count ** vote * exp(discern * right + self_weight * own)``: agreement counts (a
vote), the right answer is recognised a little, and the node leans to or away from its own
attempt. How much depends on the kind of answer (comparable final answers, options, programs)
and on the role. Long prompts lower the ability and blur the vote (past the model's capacity),
and a node at level ``l`` may spoil a right answer with probability
``overwrite * (l - 1) ** overwrite_growth``. Wrong answers are the question's distractors: a
shared, geometrically decaying distribution mixed with the model's own preferred one.

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

from harness.sim._params import DistractorParams, ReadingParams, SimParams, StructureParams
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

# Uniform rows drawn per call: solve, no-answer, own-distractor, shared-distractor, the choice
# among candidates, overwrite. Fixed, so that a call's numbers never depend on its in-degree
# or role.
DRAWS = 6
_SOLVE, _MALFORMED, _OWN, _SHARED, _CHOICE, _OVERWRITE = range(DRAWS)
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
    """

    model: int
    ability: float
    role: str
    level: int
    prompt_tokens: int
    capacity: float
    no_answer: float


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


def answer_node(
    world: World,
    node: NodeSpec,
    structure: StructureParams,
    reading: ReadingParams,
    distractors: DistractorParams,
    inputs: Sequence[Ints],
    u: Floats,
) -> Ints:
    """One call's answer symbols on every question.

    Args:
        world: the batch's per-question facts.
        node: the call.
        structure: the structure parameters (roles, context, overwriting).
        reading: what a reader can do with this task's answers.
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
    # The node reads its inputs and writes its own attempt; its final answer is one of these
    # candidates, chosen with weight count**vote * exp(discern * right + self * own): agreement
    # counts (voting, self-consistency), the right answer is recognised a little (discern), and
    # the node leans to, or away from, its own attempt (self). Past its capacity a node loses
    # track of who said what: voting and discerning fade towards a blind pick.
    candidates = np.concatenate([np.asarray(inputs, dtype=np.int32), fresh[None, :]])
    valid = candidates >= 0
    counts = ((candidates[:, None, :] == candidates[None, :, :]) & valid[None, :, :]).sum(axis=1)
    clarity = 1.0 / (1.0 + overload)
    log_weight = (reading.vote * clarity - 1.0) * np.log(np.maximum(counts, 1))
    log_weight = log_weight + (reading.discern * clarity) * (candidates == 0)
    own_weight = structure.roles[node.role].self_weight + reading.self_bias
    log_weight = log_weight + own_weight * ((candidates == fresh[None, :]) & (fresh >= 0)[None, :])
    weight = np.where(valid, np.exp(log_weight - log_weight.max(axis=0, keepdims=True)), 0.0)
    total = weight.sum(axis=0)
    cumulative = np.cumsum(weight, axis=0)
    pick = np.argmax(cumulative > (u[_CHOICE] * total)[None, :], axis=0)
    answer = np.where(total > 0, candidates[pick, np.arange(candidates.shape[1])], -1)
    # Every reading is a chance to talk oneself out of a right answer, more so deep in a chain
    # (self-correction without feedback flips right answers to wrong ones).
    spoil_chance = structure.overwrite * (node.level - 1) ** structure.overwrite_growth
    spoil = (answer == 0) & (u[_OVERWRITE] < spoil_chance)
    return np.where(spoil, wrong, answer).astype(np.int32)
