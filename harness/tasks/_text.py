r"""Text surgery on model outputs: reasoning blocks, ``\boxed{}``, numbers, letters, code blocks.

Every function here is total: any string in, a string or None out, never an exception, and
linear time in the length of the text (outputs can be megabytes of garbage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Visible",
    "code_blocks",
    "last_boxed",
    "last_number",
    "normalise_number",
    "visible_text",
]

# Answers sit at the end of an output; past this size only the tail is read, so that a
# runaway generation cannot make scoring slow.
MAX_SCAN_CHARS = 200_000

_THINK_OPEN = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking)>", re.IGNORECASE)
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")
_TOKEN = re.compile(r"[^\s$]+")
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Visible:
    r"""The part of an output that may carry the final answer.

    Attributes:
        text: the output without its reasoning blocks.
        unfinished: True when the output stopped inside an unterminated ``<think>``; then only
            a ``\boxed{}`` answer after it counts (the model never reached its final answer).
    """

    text: str
    unfinished: bool


def visible_text(text: str) -> Visible:
    r"""Drop ``<think>...</think>`` blocks from a model output.

    An orphan ``</think>`` (the chat template opened the block) drops everything before it.
    An unterminated ``<think>`` keeps its tail only when that tail holds a ``\boxed{}``.

    Example:
        >>> visible_text("<think>maybe 3</think>The answer is 4.").text
        'The answer is 4.'
        >>> visible_text("<think>it is 3").text
        ''
    """
    if len(text) > MAX_SCAN_CHARS:
        text = text[-MAX_SCAN_CHARS:]
    pieces: list[str] = []
    position = 0
    unfinished = False
    # Each search starts where the last one ended and each match is reused until passed, so
    # the scan stays linear however many tags the output holds.
    opening = _THINK_OPEN.search(text)
    while True:
        closing = _THINK_CLOSE.search(text, position)
        if closing is not None and (opening is None or closing.start() < opening.start()):
            # Orphan close tag: what came before it was reasoning.
            pieces.clear()
            position = closing.end()
            continue
        if opening is None:
            pieces.append(text[position:])
            break
        pieces.append(text[position : opening.start()])
        closing = _THINK_CLOSE.search(text, opening.end())
        if closing is None:
            tail = text[opening.end() :]
            unfinished = True
            if last_boxed(tail) is not None:
                pieces.append(tail)
            break
        position = closing.end()
        opening = _THINK_OPEN.search(text, position)
    # Only blank lines are trimmed at the start: a code answer's indentation is meaningful.
    return Visible(_LEADING_BLANK_LINES.sub("", "".join(pieces)).rstrip(), unfinished)


def _brace_pairs(text: str) -> dict[int, int]:
    """Each ``{`` index mapped to its matching ``}`` index, in one pass (escapes skipped)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for match in _BRACE_OR_ESCAPE.finditer(text):
        token = match.group(0)
        if token == "{":
            stack.append(match.start())
        elif token == "}" and stack:
            pairs[stack.pop()] = match.start()
    return pairs


def last_boxed(text: str) -> str | None:
    r"""The content of the last non-empty ``\boxed{...}`` (or ``\fbox``, or ``\boxed 5``).

    Nested and escaped braces are handled; an unclosed box (a truncated output) does not count.

    Example:
        >>> last_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}.")
        '\\frac{1}{2}'
        >>> last_boxed(r"$x = \boxed 9$.")
        '9'
    """
    text = text[-MAX_SCAN_CHARS:]
    commands = list(_BOX_COMMAND.finditer(text))
    if not commands:
        return None
    pairs = _brace_pairs(text)  # one linear pass, however many boxes there are
    for command in reversed(commands):
        index = command.end()
        while index < len(text) and text[index] in " \t":
            index += 1
        if index < len(text) and text[index] == "{":
            close = pairs.get(index)
            content = None if close is None else text[index + 1 : close].strip()
        elif index > command.end():
            # "\boxed 5": the argument is one token.
            token = _TOKEN.match(text, index)
            content = token.group(0).rstrip(".,;") if token else None
        else:
            content = None
        if content:
            return content
    return None


def normalise_number(text: str) -> str | None:
    r"""A number written in an answer as a plain decimal string, else None.

    Strips currency, percent signs, thousands separators, ``\text{}`` units and a trailing dot.

    Example:
        >>> normalise_number(r"\$1,250.50")
        '1250.50'
        >>> normalise_number("about five") is None
        True
    """
    cleaned = re.sub(r"(?<=\d)\\[,!](?=\d{3})", "", text)  # 1\,000
    cleaned = re.sub(r"\\text\{[^{}]*\}|\\[,!;: ]|\\\$|\\%|[$%]", " ", cleaned)
    cleaned = cleaned.strip().rstrip(".")
    numbers = _NUMBER.findall(cleaned)
    if len(numbers) != 1:
        return None
    rest = cleaned.replace(numbers[0], " ", 1)
    if re.search(r"[0-9=+*/^\\]", rest):
        return None  # an expression, not one number
    return numbers[0].replace(",", "")


def last_number(text: str) -> str | None:
    """The last number in the text, without thousands separators.

    Example:
        >>> last_number("3 apples and 1,200 pears.")
        '1200'
    """
    text = text[-MAX_SCAN_CHARS:]
    last: str | None = None
    for match in _NUMBER.finditer(text):
        last = match.group(0)
    return None if last is None else last.replace(",", "")


def code_blocks(text: str) -> list[tuple[str, str]]:
    r"""The fenced code blocks of a Markdown text as (language, code), in order.

    An unclosed last fence (a truncated output) runs to the end of the text.

    Example:
        >>> code_blocks("```python\nx = 1\n```")
        [('python', 'x = 1\n')]
    """
    text = text[-MAX_SCAN_CHARS:]
    blocks: list[tuple[str, str]] = []
    position = 0
    while True:
        opening = text.find("```", position)
        if opening < 0:
            return blocks
        line_end = text.find("\n", opening)
        if line_end < 0:
            return blocks
        language = text[opening + 3 : line_end].strip().lower()
        closing = text.find("```", line_end + 1)
        if closing < 0:
            blocks.append((language, text[line_end + 1 :]))
            return blocks
        blocks.append((language, text[line_end + 1 : closing]))
        position = closing + 3
