r"""Measuring a task's token lengths (A, B) without its tokenizer.

The paper gives A and B (mean prompt and output tokens of one call) for MATH, MMLU and
HumanEval, measured with LLaMA's tokenizer, which is not available offline. For a new task the
lengths are calibrated on characters: on MATH-500, the paper's (202, 275) divided by the mean
characters of the task's assistant prompt (with the question) and of the reference solution
(a proxy for a model's output) gives tokens per character for prompts and for outputs; the
same ratios applied to the new task's mean characters give its A and B. The reference output
is the item's ``solution`` (GSM8K: without its ``<<48/2=24>>`` calculator annotations, which
a model does not write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.tasks._types import Item

if TYPE_CHECKING:
    from harness.tasks._task import Task

__all__ = ["calibrated_lengths", "measure_chars", "reference_output"]

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def reference_output(item: Item) -> str:
    """The item's reference solution as a stand-in for a model's output (its answer if none)."""
    solution = item.meta.get("solution")
    if not isinstance(solution, str) or not solution.strip():
        return item.answer
    return _CALCULATOR.sub("", solution)


def measure_chars(task: Task, items: Sequence[Item]) -> tuple[float, float]:
    """Mean characters of the assistant prompt (all messages) and of the reference output.

    Example:
        >>> from harness.tasks import Item, load_task
        >>> prompt_chars, output_chars = measure_chars(load_task("gsm8k"), [Item("x", "2+2?", "4")])
        >>> output_chars
        1.0
    """
    if not items:
        raise ValueError("measure_chars needs at least one item")
    prompt_chars = sum(
        sum(len(message["content"]) for message in task.prompt("assistant", item.question))
        for item in items
    )
    output_chars = sum(len(reference_output(item)) for item in items)
    return prompt_chars / len(items), output_chars / len(items)


def calibrated_lengths(
    reference: Task, reference_items: Sequence[Item], target: Task, target_items: Sequence[Item]
) -> tuple[int, int]:
    """(A, B) for ``target``, by the reference task's tokens per character.

    Args:
        reference: a task whose lengths are known (MATH: the paper's 202, 275).
        reference_items: the items those lengths describe (MATH-500).
        target: the task to measure.
        target_items: its items (GSM8K: the 1319 test items).

    Example:
        >>> from harness.tasks import load_task
        >>> math, gsm8k = load_task("math"), load_task("gsm8k")
        >>> math_data, gsm8k_data = math.load("../shared/data"), gsm8k.load("../shared/data")
        >>> everything = lambda data: data.search + data.heldout
        >>> calibrated_lengths(math, everything(math_data), gsm8k, everything(gsm8k_data))
        (229, 131)
    """
    reference_prompt, reference_output_chars = measure_chars(reference, reference_items)
    target_prompt, target_output = measure_chars(target, target_items)
    tokens_a, tokens_b = reference.lengths
    return (
        round(target_prompt * tokens_a / reference_prompt),
        round(target_output * tokens_b / reference_output_chars),
    )
