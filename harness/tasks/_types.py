"""The values a task hands out: items, scores and a loaded data set with its two splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Item", "Score", "TaskData"]


@dataclass(frozen=True)
class Item:
    r"""One benchmark question.

    Attributes:
        id: a stable id: a hash of the normalised question text (HumanEval: its ``task_id``),
            the same whichever source served the item and whatever order its file was in.
        question: the text put into prompts (MMLU: the question and its lettered choices).
        answer: the gold answer: MATH final answer, GSM8K number, MMLU letter, HumanEval
            canonical solution.
        meta: task-specific facts, JSON values only (MATH: ``level`` 1-5 or None, ``subject``,
            ``solution``; GSM8K: ``solution``; MMLU: ``subject``, ``choices``; HumanEval:
            ``prompt``, ``test``, ``entry_point``).

    Example:
        >>> item = Item("HumanEval/0", "def f():", "    return 1\n", {"entry_point": "f"})
        >>> item.meta["entry_point"]
        'f'
    """

    id: str
    question: str
    answer: str
    # Excluded from the hash (a dict is unhashable); items are still compared by value.
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The item as a JSON object (what the item cache stores)."""
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Item:
        """Rebuild an item written by :meth:`to_json` (KeyError or TypeError when malformed)."""
        meta = data["meta"]
        if not isinstance(meta, dict):
            raise TypeError("meta is not an object")
        return cls(str(data["id"]), str(data["question"]), str(data["answer"]), meta)


@dataclass(frozen=True)
class Score:
    """The verdict on one model output.

    Attributes:
        correct: whether the output's answer matches the gold answer.
        extracted: the answer the output gives (None when it gives none).
        note: why it scored 0 ("no answer found", "code execution disabled: ...", the sandbox
            status), None when correct.

    Example:
        >>> Score(False, None, "no answer found").correct
        False
    """

    correct: bool
    extracted: str | None
    note: str | None = None


@dataclass(frozen=True)
class TaskData:
    """A task's items, split into the search split and the held-out split.

    Attributes:
        task: the task's name.
        search: the items a search method may be scored on while it searches.
        heldout: the items the recommended graph is scored on afterwards.
        source: which source served the items ("local", "hub", "mirror"; "hub (cached)" or
            "mirror (cached)" when they came from the item cache).
        scheme: one line saying how the two splits were formed.

    Example:
        >>> data = TaskData("t", (), (), "local", "seeded split")
        >>> len(data.search) + len(data.heldout)
        0
    """

    task: str
    search: tuple[Item, ...]
    heldout: tuple[Item, ...]
    source: str
    scheme: str
