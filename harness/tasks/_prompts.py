"""Chat messages for one node call, from the task's prompt templates.

The roles follow the paper's code (GPTSwarm-based): ``assistant`` (IO) answers alone, or with
inputs reads them, evaluates them critically and writes one improved answer; ``fuser`` (REV)
reviews, condenses and fuses its inputs' reasoning; ``output`` (FinalDecision) acts as an
assistant over all its inputs and gives the final answer in the task's format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from harness.errors import ConfigError, GraphError
from harness.tasks._config import PromptSet

__all__ = ["ROLES", "render_messages"]

ROLES = ("assistant", "fuser", "output")
_PLACEHOLDER = re.compile(r"\{(question|inputs|answer_format|index|text)\}")


def _fill(template: str, values: Mapping[str, str]) -> str:
    # One pass, so a question that itself contains "{inputs}" is never substituted into, and
    # LaTeX braces such as \boxed{} pass through untouched.
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def render_messages(
    prompts: PromptSet, role: str, question: str, inputs: Sequence[str] = ()
) -> list[dict[str, str]]:
    """The system and user messages for one node.

    Args:
        prompts: the task's templates.
        role: ``assistant``, ``fuser`` or ``output``.
        question: the item's question text.
        inputs: the outputs of the node's predecessors, in edge order.

    Raises:
        ConfigError: an unknown role.
        GraphError: a fuser without inputs (a fuser needs an assistant parent).
    """
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "fuser" and not inputs:
        raise GraphError("role 'fuser' needs at least one input (an assistant parent)")
    rendered_inputs = "\n\n".join(
        _fill(prompts.input_format, {"index": str(number), "text": text.strip()})
        for number, text in enumerate(inputs, start=1)
    )
    if not inputs:
        # An output node with no inputs would be an invalid graph; answering alone is the
        # graceful reading, the same prompt an assistant without predecessors gets.
        template = prompts.assistant
    else:
        template = {
            "assistant": prompts.assistant_with_inputs,
            "fuser": prompts.fuser,
            "output": prompts.output,
        }[role]
    values = {
        "question": question.strip(),
        "inputs": rendered_inputs,
        "answer_format": prompts.answer_format.strip(),
    }
    return [
        {"role": "system", "content": _fill(prompts.system, values).strip()},
        {"role": "user", "content": _fill(template, values).strip()},
    ]
