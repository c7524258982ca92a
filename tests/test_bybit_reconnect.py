"""Bybit: a reconnect forgets the sequence, so the new connection's snapshot starts the book again."""

from __future__ import annotations

import orjson

from feeds.bybit.protocol import BybitProtocol
from feeds.instruments import Market
from feeds.sync import SyncState
from feeds.updates import BookSnapshot
from tests.venue_fixtures import BYBIT_LINEAR_WS, messages

BAND = "bybit:linear:BANDUSDT"


def test_snapshot_with_a_lower_seq_after_a_reconnect_makes_the_book_live():
    """Recorded BANDUSDT snapshots: a later one, a reset (connection lost), then an earlier one (u != 1)."""
    band = [m for _, m in messages(BYBIT_LINEAR_WS) if m.startswith(b'{"topic":"orderbook.1.BANDUSDT"')]
    early, late = band[0], band[5]
    assert orjson.loads(early)["data"]["seq"] < orjson.loads(late)["data"]["seq"]
    assert orjson.loads(early)["data"]["u"] != 1
    proto = BybitProtocol(Market.LINEAR, depth=1)
    sync = proto.new_sync(BAND)
    (first,) = proto.receive(late, 1).updates
    assert isinstance(first, BookSnapshot) and sync.on_snapshot(first) == []
    assert sync.state is SyncState.LIVE
    sync.reset()
    assert sync.state is SyncState.BUFFERING
    (again,) = proto.receive(early, 2).updates
    assert isinstance(again, BookSnapshot) and sync.on_snapshot(again) == []
    assert sync.state is SyncState.LIVE
    assert sync.book.last_id == again.last_id and sync.stats.skipped == 0 and sync.stats.gaps == 0
    assert sync.book.best_bid() == again.bids[0]
