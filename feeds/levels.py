"""Book levels as venues send them: the check every level passes before it reaches a book, and which
implementation of the per-level code runs.

A level is a ``(price, quantity)`` pair of floats parsed from the venue's strings. Parsing alone lets
through what no book can hold: ``float()`` and msgspec's string-to-float both take ``"nan"``, ``"inf"``
and negative numbers. A NaN price never compares equal to itself, so it could neither be found again nor
removed, and it breaks the sorted window; a negative quantity would make walks fill negative amounts; an
infinite price or quantity would make any edge look infinite. So every venue protocol calls
:func:`check_levels` on the levels of each snapshot and diff it parses and refuses the frame (a
:class:`feeds.errors.MalformedFrame` naming the book, counted and logged; its changes are lost, which the
book's sequence rules catch or, where ids do not chain, the feed resyncs at once: ``BookSync.lose_update``)
rather than apply part of it. Binance's wire schemas carry the same rule as
msgspec constraints, checked while decoding (:mod:`feeds.binance.schemas`).

A book's side (its levels, the window of its best prices, the walk) and the check are compiled at install
(``feeds/_levels.c``, built by ``setup.py``); ``feeds/_levels_py.py`` is their reference and runs where
they are not built, or when ``ARBSCAN_PURE_PYTHON=1`` (:data:`LEVELS_LOOP` says which; the daemon logs it
and ``arbscan_build_info`` reports it).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from feeds.errors import MalformedFrame
from feeds.updates import Level

if TYPE_CHECKING:
    from feeds.errors import Sample

try:
    if os.environ.get("ARBSCAN_PURE_PYTHON") == "1":
        raise ImportError("ARBSCAN_PURE_PYTHON=1")
    from feeds._levels import Side, first_bad_level

    LEVELS_LOOP = "c"
except ImportError:
    from feeds._levels_py import Side, first_bad_level  # type: ignore[assignment]

    LEVELS_LOOP = "python"

__all__ = ["LEVELS_LOOP", "Side", "check_levels", "first_bad_level", "levels_problem"]

_INF = float("inf")


def check_levels(bids: list[Level], asks: list[Level], *, key: str, venue: str, sample: Sample = b"") -> None:
    """Raise :class:`MalformedFrame` for book ``key``, naming the first level that is not a finite price
    above 0 with a finite quantity of 0 or more (0 removes a level). One compiled pass per side, a few ns
    a level: cheap enough for every diff."""
    if first_bad_level(bids) >= 0 or first_bad_level(asks) >= 0:
        raise MalformedFrame(f"{key}: {levels_problem(bids, asks)}", venue=venue, sample=sample, key=key)


def levels_problem(bids: list[Level], asks: list[Level]) -> str:
    """The first bad level of either side and what is wrong with it ("" if none)."""
    for side, levels in (("bid", bids), ("ask", asks)):
        i = first_bad_level(levels)
        if i >= 0:
            return f"{side} level {i} {levels[i]!r}: {_why(levels[i])}"
    return ""


def _why(level: object) -> str:
    if not (type(level) is tuple or type(level) is list) or len(level) != 2:  # exact types, as the check
        return "not a (price, quantity) pair"
    price, qty = level
    if type(price) is not float or type(qty) is not float:
        return "price and quantity must be floats"
    if not 0.0 < price < _INF:
        return "the price must be a finite number above 0"
    return "the quantity must be a finite number of 0 or more"

