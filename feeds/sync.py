"""Book sync: one state machine per book stream, all transitions in one table.

States::

    BUFFERING ──delta (REST venue)──► AWAITING_SNAPSHOT ──usable snapshot──► LIVE
        │                                  ▲   │ stale snapshot: fetch again     │
        └──websocket snapshot──────────────┼───┼────────────────────────────────►│
                                           │   ▼                                 │ gap / checksum / crossed
                                         RESYNC ◄──────────── GAP ◄──────────────┘

``GAP`` is where a broken book is discarded and its counters bumped; it moves on to ``RESYNC`` at once,
asking the runner for the venue's recovery action (REST snapshot or resubscribe). A reset (connection
lost) sends any state back to ``BUFFERING``. Anything not in :data:`TRANSITIONS` is a
:class:`LocalProtocolError`: an illegal transition is our bug, never silently tolerated.

Only this symbol's book is touched by its gap; other books on the same connection stay live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum

from feeds.book import OrderBook, Side
from feeds.errors import LocalProtocolError
from feeds.sequencing import SequenceRules, SnapshotScreen, Verdict
from feeds.updates import Action, BookDelta, BookSnapshot, FetchSnapshot, Level, Resubscribe, TopOfBook


class SyncState(Enum):
    BUFFERING = "buffering"
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    LIVE = "live"
    GAP = "gap"
    RESYNC = "resync"


class SyncEvent(Enum):
    REQUEST_SNAPSHOT = "request_snapshot"  # first delta buffered on a REST-bootstrap venue
    SNAPSHOT_APPLIED = "snapshot_applied"  # book (re)built from a snapshot
    SNAPSHOT_STALE = "snapshot_stale"  # snapshot older than the buffered deltas: fetch again
    GAP_DETECTED = "gap_detected"  # sequence gap, checksum mismatch or crossed book
    RESYNC_STARTED = "resync_started"  # recovery action issued
    RESET = "reset"  # connection lost or resubscribed from scratch


S, E = SyncState, SyncEvent
TRANSITIONS: dict[tuple[SyncState, SyncEvent], SyncState] = {
    (S.BUFFERING, E.REQUEST_SNAPSHOT): S.AWAITING_SNAPSHOT,
    (S.BUFFERING, E.SNAPSHOT_APPLIED): S.LIVE,  # websocket snapshot venues
    (S.AWAITING_SNAPSHOT, E.SNAPSHOT_APPLIED): S.LIVE,
    (S.AWAITING_SNAPSHOT, E.SNAPSHOT_STALE): S.AWAITING_SNAPSHOT,
    (S.AWAITING_SNAPSHOT, E.GAP_DETECTED): S.GAP,  # first delta after the snapshot does not bracket it
    (S.LIVE, E.SNAPSHOT_APPLIED): S.LIVE,  # a venue may re-send a snapshot at any time (Bybit, OKX)
    (S.LIVE, E.GAP_DETECTED): S.GAP,
    (S.GAP, E.RESYNC_STARTED): S.RESYNC,
    (S.RESYNC, E.SNAPSHOT_APPLIED): S.LIVE,
    (S.RESYNC, E.SNAPSHOT_STALE): S.RESYNC,
    (S.RESYNC, E.GAP_DETECTED): S.GAP,
    **{(state, E.RESET): S.BUFFERING for state in S},
}
del S, E

# Read on every frame: module globals, because reading an enum member through its class costs ~5x more.
_LIVE = SyncState.LIVE
OVERLAY_MAX_MISSES = 3  # diffs in a row that miss a ticker overlay's id before it is dropped (_overlay_missed)
# A resync by resubscribe (OKX) whose snapshot has not come this long after the deltas started again falls back
# to a REST snapshot, once: OKX announced websocket snapshots may stop (exchange-protocols.md §4.2).
RESYNC_REST_FALLBACK_NS = 5_000_000_000
# Diffs skipped as old in a row, none applied between them (those in flight before a snapshot not counted):
# more means the book's id is past the stream and every later diff would be skipped while the book looks live:
# a snapshot's corrupt id, or a corrupt id applied and stamped ahead too (SequenceRules.ids_follow_time cannot
# tell). In-flight diffs after a snapshot are a handful (at most 4 on the recordings), a handover's duplicate
# copies alternate with applies; 100 is 10 s of Binance's 100 ms diffs.
MAX_SKIPS_IN_A_ROW = 100
_SKIP = Verdict.SKIP
_GAP = Verdict.GAP


@dataclass(slots=True)
class SyncStats:
    """Counters of one book stream; ``verify-books`` prints them, metrics export them."""

    frames: int = 0
    diffs_applied: int = 0
    snapshots: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    checksum_ok: int = 0
    checksum_failed: int = 0
    ticker_agree: int = 0
    ticker_disagree: int = 0
    ticker_unreached: int = 0  # ticker overlays dropped: OVERLAY_MAX_MISSES diffs in a row did not reach their id
    skipped: int = 0
    buffer_overflows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


Checksum = Callable[[OrderBook], int]


class BookSync:
    """Applies one stream's snapshots, deltas and tickers to its book by the venue's rules.

    Methods return the actions the runner must perform (usually none). ``checksum`` computes the venue's
    checksum of the book; it is checked on every update that carries a non-zero checksum.
    ``resync_on_crossed`` treats a crossed book as a gap (Bybit, Binance and OKX: where no checksum vouches for
    the book; Kraken's checksum does, so a crossed Kraken book that passes it is the venue's own).
    """

    __slots__ = (
        "_buffer",
        "_first_after_snapshot",
        "_overlay_misses",
        "_rest_fallback_asked",
        "_skips_in_a_row",
        "_snapshot_recv_ns",
        "book",
        "checksum",
        "key",
        "max_buffer",
        "on_transition",
        "resync_on_crossed",
        "rules",
        "state",
        "stats",
        "truncate_depth",
    )

    def __init__(
        self,
        book: OrderBook,
        rules: SequenceRules,
        *,
        checksum: Checksum | None = None,
        resync_on_crossed: bool = False,
        truncate_depth: int | None = None,
        max_buffer: int = 50_000,
        on_transition: Callable[[str, SyncState, SyncState, SyncEvent], None] | None = None,
    ) -> None:
        self.key = book.key
        self.book = book
        self.rules = rules
        self.checksum = checksum
        self.resync_on_crossed = resync_on_crossed
        self.truncate_depth = truncate_depth
        self.max_buffer = max_buffer
        self.on_transition = on_transition
        self.state = SyncState.BUFFERING
        self.stats = SyncStats()
        self._buffer: list[BookDelta] = []
        self._first_after_snapshot = False
        self._overlay_misses = 0  # diffs applied in a row that did not reach the ticker overlay's id
        self._skips_in_a_row = 0  # diffs skipped as old since the last one applied (MAX_SKIPS_IN_A_ROW)
        self._rest_fallback_asked = False  # this resync asked for a REST snapshot (RESYNC_REST_FALLBACK_NS)
        self._snapshot_recv_ns = 0

    # ---- the one place that changes state --------------------------------------------------------

    def _fire(self, event: SyncEvent) -> None:
        try:
            new = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(f"{self.key}: illegal sync transition {self.state.name} on {event.name}") from None
        old, self.state = self.state, new
        if self.on_transition is not None and old is not new:
            self.on_transition(self.key, old, new, event)

    # ---- inputs ----------------------------------------------------------------------------------

    def on_delta(self, delta: BookDelta) -> list[Action]:
        self.stats.frames += 1
        state = self.state
        if state is _LIVE:
            return self._apply_delta(delta)
        # Not live: buffer until a snapshot arrives.
        if len(self._buffer) >= self.max_buffer:
            self.stats.buffer_overflows += 1
            self._buffer.clear()
        self._buffer.append(delta)
        rules = self.rules
        if state is SyncState.BUFFERING and rules.bootstrap_from_rest:
            self._fire(SyncEvent.REQUEST_SNAPSHOT)
            return [FetchSnapshot(self.key)]
        if (
            state is SyncState.RESYNC
            and rules.bootstrap_from_rest
            and rules.recovery is Resubscribe
            and not self._rest_fallback_asked
            and delta.recv_ns - self._buffer[0].recv_ns >= RESYNC_REST_FALLBACK_NS
        ):
            self._rest_fallback_asked = True  # the resubscribe brought deltas but no snapshot
            return [FetchSnapshot(self.key)]
        return []

    def on_snapshot(self, snapshot: BookSnapshot) -> list[Action]:
        """Start (or restart) the book from a snapshot, then replay the buffered deltas it precedes."""
        self.stats.frames += 1
        if snapshot.from_rest:
            if self.state not in (SyncState.AWAITING_SNAPSHOT, SyncState.RESYNC):
                # A REST answer we no longer wait for (e.g. late, after a websocket snapshot).
                self.stats.skipped += 1
                return []
            first = self._buffer[0] if self._buffer else None
            if not self.rules.snapshot_usable(snapshot.last_id, first):
                self._fire(SyncEvent.SNAPSHOT_STALE)
                return [FetchSnapshot(self.key)]
        elif isinstance(self.rules, SnapshotScreen):
            # Websocket snapshots of sequenced venues (Bybit): one behind the sequence is a fault.
            verdict = self.rules.screen_snapshot(snapshot)
            if verdict is Verdict.SKIP:
                self.stats.skipped += 1
                return []
            if verdict is Verdict.GAP:
                if self.state is SyncState.BUFFERING:
                    self.stats.skipped += 1  # nothing to discard yet; wait for a good snapshot
                    return []
                if self.state is not SyncState.RESYNC:
                    return self._gap()
                # Behind the sequence while we wait for the recovery we asked for: the venue's answer is the
                # authority, so the remembered sequence is what is wrong (a corrupt seq set it ahead), and
                # refusing would resubscribe at every snapshot until the connection is renewed.
                self.rules.reset()
                self.rules.screen_snapshot(snapshot)
        self.book.clear()
        self._write(snapshot)
        self.stats.snapshots += 1
        self._first_after_snapshot = True
        self._snapshot_recv_ns, self._skips_in_a_row = snapshot.recv_ns, 0
        self._fire(SyncEvent.SNAPSHOT_APPLIED)
        # Buffered deltas check crossing after they apply; snapshot-only streams (Bybit level 1) here.
        actions = self._check_integrity(snapshot.checksum, crossed=not self._buffer)
        if actions:
            return actions
        buffered, self._buffer = self._buffer, []
        for delta in buffered:
            actions = self._apply_delta(delta)
            if actions:
                return actions
        return []

    def on_top(self, top: TopOfBook) -> bool:
        """Combine a ticker's top of book with the diffs by update id; True if it changed the top.

        A ticker at the book's id is compared with it now; one ahead of the book overlays the top and
        is compared when the diff with its id is applied (``ticker_agree``/``ticker_disagree``).
        """
        self.stats.frames += 1
        if self.state is not _LIVE:
            return False
        book = self.book
        if top.update_id == book.last_id:
            self._compare_ticker((top.bid, top.bid_qty), (top.ask, top.ask_qty))
            return False
        if book.set_top(
            top.update_id, (top.bid, top.bid_qty), (top.ask, top.ask_qty), venue_ms=top.venue_ms, recv_ns=top.recv_ns
        ):
            self._overlay_misses = 0
            return True
        return False

    def _overlay_missed(self) -> None:
        """A diff was applied that does not reach the overlaid ticker's id. The next diff or the one after
        always does (every overlay of the bundled Binance recordings: 21,512 by the first diff, 37 by the
        second, none later); an overlay that OVERLAY_MAX_MISSES in a row miss carries an id the diffs never
        reach (a corrupt ``u``), and would hide the book's top and refuse every real ticker for as long as the
        connection lives. It is dropped and counted; the book's own levels stay, being right."""
        self._overlay_misses += 1
        if self._overlay_misses >= OVERLAY_MAX_MISSES:
            self._overlay_misses = 0
            self.book.drop_overlay()
            self.stats.ticker_unreached += 1

    def _compare_ticker(self, bid: Level, ask: Level) -> None:
        """Count a ticker that shares its update id with an applied diff: its top must equal the book's."""
        if self.book.levels(Side.BID, 1) == [bid] and self.book.levels(Side.ASK, 1) == [ask]:
            self.stats.ticker_agree += 1
        else:
            self.stats.ticker_disagree += 1

    def lose_update(self) -> list[Action]:
        """A snapshot or diff of this book was refused (malformed): what it changed is unknown. Where ids
        chain (``rules.chained``), the next update shows whether one was lost: nothing to do now. Elsewhere
        (Bybit's ``u``, Kraken's arrival numbers, whose checksum covers the top ten levels only) a live book
        resyncs as after a gap. A book not live waits for a snapshot that replaces it anyway."""
        if self.state is not _LIVE or self.rules.chained:
            return []
        return self._gap()

    def reset(self) -> None:
        """Forget the book (connection lost); the next delta or snapshot starts over."""
        self._buffer.clear()
        self.book.clear()
        # Rules that keep per-book state (Bybit's last seq, OKX's applied pushes) start over too: a new
        # connection may be served by another node whose sequence is behind what the old one sent.
        rules_reset = getattr(self.rules, "reset", None)
        if rules_reset is not None:
            rules_reset()
        self._fire(SyncEvent.RESET)

    # ---- internals -------------------------------------------------------------------------------

    def _apply_delta(self, delta: BookDelta) -> list[Action]:
        book = self.book
        verdict = self.rules.check(delta, book.last_id, first=self._first_after_snapshot)
        if verdict is _SKIP:
            if delta.venue_ms > book.venue_ms > 0 and not self._first_after_snapshot and self.rules.ids_follow_time:
                # Old by its id, yet newer than anything applied: the book's id is past the stream (a corrupt
                # id was applied), and every later update would be skipped as old (SequenceRules.ids_follow_time).
                # Not while a snapshot's leftovers are skipped: a REST snapshot may carry no venue time.
                return self._gap()
            if not self._first_after_snapshot or delta.recv_ns > self._snapshot_recv_ns:
                self._skips_in_a_row += 1
                if self._skips_in_a_row > MAX_SKIPS_IN_A_ROW:
                    return self._gap()  # the book's (or its snapshot's) id is past the stream: nothing would apply
            self.stats.skipped += 1
            return []
        if verdict is _GAP:
            return self._gap()
        overlay = book.overlay()
        self._write(delta)
        self._first_after_snapshot = False
        self._skips_in_a_row = 0
        self.stats.diffs_applied += 1
        if overlay is not None:
            if overlay[0] == delta.last_id:
                # A ticker that ran ahead of its diff (spot bookTicker beats the 100 ms diff): now comparable.
                self._compare_ticker(overlay[1], overlay[2])
            elif overlay[0] > delta.last_id:
                self._overlay_missed()
        checksum = delta.checksum
        if not checksum and not book.is_crossed():
            return []  # the common case, without the general check's call
        return self._check_integrity(checksum, crossed=True)

    def _write(self, update: BookSnapshot | BookDelta) -> None:
        """Apply an update's levels to the book (then cut it to the subscribed depth, where there is one)."""
        self.book.apply(
            update.bids,
            update.asks,
            last_id=update.last_id,
            venue_ms=update.venue_ms,
            recv_ns=update.recv_ns,
            raw_bids=update.raw_bids,
            raw_asks=update.raw_asks,
        )
        if self.truncate_depth is not None:
            self.book.truncate(self.truncate_depth)

    def _check_integrity(self, checksum: int | None, *, crossed: bool) -> list[Action]:
        """After a write: the venue's checksum when it sent one, then (if asked) a crossed book."""
        if checksum:
            actions = self._verify_checksum(checksum)
            if actions:
                return actions
        if crossed and self.book.is_crossed():
            self.stats.crossed += 1
            if self.resync_on_crossed:
                return self._gap()
        return []

    def _verify_checksum(self, expected: int) -> list[Action]:
        if self.checksum is None:
            return []
        if self.checksum(self.book) == expected:
            self.stats.checksum_ok += 1
            return []
        self.stats.checksum_failed += 1
        return self._gap()

    def _gap(self) -> list[Action]:
        """Discard this book and ask for the venue's recovery action; other books are untouched."""
        self.stats.gaps += 1
        self._fire(SyncEvent.GAP_DETECTED)
        self.book.clear()
        self._buffer.clear()
        self.stats.resyncs += 1
        self._rest_fallback_asked = False
        self._fire(SyncEvent.RESYNC_STARTED)
        return [self.rules.recovery(self.key)]
