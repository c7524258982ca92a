"""Kraken through the replay exchange (websocket v1, as recorded): a corrupted level fails the CRC32, only
that pair is resubscribed, the rebuilt snapshot verifies against the next recorded checksums, and all ten
books end equal to verify-books' rebuild."""

from __future__ import annotations

from feeds.instruments import Market, Venue
from feeds.kraken.protocol import KrakenProtocol
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent
from tests.venue_fixtures import KRAKEN_WS
from tests.venue_replay_fixtures import Recorder, books_match, kraken_corrupt_first_level, offline_books, venue_feed

MOUNT = (Venue.KRAKEN, Market.SPOT)
PAIRS = [
    "WAVES/EUR",
    "XMR/USD",
    "KSM/XBT",
    "GRT/ETH",
    "SC/EUR",
    "ETH/CHF",
    "OCEAN/XBT",
    "OMG/USD",
    "XBT/CHF",
    "ADA/XBT",
]
XMR = "kraken:spot:XMR/USD"
SPEED = 10.0  # the 30 s capture in 3 s: the resubscribe lands mid-stream


async def test_corrupted_level_resyncs_that_pair_only() -> None:
    recorder = Recorder()
    offline = offline_books([KRAKEN_WS])
    capture = Recording("cryptofeed", (KRAKEN_WS,), exchange="KRAKEN")
    async with (
        ReplayExchange(recordings=[capture], config=ReplayConfig(speed=SPEED, start_grace_s=0.3)) as exchange,
        RestClient() as rest,
    ):
        corrupt = exchange.faults.mutate(kraken_corrupt_first_level, topic="book:XMR/USD", index=100)
        endpoints = exchange.endpoints(*MOUNT)
        protocol = KrakenProtocol(endpoints.ws, depth=1000)
        assert not protocol.v2  # the loopback root is the v1 endpoint the recording speaks
        feed = venue_feed(exchange, MOUNT, protocol, PAIRS, rest, on_transition=recorder)
        recorder.feeds.append(feed)
        async with feed:
            await books_match(exchange, [feed], offline)
            assert corrupt.fired == 1 and feed.stats.resubscribes == 1 and feed.stats.malformed == 0
            xmr = feed.syncs[XMR]
            assert recorder.events(XMR) == [
                SyncEvent.SNAPSHOT_APPLIED,
                SyncEvent.GAP_DETECTED,
                SyncEvent.RESYNC_STARTED,
                SyncEvent.SNAPSHOT_APPLIED,
            ]
            assert (xmr.stats.gaps, xmr.stats.checksum_failed, xmr.stats.snapshots) == (1, 1, 2)
            # Recorded checksums kept verifying on top of the exchange's rebuilt snapshot.
            assert xmr.stats.checksum_ok > recorder.seen[XMR][-1][1]
            assert xmr.truncate_depth == 1000
            for key, sync in feed.syncs.items():
                if key != XMR:
                    assert recorder.events(key) == [SyncEvent.SNAPSHOT_APPLIED], key
                    assert sync.stats.checksum_failed == 0 and sync.stats.checksum_ok > 0, key
            total = sum(s.stats.checksum_ok for s in feed.syncs.values())
            assert total > 4000  # nearly all of the capture's 4269 checksums, verified live
