"""Each venue's documented continuity rules for book updates, side by side.

A rule set answers three questions for :class:`feeds.sync.BookSync`, which owns the state machine:

* ``snapshot_usable``: can this snapshot start the book, given the first buffered delta? (Binance spot:
  a snapshot older than the first buffered ``U`` must be fetched again.)
* ``check``: apply, skip or gap for a delta, given the book's last id (``first`` is True for the first
  delta after a snapshot, where several venues have a special bracketing rule).
* ``recovery``: how to rebuild after a gap: a REST snapshot (:class:`FetchSnapshot`) or a resubscribe
  (:class:`Resubscribe`, venues whose snapshot comes over the websocket).

Every venue skips deltas entirely at or behind the book (``last_id <= local``): they were already applied,
which is what happens when a rollover connection overlaps the old one. OKX is the exception: its sequence
may reset to smaller ids, so only pushes known to be applied already are skipped (:class:`OkxRules`).

Rules that keep state may define ``reset()``; :meth:`feeds.sync.BookSync.reset` calls it on reconnect.
"""

from __future__ import annotations

from array import array
from collections import deque
from enum import Enum
from typing import ClassVar, Protocol, runtime_checkable

from feeds.updates import BookDelta, BookSnapshot, FetchSnapshot, Resubscribe


class Verdict(Enum):
    APPLY = "apply"
    SKIP = "skip"
    GAP = "gap"


class SequenceRules(Protocol):
    name: ClassVar[str]
    #: request a REST snapshot as soon as a delta is buffered (Binance), instead of waiting for the
    #: websocket snapshot (OKX falls back to REST when a delta arrives before any snapshot).
    bootstrap_from_rest: ClassVar[bool]
    #: every update names the one before it (Binance ``U``/``pu``, OKX ``prevSeqId``), so an update lost to
    #: a refused frame shows as a gap at the next one (or, on a snapshot-only stream, the next replaces the
    #: book): the refusal itself needs no resync, and a garbled duplicate of a frame that also arrives
    #: intact costs nothing. Bybit's ``u`` and Kraken's arrival numbers do not chain: there a refused
    #: update resyncs its book at once (BookSync.lose_update).
    chained: ClassVar[bool]
    #: ids and venue times move together (Binance ``u``/``E``, Bybit ``u``/``ts``): an update the ids call old
    #: news (skipped) but stamped later than everything the book has seen is not old; the book's id is wrong
    #: (a corrupt ``u`` set it past the stream, which then looks old for ever): BookSync resyncs it.
    ids_follow_time: ClassVar[bool]
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
    chained: ClassVar[bool] = True
    ids_follow_time: ClassVar[bool] = True
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
    chained: ClassVar[bool] = True
    ids_follow_time: ClassVar[bool] = True
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


# ---- Bybit, OKX, Kraken (issue 3) -----------------------------------------------------------------


@runtime_checkable
class SnapshotScreen(Protocol):
    """Optional: rules that judge a websocket snapshot before it replaces the book.

    Venues whose snapshots carry a sequence (Bybit ``seq``) must reject one that goes backwards; a
    rule set implementing this is asked by :meth:`feeds.sync.BookSync.on_snapshot` (websocket
    snapshots only, never REST ones). APPLY rebuilds the book, SKIP ignores the snapshot, GAP resyncs;
    while a resync waits, a GAP snapshot is the venue's answer: ``reset`` forgets the sequence and the
    snapshot is screened again (it starts the sequence).
    """

    def screen_snapshot(self, snapshot: BookSnapshot) -> Verdict: ...

    def reset(self) -> None: ...


# Bybit deltas whose ``u`` a book remembers as applied: a duplicate from an overlapping connection lags by a
# handful of pushes; 4,096 is 80 s of orderbook.50's 20 ms pushes (32 kB per book as a ring of int64, searched
# only on a skip; a duplicate evicted from it would be a false gap: a resubscribe, never a wrong book).
APPLIED_KEPT = 4096


class BybitRules:
    """Bybit v5 ``orderbook.{depth}.{symbol}`` (exchange-protocols.md §3.2): no documented prev-id rule.

    ``last_id`` is ``u``, ``seq`` the cross sequence. A snapshot always replaces the book (Bybit re-sends
    one when its side had trouble; ``u == 1`` after a service restart). A delta at or behind the book's ``u``
    is skipped when the book has it: at or behind the last snapshot's ``u``, or one of the last
    :data:`APPLIED_KEPT` deltas applied (a duplicate: an overlapping old connection). One behind the book that
    it does not have arrived late, after a later one was applied: its changes are missing, a gap (it was
    skipped as a duplicate and the book stayed wrong, live). The defensive rule is also that ``seq`` never goes
    backwards, across snapshots and deltas: a regression is a gap and the symbol is resubscribed (the
    snapshot comes over the websocket). ``u == 1`` restarts the sequence. Unlike the Binance rules this one
    keeps state: one instance per book, as :meth:`VenueProtocol.new_sync` creates them.
    """

    name: ClassVar[str] = "bybit"
    bootstrap_from_rest: ClassVar[bool] = False
    chained: ClassVar[bool] = False
    ids_follow_time: ClassVar[bool] = True
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = Resubscribe

    __slots__ = ("_applied", "_filled", "_next", "last_seq", "snapshot_id")

    def __init__(self) -> None:
        self.last_seq = -1
        self.snapshot_id = -1  # ``u`` of the last snapshot applied: deltas at or behind it are in the book
        self._applied = array("q", bytes(8 * APPLIED_KEPT))  # ``u`` of the last APPLIED_KEPT deltas applied: a ring
        self._next = 0  # where the next applied ``u`` goes in the ring
        self._filled = 0  # how much of the ring holds ids since it was last forgotten (it fills from 0)

    def reset(self) -> None:
        """Forget the sequence (reconnect): the new connection's first snapshot starts it again."""
        self.last_seq = -1
        self.snapshot_id = -1
        self._next = self._filled = 0

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        return True

    def screen_snapshot(self, snapshot: BookSnapshot) -> Verdict:
        seq = snapshot.seq
        if seq is not None:
            if seq < self.last_seq and snapshot.last_id != 1:
                return Verdict.GAP
            self.last_seq = seq
        self.snapshot_id = snapshot.last_id
        # Forgotten in O(1): level-1 streams are all snapshots (one per push), and a book has no delta to
        # remember after one.
        self._next = self._filled = 0
        return Verdict.APPLY

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        u = delta.last_id
        if u <= local_id:
            # In the book (a duplicate, an overlapping old connection, or older than the snapshot), else late.
            applied = self._applied if self._filled == APPLIED_KEPT else self._applied[: self._filled]
            return Verdict.SKIP if u <= self.snapshot_id or u in applied else Verdict.GAP
        seq = delta.seq
        if seq is not None and seq < self.last_seq:
            return Verdict.GAP
        if seq is not None:
            self.last_seq = seq
        self._applied[self._next] = u
        self._next = (self._next + 1) % APPLIED_KEPT
        if self._filled < APPLIED_KEPT:
            self._filled += 1
        return Verdict.APPLY


class OkxRules:
    """OKX v5 ``books``/``books-l2-tbt``/``books50-l2-tbt`` (exchange-protocols.md §4.2).

    Every push carries ``seqId`` (``first_id == last_id``) and ``prevSeqId`` (``prev_id``): normally
    ``prevSeqId == local``. That one test also accepts the documented exceptions, a heartbeat
    (``seqId == prevSeqId``, no levels) and a sequence reset after maintenance (``seqId < prevSeqId``).

    A push that does not chain is skipped only when it is known to be old news: an exact duplicate of a
    push this book applied (an overlapping rollover connection; a bounded ring of applied
    ``(prevSeqId, seqId)`` pairs), or a forward push inside the stretch a websocket snapshot jumped over
    (from the book's last applied ``seqId`` to the snapshot's: a lagging old connection). Anything else is
    a gap: discard and resubscribe (the websocket re-sends the snapshot). "At or behind the book" is not
    enough: after a lost sequence reset (15→3 missed, then 3→5) every later push is behind the book, and
    skipping them would freeze a book that still reports live.

    REST bootstrap (no websocket snapshot): the snapshot is stale if its ``seqId`` is older than the first
    buffered event's ``prevSeqId``; buffered events with ``seqId <= snapshot seqId`` are dropped; the first
    applied one must satisfy ``prevSeqId <= snapshot seqId < seqId``.

    Old captures (2022) carry no ``seqId`` at all (``prev_id is None``): the protocol numbers their pushes
    in arrival order (one websocket keeps order), so an update buffered before a (re)subscription's
    snapshot is recognised as older and skipped; the checksum is then the only integrity check.

    Keeps state (what was applied): one instance per book, as :meth:`OkxProtocol.new_sync` creates them.
    ``check`` returning APPLY means the caller applies the push (feeds.sync and feeds.feed do).
    """

    name: ClassVar[str] = "okx"
    bootstrap_from_rest: ClassVar[bool] = True
    chained: ClassVar[bool] = True  # prevSeqId; the 2022 captures without it have the checksum
    ids_follow_time: ClassVar[bool] = False
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = Resubscribe
    #: applied pushes remembered for duplicate detection; an overlap replays far fewer than this
    APPLIED_RING: ClassVar[int] = 256

    __slots__ = ("_applied", "_covered")

    def __init__(self) -> None:
        self._applied: deque[tuple[int, int]] = deque(maxlen=self.APPLIED_RING)
        self._covered: tuple[int, int] | None = None  # (last applied seqId, snapshot seqId) of a snapshot jump

    def reset(self) -> None:
        """Forget what was applied (the connection was lost; the next snapshot starts over)."""
        self._applied.clear()
        self._covered = None

    def screen_snapshot(self, snapshot: BookSnapshot) -> Verdict:
        """A websocket snapshot always replaces the book; remember which seqIds it jumped over."""
        if self._applied and snapshot.last_id > self._applied[-1][1]:
            self._covered = (self._applied[-1][1], snapshot.last_id)
        else:
            self._covered = None
        self._applied.clear()
        return Verdict.APPLY

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        if first_buffered is None or first_buffered.prev_id is None:
            return True
        return snapshot_id >= first_buffered.prev_id

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        prev = delta.prev_id
        if prev is None:  # unsequenced capture: ids are arrival numbers
            return Verdict.SKIP if delta.last_id <= local_id else Verdict.APPLY
        seq = delta.last_id
        if prev == local_id:
            verdict = Verdict.APPLY
        elif first and seq <= local_id:
            verdict = Verdict.SKIP  # REST bootstrap: buffered before the snapshot
        elif first:
            verdict = Verdict.APPLY if prev <= local_id else Verdict.GAP
        elif (prev, seq) in self._applied:
            verdict = Verdict.SKIP  # an exact duplicate (overlapping connections): already in the book
        elif self._covered is not None and self._covered[0] <= prev < seq <= self._covered[1]:
            verdict = Verdict.SKIP  # older than the snapshot that replaced the book
        else:
            verdict = Verdict.GAP
        if verdict is Verdict.APPLY:
            self._applied.append((prev, seq))
        return verdict


class OkxRestRules(OkxRules):
    """OKX rules that recover from a gap with a REST snapshot instead of a resubscribe.

    For the announced world without an initial websocket snapshot (exchange-protocols.md §4.2): the
    stream keeps flowing, the book is rebuilt from ``GET /api/v5/market/books`` and the buffered events
    (it also spends none of the 480 subscribe operations per hour). Needs pushes that carry ``seqId``.
    """

    name: ClassVar[str] = "okx_rest"
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = FetchSnapshot


class KrakenRules:
    """Kraken v1/v2 ``book``: no sequence numbers; the CRC32 checksum is the integrity check.

    The protocol numbers each book's frames in arrival order (one websocket keeps order), so a delta
    buffered before the (re)subscription's snapshot is recognised as older and skipped. Recovery is a
    resubscribe: the snapshot comes over the websocket.
    """

    name: ClassVar[str] = "kraken"
    bootstrap_from_rest: ClassVar[bool] = False
    chained: ClassVar[bool] = False
    ids_follow_time: ClassVar[bool] = False
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = Resubscribe

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        return True

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        return Verdict.SKIP if delta.last_id <= local_id else Verdict.APPLY
