"""A snapshot request the venue rejects for good (HTTP 400, e.g. Binance -1121 Invalid symbol) abandons
that one book, visibly and without retrying; the rest of the feed carries on (replay exchange)."""

from __future__ import annotations

from feeds.instruments import Market
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncState
from tests.replay_fixtures import SPOT, binance_feed, offline_books, same_book, wait_until

FRAMES = 3000
BTC, ETH = "binance:spot:BTCUSDT", "binance:spot:ETHUSDT"


async def test_a_400_snapshot_answer_abandons_that_book_only() -> None:
    # The clock waits snapshot_wait_s at a recorded snapshot for a request that, here, never comes.
    config = ReplayConfig(max_frames=FRAMES, snapshot_wait_s=0.2)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        exchange.faults.fail_rest(400, count=1)  # the first snapshot request only
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest)
        async with feed:
            await wait_until(lambda: len(feed.failed) == 1, what="the rejected book", feeds=[feed])
            ((failed, detail),) = feed.failed.items()
            (healthy,) = {BTC, ETH} - {failed}
            await exchange.wait_finished()
            final = exchange.sync(healthy)
            assert final is not None
            await wait_until(
                lambda: feed.is_live(healthy) and feed.book(healthy).last_id == final.book.last_id,
                what="the other book to catch up",
                feeds=[feed],
            )
            assert "400" in detail and "replay fault injection" in detail
            assert (feed.stats.snapshot_rejected, feed.stats.snapshot_failures) == (1, 1)
            assert feed.syncs[failed].state is SyncState.AWAITING_SNAPSHOT and not feed.is_live(failed)
            assert failed not in {served.key for served in exchange.served}  # never asked again
            assert same_book(feed.book(healthy), offline_books([SPOT], FRAMES)[healthy])
            feed.check()  # the feed is still running
            # One rejected request, then only the healthy book's snapshots.
            assert exchange.stats.rest_requests == 1 + sum(1 for s in exchange.served if s.key == healthy)
