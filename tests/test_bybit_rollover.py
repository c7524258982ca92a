"""Bybit: rollovers mid-stream overlap the new connection with the old one; no book resyncs or goes wrong.

Every ``orderbook.1`` push is a snapshot, so while both connections stream, a book receives snapshots from
two sockets (the same seq twice is not a regression). Three rollovers during the capture; every book ends
equal to verify-books' rebuild, with no gap, resync or resubscribe. (A new connection's snapshot *older*
than what the old one applied, the network reordering the two sockets, is not provoked here: on loopback
the sockets stay in step. See the issue notes.)
"""

from __future__ import annotations

from feeds.bybit.protocol import BybitProtocol
from feeds.instruments import Market, Venue
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent
from tests.replay_fixtures import wait_until
from tests.venue_fixtures import BYBIT_LINEAR_WS
from tests.venue_replay_fixtures import Recorder, books_match, offline_books, venue_feed

MOUNT = (Venue.BYBIT, Market.LINEAR)
SYMBOLS = ["BANDUSDT", "RADUSDT", "SNTUSDT", "AIOZUSDT"]


async def test_rollovers_mid_stream_never_rewind_or_resync_a_book() -> None:
    recorder = Recorder()
    offline = offline_books([BYBIT_LINEAR_WS])
    capture = Recording("cryptofeed", (BYBIT_LINEAR_WS,), exchange="BYBIT")
    async with (
        ReplayExchange(recordings=[capture], config=ReplayConfig(speed=20.0, start_grace_s=0.3)) as exchange,
        RestClient() as rest,
    ):
        feed = venue_feed(exchange, MOUNT, BybitProtocol(Market.LINEAR, depth=1), SYMBOLS, rest, on_transition=recorder)
        recorder.feeds.append(feed)
        async with feed:
            runner = feed.runners[0]
            for n in range(1, 4):
                await wait_until(lambda n=n: exchange.stats.frames_sent > 40 * n, what="frames", feeds=[feed])
                runner.request_rollover("test")
                await wait_until(lambda n=n: runner.stats.rollovers == n, what="rollover", feeds=[feed])
            await books_match(exchange, [feed], offline)
            assert runner.stats.rollovers == 3 and runner.stats.connects == 4
            assert len({s.conn_id for s in runner.stats.sends if s.kind == "text"}) == 4  # each one subscribed
            for key, sync in feed.syncs.items():
                assert set(recorder.events(key)) == {SyncEvent.SNAPSHOT_APPLIED}, key
                assert (sync.stats.gaps, sync.stats.resyncs) == (0, 0), key
            assert feed.stats.resubscribes == 0
