"""Where the harness finds its data files and keeps its cache.

Task and pool definitions are YAML under the repository's ``tasks/`` folder; an installed wheel
carries the same files as ``harness/_data/tasks``. The cache (loaded dataset items, downloaded
offline mirrors) lives under ``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/harness``, else
``~/.cache/harness``.

Example:
    >>> from harness.paths import tasks_dir
    >>> (tasks_dir() / "math.yaml").exists()
    True
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "cache_dir",
    "pools_dir",
    "repo_root",
    "site_dir",
    "tasks_dir",
]

_PACKAGE = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The source checkout this package was imported from (its parent folder)."""
    return _PACKAGE.parent


def tasks_dir() -> Path:
    """The folder of task YAML files (``tasks/`` in a checkout, packaged data in a wheel)."""
    packaged = _PACKAGE / "_data" / "tasks"
    return packaged if packaged.is_dir() else repo_root() / "tasks"


def site_dir() -> Path:
    """The leaderboard site's templates and static files (``leaderboard/site/`` in a checkout)."""
    packaged = _PACKAGE / "_data" / "site"
    return packaged if packaged.is_dir() else repo_root() / "leaderboard" / "site"


def pools_dir() -> Path:
    """The folder of model pool YAML files."""
    return tasks_dir() / "pools"


def cache_dir() -> Path:
    """The harness's cache folder (created on first use)."""
    override = os.environ.get("HARNESS_CACHE_DIR")
    if override:
        root = Path(override)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "harness"
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path`` (an atomic rename on POSIX).

    Args:
        path: the file to write; its folder must exist.
        text: the whole new content.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block succeeds.

    For writers that want a file name (a plot library, say) rather than text:

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
