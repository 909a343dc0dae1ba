"""Backends: what answers a node's call (see :mod:`harness.backends._base`).

- ``sim``: the embedded calibrated simulator of the model pool (:mod:`harness.sim`), the default;
- ``live`` and ``replay``: real LLMs and recorded answers (not implemented yet).

Example:
    >>> get_backend("sim").name
    'sim'
"""

from __future__ import annotations

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
_PLANNED = {"live", "replay"}


def get_backend(name: str) -> Backend:
    """A new, unbound backend by name.

    Raises:
        ConfigError: an unknown backend, or one that is not implemented yet.
    """
    if name == "sim":
        # Imported here: the simulator's parameters load only when it is used.
        from harness.sim import SimBackend

        return SimBackend()
    if name in _PLANNED:
        raise ConfigError(f"backend {name!r} is not implemented yet (available: sim)")
    raise ConfigError(f"unknown backend {name!r} (expected one of {', '.join(BACKENDS)})")
