"""Forming the search and held-out splits.

Two schemes. When the source offers a separate search part (MATH train, GSM8K train, MMLU
dev+validation), the split is that part versus the held-out part. Otherwise the held-out part
is split by seed: each item is ranked by ``sha256(f"{seed}:{id}")`` and the first
``search_size`` go to search. Ids are content hashes, so the ranking depends on neither the
source nor the file order, and an item added or removed moves at most one other item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from harness.errors import DataError
from harness.tasks._types import Item

__all__ = ["seeded_order", "split_items"]


def seeded_order(items: Sequence[Item], seed: int) -> list[Item]:
    """The items in a fixed pseudo-random order given by the seed and their ids alone.

    Example:
        >>> items = [Item(str(n), "q", "a") for n in range(5)]
        >>> [i.id for i in seeded_order(items, 1)] == [i.id for i in seeded_order(items[::-1], 1)]
        True
    """
    return sorted(
        items, key=lambda item: (hashlib.sha256(f"{seed}:{item.id}".encode()).hexdigest(), item.id)
    )


def split_items(
    heldout: Sequence[Item],
    search: Sequence[Item] | None,
    *,
    seed: int,
    search_size: int,
    heldout_label: str,
    search_label: str | None,
    why_seeded: str = "",
) -> tuple[tuple[Item, ...], tuple[Item, ...], str]:
    """Form (search, held-out, scheme) from the loaded parts.

    Args:
        heldout: the held-out part's items.
        search: the search part's items, or None when the source has none.
        seed: the task's split seed.
        search_size: how many held-out items go to search under the seeded scheme.
        heldout_label: a name for the held-out part ("MATH-500").
        search_label: a name for the search part ("MATH train").
        why_seeded: why the seeded scheme applies, for the scheme line.

    Returns:
        Both splits in seeded order (deterministic, content-based) and the one-line scheme.

    Raises:
        DataError: too few items for the seeded split.
    """
    if search is not None:
        scheme = (
            f"search = {search_label} ({len(search)} items), "
            f"held-out = {heldout_label} ({len(heldout)} items)"
        )
        return tuple(seeded_order(search, seed)), tuple(seeded_order(heldout, seed)), scheme
    if search_size >= len(heldout):
        raise DataError(
            f"{heldout_label}: only {len(heldout)} items, cannot split {search_size} off for search"
        )
    ordered = seeded_order(heldout, seed)
    reason = f"; {why_seeded}" if why_seeded else ""
    scheme = (
        f"seeded split of {heldout_label} ({len(heldout)} items): {search_size} search / "
        f"{len(heldout) - search_size} held-out, seed {seed}{reason}"
    )
    return tuple(ordered[:search_size]), tuple(ordered[search_size:]), scheme
