"""One side of an order book, in Python: the reference for ``feeds/_levels.c``'s ``Side``.

A side is a dict price -> quantity (every level) and a sorted list of the best keys only, the window (bids:
prices ascending; asks: negated prices ascending: the best is last either way). A level better than the
window's worst key is in the window (a new one joins it, in order); one at or below it lives in the dict
only; the window holds the whole side while :attr:`Side.complete`. After a diff, a window grown past twice
``window`` is cut back to its best ``window`` keys, one shrunk below a quarter of it while deeper levels
exist is refilled from the dict; a walk or read needing more than the window widens it to the whole side.
A diff deep in a book of thousands of levels then touches the dict only, while an update near the top
moves a few list elements (a sorted list of every level would move tens of KB per deep level).

:mod:`feeds.book` uses the compiled ``Side`` when it is built (``pip install`` compiles it) and this one
otherwise, or when ``ARBSCAN_PURE_PYTHON=1`` (:data:`feeds.levels.LEVELS_LOOP` says which). The compiled
one stores levels as doubles in its own hash table rather than a dict of float objects; its states, fills
and answers are this one's to the bit (``tests/test_book_levels.py``, on real diffs and random ones).
Levels are ``(float, float)`` pairs, as every parser makes them (a price a finite number above 0:
:func:`feeds.levels.check_levels`): the compiled side refuses anything else, this one does what Python does
with it. :func:`first_bad_level` is the reference of the compiled level check (``tests/test_bad_levels.py``
holds the two to the same answers).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort

from feeds.updates import Level

_INF = float("inf")
_NAN = float("nan")


def apply_bids(  # noqa: PLR0917 (Side.apply's loop, positional: one call per diff)
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
    edge = max(p for p, _ in changes)  # prices only: levels may be lists and tuples alike
    return edge > mark or (edge == mark and any(q < need for p, q in changes if p == edge))


def apply_asks(  # noqa: PLR0917 (Side.apply's loop, positional: one call per diff)
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
    edge = -min(p for p, _ in changes)
    return edge > mark or (edge == mark and any(q < need for p, q in changes if -p == edge))


class Side:
    """One side of a book: its levels, its window, the walk (module docstring). ``ask``: keys are -price."""

    __slots__ = ("_ask", "_keys", "_levels", "complete", "window")

    def __init__(self, ask: bool, window: int) -> None:
        if window < 4:
            raise ValueError(f"window must be at least 4 levels, got {window}")
        self._ask = ask
        self.window = window
        self._levels: dict[float, float] = {}
        self._keys: list[float] = []  # the window: the best keys, ascending
        self.complete = True  # the window holds every level of the side

    def __len__(self) -> int:
        return len(self._levels)

    def apply(self, changes: list[Level], mark: float, need: float) -> bool:
        """Set or remove each level (0 removes); whether the diff may reach the walks: its best changed key
        is above the watermark ``mark``, or at it with a quantity below ``need``."""
        keys = self._keys
        worst = -_INF if self.complete else keys[0] if keys else _INF
        apply = apply_asks if self._ask else apply_bids
        reached = apply(self._levels, keys, changes, worst, mark, need)
        if not self.window >> 2 <= len(keys) <= self.window << 1:
            self._fit()
        return reached

    def _fit(self) -> None:
        """Bring the window back to :attr:`window` keys: cut a long one, refill a short one."""
        keys, levels, size = self._keys, self._levels, self.window
        if len(keys) > size:
            del keys[: len(keys) - size]  # the worst are at the front
            self.complete = False
        elif len(keys) < len(levels):  # short, with deeper levels in the dict only
            if self._ask:
                keys[:] = sorted(-p for p in heapq.nsmallest(size, levels))
            else:
                keys[:] = sorted(heapq.nlargest(size, levels))
            self.complete = len(keys) == len(levels)

    def _widen(self) -> list[float]:
        """Make the window hold every level (a walk or read past it); returns it."""
        self._keys[:] = sorted(-p for p in self._levels) if self._ask else sorted(self._levels)
        self.complete = True
        return self._keys

    def best(self) -> Level | None:
        keys = self._keys
        if not keys:
            return None
        price = -keys[-1] if self._ask else keys[-1]
        return price, self._levels[price]

    def best_price(self) -> float:
        keys = self._keys
        if not keys:
            return _NAN
        return -keys[-1] if self._ask else keys[-1]

    def levels(self, n: int = 0) -> list[Level]:
        """The best ``n`` levels (0: all), best first."""
        if n < 0:
            raise ValueError(f"n must be 0 (all) or more, got {n}")
        keys = self._keys
        if (not n or n > len(keys)) and not self.complete:
            keys = self._widen()
        if n:
            keys = keys[-n:]
        levels = self._levels
        if self._ask:
            return [(-k, levels[-k]) for k in reversed(keys)]
        return [(k, levels[k]) for k in reversed(keys)]

    def truncate(self, depth: int) -> list[float]:
        """Keep the best ``depth`` levels; returns the prices removed, worst first."""
        keys = self._keys if self.complete else self._widen()
        excess = len(keys) - depth
        if excess <= 0:
            return []
        removed = [-k for k in keys[:excess]] if self._ask else keys[:excess]
        for price in removed:
            del self._levels[price]
        del keys[:excess]
        return removed

    def clear(self) -> None:
        self._levels.clear()
        self._keys.clear()
        self.complete = True

    def window_keys(self) -> tuple[float, ...]:
        return tuple(self._keys)

    def walk(
        self, overlay: Level | None, by_base: bool, target: float, kind: int, size: float
    ) -> tuple[float, float, float, float, int, bool, float, float]:
        """Walk from the best level (``overlay`` first, then only levels strictly worse than it) until
        ``target`` base units (``by_base``) or quote notional is filled. ``kind``: what a quantity is, 0 base
        units, 1 contracts of ``size`` base units, 2 contracts of ``size`` quote units. Returns (vwap, base,
        quote, top price, levels used, complete, the key it stopped at, what it needed there), or, having run
        out, the key -inf and need inf (any level added would be walked)."""
        if kind not in (0, 1, 2):
            raise ValueError(f"kind must be 0 (base), 1 (linear) or 2 (inverse), got {kind}")
        keys, levels = self._keys, self._levels
        sign = -1.0 if self._ask else 1.0
        if not keys and overlay is None:
            return _NAN, 0.0, 0.0, _NAN, 0, False, -_INF, _INF
        filled_base = filled_quote = 0.0
        used = 0
        # The levels at or better than the overlay price sit at the end of the sorted keys: start below them
        # (one bisect instead of a test per level). Without an overlay, start at the best level.
        if overlay is not None:
            price, qty = overlay
            i = bisect_left(keys, sign * price)
        else:
            i = len(keys) - 1
            price = sign * keys[i]
            qty = levels[price]
        top = price
        while True:
            used += 1
            if kind == 0:
                level_base = qty
            elif kind == 1:
                level_base = qty * size
            else:
                level_base = qty * size / price
            level_quote = level_base * price
            if by_base:
                remaining = target - filled_base
                if level_base >= remaining:
                    filled_quote += remaining * price
                    filled_base = target
                    need = qty * (remaining / level_base)
                    return filled_quote / filled_base, filled_base, filled_quote, top, used, True, sign * price, need
            else:
                remaining = target - filled_quote
                if level_quote >= remaining:
                    filled_base += remaining / price
                    filled_quote = target
                    need = qty * (remaining / level_quote)
                    return filled_quote / filled_base, filled_base, filled_quote, top, used, True, sign * price, need
            filled_base += level_base
            filled_quote += level_quote
            i -= 1
            if i < 0:
                if self.complete:
                    break
                # Past the window: widen it, and go on below the level just consumed.
                keys = self._widen()
                i = bisect_left(keys, sign * price) - 1
                if i < 0:
                    break
            price = sign * keys[i]
            qty = levels[price]
        vwap = filled_quote / filled_base if filled_base > 0.0 else _NAN
        return vwap, filled_base, filled_quote, top, used, False, -_INF, _INF


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
