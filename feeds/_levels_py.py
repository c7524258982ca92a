"""The per-level loop of :meth:`feeds.book.OrderBook.apply`, in Python: the reference for ``feeds/_levels.c``.

A side is a dict price -> quantity (every level) and a sorted list of the best keys only, the window (bids:
prices ascending; asks: negated prices ascending: the best is last either way); ``worst`` is the window's
worst key (-inf when the window holds the whole side). A level with a quantity sets it, a quantity of 0
removes it. A level better than ``worst`` is in the window (a new one joins it, in order); one at or below
it lives in the dict only. Each loop keeps to one compare against ``worst`` per level: levels removed or
added during the loop keep that split valid.

:mod:`feeds.book` uses the compiled loop when it is built (``pip install`` compiles it) and this one
otherwise, or when ``ARBSCAN_PURE_PYTHON=1`` (:data:`feeds.levels.LEVELS_LOOP` says which). Levels are
``(float, float)`` pairs, as every parser makes them: the compiled loop refuses anything else (TypeError),
this one does what Python does with it. Each returns whether the diff may reach the book's walks (its best
changed key against their watermark). ``tests/test_book_levels.py`` holds the two to the
same results on real diffs and random ones. :func:`first_bad_level` is the reference of the compiled level
check (:func:`feeds.levels.check_levels`; ``tests/test_bad_levels.py`` holds the two to the same answers).
"""

from __future__ import annotations

from bisect import bisect_left, insort

from feeds.updates import Level

_INF = float("inf")


def apply_bids(  # noqa: PLR0917 (the compiled loop's positional signature)
    book: dict[float, float], keys: list[float], changes: list[Level], worst: float, mark: float, need: float
) -> bool:
    """Apply a bid side's changes (never empty); returns whether they may reach the walks: the best changed
    price is above the watermark ``mark``, or at it with a quantity below ``need``."""
    for price, qty in changes:
        if qty:
            if price > worst and price not in book:
                insort(keys, price)
            book[price] = qty
        elif price >= worst:
            # In the window, unless the same diff re-added it below the window before this removal.
            if book.pop(price, None) is not None:
                i = bisect_left(keys, price)
                if i < len(keys) and keys[i] == price:
                    del keys[i]
        else:
            book.pop(price, None)
    edge = max(changes)[0]
    return edge > mark or (edge == mark and any(q < need for p, q in changes if p == edge))


def apply_asks(  # noqa: PLR0917 (the compiled loop's positional signature)
    book: dict[float, float], keys: list[float], changes: list[Level], worst: float, mark: float, need: float
) -> bool:
    """Apply an ask side's changes (never empty); keys, ``worst`` and ``mark`` are negated prices (the best
    changed key is minus the lowest changed ask)."""
    for price, qty in changes:
        if qty:
            if -price > worst and price not in book:
                insort(keys, -price)
            book[price] = qty
        elif -price >= worst:
            if book.pop(price, None) is not None:
                i = bisect_left(keys, -price)
                if i < len(keys) and keys[i] == -price:
                    del keys[i]
        else:
            book.pop(price, None)
    edge = -min(changes)[0]
    return edge > mark or (edge == mark and any(q < need for p, q in changes if -p == edge))


def first_bad_level(levels: list[Level]) -> int:
    """The index of the first level that is not ``(price, qty)`` floats with ``0 < price < inf`` and
    ``0 <= qty < inf`` (a NaN fails both), or -1."""
    if type(levels) is not list:
        raise TypeError(f"levels must be a list, got {type(levels).__name__}")
    for i, level in enumerate(levels):
        if type(level) not in (tuple, list) or len(level) != 2:
            return i
        price, qty = level
        if type(price) is not float or type(qty) is not float or not (0.0 < price < _INF and 0.0 <= qty < _INF):
            return i
    return -1
