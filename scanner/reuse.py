"""Reusing a candidate's previous decision when nothing it reads has changed (the engine's skip).

Most book updates change levels deeper than a candidate's walk, or the side it does not consume: the
decision ``rules.evaluate`` would make is then the previous one with new book ages. The engine keeps,
per candidate, the **inputs** its last full evaluation read:

* per book leg: the book object (``None`` when not live), its state from both tops (ok / empty /
  crossed: the only thing read from the side a leg does not consume) and the consumed side's
  walk-relevant version (:meth:`feeds.book.OrderBook.walk_version`: it moves whenever a change reaches
  a level some walk consumed, so an unchanged version means an unchanged fill);
* for held strategies (``horizon_ms > 0``), the funding view of every leg (compared by value);
* the constraints object.

Equal inputs are not enough: three checks depend on time alone and are re-run (:func:`refresh`):
each leg's age against ``max_book_age_ms`` (``stale_book``), the legs' receive-time skew against
``max_leg_skew_ms`` (``leg_skew``) and the number of funding settlements inside the horizon at the new
market time. The previous decision is reused, with its ages, skew and ``now_ms`` refreshed exactly as
``rules`` computes them, only when every check lands on the same side as before; otherwise the
candidate is evaluated in full. ``tests/test_engine_reuse.py`` replays real books through the engine
with and without the skip and asserts identical decisions at every update.

Candidates with a DEX leg are always evaluated in full (a quote has no walk version).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from feeds.book import OrderBook, Side
from feeds.instruments import InstrumentId
from rules.decision import BookState, Decision
from rules.funding import settlements
from scanner.market import LiveMarket

_NAN = float("nan")
_replace = msgspec.structs.replace


class Reads(msgspec.Struct, frozen=True, gc=False):
    """What a candidate's evaluation reads, by position in ``candidate.instruments``."""

    legs: tuple[tuple[int, Side], ...]  # per decision leg: (instrument index, consumed side)
    held: bool  # funding is read for every leg


def reads_of(decision: Decision, instruments: Sequence[InstrumentId]) -> Reads | None:
    """The reads behind ``decision`` (a full evaluation's), or None when the candidate is not reusable."""
    names = [str(i) for i in instruments]
    legs = []
    for leg in decision.legs:
        if leg.instrument not in names:
            return None  # a DEX leg
        legs.append((names.index(leg.instrument), Side.ASK if leg.side == "buy" else Side.BID))
    return Reads(tuple(legs), decision.horizon_ms > 0)


def _state(book: OrderBook) -> BookState:
    bid, ask = book.best_bid_price(), book.best_ask_price()  # rules.strategies.legs.read_book's test
    if math.isnan(bid) or math.isnan(ask):
        return BookState.EMPTY
    return BookState.CROSSED if bid >= ask else BookState.OK


def inputs_of(
    reads: Reads,
    books: Sequence[OrderBook | None],
    instruments: Sequence[InstrumentId],
    market: LiveMarket,
    constraints: object,
) -> tuple[object, ...]:
    """The input key (see the module docstring); ``books`` are ``market.book`` of ``instruments``."""
    key: list[object] = [constraints]
    for index, side in reads.legs:
        book = books[index]
        if book is None:
            key.append(None)
        else:
            key += (book, _state(book), book.walk_version(side))
    if reads.held:
        key += [market.funding(instruments[index]) for index, _side in reads.legs]
    return tuple(key)


def refresh(
    previous: Decision,
    reads: Reads,
    key: tuple[object, ...],
    books: Sequence[OrderBook | None],
    *,
    now_ns: int,
    now_ms: int,
) -> Decision | None:
    """``previous`` at the new times, or None if a time-dependent check changed side (evaluate in full).

    ``key`` is the current (unchanged) input key: its funding views are the ones ``previous`` used.
    """
    legs = previous.legs
    ages: list[float] = []
    for (index, _side), leg in zip(reads.legs, legs, strict=True):
        book = books[index]
        if book is None:
            ages.append(_NAN)
            continue
        age = (now_ns - book.recv_ns) / 1e6  # as rules computes it, to the bit
        limit = leg.max_book_age_ms
        if limit is not None and (age > limit) != (leg.book_age_ms > limit):
            return None
        ages.append(age)
    skew = _NAN
    if len(legs) == 2:
        first, second = books[reads.legs[0][0]], books[reads.legs[1][0]]
        if first is not None and second is not None:
            skew = abs(first.recv_ns - second.recv_ns) / 1e6
            limit_skew = previous.max_leg_skew_ms
            if limit_skew is not None and (skew > limit_skew) != (previous.leg_skew_ms > limit_skew):
                return None
    if reads.held:
        views = key[len(key) - len(legs) :]
        for leg, view in zip(legs, views, strict=True):
            funding = leg.funding
            if funding is None:
                continue  # not counted (no position) or unusable: neither depends on time
            assert view is not None
            count = settlements(now_ms, previous.horizon_ms, funding.next_funding_ms, funding.interval_ms)
            if count != funding.settlements:
                return None
    new_legs = tuple(
        leg if (age == leg.book_age_ms) else _replace(leg, book_age_ms=age)
        for leg, age in zip(legs, ages, strict=True)
    )
    return _replace(previous, legs=new_legs, leg_skew_ms=skew, now_ms=now_ms)
