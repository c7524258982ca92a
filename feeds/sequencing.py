"""Each venue's documented continuity rules for book updates, side by side.

A rule set answers three questions for :class:`feeds.sync.BookSync`, which owns the state machine:

* ``snapshot_usable``: can this snapshot start the book, given the first buffered delta? (Binance spot:
  a snapshot older than the first buffered ``U`` must be fetched again.)
* ``check``: apply, skip or gap for a delta, given the book's last id (``first`` is True for the first
  delta after a snapshot, where several venues have a special bracketing rule).
* ``recovery``: how to rebuild after a gap: a REST snapshot (:class:`FetchSnapshot`) or a resubscribe
  (:class:`Resubscribe`, venues whose snapshot comes over the websocket).

Every venue skips deltas entirely at or behind the book (``last_id <= local``): they were already applied,
which is what happens when a rollover connection overlaps the old one.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar, Protocol

from feeds.updates import BookDelta, FetchSnapshot, Resubscribe


class Verdict(Enum):
    APPLY = "apply"
    SKIP = "skip"
    GAP = "gap"


class SequenceRules(Protocol):
    name: ClassVar[str]
    #: request a REST snapshot as soon as a delta is buffered (Binance), instead of waiting for the
    #: websocket snapshot (OKX falls back to REST when a delta arrives before any snapshot).
    bootstrap_from_rest: ClassVar[bool]
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]]

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool: ...

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict: ...


class BinanceSpotRules:
    """Binance spot, the procedure as corrected on 2025-11-12 (exchange-protocols.md §1.2).

    Snapshot older than the first buffered ``U`` → fetch again. Then: ``u < local`` → ignore (we also
    skip ``u == local``, a duplicate); ``U > local + 1`` → gap; otherwise apply and set local = ``u``.
    """

    name: ClassVar[str] = "binance_spot"
    bootstrap_from_rest: ClassVar[bool] = True
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = FetchSnapshot

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        return first_buffered is None or snapshot_id >= first_buffered.first_id

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        if delta.last_id <= local_id:
            return Verdict.SKIP
        if delta.first_id > local_id + 1:
            return Verdict.GAP
        return Verdict.APPLY


class BinanceFuturesRules:
    """Binance USD-M and COIN-M (exchange-protocols.md §2.2): the ``pu`` chain.

    Drop ``u < lastUpdateId``; the first applied event must have ``U <= lastUpdateId <= u`` (a first
    event starting after the snapshot means the snapshot is too old: gap, fetch again); from then on
    every event's ``pu`` must equal the previous event's ``u``.
    """

    name: ClassVar[str] = "binance_futures"
    bootstrap_from_rest: ClassVar[bool] = True
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = FetchSnapshot

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        # Futures decide on the first event after the snapshot (check(first=True)), not here.
        return True

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        if first:
            if delta.last_id < local_id:
                return Verdict.SKIP
            return Verdict.APPLY if delta.first_id <= local_id else Verdict.GAP
        if delta.last_id <= local_id:
            return Verdict.SKIP
        return Verdict.APPLY if delta.prev_id == local_id else Verdict.GAP
