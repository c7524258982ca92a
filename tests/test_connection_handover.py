"""Connection handover in the feed, driven through its ConnectionSink interface with recorded USD-M frames:
a replacement connection that is AHEAD of the old one is held back until the book catches up, so the
rollover never gaps; if the old connection dies first, the held frames meet the sync rules as they are. A
frame refused on a replacement that has not joined a book does not resync it (a recorded Bybit push), and
updates stamped impossibly far ahead of the local clock are refused."""

from __future__ import annotations

import dataclasses
import gzip
import re

import orjson
import pytest
import structlog
from aiohttp import web

from feeds.binance.funding import usdm_funding_protocol
from feeds.binance.protocol import BinanceProtocol
from feeds.book import Side
from feeds.bybit.protocol import BybitProtocol
from feeds.connection import ConnectionRunner, ConnInfo
from feeds.csvbook import CsvBookProtocol
from feeds.errors import MalformedFrame
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.rest import RestClient
from feeds.sync import SyncEvent, SyncState
from feeds.updates import BookDelta, BookSnapshot, FundingUpdate, Received, Resubscribe
from tests.binance_fixtures import USDM_BTC, hft_frame
from tests.engine_fixtures import csv_recordings
from tests.replay_fixtures import USDM
from tests.venue_fixtures import BINANCE_MARK_PRICE, BYBIT_LINEAR_WS, BYBIT_TICKER_SNAPSHOT, message

KEY = "binance:usdm:BTCUSDT"


@pytest.fixture
def feed() -> VenueFeed:
    """A USD-M feed that is never started: the test plays its connection runner's part."""
    protocol = BinanceProtocol(Market.USDM, depth_speed="0ms")
    config = FeedConfig(ws_url="ws://127.0.0.1:9/public", rest_url="http://127.0.0.1:9")
    return VenueFeed(protocol, [Subscription("BTCUSDT", Channel.BOOK)], rest=RestClient(), config=config)


def go_live(feed: VenueFeed, runner: ConnectionRunner, conn: ConnInfo) -> list[Received]:
    """Play the recording up to its REST snapshot through ``conn``, apply the snapshot as the feed's
    snapshot task would, and return the next 40 decoded BTCUSDT depth frames."""
    before: list[Received] = []
    after: list[Received] = []
    snapshot = b""
    with gzip.open(USDM / "btcusdt_20240808.gz") as f:
        for line in f:
            frame = line.rstrip(b"\n").split(b" ", 1)[1]
            if b'"lastUpdateId"' in frame[:64]:
                snapshot = frame
            elif frame.startswith(b'{"stream":"btcusdt@depth'):
                (before if not snapshot else after).append(feed.protocol.receive(frame, 0))
                if len(after) == 40:
                    break
    for received in before:
        feed.on_received(runner, conn, received)
    assert feed.syncs[KEY].state is SyncState.AWAITING_SNAPSHOT
    feed.syncs[KEY].on_snapshot(feed.protocol.parse_snapshot(KEY, snapshot, 0))
    return after


def last_id(received: Received) -> int:
    (delta,) = received.updates
    assert isinstance(delta, BookDelta)
    return delta.last_id


def test_replacement_ahead_of_the_old_connection_is_held_until_the_book_catches_up(feed: VenueFeed) -> None:
    """New connection delivers diffs 13-14 while the book is at 10: held; old delivers 11-12; all apply, no gap."""
    runner = feed.runners[0]
    old, new = ConnInfo(1, runner.name, "", None), ConnInfo(2, runner.name, "", 1)
    sync = feed.syncs[KEY]
    feed.on_connection_up(runner, old)
    after = go_live(feed, runner, old)
    live_from = next(i for i, r in enumerate(after) if last_id(r) > sync.book.last_id)
    for received in after[live_from : live_from + 10]:
        feed.on_received(runner, old, received)
    assert sync.state is SyncState.LIVE
    at = sync.book.last_id
    assert at == last_id(after[live_from + 9])

    feed.on_connection_up(runner, new)
    nxt = live_from + 10
    feed.on_received(runner, new, after[nxt + 2])  # the new connection is ahead: these would gap
    feed.on_received(runner, new, after[nxt + 3])
    assert sync.book.last_id == at and feed.stats.held == 2 and sync.stats.gaps == 0

    feed.on_received(runner, old, after[nxt])
    feed.on_received(runner, old, after[nxt + 1])  # the book reaches the held diffs: they join and apply
    assert sync.book.last_id == last_id(after[nxt + 3])
    feed.on_received(runner, old, after[nxt + 2])  # duplicates from the old connection: skipped
    feed.on_received(runner, old, after[nxt + 3])
    feed.on_received(runner, new, after[nxt + 4])
    feed.on_connection_down(runner, old, "replaced")
    feed.on_received(runner, new, after[nxt + 5])

    assert sync.book.last_id == last_id(after[nxt + 5])
    assert sync.state is SyncState.LIVE
    assert (sync.stats.gaps, feed.stats.resets, feed.stats.handover_flushes) == (0, 0, 0)
    assert sync.stats.skipped >= 2


def test_old_connection_dying_first_releases_the_held_diffs_into_a_real_gap(feed: VenueFeed) -> None:
    """If the old connection ends before catching up, the missing diffs are truly lost: gap, resync that book."""
    runner = feed.runners[0]
    old, new = ConnInfo(1, runner.name, "", None), ConnInfo(2, runner.name, "", 1)
    sync = feed.syncs[KEY]
    feed.on_connection_up(runner, old)
    after = go_live(feed, runner, old)
    live_from = next(i for i, r in enumerate(after) if last_id(r) > sync.book.last_id)
    for received in after[live_from : live_from + 5]:
        feed.on_received(runner, old, received)

    feed.on_connection_up(runner, new)
    feed.on_received(runner, new, after[live_from + 7])
    assert feed.stats.held == 1 and sync.stats.gaps == 0
    feed.on_connection_down(runner, old, "connection lost")  # while the new one is still up
    assert feed.stats.handover_flushes == 1
    assert sync.stats.gaps == 1 and sync.state is SyncState.RESYNC  # the venue's recovery was requested
    assert feed.stats.resets == 0


def test_a_refused_frame_resyncs_a_book_only_from_a_connection_that_carries_it() -> None:
    """Bybit (ids that do not chain): a book frame refused on the replacement before it joined the book is
    that connection's copy, not the book's loss; refused on the old connection that feeds the book, the
    book resyncs at once."""
    protocol = BybitProtocol(Market.LINEAR, depth=1)
    config = FeedConfig(ws_url="ws://127.0.0.1:9/v5/public/linear", rest_url="http://127.0.0.1:9")
    feed = VenueFeed(protocol, [Subscription("BANDUSDT", Channel.BOOK)], rest=RestClient(), config=config)
    band = "bybit:linear:BANDUSDT"
    runner = feed.runners[0]
    old, new = ConnInfo(1, runner.name, "", None), ConnInfo(2, runner.name, "", 1)
    feed.on_connection_up(runner, old)
    snapshot = message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"')
    feed.on_received(runner, old, protocol.receive(snapshot, 1))
    sync = feed.syncs[band]
    assert sync.state is SyncState.LIVE
    feed.on_connection_up(runner, new)
    with pytest.raises(MalformedFrame) as refused:
        protocol.receive(snapshot.replace(b'"b":[["0.6131"', b'"b":[["nan"', 1), 2)
    assert refused.value.key == band
    feed.on_malformed(runner, new, refused.value)
    assert sync.state is SyncState.LIVE and sync.stats.gaps == 0 and feed.stats.malformed == 1
    feed.on_malformed(runner, old, refused.value)
    assert sync.state is SyncState.RESYNC and sync.stats.gaps == 1 and feed.stats.malformed == 2


def test_updates_stamped_far_ahead_of_the_local_clock_are_refused() -> None:
    """A book snapshot, and a ticker's funding, whose venue time is in 2286: refused and counted, nothing
    applied (a venue time from the future would move the market clock for good); the same frames with
    their recorded (past) times apply."""
    protocol = BybitProtocol(Market.LINEAR, depth=1, intervals_ms={"BTCUSDT": 8 * 3_600_000})
    config = FeedConfig(ws_url="ws://127.0.0.1:9/v5/public/linear", rest_url="http://127.0.0.1:9")
    subs = [Subscription("BANDUSDT", Channel.BOOK), Subscription("BTCUSDT", Channel.FUNDING)]
    feed = VenueFeed(protocol, subs, rest=RestClient(), config=config)
    runner = feed.runners[0]
    conn = ConnInfo(1, runner.name, "", None)
    feed.on_connection_up(runner, conn)
    snapshot = message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"')
    future = b'"ts":9999999999999'
    for frame in (
        snapshot.replace(b'"ts":1749833474773', future),
        BYBIT_TICKER_SNAPSHOT.replace(b'"ts":1673272861686', future),
    ):
        assert future in frame
        feed.on_received(runner, conn, protocol.receive(frame, 1))
    assert feed.stats.malformed == 2 and "venue time 9999999999999 ms is" in feed.stats.last_malformed
    assert (
        feed.syncs["bybit:linear:BANDUSDT"].state is not SyncState.LIVE
        and feed.funding.get("bybit:linear:BTCUSDT") is None
    )
    feed.on_received(runner, conn, protocol.receive(snapshot, 2))
    feed.on_received(runner, conn, protocol.receive(BYBIT_TICKER_SNAPSHOT, 3))
    sync = feed.syncs["bybit:linear:BANDUSDT"]
    assert sync.state is SyncState.LIVE and sync.stats.gaps == 0
    # Refused while the book is live: Bybit's ids do not chain, so the book resyncs at once.
    feed.on_received(runner, conn, protocol.receive(snapshot.replace(b'"ts":1749833474773', future), 4))
    assert feed.stats.malformed == 3 and sync.state is SyncState.RESYNC and sync.stats.gaps == 1
    assert feed.stats.future_stamped == 3
    feed.on_received(runner, conn, protocol.receive(snapshot, 5))
    assert (
        feed.syncs["bybit:linear:BANDUSDT"].state is SyncState.LIVE
        and feed.funding.get("bybit:linear:BTCUSDT") is not None
    )
    assert feed.stats.malformed == 3


def test_a_frame_of_many_updates_from_the_future_is_one_malformed_frame() -> None:
    """``!markPrice@arr`` carries every symbol in one frame: stamped in 2286, it is one malformed frame
    (counted and logged once, with the refused update as its sample) and one refused update per symbol;
    the frame's symbol stamped in the past still applies."""
    protocol = usdm_funding_protocol()
    config = FeedConfig(ws_url="ws://127.0.0.1:9/market", rest_url="http://127.0.0.1:9")
    subs = [Subscription(symbol, Channel.FUNDING) for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    feed = VenueFeed(protocol, subs, rest=RestClient(), config=config)
    runner = feed.runners[0]
    conn = ConnInfo(1, runner.name, "", None)
    feed.on_connection_up(runner, conn)
    recorded = orjson.loads(BINANCE_MARK_PRICE)["data"]
    future = {**recorded, "E": 9999999999999}
    data = [future, {**future, "s": "ETHUSDT"}, {**recorded, "s": "SOLUSDT"}]
    frame = orjson.dumps({"stream": "!markPrice@arr@1s", "data": data})
    with structlog.testing.capture_logs() as logs:
        feed.on_received(runner, conn, protocol.receive(frame, 1))
    assert (feed.stats.malformed, feed.stats.future_stamped) == (1, 2)
    [logged] = [entry for entry in logs if entry["event"] == "malformed frame"]
    assert logged["reason"].startswith("binance:usdm:BTCUSDT: venue time 9999999999999 ms is ")
    assert logged["sample"].startswith(b"FundingUpdate(key='binance:usdm:BTCUSDT', rate=0.00038167,")
    assert feed.funding.get("binance:usdm:BTCUSDT") is None and feed.funding.get("binance:usdm:ETHUSDT") is None
    applied = feed.funding.get("binance:usdm:SOLUSDT")
    assert applied is not None and applied.venue_ms == 1562305380000


def test_every_book_of_a_frame_from_the_future_loses_its_change_and_funding_loses_none() -> None:
    """Bybit's ids do not chain: each book a refused frame carried resyncs (not only the first one counted);
    a funding update from the future refuses nothing of the book sharing its symbol's key."""
    protocol = BybitProtocol(Market.LINEAR, depth=1, intervals_ms={"BANDUSDT": 8 * 3_600_000})
    config = FeedConfig(ws_url="ws://127.0.0.1:9/v5/public/linear", rest_url="http://127.0.0.1:9")
    subs = [Subscription(symbol, Channel.BOOK) for symbol in ("BANDUSDT", "BTCUSDT")]
    feed = VenueFeed(protocol, [*subs, Subscription("BANDUSDT", Channel.FUNDING)], rest=RestClient(), config=config)
    runner = feed.runners[0]
    conn = ConnInfo(1, runner.name, "", None)
    feed.on_connection_up(runner, conn)
    [band] = protocol.receive(message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"'), 1).updates
    assert isinstance(band, BookSnapshot)
    btc = dataclasses.replace(band, key="bybit:linear:BTCUSDT")  # (the recorded frame, as another symbol's)
    feed.on_received(runner, conn, Received([band, btc]))
    syncs = [feed.syncs[band.key], feed.syncs[btc.key]]
    assert [sync.state for sync in syncs] == [SyncState.LIVE, SyncState.LIVE]
    ticker = BYBIT_TICKER_SNAPSHOT.replace(b'"BTCUSDT"', b'"BANDUSDT"').replace(b"tickers.BTCUSDT", b"tickers.BANDUSDT")
    ticker = ticker.replace(b'"ts":1673272861686', b'"ts":9999999999999')
    [funding] = protocol.receive(ticker, 2).updates
    assert isinstance(funding, FundingUpdate) and funding.key == band.key
    feed.on_received(runner, conn, Received([funding]))
    assert [sync.state for sync in syncs] == [SyncState.LIVE, SyncState.LIVE]  # a book's key, but no book's change
    future = [dataclasses.replace(update, venue_ms=9999999999999) for update in (band, btc)]
    feed.on_received(runner, conn, Received(future))  # type: ignore[arg-type]
    assert [sync.state for sync in syncs] == [SyncState.RESYNC, SyncState.RESYNC]
    assert (feed.stats.malformed, feed.stats.future_stamped) == (2, 3)  # two frames; three updates


def test_a_resubscribe_renews_only_the_streams_of_its_channel() -> None:
    """A ticker snapshot asked for (Bybit) renews the symbol's tickers topic, never its book, which would
    start over; a book's resubscribe renews the book only."""
    protocol = BybitProtocol(Market.LINEAR, depth=1)
    config = FeedConfig(ws_url="ws://127.0.0.1:9/v5/public/linear", rest_url="http://127.0.0.1:9")
    book, funding = Subscription("BTCUSDT", Channel.BOOK), Subscription("BTCUSDT", Channel.FUNDING)
    feed = VenueFeed(protocol, [book, funding], rest=RestClient(), config=config)
    key = "bybit:linear:BTCUSDT"
    assert feed._resubscribed(Resubscribe(key, "", channel="funding")) == [funding]
    assert feed._resubscribed(Resubscribe(key)) == [book]
    assert protocol.subscribe(feed._resubscribed(Resubscribe(key, "", channel="funding"))) == [
        '{"op":"subscribe","args":["tickers.BTCUSDT"]}'
    ]


def test_a_ticker_stamped_far_ahead_is_refused(feed: VenueFeed) -> None:
    """The USD-M bookTicker carries the event time: one from 2286 is refused; the recorded one is not."""
    runner = feed.runners[0]
    conn = ConnInfo(1, runner.name, "", None)
    feed.on_connection_up(runner, conn)
    _ns, ticker = hft_frame(USDM_BTC, b"@bookTicker")
    assert b'"E":1723161256313' in ticker
    feed.on_received(runner, conn, feed.protocol.receive(ticker.replace(b'"E":1723161256313', b'"E":9999999999999'), 1))
    assert feed.stats.malformed == 1 and feed.stats.last_malformed.startswith(f"{KEY}: venue time 9999999999999 ms")
    feed.on_received(runner, conn, feed.protocol.receive(ticker, 2))
    assert feed.stats.malformed == 1


async def test_a_rest_snapshot_stamped_far_ahead_is_refused_and_fetched_again(feed: VenueFeed) -> None:
    """The REST snapshot carries a venue time too (USD-M ``E``): one from 2286 is refused like a malformed
    body and fetched again; the book goes live on the recorded one. Served by a real loopback HTTP peer."""
    _ns, body = hft_frame(USDM_BTC, b"lastUpdateId")
    assert b'"E":1723161256501' in body
    bodies = [body.replace(b'"E":1723161256501', b'"E":9999999999999'), body]

    async def depth(request: web.Request) -> web.Response:
        assert request.query["symbol"] == "BTCUSDT"
        return web.Response(body=bodies.pop(0), content_type="application/json")

    app = web.Application()
    app.router.add_get("/fapi/v1/depth", depth)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with RestClient() as rest:
            config = FeedConfig(ws_url="ws://127.0.0.1:9/public", rest_url=f"http://127.0.0.1:{port}")
            usdm = VenueFeed(feed.protocol, [Subscription("BTCUSDT", Channel.BOOK)], rest=rest, config=config)
            sync = usdm.syncs[KEY]
            sync._fire(SyncEvent.REQUEST_SNAPSHOT)  # as the first buffered diff does
            await usdm._fetch_snapshot(KEY)
    finally:
        await runner.cleanup()
    assert bodies == [] and usdm.stats.snapshot_failures == 1 and usdm.stats.snapshots_fetched == 1
    assert usdm.stats.future_stamped == 1
    assert sync.state is SyncState.LIVE and sync.book.last_id == 5123107852948


def test_a_refused_snapshot_of_a_snapshot_only_stream_leaves_the_book_live() -> None:
    """csv-replay frames are whole books: one refused (stamped in 2286) loses nothing the next one does not
    replace, so the live book is kept, not cleared and resubscribed (found by review)."""
    protocol = CsvBookProtocol(Venue.BINANCE)
    config = FeedConfig(ws_url="ws://127.0.0.1:9/csv", rest_url="http://127.0.0.1:9")
    feed = VenueFeed(protocol, [Subscription("LINKUSDT", Channel.BOOK)], rest=RestClient(), config=config)
    runner = feed.runners[0]
    conn = ConnInfo(1, runner.name, "", None)
    feed.on_connection_up(runner, conn)
    frames = iter(csv_recordings()[0].frames())
    first, second = next(frames).payload, next(frames).payload
    feed.on_received(runner, conn, protocol.receive(first, 1))
    sync = feed.syncs["binance:spot:LINKUSDT"]
    assert sync.state is SyncState.LIVE
    future = re.sub(rb'"ts":[0-9]+', b'"ts":9999999999999', second, count=1)
    feed.on_received(runner, conn, protocol.receive(future, 2))
    assert feed.stats.malformed == 1 and sync.state is SyncState.LIVE and sync.stats.gaps == 0
    assert sync.book.levels(Side.BID, 1) == [(27.095, 988.45)]  # the first frame's book, kept
