"""A rollover whose replacement connection dies during the overlap keeps the old connection (no book
resets) and retries the rollover later; driven through the replay exchange's fault injection."""

from __future__ import annotations

from feeds.sync import SyncEvent
from tests.replay_fixtures import SPOT, Transitions, caught_up, live_spot_feed, offline_books, same_book, wait_until

FRAMES = 6000
BTC, ETH = "binance:spot:BTCUSDT", "binance:spot:ETHUSDT"


async def test_replacement_dying_during_handover_keeps_the_old_connection_and_books_live() -> None:
    transitions = Transitions()
    async with live_spot_feed(transitions, FRAMES) as (exchange, feed):
        runner = feed.runners[0]
        (first,) = runner.live_connections
        exchange.faults.pause()  # the replacement cannot catch up: the overlap lasts
        assert await exchange.faults.shutdown_notice() == 1
        await wait_until(lambda: runner.stats.connects == 2, what="the replacement connection", feeds=[feed])
        assert exchange.faults.drop_connections(newest=True) == 1  # the replacement dies mid-handover
        await wait_until(lambda: runner.stats.failed_rollovers == 1, what="the failed rollover", feeds=[feed])
        # The old one stays (the retried rollover may already have opened the next replacement: the test
        # backoff is milliseconds, and a loaded machine can poll after it).
        assert runner.live_connections[0].conn_id == first.conn_id
        assert feed.stats.resets == 0 and all(map(feed.is_live, feed.syncs))
        exchange.faults.resume()
        # The rollover is retried after a backoff; this time the replacement takes over.
        await wait_until(lambda: runner.stats.rollovers == 2, what="the retried rollover", feeds=[feed])
        await wait_until(lambda: runner.stats.disconnects == 2, what="the old connection to close", feeds=[feed])
        await caught_up(exchange, [feed])
        (survivor,) = runner.live_connections
        assert survivor.replacing == first.conn_id and runner.stats.connects == 3
        assert runner.stats.failed_rollovers == 1 and feed.stats.resets == 0
        for key, sync in feed.syncs.items():
            assert transitions.events(key) == [SyncEvent.REQUEST_SNAPSHOT, SyncEvent.SNAPSHOT_APPLIED], key
            assert (sync.stats.gaps, sync.stats.snapshots) == (0, 1), key
        offline = offline_books([SPOT], FRAMES)
        assert same_book(feed.book(BTC), offline[BTC]) and same_book(feed.book(ETH), offline[ETH])
