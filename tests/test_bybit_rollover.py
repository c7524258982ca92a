"""Bybit: rollovers overlap the new connection with the old one; no book goes back in time or resyncs.

Every ``orderbook.1`` push is a snapshot, so while both connections stream, a book receives snapshots from
two sockets (the same seq twice is not a regression). A replacement's snapshot *older* than what the old
connection applied (the network reordering the two sockets) is passed over: on loopback the sockets stay in
step, so that case is played with the recorded pushes straight into the feed.
"""

from __future__ import annotations

import orjson

from feeds.book import Side
from feeds.bybit.protocol import BybitProtocol
from feeds.connection import ConnInfo
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent, SyncState
from feeds.updates import BookSnapshot
from tests.replay_fixtures import wait_until
from tests.venue_fixtures import BYBIT_LINEAR_WS, messages
from tests.venue_replay_fixtures import Recorder, books_match, offline_books, venue_feed

MOUNT = (Venue.BYBIT, Market.LINEAR)
SYMBOLS = ["BANDUSDT", "RADUSDT", "SNTUSDT", "AIOZUSDT"]
BAND = "bybit:linear:BANDUSDT"


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


class _Handover:
    """A BANDUSDT feed fed by hand (recorded ``orderbook.1`` pushes) over two overlapping connections: the
    old one up, the replacement (``new``) not yet; each test decides which push reaches which socket."""

    def __init__(self) -> None:
        self.band = [m for _, m in messages(BYBIT_LINEAR_WS) if m.startswith(b'{"topic":"orderbook.1.BANDUSDT"')]
        self.protocol = BybitProtocol(Market.LINEAR, depth=1)
        config = FeedConfig(ws_url="ws://127.0.0.1:9/v5/public/linear", rest_url="http://127.0.0.1:9")
        subscriptions = [Subscription("BANDUSDT", Channel.BOOK)]
        self.feed = VenueFeed(self.protocol, subscriptions, rest=RestClient(), config=config)
        self.runner = self.feed.runners[0]
        self.old = ConnInfo(1, self.runner.name, config.ws_url, replacing=None)
        self.new = ConnInfo(2, self.runner.name, config.ws_url, replacing=1)
        self.feed.on_connection_up(self.runner, self.old)


def test_a_replacements_snapshot_older_than_the_book_is_passed_over() -> None:
    """The network reorders the two sockets of a handover: the replacement's first snapshot (recorded
    BANDUSDT pushes) is older than what the old connection applied. Passed over, not taken for a sequence
    regression (before: a gap and a resync of a live book); the replacement joins with a newer one."""
    h = _Handover()
    band, protocol, feed, runner, old, new = h.band, h.protocol, h.feed, h.runner, h.old, h.new
    assert orjson.loads(band[3])["data"]["seq"] < orjson.loads(band[5])["data"]["seq"]
    for n in range(6):
        feed.on_received(runner, old, protocol.receive(band[n], n))
    sync = feed.syncs[BAND]
    applied = (sync.book.last_id, sync.book.levels(Side.BID), sync.book.levels(Side.ASK))
    feed.on_connection_up(runner, new)
    feed.on_received(runner, new, protocol.receive(band[3], 7))  # the replacement's, older
    assert feed.stats.stale_snapshots == 1 and sync.state is SyncState.LIVE
    assert (sync.stats.gaps, sync.stats.resyncs, feed.stats.resubscribes) == (0, 0, 0)
    assert (sync.book.last_id, sync.book.levels(Side.BID), sync.book.levels(Side.ASK)) == applied  # not rewound
    (newer,) = protocol.receive(band[6], 8).updates
    feed.on_received(runner, new, protocol.receive(band[6], 8))
    assert isinstance(newer, BookSnapshot) and sync.book.last_id == newer.last_id > applied[0]
    assert feed.stats.stale_snapshots == 1 and sync.stats.gaps == 0


def test_the_old_connections_snapshot_older_than_the_replacements_is_passed_over() -> None:
    """The other order (a CI run of the rollover test above hit it): the replacement joined with a newer
    snapshot, then the old connection, still open and lagging, delivers an older one. Both have joined, so
    while they overlap an older snapshot from either is passed over (before: a gap and a resync)."""
    h = _Handover()
    band, protocol, feed, runner, old, new = h.band, h.protocol, h.feed, h.runner, h.old, h.new
    for n in range(4):
        feed.on_received(runner, old, protocol.receive(band[n], n))
    feed.on_connection_up(runner, new)
    feed.on_received(runner, new, protocol.receive(band[6], 6))  # the replacement joins, ahead
    sync = feed.syncs[BAND]
    joined = (sync.book.last_id, sync.book.levels(Side.BID), sync.book.levels(Side.ASK))
    assert joined[0] == protocol.receive(band[6], 6).updates[0].last_id
    feed.on_received(runner, old, protocol.receive(band[5], 7))  # the old connection's, behind
    assert feed.stats.stale_snapshots == 1 and sync.state is SyncState.LIVE
    assert (sync.stats.gaps, sync.stats.resyncs, feed.stats.resubscribes) == (0, 0, 0)
    assert (sync.book.last_id, sync.book.levels(Side.BID), sync.book.levels(Side.ASK)) == joined  # not rewound
    feed.on_connection_down(runner, old, "replaced")
    feed.on_received(runner, new, protocol.receive(band[7], 8))  # alone again: the replacement goes on
    assert sync.book.last_id == protocol.receive(band[7], 8).updates[0].last_id > joined[0]
    assert sync.stats.gaps == 0


def _restarted(message: bytes, update_id: int) -> bytes:
    """A recorded push as Bybit sends it after a service restart: the same book, its ``u`` starting over."""
    frame = orjson.loads(message)
    frame["data"]["u"] = update_id
    return orjson.dumps(frame)


def test_a_venue_restart_during_a_handover_is_applied_not_passed_over() -> None:
    """Bybit restarts while both connections stream a book (found by review): its ``u == 1`` snapshots are
    older than the book, but older than each connection's own previous one too: the venue went back, no
    socket lags. They reset the book on either connection, and the books goes on from the new ids."""
    h = _Handover()
    band, protocol, feed, runner, old, new = h.band, h.protocol, h.feed, h.runner, h.old, h.new
    for n in range(4):
        feed.on_received(runner, old, protocol.receive(band[n], n))
    feed.on_connection_up(runner, new)
    feed.on_received(runner, new, protocol.receive(band[5], 5))  # the replacement joins, ahead
    sync = feed.syncs[BAND]
    (restart,) = protocol.receive(_restarted(band[8], 1), 6).updates
    feed.on_received(runner, old, protocol.receive(_restarted(band[8], 1), 6))
    assert sync.book.last_id == 1 and feed.stats.stale_snapshots == 0
    assert isinstance(restart, BookSnapshot) and sync.book.levels(Side.BID) == restart.bids
    feed.on_received(runner, new, protocol.receive(_restarted(band[8], 1), 7))  # the same state: joins
    feed.on_received(runner, new, protocol.receive(_restarted(band[9], 2), 8))
    assert sync.book.last_id == 2 and sync.state is SyncState.LIVE
    assert (sync.stats.gaps, sync.stats.resyncs, feed.stats.resubscribes, feed.stats.stale_snapshots) == (0, 0, 0, 0)
