"""Fitting a rendered message into a channel's size limit: each renderer (Telegram's 4096
visible characters, Matrix's 64 KiB event) measures its own markup, the search is shared."""

from __future__ import annotations

from collections.abc import Callable


def longest_fit(
    render: Callable[[int], str], longest: int, fits: Callable[[str], bool]
) -> str | None:
    """render(k) for the largest k in 0..longest whose result fits; None if even 0 does not.
    Size grows with k, so a binary search finds it in a dozen renders."""
    best = render(0)
    if not fits(best):
        return None
    low, high = 0, longest
    while low < high:
        middle = (low + high + 1) // 2
        candidate = render(middle)
        if fits(candidate):
            low, best = middle, candidate
        else:
            high = middle - 1
    return best
