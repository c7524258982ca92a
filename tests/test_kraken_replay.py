"""Kraken through the replay exchange (websocket v1, as recorded): a corrupted level fails the CRC32, only
that pair is resubscribed, the rebuilt snapshot verifies against the next recorded checksums, and all ten
books end equal to verify-books' rebuild."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from feeds.instruments import Market, Venue
from feeds.kraken.protocol import KrakenProtocol
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent
from tests.conftest import timeout
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


async def test_the_replay_answers_malformed_and_unsupported_subscribes_as_kraken_does() -> None:
    """A depth that is not a number, a subscription that is not an object, or a depth Kraken does not take (50):
    one error event each, and the connection keeps serving (the first two were tracebacks in the handler and
    a dropped connection; 50 was subscribed as book-50)."""
    capture = Recording("cryptofeed", (KRAKEN_WS,), exchange="KRAKEN")
    async with (
        ReplayExchange(recordings=[capture], config=ReplayConfig(start_grace_s=5.0)) as exchange,
        connect(exchange.endpoints(*MOUNT).ws) as ws,
    ):
        replies = []
        for subscription in ({"name": "book", "depth": "abc"}, "book", {"name": "book", "depth": 50}):
            request = {"event": "subscribe", "pair": ["XMR/USD"], "subscription": subscription, "reqid": 7}
            await ws.send(orjson.dumps(request).decode())
            replies.append(orjson.loads(await asyncio.wait_for(ws.recv(), timeout(10))))
        await ws.send(orjson.dumps({"event": "ping", "reqid": 8}).decode())
        pong = orjson.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
    assert [(r["event"], r.get("status"), r["errorMessage"]) for r in replies] == [
        ("subscriptionStatus", "error", "Subscription depth not supported"),
        ("error", None, "Subscription name invalid"),
        ("subscriptionStatus", "error", "Subscription depth not supported"),
    ]
    assert pong == {"event": "pong", "reqid": 8}
