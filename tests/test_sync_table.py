"""The sync state machine's transition table and its per-symbol gap handling.

These exercise the state table itself with normalized updates; the venue rules are exercised with
recorded real frames in the venue tests (tests/test_binance_*.py and friends).
"""

from __future__ import annotations

import pytest

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError
from feeds.sequencing import BinanceFuturesRules, BinanceSpotRules
from feeds.sync import TRANSITIONS, BookSync, SyncEvent, SyncState
from feeds.updates import BookDelta, BookSnapshot, FetchSnapshot


def delta(first: int, last: int, prev: int | None = None, bid: float = 100.0) -> BookDelta:
    return BookDelta("binance:spot:BTCUSDT", first, last, prev, [(bid, 1.0)], [(bid + 1.0, 1.0)])


def snapshot(last_id: int) -> BookSnapshot:
    return BookSnapshot("binance:spot:BTCUSDT", last_id, [(99.0, 1.0)], [(102.0, 1.0)], from_rest=True)


def test_every_state_can_reset_and_illegal_transitions_raise():
    """RESET is legal everywhere; an event missing from the table is our bug."""
    assert all(TRANSITIONS[(state, SyncEvent.RESET)] is SyncState.BUFFERING for state in SyncState)
    sync = BookSync(OrderBook("k"), BinanceSpotRules())
    with pytest.raises(LocalProtocolError, match="illegal sync transition BUFFERING on GAP_DETECTED"):
        sync._fire(SyncEvent.GAP_DETECTED)


def test_spot_buffers_then_syncs_on_the_bracketing_diff():
    """Spot: the first delta asks for a snapshot; buffered deltas at or behind it are dropped."""
    sync = BookSync(OrderBook("binance:spot:BTCUSDT"), BinanceSpotRules())
    assert sync.on_delta(delta(5, 8)) == [FetchSnapshot("binance:spot:BTCUSDT")]
    assert sync.state is SyncState.AWAITING_SNAPSHOT
    assert sync.on_delta(delta(9, 12)) == []
    assert sync.on_snapshot(snapshot(10)) == []  # 5..8 dropped, 9..12 brackets 10 and applies
    assert sync.state is SyncState.LIVE
    assert sync.book.last_id == 12 and sync.stats.diffs_applied == 1 and sync.stats.skipped == 1


def test_spot_snapshot_older_than_first_buffered_is_fetched_again():
    """Spot: lastUpdateId < first buffered U → fetch the snapshot again (stay awaiting)."""
    sync = BookSync(OrderBook("binance:spot:BTCUSDT"), BinanceSpotRules())
    sync.on_delta(delta(5, 8))
    assert sync.on_snapshot(snapshot(3)) == [FetchSnapshot("binance:spot:BTCUSDT")]
    assert sync.state is SyncState.AWAITING_SNAPSHOT and sync.stats.snapshots == 0


def test_spot_gap_discards_book_and_resyncs():
    """U > local + 1 is a gap: book cleared, counters bumped, a fresh snapshot requested."""
    sync = BookSync(OrderBook("binance:spot:BTCUSDT"), BinanceSpotRules())
    sync.on_delta(delta(9, 12))
    sync.on_snapshot(snapshot(10))
    assert sync.on_delta(delta(14, 15)) == [FetchSnapshot("binance:spot:BTCUSDT")]
    assert sync.state is SyncState.RESYNC
    assert (sync.stats.gaps, sync.stats.resyncs) == (1, 1)
    assert sync.book.depth() == (0, 0)
    sync.on_delta(delta(16, 18))
    sync.on_snapshot(snapshot(17))
    assert sync.state is SyncState.LIVE and sync.book.last_id == 18


def test_futures_pu_chain_and_first_event_bracketing():
    """USD-M: first event must have U <= lastUpdateId <= u; then pu must equal the previous u."""
    sync = BookSync(OrderBook("binance:usdm:BTCUSDT"), BinanceFuturesRules())
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 5, 9, 4, [], []))
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 10, 20, 9, [(100.0, 1.0)], []))
    assert sync.on_snapshot(BookSnapshot("binance:usdm:BTCUSDT", 15, [], [], from_rest=True)) == []
    assert sync.book.last_id == 20 and sync.stats.diffs_applied == 1
    assert sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 21, 25, 20, [], [])) == []
    assert sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 27, 30, 26, [], [])) == [
        FetchSnapshot("binance:usdm:BTCUSDT")
    ]
    assert sync.stats.gaps == 1


def test_futures_snapshot_older_than_first_event_is_a_gap():
    """USD-M: a first event starting after the snapshot id means the snapshot is too old."""
    sync = BookSync(OrderBook("binance:usdm:BTCUSDT"), BinanceFuturesRules())
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 16, 20, 15, [], []))
    assert sync.on_snapshot(BookSnapshot("binance:usdm:BTCUSDT", 10, [], [], from_rest=True)) == [
        FetchSnapshot("binance:usdm:BTCUSDT")
    ]
    assert sync.state is SyncState.RESYNC


def test_duplicate_deltas_from_an_overlapping_connection_are_skipped():
    """During a rollover both connections deliver the same events; the second copy is skipped."""
    sync = BookSync(OrderBook("binance:usdm:BTCUSDT"), BinanceFuturesRules())
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 10, 20, 9, [(100.0, 1.0)], []))
    sync.on_snapshot(BookSnapshot("binance:usdm:BTCUSDT", 15, [], [], from_rest=True))
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 21, 25, 20, [(100.0, 2.0)], []))
    sync.on_delta(BookDelta("binance:usdm:BTCUSDT", 21, 25, 20, [(100.0, 2.0)], []))  # duplicate
    assert sync.stats.skipped == 1 and sync.stats.gaps == 0 and sync.state is SyncState.LIVE


def test_late_rest_snapshot_is_ignored_when_not_awaited():
    """A REST answer that arrives after the book went live does not rewind it."""
    sync = BookSync(OrderBook("binance:spot:BTCUSDT"), BinanceSpotRules())
    sync.on_delta(delta(9, 12))
    sync.on_snapshot(snapshot(10))
    assert sync.on_snapshot(snapshot(11)) == []
    assert sync.book.last_id == 12 and sync.stats.snapshots == 1
