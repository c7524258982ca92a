"""Book levels as venues send them: the check every level passes before it reaches a book, and which
implementation of the per-level code runs.

A level is a ``(price, quantity)`` pair of floats parsed from the venue's strings. Parsing alone lets
through what no book can hold: ``float()`` and msgspec's string-to-float both take ``"nan"``, ``"inf"``
and negative numbers. A NaN price never compares equal to itself, so it could neither be found again nor
removed, and it breaks the sorted window; a negative quantity would make walks fill negative amounts; an
infinite price or quantity would make any edge look infinite. So every venue protocol calls
:func:`check_levels` on the levels of each snapshot and diff it parses and refuses the frame (a
:class:`feeds.errors.MalformedFrame`, counted and logged; the sequence check then resyncs the book the
dropped diff belonged to) rather than apply part of it.

The per-level code is compiled at install (``feeds/_levels.c``, built by ``setup.py``);
``feeds/_levels_py.py`` is its reference and runs where it is not built, or when ``ARBSCAN_PURE_PYTHON=1``
(:data:`LEVELS_LOOP` says which; the daemon logs it and ``arbscan_build_info`` reports it).
"""

from __future__ import annotations

import os

from feeds.updates import Level

try:
    if os.environ.get("ARBSCAN_PURE_PYTHON") == "1":
        raise ImportError("ARBSCAN_PURE_PYTHON=1")
    from feeds._levels import apply_asks, apply_bids, first_bad_level

    LEVELS_LOOP = "c"
except ImportError:
    from feeds._levels_py import apply_asks, apply_bids, first_bad_level

    LEVELS_LOOP = "python"

__all__ = ["LEVELS_LOOP", "apply_asks", "apply_bids", "check_levels", "first_bad_level", "top_problem"]

_INF = float("inf")


def check_levels(bids: list[Level], asks: list[Level]) -> None:
    """Raise ValueError naming the first level that is not a finite price above 0 with a finite quantity
    of 0 or more (0 removes a level). One compiled pass per side: a few ns a level."""
    for side, levels in (("bid", bids), ("ask", asks)):
        i = first_bad_level(levels)
        if i >= 0:
            raise ValueError(f"{side} level {i} {levels[i]!r}: {_why(levels[i])}")


def _why(level: object) -> str:
    if not isinstance(level, tuple | list) or len(level) != 2:
        return "not a (price, quantity) pair"
    price, qty = level
    if type(price) is not float or type(qty) is not float:
        return "price and quantity must be floats"
    if not 0.0 < price < _INF:
        return "the price must be a finite number above 0"
    return "the quantity must be a finite number of 0 or more"


def top_problem(bid: float, bid_qty: float, ask: float, ask_qty: float) -> str | None:
    """What is wrong with a best bid/ask pair under the same rule as a level (None if nothing): for venues'
    top-of-book streams, whose hot path inlines the comparison and calls this for the message."""
    for name, price, qty in (("bid", bid, bid_qty), ("ask", ask, ask_qty)):
        if not 0.0 < price < _INF:
            return f"best {name} {price!r}: the price must be a finite number above 0"
        if not 0.0 <= qty < _INF:
            return f"best {name} quantity {qty!r}: the quantity must be a finite number of 0 or more"
    return None
