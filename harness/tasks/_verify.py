r"""Answer equivalence through math-verify, safe in worker threads, memoised.

math-verify (Hugging Face's maintained verifier) parses LaTeX into SymPy and decides
equivalence, so ``\frac{1}{2}``, ``0.5`` and ``\dfrac12`` agree. Its timeouts use
``signal.alarm``, which raises outside the main thread; there both timeouts are passed as None
and the answer's length is capped instead, so that no input can keep SymPy busy for long.
"""

from __future__ import annotations

import functools
import logging
import re
import threading

from math_verify import parse, verify

__all__ = ["MAX_ANSWER_CHARS", "equivalent", "too_costly"]

# Longer "answers" are garbage; refusing them bounds the untimed SymPy work in threads.
MAX_ANSWER_CHARS = 1_000


class _DropTimeoutDisabledWarning(logging.Filter):
    """Hide math-verify's warning that timeouts are off: this module turns them off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


# Installed once at import; adding the same filter instance twice would be a no-op anyway.
_FILTER = _DropTimeoutDisabledWarning()
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_FILTER)


_EXPONENT = re.compile(r"\^\s*(\{|\d+|.)")
_FACTORIAL_ARGUMENT = re.compile(r"(\d+)\s*!|([)}])\s*!")
_BINOMIAL = re.compile(r"\\[dt]?binom\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


def _group_before(text: str, close: int) -> str:
    """The bracket group ending at ``text[close]`` (a ``)`` or ``}``), or "" if unbalanced."""
    opening = "(" if text[close] == ")" else "{"
    depth = 0
    for index in range(close, max(-1, close - MAX_ANSWER_CHARS), -1):
        depth += text[index] == text[close]
        depth -= text[index] == opening
        if depth == 0:
            return text[index : close + 1]
    return ""


def _exponents(answer: str) -> list[str]:
    exponents = []
    for match in _EXPONENT.finditer(answer):
        if match.group(1) != "{":
            exponents.append(match.group(1))
            continue
        depth, end = 0, match.start(1)
        for end in range(match.start(1), len(answer)):
            depth += (answer[end] == "{") - (answer[end] == "}")
            if depth == 0:
                break
        exponents.append(answer[match.start(1) : end + 1])
    return exponents


def _digits(text: str) -> int:
    return max((len(run) for run in re.findall(r"\d+", text)), default=0)


def too_costly(answer: str) -> str | None:
    r"""Why verifying this answer could make SymPy compute for minutes, or None.

    SymPy evaluates integer powers, factorials and binomials exactly, and in C while holding
    the interpreter lock, so no timeout can stop it; ``9^{9^{9}}`` or ``(10^{100})!`` would
    hang a worker thread for good. Such answers are refused before math-verify sees them.

    Example:
        >>> too_costly("10^{10^{10}}")
        'a power tower'
        >>> too_costly(r"\frac{1}{2}") is None
        True
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return f"longer than {MAX_ANSWER_CHARS} characters"
    exponents = _exponents(answer)
    if any(("^" in exponent or "!" in exponent) and _digits(exponent) for exponent in exponents):
        return "a power tower"
    if any(_digits(exponent) >= 7 for exponent in exponents):
        return "an exponent of 7 or more digits"
    if sum(_digits(exponent) >= 3 for exponent in exponents) >= 2:
        return "chained large exponents"
    for match in _FACTORIAL_ARGUMENT.finditer(answer):
        argument = match.group(1) or _group_before(answer, match.start(2))
        if len(match.group(1) or "") >= 6 or (
            match.group(2) and ("^" in argument or "!" in argument or _digits(argument) >= 5)
        ):
            return "a factorial of a huge number"
    if any(_digits(part) >= 7 for match in _BINOMIAL.finditer(answer) for part in match.groups()):
        return "a binomial of huge numbers"
    return None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@functools.lru_cache(maxsize=65_536)
def _verdict(gold: str, answer: str, timeout_s: int | None) -> bool:
    # Both sides are wrapped in \boxed{} so that math-verify reads them as one LaTeX answer
    # (a bare "p - q" or "\pi" is otherwise not found at all).
    parsed_gold = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout_s)
    parsed_answer = parse(f"\\boxed{{{answer}}}", parsing_timeout=timeout_s)
    if not parsed_gold or not parsed_answer:
        # Unparsable on either side: fall back to comparing the written forms.
        return " ".join(gold.split()) == " ".join(answer.split())
    # Gold first: math-verify's comparison is not symmetric (e.g. for intervals and sets).
    return bool(verify(parsed_gold, parsed_answer, timeout_seconds=timeout_s))


def equivalent(gold: str, answer: str, timeout_s: int = 5) -> bool:
    r"""Whether ``answer`` is mathematically equivalent to ``gold`` (memoised).

    Args:
        gold: the gold answer, LaTeX without ``$`` or ``\boxed``.
        answer: the extracted answer, same form.
        timeout_s: seconds allowed for parsing and for comparing (main thread only; in other
            threads math-verify cannot time out, and :func:`too_costly` answers are refused).

    Returns:
        The verdict; False when math-verify fails or :func:`too_costly` refuses the answer.

    Example:
        >>> equivalent(r"\frac{1}{2}", "0.5")
        True
        >>> equivalent("3", "4")
        False
    """
    if too_costly(answer) is not None:
        return False
    timeout = timeout_s if _in_main_thread() else None
    try:
        return _verdict(gold, answer, timeout)
    except Exception:
        # math-verify swallows most errors itself; whatever escapes is a wrong answer,
        # never a crash of the run.
        return False
