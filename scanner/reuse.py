"""Reusing a candidate's previous decision when nothing it reads has changed (the engine's skip).

Most book updates change levels deeper than a candidate's walk, or the side it does not consume: the
decision ``rules.evaluate`` would make is then the previous one with new book ages.

**Holds** (:func:`hold_of`). After an evaluation that leaves the candidate settled (rejected or
qualified, not dwelling), with both books live, the engine keeps a hold: what the decision read that can
change, and for each time-only check what would have to happen for it to change side:

* per leg, the book and its consumed side's walk-relevant version (:attr:`feeds.book.OrderBook.walk_versions`:
  it moves whenever a change reaches a level some walk consumed, so an unchanged version means an
  unchanged fill, and on every change of the book's state, ok / empty / crossed, the only thing read
  from the side a leg does not consume); the constraints are the engine's (a reload drops every hold);
* a passing age or skew check has a deadline, computed conservatively from the evaluation's receive
  times (a book's receive time only moves forward, which only moves a deadline later); a failing one
  (a stale book, a skew over the limit) can only pass again when the book it waits for (the stale one,
  the older one) receives an update, so the hold keeps that book's receive time (``stuck``);
* ``until_ns``: each fresh leg's receive time plus its ``max_book_age_ms``, and the older leg's plus
  ``max_leg_skew_ms`` if the skew passes (an age or a skew can only grow from there until it updates);
* ``stuck``: the receive times of the stale legs and, if the skew fails, of the older leg;
* ``until_ms`` (held strategies): the next settlement leaving the horizon (market time reaching it) or
  entering it (market time reaching it minus the horizon), per funding leg, and the funding view's own
  next settlement (an assumed view rolls there), and for a stream's rate the moment its settlement is
  missed (:func:`rules.funding.missed`: it is then unknown);
* for held strategies, the feeds' live funding updates of the legs that are not spot, by identity.

While the versions are equal, the deadlines ahead, the stuck books silent and the live funding the same,
a wake-up is counted as a reused evaluation (same outcome and reasons in every tally, added when the
hold ends or the engine's stats are read) and nothing else runs: the state machine would make no
transition on the same input (that is why dwelling candidates are not held), and the decision with
refreshed ages is only built when someone reads it (``Engine.state_of``/``decisions``).

**Refresh** (:func:`refresh`). When a hold ends only because time passed (an age or skew deadline, or a
stuck book updated) while versions and funding are unchanged, the previous decision is still right but
for the three checks that depend on time alone, which are re-run: each leg's age against
``max_book_age_ms`` (``stale_book``), the legs' skew against ``max_leg_skew_ms`` (``leg_skew``) and the
number of funding settlements inside the horizon. It is reused with its ages, skew and ``now_ms``
recomputed exactly as ``rules`` computes them when every check lands on the same side as before;
otherwise the candidate is evaluated in full. A hold ended by a walked side, a funding update or a
funding deadline (a stated rate rolls to its next settlement) is evaluated in full; so is a candidate
without a hold. ``tests/test_engine_reuse.py`` replays real books through the engine with and without
the skip and asserts identical decisions at every update.

Candidates with a DEX leg are never held (a quote has no walk version).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from feeds.book import OrderBook, Side
from feeds.instruments import InstrumentId, Kind
from rules.decision import Decision
from rules.funding import missed_at, settlements
from scanner.candidate_state import CandidateState, Status
from scanner.market import LiveMarket

_NAN = float("nan")
_NEVER = 1 << 62  # a deadline that never comes (ns or ms)
_SIDE_INDEX = {Side.BID: 0, Side.ASK: 1}  # OrderBook.walk_versions
_replace = msgspec.structs.replace


class Reads(msgspec.Struct, frozen=True, gc=False):
    """What a candidate's evaluation reads, by position in ``candidate.instruments``."""

    legs: tuple[tuple[int, Side], ...]  # per decision leg: (instrument index, consumed side)
    held: bool  # funding is read for every leg


def reads_of(decision: Decision, instruments: Sequence[InstrumentId]) -> Reads | None:
    """The reads behind ``decision`` (a full evaluation's), or None when the candidate is never held."""
    names = [str(i) for i in instruments]
    legs = []
    for leg in decision.legs:
        if leg.instrument not in names:
            return None  # a DEX leg
        legs.append((names.index(leg.instrument), Side.ASK if leg.side == "buy" else Side.BID))
    return Reads(tuple(legs), decision.horizon_ms > 0)


def refresh(
    previous: Decision,
    reads: Reads,
    books: Sequence[OrderBook | None],
    *,
    now_ns: int,
    now_ms: int,
    recv_ns: tuple[int, int] | None = None,
) -> Decision | None:
    """``previous`` at the new times, or None if a time-dependent check changed side (evaluate in full).

    Only for a candidate whose reads are unchanged since ``previous`` (see the module docstring).
    ``recv_ns``: the legs' receive times to use (a held evaluation's), else the books' current ones.
    """
    legs = previous.legs
    recvs: list[int | None] = []
    for k, (index, _side) in enumerate(reads.legs):
        if recv_ns is not None:  # the held evaluation's: its books were live then, whatever they are now
            recvs.append(recv_ns[k])
            continue
        book = books[index]
        recvs.append(None if book is None else book.recv_ns)
    ages: list[float] = []
    for recv, leg in zip(recvs, legs, strict=True):
        if recv is None:
            ages.append(_NAN)
            continue
        age = (now_ns - recv) / 1e6  # as rules computes it, to the bit
        limit = leg.max_book_age_ms
        if limit is not None and (age > limit) != (leg.book_age_ms > limit):
            return None
        ages.append(age)
    skew = _NAN
    if len(legs) == 2:
        first, second = recvs
        if first is not None and second is not None:
            skew = abs(first - second) / 1e6
            limit_skew = previous.max_leg_skew_ms
            if limit_skew is not None and (skew > limit_skew) != (previous.leg_skew_ms > limit_skew):
                return None
    if reads.held:
        for leg in legs:
            funding = leg.funding
            if funding is None:
                continue  # not counted (no position) or unusable: neither depends on time
            count = settlements(now_ms, previous.horizon_ms, funding.next_funding_ms, funding.interval_ms)
            if count != funding.settlements:
                return None
    new_legs = tuple(
        leg if (age == leg.book_age_ms) else _replace(leg, book_age_ms=age) for leg, age in zip(legs, ages, strict=True)
    )
    return _replace(previous, legs=new_legs, leg_skew_ms=skew, now_ms=now_ms)


# (first book, its consumed side's index in walk_versions, that side's version, the same for the second
# leg, until_ns, until_ms, live funding or None: (instrument, its latest update) for each leg that is not
# spot, flattened, frozen or None: (book, its receive time) for each book whose update could clear a
# failed time check, flattened). A tuple: the engine unpacks it in one step on every wake-up.
LiveFunding = tuple[InstrumentId, object] | tuple[InstrumentId, object, InstrumentId, object]
Frozen = tuple[OrderBook, int] | tuple[OrderBook, int, OrderBook, int]
Hold = tuple[OrderBook, int, int, OrderBook, int, int, int, int, LiveFunding | None, Frozen | None]


def _deadline_ns(limit_ms: float | None, since_ns: int) -> int:
    """Before this monotonic time, an age counted from ``since_ns`` is still at most ``limit_ms``."""
    return _NEVER if limit_ms is None else since_ns + math.floor(limit_ms * 1e6)


def hold_of(  # noqa: PLR0917 (positional: called after every full evaluation)
    decision: Decision,
    state: CandidateState,
    reads: Reads,
    books: Sequence[OrderBook | None],
    instruments: Sequence[InstrumentId],
    market: LiveMarket,
    now_ms: int,
) -> Hold | None:
    """The hold after ``decision`` (just evaluated or reused, and observed by ``state``), or None."""
    if state.status not in (Status.REJECTED, Status.QUALIFIED) or len(reads.legs) != 2 or now_ms <= 0:
        return None
    (i, side_i), (j, side_j) = reads.legs
    first, second = books[i], books[j]
    if first is None or second is None:
        return None  # a leg is not live
    # A passing time check holds until its deadline; a failing one (an age only grows, and so does a skew
    # while its older book is silent) until the book whose update could clear it receives one.
    until_ns = _NEVER
    frozen: list[OrderBook] = []
    for book, leg in ((first, decision.legs[0]), (second, decision.legs[1])):
        limit = leg.max_book_age_ms
        if limit is not None and leg.book_age_ms > limit:
            frozen.append(book)
        else:
            until_ns = min(until_ns, _deadline_ns(limit, book.recv_ns))
    older = first if first.recv_ns <= second.recv_ns else second
    max_skew = decision.max_leg_skew_ms
    if max_skew is not None and decision.leg_skew_ms > max_skew:
        if older not in frozen:
            frozen.append(older)
    else:
        until_ns = min(until_ns, _deadline_ns(max_skew, older.recv_ns))
    stuck: Frozen | None = None
    if len(frozen) == 2:
        stuck = (frozen[0], frozen[0].recv_ns, frozen[1], frozen[1].recv_ns)
    elif frozen:
        stuck = (frozen[0], frozen[0].recv_ns)
    until_ms = _NEVER
    live: LiveFunding | None = None
    if reads.held:
        # Only perpetual and dated legs have funding: a spot leg's is never checked.
        live_of = market.live_funding
        perps = [instruments[k] for k in (i, j) if instruments[k].kind is not Kind.SPOT]
        if len(perps) == 2:
            live = (perps[0], live_of(perps[0]), perps[1], live_of(perps[1]))
        elif perps:
            live = (perps[0], live_of(perps[0]))
        horizon = decision.horizon_ms
        for leg in decision.legs:
            funding = leg.funding
            if funding is None:
                continue
            next_ms, interval = funding.next_funding_ms, funding.interval_ms
            first_ms = next_ms
            if first_ms <= now_ms:  # rolled forward as rules.funding.settlements does
                first_ms += ((now_ms - first_ms) // interval + 1) * interval
            leaving = first_ms  # the settlement nearest ahead leaves the window when the clock reaches it
            entering = first_ms + funding.settlements * interval - horizon  # the next one enters
            until_ms = min(until_ms, leaving, entering, next_ms if next_ms > now_ms else _NEVER)
            stale_at = missed_at(next_ms, funding.source)  # a stream's rate is dropped once its settlement is missed
            if stale_at is not None:
                until_ms = min(until_ms, stale_at)
    a, b = _SIDE_INDEX[side_i], _SIDE_INDEX[side_j]
    return (first, a, first.walk_versions[a], second, b, second.walk_versions[b], until_ns, until_ms, live, stuck)
