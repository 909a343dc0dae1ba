"""Backends: what answers a node's call (see :mod:`harness.backends._base`).

- ``sim``: the embedded calibrated simulator of the model pool (:mod:`harness.sim`), the default;
- ``live``: real LLMs through each pool model's provider, every call cached
  (:mod:`harness.backends._live`);
- ``replay``: the recorded calls of the call cache only, zero network calls.

Example:
    >>> get_backend("sim").name
    'sim'
"""

from __future__ import annotations

from pathlib import Path

from harness.backends._base import (
    NO_ANSWER,
    Answers,
    Backend,
    Batch,
    EvalContext,
    NodeCall,
    item_key,
)
from harness.errors import ConfigError

__all__ = [
    "BACKENDS",
    "NO_ANSWER",
    "Answers",
    "Backend",
    "Batch",
    "EvalContext",
    "NodeCall",
    "get_backend",
    "item_key",
]

BACKENDS = ("sim", "live", "replay")


def get_backend(name: str, cache: Path | str | None = None) -> Backend:
    """A new, unbound backend by name.

    Args:
        name: ``sim``, ``live`` or ``replay``.
        cache: the call cache file of ``live`` and ``replay`` (default: see
            :class:`~harness.cache.CallCache`); ignored by ``sim``.

    Raises:
        ConfigError: an unknown backend.
    """
    # Imported here: each backend loads its dependencies only when it is used.
    if name == "sim":
        from harness.sim import SimBackend

        return SimBackend()
    if name in ("live", "replay"):
        from harness.backends._live import LiveBackend, ReplayBackend

        return LiveBackend(cache) if name == "live" else ReplayBackend(cache)
    raise ConfigError(f"unknown backend {name!r} (expected one of {', '.join(BACKENDS)})")
