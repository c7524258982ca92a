"""OKX margin feeds: the spot book keyed under ``margin``, so the feed's books receive the updates."""

from __future__ import annotations

from feeds.instruments import Market, Venue
from feeds.okx.protocol import OkxProtocol
from feeds.sync import SyncState
from feeds.updates import BookDelta, BookSnapshot, book_key
from tests.venue_fixtures import OKX_WS, messages


def test_margin_protocol_keys_the_recorded_spot_book_under_margin_and_it_goes_live():
    """Recorded BTC-USDT books frames through a MARGIN protocol reach the book the feed built."""
    proto = OkxProtocol(Market.MARGIN)
    key = book_key(Venue.OKX, proto.market, "BTC-USDT")  # how feeds/feed.py names the book
    assert key == "okx:margin:BTC-USDT"
    sync = proto.new_sync(key)
    keys: set[str] = set()
    applied = 0
    for recv_ns, frame in messages(OKX_WS):
        if not frame.startswith(b'{"arg":{"channel":"books","instId":"BTC-USDT"}'):
            continue
        for update in proto.receive(frame, recv_ns).updates:
            keys.add(update.key)
            if isinstance(update, BookSnapshot):
                assert sync.on_snapshot(update) == []
            else:
                assert isinstance(update, BookDelta)
                assert sync.on_delta(update) == []
                applied += 1
    assert keys == {key}
    assert sync.state is SyncState.LIVE
    assert sync.stats.gaps == 0 and sync.stats.checksum_failed == 0
    assert sync.stats.diffs_applied == applied > 0 and sync.stats.checksum_ok > 0
    assert sync.book.best_bid() is not None and not sync.book.is_crossed()


def test_other_markets_still_take_their_market_from_the_inst_id():
    """A margin protocol does not re-key swaps or futures, and a spot protocol keeps spot."""
    margin = OkxProtocol(Market.MARGIN)
    assert margin.key("BTC-USDT-SWAP") == "okx:swap:BTC-USDT-SWAP"
    assert margin.key("BTC-USD-220527") == "okx:futures:BTC-USD-220527"
    assert OkxProtocol(Market.SPOT).key("BTC-USDT") == "okx:spot:BTC-USDT"
    assert OkxProtocol(Market.SWAP).key("BTC-USDT") == "okx:spot:BTC-USDT"
