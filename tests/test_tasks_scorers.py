"""Extraction and scoring on real items from the shared data folder."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import warnings
from pathlib import Path

import pytest

from harness.tasks import (
    CODE_EXECUTION_DISABLED,
    CodeExecutionDisabledWarning,
    Item,
    Task,
    TaskData,
    load_task,
)

# The root conftest.py sets HARNESS_DATA_DIR (default ../shared/data) before tests import.
DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"])


def _everything(name: str) -> tuple[Task, list[Item]]:
    task = load_task(name)
    data: TaskData = task.load(DATA_DIR, source="local")
    return task, list(data.search + data.heldout)


@pytest.fixture(scope="module")
def math_items() -> tuple[Task, list[Item]]:
    return _everything("math")


@pytest.fixture(scope="module")
def gsm8k_items() -> tuple[Task, list[Item]]:
    return _everything("gsm8k")


@pytest.fixture(scope="module")
def mmlu_items() -> tuple[Task, list[Item]]:
    return _everything("mmlu")


@pytest.fixture(scope="module")
def humaneval_items() -> tuple[Task, list[Item]]:
    return _everything("humaneval")


# --- MATH ---------------------------------------------------------------------------------


def test_every_math500_gold_scores_1(math_items: tuple[Task, list[Item]]) -> None:
    task, items = math_items
    assert len(items) == 500
    failures = [
        item.answer
        for item in items
        if not task.score(item, f"The answer is \\boxed{{{item.answer}}}").correct
    ]
    assert failures == []


def test_every_math500_gold_survives_the_reference_solution(
    math_items: tuple[Task, list[Item]],
) -> None:
    task, items = math_items
    failures = [item.id for item in items if not task.score(item, item.meta["solution"]).correct]
    assert failures == []


def test_perturbed_math_answers_score_0(math_items: tuple[Task, list[Item]]) -> None:
    task, items = math_items
    wrong = [
        item.answer for item in items if task.score(item, f"\\boxed{{{item.answer}+1}}").correct
    ]
    assert wrong == []
    # Another item's answer, where the two golds differ as written.
    shifted = [
        (item, other)
        for item, other in zip(items, items[1:] + items[:1], strict=True)
        if item.answer.replace(" ", "") != other.answer.replace(" ", "")
    ]
    scored = [task.score(item, f"\\boxed{{{other.answer}}}") for item, other in shifted[:100]]
    assert sum(score.correct for score in scored) <= 2  # a handful of golds coincide in value


@pytest.mark.parametrize(
    ("gold", "written"),
    [
        (r"\frac{1}{2}", "0.5"),
        (r"\frac{1}{2}", r"\dfrac12"),
        (r"\frac{1}{2}", "1/2"),
        ("0.5", r"\frac{1}{2}"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        ("10", "10.0"),
        (r"\text{Evelyn}", r"\text{Evelyn}"),
    ],
)
def test_equivalent_math_forms_score_1(gold: str, written: str) -> None:
    assert load_task("math").score_text(gold, f"So the answer is $\\boxed{{{written}}}$.").correct


def test_math_extraction_edge_cases() -> None:
    task = load_task("math")
    assert task.extract(r"first \boxed{1}, finally \boxed{\frac{a}{\{b\}}}") == r"\frac{a}{\{b\}}"
    assert task.extract(r"our answer is $\boxed 2$.") == "2"
    assert task.extract(r"\fbox{7}") == "7"
    assert task.extract(r"put it in \boxed{} like \boxed{3} and \boxed{}") == "3"
    assert task.extract(r"truncated \boxed{\frac{1}{") is None
    assert task.extract("no box here: 42") is None


def test_think_blocks_are_dropped() -> None:
    task = load_task("math")
    assert task.extract(r"<think>maybe \boxed{3}</think>The answer is \boxed{4}.") == "4"
    assert task.extract(r"<THINK>\boxed{3}</THINK> so 4") is None
    # The chat template opened the block: only the orphan close tag is in the output.
    assert task.extract(r"so \boxed{3}? no...</think>It is \boxed{5}") == "5"
    # Unterminated: no final answer, unless a boxed answer follows inside it.
    assert task.extract("<think>I believe it is 4 because") is None
    assert task.extract(r"<think>long reasoning ... \boxed{4}") == "4"
    score = task.score_text("4", "<think>I believe it is 4 because")
    assert (score.correct, score.note) == (False, "no answer found")


def test_reasoning_wrapped_answers(math_items: tuple[Task, list[Item]]) -> None:
    task, items = math_items
    for item in items[:25]:
        text = (
            f"<think>Let me try {item.answer}+1... no.</think>\n"
            "Step 1: read the problem.\nStep 2: compute.\n\n"
            f"Therefore the answer is $\\boxed{{{item.answer}}}$."
        )
        assert task.score(item, text).correct, item.id


GARBAGE = [
    "",
    " ",
    "\\boxed{",
    "}}}{{{\\boxed}}",
    "\\boxed{\\boxed{\\boxed{",
    "<think>",
    "</think>",
    "\x00\x01\x02\ufffd",
    "\\boxed{\\frac{1}{0}}",
    "\\boxed{\\sqrt{-}}",
    "\\boxed{" + "(" * 500 + "}",
    "\\boxed{10^{10^{10}}}",
    "\\boxed{9^{9^{9}}}",
    "\\boxed{(10^{100})!}",
    "\\boxed{" + "9" * 5000 + "}",
    "```python\n" * 1000,
    "Answer: " * 10_000,
]


@pytest.mark.parametrize("name", ["math", "gsm8k", "mmlu", "humaneval"])
@pytest.mark.filterwarnings("ignore::harness.tasks.CodeExecutionDisabledWarning")
def test_garbage_scores_0_without_raising(name: str) -> None:
    task = load_task(name)
    item = _everything(name)[1][0]
    for text in GARBAGE:
        score = task.score(item, text)
        assert score.correct is False, (name, text[:40])
        assert score.note, (name, text[:40])
    assert task.score(item, None).correct is False  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["math", "gsm8k", "mmlu", "humaneval"])
@pytest.mark.filterwarnings("ignore::harness.tasks.CodeExecutionDisabledWarning")
def test_huge_outputs_score_0_quickly(name: str) -> None:
    task = load_task(name)
    item = _everything(name)[1][0]
    huge = [
        "x" * 5_000_000,
        "\\boxed{" * 200_000,
        "<think>" * 100_000 + "</think>" * 100_000,
        " " * 2_000_000 + "answer",
        "\n" * 2_000_000,
        "{" * 1_000_000,
    ]
    started = time.monotonic()
    for text in huge:
        assert task.score(item, text).correct is False
    assert time.monotonic() - started < 20


def test_scoring_from_worker_threads(math_items: tuple[Task, list[Item]]) -> None:
    task, items = math_items
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def work(chunk: list[Item]) -> None:
        try:
            for item in chunk:
                # A fresh form per item, so the memo of the main-thread tests does not answer.
                results[item.id] = task.score(
                    item, f"thread says $\\boxed{{{item.answer}}}$ ."
                ).correct
            results["tower"] = task.score_text("4", r"\boxed{9^{9^{9}}}").correct
        except BaseException as exc:
            errors.append(exc)

    chunks = [items[index::4] for index in range(4)]
    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert results.pop("tower") is False  # refused up front: SymPy cannot be timed out here
    assert len(results) == 500 and all(results.values())


# --- GSM8K --------------------------------------------------------------------------------


def test_every_gsm8k_gold_scores_1(gsm8k_items: tuple[Task, list[Item]]) -> None:
    task, items = gsm8k_items
    assert len(items) == 1319
    boxed = [
        item.id
        for item in items
        if not task.score(item, f"The answer is \\boxed{{{item.answer}}}").correct
    ]
    reference = [item.id for item in items if not task.score(item, item.meta["solution"]).correct]
    assert boxed == [] and reference == []


def test_perturbed_gsm8k_answers_score_0(gsm8k_items: tuple[Task, list[Item]]) -> None:
    task, items = gsm8k_items
    wrong = [
        item.id for item in items if task.score(item, f"#### {float(item.answer) + 1:g}").correct
    ]
    assert wrong == []


def test_gsm8k_extraction_forms() -> None:
    task = load_task("gsm8k")
    assert task.extract(r"She pays \boxed{\$1,250.00} in total") == "1250.00"
    assert task.extract("So 3 + 4 = 7\n#### 7") == "7"
    assert task.extract("The answer is 1,200. Check: 1200 / 2 = 600") == "1200"
    assert task.extract("3 apples and then 18 more") == "18"
    assert task.extract("<think>so 3</think>") is None
    assert task.score_text("18", r"\boxed{18.00}").correct
    assert task.score_text("18", r"\boxed{\frac{36}{2}}").correct
    assert task.score_text("1200", "It costs $1,200.").correct
    assert not task.score_text("18", r"\boxed{19}").correct


# --- MMLU ---------------------------------------------------------------------------------


def test_mmlu_letters_on_real_items(mmlu_items: tuple[Task, list[Item]]) -> None:
    task, items = mmlu_items
    sample = items[::50]
    forms = [
        "Answer: {x}",
        "The correct answer is (B)... no wait. The answer is ({x}).",
        "Thinking... \\boxed{{{x}}}",
        "{x}",
        "**Answer:** {x}) because it fits",
        "<think>Answer: B</think>\nAnswer: {x}",
        "Option A is tempting, option C too.\nThe answer is {x}.",
    ]
    for item in sample:
        for form in forms:
            score = task.score(item, form.format(x=item.answer))
            assert score.correct, (item.id, form)
        wrong = "ABCD"[("ABCD".index(item.answer) + 1) % 4]
        assert not task.score(item, f"Answer: {wrong}").correct


def test_mmlu_choice_text_without_letter(mmlu_items: tuple[Task, list[Item]]) -> None:
    task, items = mmlu_items
    tried = 0
    for item in items[::20]:
        choices = [str(choice) for choice in item.meta["choices"]]
        if len({" ".join(choice.casefold().split()).strip(" .*") for choice in choices}) < len(
            choices
        ):
            continue  # duplicate choices: the text alone cannot name one letter
        gold_text = choices["ABCD".index(item.answer)]
        if len(gold_text.strip(" .*")) <= 1:
            continue  # a one-character choice reads as a letter
        tried += 1
        assert task.score(item, gold_text).correct, item.id
    assert tried > 500


def test_mmlu_no_letter_is_no_answer(mmlu_items: tuple[Task, list[Item]]) -> None:
    task, items = mmlu_items
    score = task.score(items[0], "I am not sure. It is a hard one.")
    assert (score.correct, score.note) == (False, "no answer found")
    assert task.extract("<think>Answer: B") is None


# --- HumanEval ----------------------------------------------------------------------------


def test_humaneval_refused_without_code_execution(
    humaneval_items: tuple[Task, list[Item]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_ALLOW_CODE_EXECUTION", raising=False)
    task, items = humaneval_items
    assert task.code_execution_required and not task.code_execution_allowed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        scores = [task.score(item, item.answer) for item in items[:10]]
    assert all(not score.correct and score.note == CODE_EXECUTION_DISABLED for score in scores)
    assert scores[0].extracted == items[0].answer.rstrip()
    assert [w.category for w in caught] == [CodeExecutionDisabledWarning]  # one warning, not ten
    assert not load_task("math").code_execution_required


def test_humaneval_canonical_solutions_pass_with_execution(
    humaneval_items: tuple[Task, list[Item]],
) -> None:
    task, items = humaneval_items
    task = task.with_code_execution(True)
    sample = sorted(items, key=lambda item: int(item.id.split("/")[1]))[::8]  # 21 of the 164
    failures = [
        (item.id, score.note)
        for item in sample
        if not (score := task.score(item, item.answer)).correct
    ]
    assert failures == []


def test_humaneval_environment_flag(
    humaneval_items: tuple[Task, list[Item]], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, items = humaneval_items
    monkeypatch.setenv("HARNESS_ALLOW_CODE_EXECUTION", "1")
    assert task.code_execution_allowed
    assert task.score(items[0], items[0].answer).correct
    assert not task.with_code_execution(False).code_execution_allowed


def test_humaneval_extraction_and_failures(humaneval_items: tuple[Task, list[Item]]) -> None:
    task, items = humaneval_items
    task = task.with_code_execution(True)
    item = next(item for item in items if item.id == "HumanEval/0")
    entry = item.meta["entry_point"]
    full = item.meta["prompt"].replace("from typing import List\n", "") + item.answer
    chat = (
        "Here is a helper:\n```python\nprint('hi')\n```\n"
        f"And the solution:\n```python\n{full}```\nDone."
    )
    assert f"def {entry}(" in (task.extract(chat, item) or "")
    assert task.score(item, chat).correct  # the prompt's imports stay in scope
    wrong = f"```python\ndef {entry}(numbers, threshold):\n    return 'nope'\n```"
    score = task.score(item, wrong)
    assert not score.correct and score.note and score.note.startswith("sandbox: failed")
    hang = f"```python\ndef {entry}(numbers, threshold):\n    while True:\n        pass\n```"
    quick = dataclasses.replace(task.config, options={**task.config.options, "timeout_s": 2})
    slow = dataclasses.replace(task, config=quick).score(item, hang)
    assert not slow.correct and slow.note and slow.note.startswith("sandbox: timeout")
    assert task.score(item, "<think>I would write a loop").note == "no answer found"
