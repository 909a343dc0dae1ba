"""Counter-based random numbers: a hash of *what* is drawn, never a position in a stream.

Every random number the simulator uses is ``splitmix64`` of a key built from the things that
identify the draw (the study's seed and epoch, the graph id, the node's canonical position, the
question's 64-bit key, a draw index). The same call on the same question therefore gets the same
number in any batch, in any order, in any process: there is no generator state to advance and no
Python ``hash()`` (which is salted per process).

``splitmix64`` is the finaliser of Java's ``SplittableRandom`` (Steele, Lea and Flood, 2014),
which passes BigCrush as a counter-based generator; numpy's ``uint64`` arithmetic wraps modulo
2**64 exactly as the algorithm needs.

Example:
    >>> import numpy as np
    >>> keys = np.array([1, 2, 3], dtype=np.uint64)
    >>> u = uniforms(mix(7, 0), keys, 2)
    >>> u.shape, bool(((u >= 0) & (u < 1)).all())
    ((2, 3), True)
    >>> bool((uniforms(mix(7, 0), keys[1:], 2) == u[:, 1:]).all())  # batching-independent
    True
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

__all__ = ["mix", "name_key", "uniforms"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_TO_UNIT = 2.0**-53


def _splitmix(x: int) -> int:
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def mix(*parts: int) -> int:
    """Fold integers (any size, any sign) into one well-mixed 64-bit key."""
    key = 0
    for part in parts:
        key = _splitmix(key ^ (part & _MASK))
        # Parts wider than 64 bits (a 16-hex graph id is exactly 64; be safe anyway) fold in.
        rest = part >> 64 if part >= 0 else 0
        while rest:
            key = _splitmix(key ^ (rest & _MASK))
            rest >>= 64
    return key


def name_key(text: str) -> int:
    """A stable 64-bit key for a name (a model, a task, a purpose), the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _splitmix_array(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = x + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def uniforms(key: int, item_keys: npt.NDArray[np.uint64], draws: int) -> npt.NDArray[np.float64]:
    """``draws`` independent uniforms in [0, 1) per question, for one keyed purpose.

    Args:
        key: what is drawn (from :func:`mix`), the same for every question.
        item_keys: one 64-bit key per question (:attr:`harness.backends.Batch.keys`).
        draws: how many numbers per question.

    Returns:
        An array of shape ``(draws, len(item_keys))``; row ``j`` depends only on ``key``, ``j``
        and each question's own key.
    """
    # Row j's key is mix(key, j), computed for all rows in one vector operation.
    rows = np.arange(draws, dtype=np.uint64) ^ np.uint64(_splitmix(key & _MASK))
    row_keys = _splitmix_array(rows)
    bits = _splitmix_array(item_keys[None, :] ^ row_keys[:, None])
    # The top 53 bits give every double in [0, 1) on a grid of 2**-53, as numpy's own does.
    return (bits >> np.uint64(11)).astype(np.float64) * _TO_UNIT
