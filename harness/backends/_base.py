"""The backend interface: what answers a node's call, for a whole batch of questions at once.

The executor (:mod:`harness.executor`) walks a graph in topological order and, for each node,
hands its backend a :class:`NodeCall`, the :class:`Batch` of questions and the :class:`Answers`
of the node's predecessors. A backend returns the node's :class:`Answers`, either as text (what a
model wrote: ``live``, ``replay``) or as *symbols* (``sim``): per question ``0`` for the right
answer, ``k >= 1`` for the question's ``k``-th wrong answer, ``-1`` for no answer. Symbols make a
graph evaluation vector work; a symbol backend can still render any answer as text
(:meth:`Backend.render`) that the task's real scorer judges the same way.

Budget, FLOPs, prompts, scoring and records stay in the executor, the same for every backend.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from harness.pool import ModelSpec, Pool
from harness.tasks import Item, Task

__all__ = [
    "NO_ANSWER",
    "Answers",
    "Backend",
    "Batch",
    "EvalContext",
    "NodeCall",
    "item_key",
]

NO_ANSWER = -1
"""The symbol for an output with no extractable answer."""

Messages = list[dict[str, str]]


def item_key(item_id: str) -> int:
    """A stable 64-bit key for an item id (the same in every process and on every machine)."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True, eq=False)
class Batch:
    """The questions one graph evaluation runs on.

    Attributes:
        items: the questions, in order.
        split: ``search`` or ``heldout``.
        cache: scratch space where a backend may keep per-batch precomputation (for example the
            sim's per-question parameters), so that a held-out batch scored at every checkpoint
            is prepared once.

    Example:
        >>> from harness.tasks import Item
        >>> batch = Batch((Item("a", "1+1?", "2"), Item("b", "2+2?", "4")), "search")
        >>> len(batch), batch.keys.dtype.name
        (2, 'uint64')
    """

    items: tuple[Item, ...]
    split: str = "search"
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def keys(self) -> npt.NDArray[np.uint64]:
        """One stable 64-bit key per item (see :func:`item_key`)."""
        return np.array([item_key(item.id) for item in self.items], dtype=np.uint64)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """The item ids."""
        return tuple(item.id for item in self.items)


@dataclass(frozen=True)
class EvalContext:
    """What makes one evaluation reproducible.

    Attributes:
        seed: the study's seed.
        epoch: which independent repetition of an evaluation this is (0 for the first). The same
            graph on the same question, seed and epoch gets the same answers on ``sim`` (common
            random numbers), as a cached call does on ``live``.
    """

    seed: int
    epoch: int = 0


@dataclass(frozen=True)
class NodeCall:
    """One node's call, as a backend sees it.

    Attributes:
        graph_id: the graph's content id.
        node_id: the node's id in the graph (:data:`harness.graph.OUTPUT` for the output node).
        position: the node's canonical position (the same for every numbering of the graph).
        model: the node's model.
        role: ``assistant``, ``fuser`` or ``output``.
        level: agent nodes on the longest path into the node, itself included; the output node's
            level is the graph's depth plus one.
        inputs: predecessor node ids, in the order their answers are passed (canonical order).
        prompt_tokens: prompt length by the FLOPs formula (A + d*B).
        output_tokens: output length by the FLOPs formula (B).
    """

    graph_id: str
    node_id: int
    position: int
    model: ModelSpec
    role: str
    level: int
    inputs: tuple[int, ...]
    prompt_tokens: int
    output_tokens: int

    @property
    def in_degree(self) -> int:
        """Number of inputs."""
        return len(self.inputs)


@dataclass(frozen=True, eq=False)
class Answers:
    """One node's answers on a batch: symbols or texts, and what they cost where measured.

    Exactly one of ``symbols`` and ``texts`` is set. Token counts, latencies and dollars are per
    question; None means "not measured" and the executor uses the formula and the pool's speeds
    instead (dollars: not reported). ``cached`` marks the questions answered from the call cache
    (None: the backend has no cache).
    """

    symbols: npt.NDArray[np.int32] | None = None
    texts: tuple[str, ...] | None = None
    prompt_tokens: npt.NDArray[np.int64] | None = None
    output_tokens: npt.NDArray[np.int64] | None = None
    latency_s: npt.NDArray[np.float64] | None = None
    cached: npt.NDArray[np.bool_] | None = None
    dollars: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if (self.symbols is None) == (self.texts is None):
            raise ValueError("Answers needs exactly one of symbols and texts")

    def __len__(self) -> int:
        return len(self.symbols) if self.symbols is not None else len(self.texts or ())


class Backend(ABC):
    """What answers a node's call. Subclasses set :attr:`name` and implement :meth:`answer`.

    A backend is bound to one task and one pool with :meth:`bind` before use; it must not keep
    state between evaluations that changes answers (the executor and the study own all state).
    """

    name: ClassVar[str] = "base"
    #: ``symbols`` or ``text``: what :meth:`answer` returns.
    produces: ClassVar[str] = "text"

    def __init__(self) -> None:
        self.task: Task | None = None
        self.pool: Pool | None = None

    def bind(self, task: Task, pool: Pool) -> None:
        """Prepare for a task and pool (load parameters, check that every model is served).

        Raises:
            ConfigError: the backend cannot serve this task or pool.
        """
        self.task, self.pool = task, pool

    @abstractmethod
    def answer(
        self,
        call: NodeCall,
        batch: Batch,
        inputs: Sequence[Answers],
        context: EvalContext,
        prompts: Callable[[], list[Messages]],
    ) -> Answers:
        """Answer one node's call on every question of the batch.

        Args:
            call: the node.
            batch: the questions.
            inputs: the predecessors' answers, in ``call.inputs`` order.
            context: seed and epoch.
            prompts: builds the chat messages of every question (one list per question); only
                text backends call it, so symbol backends never pay for prompt building.
        """

    def render(self, symbols: npt.NDArray[np.int32], batch: Batch) -> tuple[str, ...]:
        """Texts a model could have written for these symbols (symbol backends only)."""
        raise NotImplementedError(f"backend {self.name!r} produces text, not symbols")

    def describe(self) -> dict[str, Any]:
        """What a manifest records about this backend (name and parameters)."""
        return {"name": self.name}

    def drain_events(self) -> list[dict[str, Any]]:
        """Events since the last drain: failed call attempts, corrupt cache rows.

        Each is a dict with at least ``kind``; the study writes them into its trace. A backend
        without calls has none.
        """
        return []

    def close(self) -> None:
        """Release connections and files (a no-op by default)."""
        return None
