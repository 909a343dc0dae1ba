r"""Answer symbols as text that the task's real scorer judges the same way.

- ``0``, the right answer: a line of reasoning and the gold answer in the task's format
  (``\boxed{gold}``; ``Answer: C``; a ```` ```python ```` block with the canonical solution).
- ``k >= 1``, the question's ``k``-th wrong answer: a deterministic wrong answer (the gold
  number plus ``k``, or the gold expression plus ``k``; the ``k``-th other option letter; the
  function's signature with a body that raises).
- ``-1``: prose with no answer in it (no box, no number, no option letter, no code).

Example:
    >>> from harness.tasks import Item, load_task
    >>> task = load_task("gsm8k")
    >>> item = Item("q", "How many?", "18")
    >>> [task.score(item, text).correct for text in render_symbols(task, (item,) * 3, [0, 2, -1])]
    [True, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.tasks import Item, Task

__all__ = ["render_symbols"]

_NO_ANSWER = "I worked on this for a while but could not reach a conclusion I trust."
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d*\.\d+")
_LETTERS = "ABCDEFGHIJ"


def render_symbols(task: Task, items: Sequence[Item], symbols: Sequence[int]) -> tuple[str, ...]:
    """One text per question for the given symbols (see the module docstring)."""
    scorer = task.config.scorer
    render = _RENDERERS.get(scorer, _exact)
    return tuple(
        _NO_ANSWER if int(symbol) < 0 else render(item, int(symbol))
        for item, symbol in zip(items, symbols, strict=True)
    )


def _wrong_math(gold: str, k: int) -> str:
    text = gold.strip()
    if _INTEGER.fullmatch(text):
        return str(int(text) + k)
    if _DECIMAL.fullmatch(text):
        return f"{float(text) + k:g}"
    # Adding k to any expression, set or interval changes its value; math-verify then finds it
    # not equivalent (and an answer it cannot parse at all is not equivalent either).
    return f"{text}+{k}"


def _math(item: Item, symbol: int) -> str:
    answer = item.answer if symbol == 0 else _wrong_math(item.answer, symbol)
    return (
        "Let me work through the problem step by step, checking each step.\n"
        f"Putting the pieces together, the final answer is $\\boxed{{{answer}}}$."
    )


def _gsm8k(item: Item, symbol: int) -> str:
    gold = item.answer.replace(",", "").strip()
    answer = gold if symbol == 0 else _wrong_math(gold, symbol)
    return (
        "Let me compute the quantities one at a time and add them up.\n"
        f"So the answer is $\\boxed{{{answer}}}$."
    )


def _mmlu(item: Item, symbol: int) -> str:
    choices = item.meta.get("choices") or ("", "", "", "")
    letters = _LETTERS[: len(choices)]
    if symbol == 0:
        letter = item.answer
    else:
        others = [letter for letter in letters if letter != item.answer]
        letter = others[(symbol - 1) % len(others)]
    return f"Considering each option in turn and ruling out the others.\nAnswer: {letter}"


def _humaneval(item: Item, symbol: int) -> str:
    prompt = str(item.meta.get("prompt", item.question))
    if symbol == 0:
        code = prompt + item.answer
    else:
        # A body that always raises fails every test, whatever the function should return.
        code = prompt + f"    raise ValueError('attempt {symbol} does not handle this input')\n"
    return f"Here is the implementation.\n\n```python\n{code}```\n"


def _exact(item: Item, symbol: int) -> str:
    answer = item.answer if symbol == 0 else f"{item.answer} (variant {symbol})"
    return f"After checking the details.\nAnswer: {answer}"


_RENDERERS = {"math": _math, "gsm8k": _gsm8k, "mmlu": _mmlu, "humaneval": _humaneval}
