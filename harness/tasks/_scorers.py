"""Answer extraction and scoring, one scorer per kind of task.

A scorer has two steps: ``extract`` finds the answer a model output gives (None when it gives
none) and ``judge`` compares it with the gold answer. :func:`score` joins them and never raises:
any output, however malformed, gets a :class:`Score` with a note saying why it scored 0.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.tasks._records import LETTERS
from harness.tasks._text import code_blocks, last_boxed, last_number, normalise_number, visible_text
from harness.tasks._types import Item, Score
from harness.tasks._verify import equivalent, too_costly

__all__ = ["CODE_EXECUTION_DISABLED", "SCORERS", "CodeExecutionDisabledWarning", "Scorer"]

CODE_EXECUTION_DISABLED = (
    "code execution disabled: pass --allow-code-execution (runs generated code in a sandbox)"
)
NO_ANSWER = "no answer found"
WRONG = "not equivalent to the gold answer"


class CodeExecutionDisabledWarning(UserWarning):
    """A code task was scored without code execution: every answer scores 0."""


@dataclass(frozen=True)
class Scorer:
    """The base scorer: subclasses override :meth:`extract` and :meth:`judge`.

    Attributes:
        options: the task YAML's ``options`` (checked against :attr:`OPTIONS`).
    """

    OPTIONS: ClassVar[Mapping[str, tuple[type, ...]]] = {}
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def extract(self, text: str, item: Item | None = None) -> str | None:
        """The answer the output gives, or None; ``item`` helps where choices matter."""
        raise NotImplementedError

    def judge(self, item: Item, extracted: str, *, allow_code_execution: bool) -> Score:
        """Compare an extracted answer with the item's gold answer."""
        raise NotImplementedError

    def score(self, item: Item, text: str, *, allow_code_execution: bool = False) -> Score:
        """Extract and judge; never raises (a failure is a Score with a note)."""
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        try:
            extracted = self.extract(text, item)
        except Exception as exc:  # a scorer bug must not crash a run: record it
            return Score(False, None, f"extraction failed: {type(exc).__name__}")
        if extracted is None:
            return Score(False, None, NO_ANSWER)
        try:
            return self.judge(item, extracted, allow_code_execution=allow_code_execution)
        except Exception as exc:
            return Score(False, extracted, f"scoring failed: {type(exc).__name__}")


@dataclass(frozen=True)
class MathScorer(Scorer):
    r"""MATH: the last ``\boxed{}`` answer, judged equivalent by math-verify."""

    OPTIONS: ClassVar[Mapping[str, tuple[type, ...]]] = {"verify_timeout_s": (int,)}

    def extract(self, text: str, item: Item | None = None) -> str | None:
        return last_boxed(visible_text(text).text)

    def judge(self, item: Item, extracted: str, *, allow_code_execution: bool) -> Score:
        refused = too_costly(extracted)
        if refused is not None:
            return Score(False, extracted, f"answer not verified: {refused}")
        timeout = int(self.options.get("verify_timeout_s", 5))
        correct = equivalent(item.answer, extracted, timeout)
        return Score(correct, extracted, None if correct else WRONG)


# Bounded character classes instead of chains of \s*: adjacent optional quantifiers backtrack
# polynomially on long runs of spaces, and outputs can be megabytes of them.
_NUMBER_GROUP = r"(-?\d[\d,]*(?:\.\d+)?)"
_HASHES = re.compile(r"####[\s$]{0,10}" + _NUMBER_GROUP)
_ANSWER_IS = re.compile(r"(?i:answer)(?:\s+is)?[\s:=$*]{0,10}" + _NUMBER_GROUP)


@dataclass(frozen=True)
class Gsm8kScorer(MathScorer):
    r"""GSM8K: ``\boxed{}``, else ``#### N``, else "answer is N", else the last number."""

    def extract(self, text: str, item: Item | None = None) -> str | None:
        visible = visible_text(text)
        boxed = last_boxed(visible.text)
        if boxed is not None:
            return normalise_number(boxed) or boxed
        if visible.unfinished:
            return None
        for pattern in (_HASHES, _ANSWER_IS):
            matches = pattern.findall(visible.text[-20_000:])
            if matches:
                return str(matches[-1]).replace(",", "")
        return last_number(visible.text)


_LETTER = r"(?:\(([A-Za-z])\)|\b([A-Z])\b)"  # a lowercase letter only in parentheses
_ANSWER_LETTER = re.compile(
    r"(?i:\banswer(?:\s+is)?)[\s:=*\-]{0,10}(?i:(?:option|choice)[\s:*]{0,5})?" + _LETTER
)
_OPTION_LETTER = re.compile(r"(?i:\b(?:option|choice)(?:\s+is)?)[\s:*]{0,5}" + _LETTER)
_LONE = re.compile(r"^[ \t*#>]*\(?([A-Z])\)?[.):]?[ \t*]*$", re.MULTILINE)
_ANSWER_TEXT = re.compile(r"(?i:answer)(?:\s+is|\s*:)[ \t]*(.+)$", re.MULTILINE)


def _letter_of(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)).upper()


def _norm_choice(text: str) -> str:
    return " ".join(re.sub(r"\\text\{([^{}]*)\}", r"\1", text).casefold().split()).strip(" .*")


@dataclass(frozen=True)
class MmluScorer(Scorer):
    r"""MMLU: the option letter ("Answer: B", "answer is (B)", ``\boxed{B}``, a lone letter).

    The last marked letter wins; with none, a line holding only a letter; with none, the
    exact text of one of the item's choices.
    """

    def extract(self, text: str, item: Item | None = None) -> str | None:
        visible = visible_text(text)
        body = visible.text[-50_000:]
        choices = [str(c) for c in item.meta.get("choices", ())] if item is not None else []
        letters = LETTERS[: len(choices)] if choices else "ABCD"
        boxed = last_boxed(body)
        # "Answer: X" and \boxed{X} outrank a mere "option X" mention; the last one wins.
        strong = [(m.start(), _letter_of(m)) for m in _ANSWER_LETTER.finditer(body)]
        if boxed is not None:
            inner = _norm_choice(boxed).strip("()").upper()
            if len(inner) == 1:
                strong.append((max(body.rfind("\\boxed"), body.rfind("\\fbox")), inner))
        for found in (strong, [(m.start(), _letter_of(m)) for m in _OPTION_LETTER.finditer(body)]):
            valid = [(position, letter) for position, letter in found if letter in letters]
            if valid:
                return max(valid)[1]
        if visible.unfinished:
            return None
        lone = [m.group(1) for m in _LONE.finditer(body) if m.group(1) in letters]
        if lone:
            return lone[-1]
        return self._choice_text(body, boxed, choices)

    @staticmethod
    def _choice_text(body: str, boxed: str | None, choices: list[str]) -> str | None:
        if not choices:
            return None
        answered = _ANSWER_TEXT.findall(body)
        candidates = [body, *(answered[-1:]), *([boxed] if boxed else [])]
        # Case-blind first; when that is ambiguous ("Bb x bb" against "bb x Bb"), exact case.
        for normalise in (_norm_choice, lambda text: " ".join(text.split()).strip(" .*")):
            normalised = [normalise(choice) for choice in choices]
            for candidate in reversed(candidates):
                wanted = normalise(candidate)
                hits = [
                    index for index, choice in enumerate(normalised) if choice and choice == wanted
                ]
                if len(hits) == 1:
                    return LETTERS[hits[0]]
        return None

    def judge(self, item: Item, extracted: str, *, allow_code_execution: bool) -> Score:
        correct = extracted == item.answer
        return Score(
            correct, extracted, None if correct else f"chose {extracted}, gold is {item.answer}"
        )


def _defines(code: str, entry_point: str) -> bool:
    return (
        re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE)
        is not None
    )


@dataclass(frozen=True)
class HumanEvalScorer(Scorer):
    """HumanEval: the code of the answer, run against the item's tests in the sandbox.

    Code runs only when execution is allowed; otherwise every answer scores 0 with a note and
    one :class:`CodeExecutionDisabledWarning` is issued.
    """

    OPTIONS: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "timeout_s": (int, float),
        "memory_mb": (int,),
    }

    def extract(self, text: str, item: Item | None = None) -> str | None:
        visible = visible_text(text)
        if visible.unfinished and not visible.text:
            return None
        blocks = code_blocks(visible.text)
        python = [code for language, code in blocks if language in {"python", "py", "python3", ""}]
        entry_point = str(item.meta.get("entry_point", "")) if item is not None else ""
        defining = [code for code in python if entry_point and _defines(code, entry_point)]
        chosen = (defining or python or [code for _, code in blocks] or [visible.text])[-1]
        return chosen if chosen.strip() else None

    def judge(self, item: Item, extracted: str, *, allow_code_execution: bool) -> Score:
        if not allow_code_execution:
            # The warnings machinery shows this once per process: one line, not one per item.
            warnings.warn(CODE_EXECUTION_DISABLED, CodeExecutionDisabledWarning, stacklevel=2)
            return Score(False, extracted, CODE_EXECUTION_DISABLED)
        from harness import sandbox

        meta = item.meta
        entry_point = str(meta["entry_point"])
        # A completion that defines the function still runs after the prompt: the prompt's
        # last function is a docstring-only stub (valid Python) that the completion redefines,
        # and its imports and helper functions stay in scope.
        prompt = str(meta["prompt"])
        prompt = prompt + "\n" if _defines(extracted, entry_point) else prompt
        program = sandbox.humaneval_program(prompt, extracted, str(meta["test"]), entry_point)
        limits = sandbox.SandboxLimits(
            **{key: self.options[key] for key in ("timeout_s", "memory_mb") if key in self.options}
        )
        result = sandbox.run_python(program, limits)
        if result.passed:
            return Score(True, extracted, None)
        detail = [line for line in (result.stderr or "").splitlines() if line.strip()]
        suffix = f": {detail[-1].strip()[:200]}" if detail else ""
        return Score(False, extracted, f"sandbox: {result.status}{suffix}")


@dataclass(frozen=True)
class ExactScorer(Scorer):
    r"""Short answers: ``\boxed{}`` or an "Answer: ..." line, compared case- and space-blind."""

    def extract(self, text: str, item: Item | None = None) -> str | None:
        visible = visible_text(text)
        boxed = last_boxed(visible.text)
        if boxed is not None or visible.unfinished:
            return boxed
        answered = _ANSWER_TEXT.findall(visible.text[-50_000:])
        return answered[-1].strip() if answered else None

    def judge(self, item: Item, extracted: str, *, allow_code_execution: bool) -> Score:
        correct = _norm_choice(extracted) == _norm_choice(item.answer)
        return Score(correct, extracted, None if correct else WRONG)


SCORERS: Mapping[str, type[Scorer]] = {
    "exact": ExactScorer,
    "gsm8k": Gsm8kScorer,
    "humaneval": HumanEvalScorer,
    "math": MathScorer,
    "mmlu": MmluScorer,
}
