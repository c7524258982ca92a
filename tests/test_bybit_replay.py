"""Bybit v5 through the replay exchange: a push whose ``seq`` went backwards makes that symbol resubscribe
(the other books stay live), ping/subscribe replies follow Bybit's wire, and a tickers stream (the
documented example, no real capture exists) reaches the client's funding state."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import aiohttp
import orjson
import pytest

from feeds.bybit.protocol import BybitProtocol
from feeds.instruments import Market, Venue
from feeds.protocol import Channel
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent, SyncState
from feeds.updates import FundingUpdate
from tests.conftest import timeout
from tests.replay_fixtures import wait_until
from tests.venue_fixtures import BYBIT_LINEAR_WS, BYBIT_SPOT_WS, BYBIT_TICKER_SNAPSHOT
from tests.venue_replay_fixtures import Recorder, books_match, bybit_regress_seq, offline_books, venue_feed

MOUNT = (Venue.BYBIT, Market.LINEAR)
SYMBOLS = ["BANDUSDT", "RADUSDT", "SNTUSDT", "AIOZUSDT"]
BAND = "bybit:linear:BANDUSDT"


def nan_bid(payload: bytes) -> bytes:
    """Make a push's first bid price "nan": it parses as a float, and no book can hold it."""
    bad = re.sub(rb'"b":\[\["[0-9.]+"', b'"b":[["nan"', payload, count=1)
    assert bad != payload
    return bad


@pytest.mark.parametrize(("fault", "refused"), [(bybit_regress_seq, 0), (nan_bid, 1)])
async def test_a_bad_push_resubscribes_that_symbol_only(fault, refused) -> None:
    """A push whose ``seq`` went backwards, or one refused for a NaN bid (counted as malformed: its
    changes are lost, and Bybit's ``u`` would not show it), resubscribes that book; it ends equal to the
    offline rebuild, and the other books never left LIVE."""
    recorder = Recorder()
    offline = offline_books([BYBIT_LINEAR_WS])
    capture = Recording("cryptofeed", (BYBIT_LINEAR_WS,), exchange="BYBIT")
    async with (
        ReplayExchange(recordings=[capture], config=ReplayConfig(speed=10.0, start_grace_s=0.3)) as exchange,
        RestClient() as rest,
    ):
        mutated = exchange.faults.mutate(fault, topic="orderbook.1.BANDUSDT", index=10)
        notified: list[tuple[str, SyncState]] = []  # what the engine is told, and the book's state then
        feed = venue_feed(
            exchange,
            MOUNT,
            BybitProtocol(Market.LINEAR, depth=1),
            SYMBOLS,
            rest,
            on_transition=recorder,
            on_update=lambda key, _ns: notified.append((key, feed.syncs[key].state)),
        )
        recorder.feeds.append(feed)
        async with feed:
            await books_match(exchange, [feed], offline)
            assert mutated.fired == 1 and feed.stats.resubscribes == 1
            assert feed.stats.malformed == refused
            if refused:
                assert feed.stats.last_malformed.startswith("bybit:linear:BANDUSDT: bid level 0 (nan, ")
            band = feed.syncs[BAND]
            events = recorder.events(BAND)
            assert events[:3] == [SyncEvent.SNAPSHOT_APPLIED, SyncEvent.GAP_DETECTED, SyncEvent.RESYNC_STARTED]
            assert set(events[3:]) == {SyncEvent.SNAPSHOT_APPLIED}
            assert (band.stats.gaps, band.stats.resyncs, band.stats.crossed) == (1, 1, 0)
            # The engine learns at once that the book is gone (its candidates: book_not_ready).
            assert notified.count((BAND, SyncState.RESYNC)) == 1
            for key, sync in feed.syncs.items():
                if key != BAND:
                    assert set(recorder.events(key)) == {SyncEvent.SNAPSHOT_APPLIED}, key
                    assert (sync.stats.gaps, sync.stats.crossed) == (0, 0), key


async def test_spot_wire_ping_and_the_ten_args_limit() -> None:
    """Bybit spot replies: pong, a subscribe ack, and a refusal above 10 args per request."""
    capture = Recording("cryptofeed", (BYBIT_SPOT_WS,), exchange="BYBIT")
    config = ReplayConfig(autostart=False)
    async with ReplayExchange(recordings=[capture], config=config) as exchange, aiohttp.ClientSession() as http:
        url = exchange.endpoints(Venue.BYBIT, Market.SPOT).ws
        async with http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=timeout(2))) as ws:
            await ws.send_str('{"op":"ping","req_id":"7"}')
            pong = orjson.loads(await ws.receive_str(timeout=timeout(5)))
            await ws.send_str(
                orjson.dumps({"op": "subscribe", "args": [f"orderbook.1.S{i}" for i in range(11)]}).decode()
            )
            refused = orjson.loads(await ws.receive_str(timeout=timeout(5)))
            await ws.send_str('{"op":"subscribe","args":["orderbook.1.OPUSDC"]}')
            ack = orjson.loads(await ws.receive_str(timeout=timeout(5)))
        assert (pong["ret_msg"], pong["op"], pong["req_id"]) == ("pong", "ping", "7")
        assert refused["success"] is False and "args size" in refused["ret_msg"]
        assert (ack["success"], ack["ret_msg"], ack["op"]) == (True, "subscribe", "subscribe")
        # Our protocol reads both replies as the venue's.
        proto = BybitProtocol(Market.SPOT)
        assert proto.receive(orjson.dumps(pong), 0).updates[0].kind.value == "pong"


async def test_tickers_stream_file_feeds_funding(tmp_path: Path) -> None:
    """A recorded-format file of linear tickers: snapshot then a delta (only the changed fields)."""
    path = tmp_path / "linear" / "btcusdt_20230109.gz"
    path.parent.mkdir()
    delta = (
        b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","fundingRate":"-0.0001"},'
        b'"cs":1,"ts":1673272862686}'
    )
    with gzip.open(path, "wb") as f:
        f.write(b"1673272861700000000 " + BYBIT_TICKER_SNAPSHOT + b"\n1673272862700000000 " + delta + b"\n")
    async with ReplayExchange([path], config=ReplayConfig(start_grace_s=0.3)) as exchange, RestClient() as rest:
        assert exchange.mounts() == [MOUNT]
        protocol = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * 3_600_000})
        feed = venue_feed(exchange, MOUNT, protocol, ["BTCUSDT"], rest, channels=[Channel.FUNDING])
        async with feed:
            await wait_until(
                lambda: (u := feed.funding.get("bybit:linear:BTCUSDT")) is not None and u.rate == -0.0001,
                what="the merged delta",
                feeds=[feed],
            )
            update = feed.funding.get("bybit:linear:BTCUSDT")
            assert isinstance(update, FundingUpdate)
            assert (update.next_funding_ms, update.mark_price, update.venue_ms) == (
                1673280000000,
                17217.33,
                1673272862686,
            )


async def test_a_refused_ticker_delta_asks_for_a_new_snapshot(tmp_path: Path) -> None:
    """A tickers delta garbled on the wire (its funding rate "nan") is refused and drops the symbol's merged
    fields; Bybit sends a ticker snapshot only on subscribe, so the next delta resubscribes the ``tickers``
    topic (once), and the replay exchange, like Bybit, answers with a snapshot of the venue's merged fields.
    The client ends with every field the venue sent, including the refused delta's rate."""
    path = tmp_path / "linear" / "btcusdt_20230109.gz"
    path.parent.mkdir()

    def delta(fields: bytes, ts: int) -> bytes:
        return b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT",%s},"cs":1,"ts":%d}' % (
            fields,
            ts,
        )

    frames = [
        BYBIT_TICKER_SNAPSHOT,
        delta(b'"fundingRate":"-0.0001"', 1673272862686),
        delta(b'"markPrice":"17300.50"', 1673272863686),
        delta(b'"indexPrice":"17301.25"', 1673272864686),
    ]
    with gzip.open(path, "wb") as f:
        for n, frame in enumerate(frames):
            f.write(b"%d %s\n" % (1673272861700000000 + n * 1_000_000_000, frame))

    def nan_rate(payload: bytes) -> bytes:
        assert b'"fundingRate":"-0.0001"' in payload
        return payload.replace(b'"fundingRate":"-0.0001"', b'"fundingRate":"nan"')

    async with ReplayExchange([path], config=ReplayConfig(start_grace_s=0.3)) as exchange, RestClient() as rest:
        garbled = exchange.faults.mutate(nan_rate, topic="tickers.BTCUSDT", index=1)
        protocol = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * 3_600_000})
        feed = venue_feed(exchange, MOUNT, protocol, ["BTCUSDT"], rest, channels=[Channel.FUNDING])
        async with feed:
            await wait_until(
                lambda: (u := feed.funding.get("bybit:linear:BTCUSDT")) is not None and u.index_price == 17301.25,
                what="the last delta, merged onto the new snapshot",
                feeds=[feed],
            )
            update = feed.funding.get("bybit:linear:BTCUSDT")
    assert garbled.done
    assert isinstance(update, FundingUpdate)
    assert (update.rate, update.mark_price, update.index_price, update.venue_ms) == (
        -0.0001,  # the refused delta's rate, as the venue's snapshot states it
        17300.5,
        17301.25,
        1673272864686,
    )
    assert (feed.stats.malformed, feed.stats.resubscribes) == (1, 1)
    assert "tickers BTCUSDT: 'nan' is not a finite number" in feed.stats.last_malformed


async def test_a_paced_replay_of_a_capture_with_older_metadata_starts_with_its_first_frame() -> None:
    """The Bybit capture folder as `arbscan replay` opens it: its metadata bodies (BYBIT.0) were recorded four
    years before the first websocket frame, and pacing from them held the replay back four years at any
    finite speed (the client saw only its subscribe ack). Pacing starts at the first frame."""
    from feeds.recordings import open_recordings
    from tests.venue_fixtures import BYBIT_DIR

    recordings = open_recordings([BYBIT_DIR]).recordings
    config = ReplayConfig(speed=1.0, start_grace_s=0.3)
    async with ReplayExchange(recordings=recordings, config=config) as exchange, RestClient() as rest:
        feed = venue_feed(exchange, MOUNT, BybitProtocol(Market.LINEAR, depth=1), ["BANDUSDT"], rest)
        async with feed:
            await wait_until(lambda: feed.is_live(BAND), what="BANDUSDT live at the recorded pace", feeds=[feed])
        assert exchange.stats.frames_sent >= 1
