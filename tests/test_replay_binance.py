"""The replay exchange speaks Binance's wire: streams, requests, routes, REST depth, faults, the end."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from feeds.binance.protocol import BinanceProtocol
from feeds.book import Side
from feeds.instruments import Market, Venue
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.replay.binance import BinanceReplay
from feeds.replay.mounts import incoming_limit
from tests.conftest import ROOT, timeout
from tests.replay_fixtures import CF_SPOT, SPOT, USDM, wait_until


def recorded_lines(name: str, stream: str, n: int) -> list[bytes]:
    """The first ``n`` recorded frames of one stream, as written in the recording."""
    out = []
    with gzip.open(SPOT / name) as f:
        for line in f:
            frame = line.rstrip(b"\n").split(b" ", 1)[1]
            if frame.startswith(b'{"stream":"%s"' % stream.encode()):
                out.append(frame)
                if len(out) == n:
                    break
    return out


async def recv(ws: object, n: int) -> list[bytes]:
    frames = []
    for _ in range(n):
        frame = await asyncio.wait_for(ws.recv(decode=False), timeout(5))  # type: ignore[attr-defined]
        frames.append(frame)
    return frames


async def test_combined_stream_url_serves_recorded_frames_byte_for_byte() -> None:
    """``/stream?streams=`` delivers the recorded envelopes unchanged, in recorded order."""
    async with ReplayExchange(
        [SPOT], config=ReplayConfig(max_frames=2000, start_grace_s=0, snapshot_wait_s=0)
    ) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        async with connect(f"{ep.ws}/stream?streams=ethusdt@depth@100ms") as ws:
            got = await recv(ws, 5)
    assert got == recorded_lines("ethusdt_20240808.gz", "ethusdt@depth@100ms", 5)


async def test_raw_stream_and_requests() -> None:
    """``/ws`` with SUBSCRIBE: Binance's replies, then bare events; LIST_SUBSCRIPTIONS names the streams."""
    async with ReplayExchange(
        [SPOT], config=ReplayConfig(max_frames=2000, autostart=False, snapshot_wait_s=0)
    ) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        async with connect(f"{ep.ws}/ws") as ws:
            await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}')
            assert orjson.loads(await ws.recv()) == {"result": None, "id": 7}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":8}')
            assert orjson.loads(await ws.recv()) == {"result": ["btcusdt@bookTicker"], "id": 8}
            await ws.send("not json")
            assert orjson.loads(await ws.recv())["error"]["code"] == 2
            exchange.start()
            event = orjson.loads(await asyncio.wait_for(ws.recv(), timeout(5)))
    first = orjson.loads(recorded_lines("btcusdt_20240808.gz", "btcusdt@bookTicker", 1)[0])
    assert event == first["data"]  # unwrapped: the event alone


async def test_usdm_market_route_does_not_carry_depth() -> None:
    """USD-M's 2026 routes: depth flows on /public only; /market acknowledges and never delivers it."""
    config = ReplayConfig(max_frames=3000, start_grace_s=0, snapshot_wait_s=0)
    async with ReplayExchange([USDM], config=config) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.USDM)
        assert ep.ws.endswith("/binance/usdm/public") and ep.extra["market"].endswith("/binance/usdm/market")
        async with connect(f"{ep.extra['market']}/stream?streams=btcusdt@depth@0ms") as market_ws:
            async with connect(f"{ep.ws}/stream?streams=btcusdt@depth@0ms") as public_ws:
                (frame,) = await recv(public_ws, 1)
            assert frame.startswith(b'{"stream":"btcusdt@depth@0ms"')
            await exchange.wait_finished()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(market_ws.recv(), 0.05)
        assert exchange.stats.frames_sent >= 1


async def test_rest_depth_recorded_then_rebuilt() -> None:
    """The first request meets the recorded snapshot byte for byte; a later one gets the rebuild there."""
    config = ReplayConfig(max_frames=1500, start_grace_s=0)
    async with ReplayExchange([SPOT], config=config) as exchange, aiohttp.ClientSession() as http:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        url = f"{ep.rest}/api/v3/depth?symbol=BTCUSDT&limit=1000"
        async with connect(f"{ep.ws}/stream?streams=btcusdt@depth@100ms") as ws:
            await recv(ws, 1)  # a client buffering BTC's diffs: the clock will wait at the snapshot
            async with http.get(url) as resp:
                first = await resp.read()
            with gzip.open(SPOT / "btcusdt_20240808.gz") as f:
                recorded = next(line for line in f if b'"lastUpdateId"' in line[:64]).rstrip(b"\n").split(b" ", 1)[1]
            assert first == recorded
        await exchange.wait_finished()
        async with http.get(url) as resp:
            later = await resp.read()
        protocol = BinanceProtocol(Market.SPOT)
        snapshot = protocol.parse_snapshot("binance:spot:BTCUSDT", later, 0)
        book = exchange.book("binance:spot:BTCUSDT")
        assert book is not None
        assert snapshot.last_id == book.last_id > orjson.loads(first)["lastUpdateId"]
        assert snapshot.bids == book.levels(Side.BID) and snapshot.asks == book.levels(Side.ASK)
        assert [s.kind for s in exchange.served] == ["recorded", "rebuilt"]
        assert exchange.stats.hold_timeouts == 0


async def test_rest_errors_and_status() -> None:
    """Injected 429 carries Retry-After in Binance's error format; unknown paths 404; status reports the end."""
    config = ReplayConfig(max_frames=50, start_grace_s=0)
    async with ReplayExchange([SPOT], config=config) as exchange, aiohttp.ClientSession() as http:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        exchange.faults.fail_rest(429, retry_after=3)
        async with http.get(f"{ep.rest}/api/v3/depth?symbol=BTCUSDT") as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
            assert (await resp.json())["code"] == -1003
        async with http.get(f"{ep.rest}/api/v3/exchangeInfo") as resp:
            assert resp.status == 404
        async with http.get(f"{exchange.http_url}/replay/status") as resp:
            assert (await resp.json())["finished"] is False
        exchange.start()
        await exchange.wait_finished()
        async with http.get(f"{exchange.http_url}/replay/status") as resp:
            status = await resp.json()
        assert status["finished"] is True and status["position"] == 50


async def test_message_rate_over_the_venue_limit_disconnects() -> None:
    """Like Binance spot (5 messages/s), a client that floods 12 requests at once is disconnected (1008).

    The replay counts on arrival and tolerates twice the venue's rate for loopback scheduling jitter, so it
    answers exactly 10 requests and closes the connection on the 11th.
    """
    assert incoming_limit(BinanceReplay().max_incoming_per_s(Market.SPOT) or 0) == 10
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=10, autostart=False)) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        replies = []
        async with connect(f"{ep.ws}/ws") as ws:
            for i in range(12):
                await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(13):
                    reply = await asyncio.wait_for(ws.recv(), timeout(5))
                    replies.append(orjson.loads(reply))
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "too many messages")
        assert [reply["id"] for reply in replies] == list(range(10))


async def test_finish_closes_connections_when_asked() -> None:
    """close_on_finish: clients see a normal close with the reason 'replay finished'."""
    config = ReplayConfig(max_frames=100, start_grace_s=0, snapshot_wait_s=0, close_on_finish=True)
    async with ReplayExchange([SPOT], config=config) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        async with connect(f"{ep.ws}/stream?streams=btcusdt@bookTicker") as ws:
            frames = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames.append(await asyncio.wait_for(ws.recv(), timeout(5)))
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == "replay finished"
        assert frames and all(f.startswith('{"stream":"btcusdt@bookTicker"') for f in frames)
        await wait_until(lambda: exchange.subscriber_count() == 0, what="the server to forget the client")


async def test_replay_command_serves_until_the_recording_ends() -> None:
    """`arbscan replay` (a real subprocess): prints its endpoints, streams every recorded frame, exits 0."""
    args = ["replay", str(CF_SPOT), "--speed", "max", "--start-grace", "0", "--snapshot-wait", "0"]
    args.append("--exit-when-finished")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", *args, "--log-level", "warning", cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    mount = orjson.loads(await asyncio.wait_for(process.stdout.readline(), timeout(30)))
    assert (mount["venue"], mount["market"]) == ("binance", "spot")
    frames = []
    async with connect(f"{mount['ws']}/stream?streams=nknusdt@depth@100ms") as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(await asyncio.wait_for(ws.recv(), timeout(10)))
    status = orjson.loads(await asyncio.wait_for(process.stdout.readline(), timeout(10)))
    assert await asyncio.wait_for(process.wait(), timeout(10)) == 0
    assert status["finished"] is True and status["error"] is None
    recorded = [line for line in CF_SPOT.read_text().splitlines() if '{"stream":"nknusdt@depth@100ms"' in line]
    assert len(frames) == len(recorded) == status["frames_sent"]


async def test_replay_command_names_usdm_and_its_funding_route_apart() -> None:
    """USD-M's extra route is named "market": printed under ``routes``, it no longer replaces the mount's market."""
    args = ["replay", str(USDM), "--speed", "max", "--start-grace", "0", "--snapshot-wait", "0"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", *args, "--log-level", "warning", cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        mount = orjson.loads(await asyncio.wait_for(process.stdout.readline(), timeout(30)))
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout(10))
    assert (mount["venue"], mount["market"]) == ("binance", "usdm")
    assert mount["ws"].endswith("/binance/usdm/public") and mount["routes"]["market"].endswith("/binance/usdm/market")


@pytest.mark.parametrize("speed", ["nan", "inf", "0", "-2x"])
def test_replay_command_refuses_a_speed_that_is_not_a_finite_factor(speed: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scanner", "replay", str(CF_SPOT), f"--speed={speed}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=False,
    )
    assert result.returncode == 2
    assert f"{speed!r}: the speed must be a finite number > 0" in result.stderr and "Traceback" not in result.stderr


def test_replay_command_says_why_it_cannot_listen() -> None:
    """A port already taken, or a host that is no address here: exit 2 and one line (it was a traceback, exit 1,
    and the half-started server was never cleaned up)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, reason in (
            (["--port", str(port)], "address already in use"),
            (["--host", "256.1.1.1"], ""),  # the resolver's words vary
        ):
            result = subprocess.run(
                [sys.executable, "-m", "scanner", "replay", str(CF_SPOT), *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout(60),
                check=False,
            )
            host = "256.1.1.1" if "--host" in args else "127.0.0.1"
            where = f"{host}:{port if '--port' in args else 0}"
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"arbscan replay: cannot listen on {where}: ")
            assert reason in result.stderr and "Traceback" not in result.stderr


async def test_the_replay_refuses_what_binance_refuses_upper_case_streams_and_invalid_depth_limits() -> None:
    """Binance stream names are lower case: an upper-case one is acknowledged and never delivers, live and now
    here (it delivered: a client with that bug passed). A depth limit the venue does not take (USD-M: 5, 10, 20,
    50, 100, 500, 1000) is refused with -1100, as Binance does (it was served)."""
    async with ReplayExchange([USDM], config=ReplayConfig(max_frames=3000, start_grace_s=0.3)) as exchange:
        ep = exchange.endpoints(Venue.BINANCE, Market.USDM)
        async with connect(f"{ep.ws}/stream?streams=BTCUSDT@depth@0ms/ethusdt@depth@0ms") as ws:
            frames = [orjson.loads(await asyncio.wait_for(ws.recv(), timeout(10))) for _ in range(40)]
        assert {f["stream"] for f in frames} == {"ethusdt@depth@0ms"}  # nothing for the upper-case stream
        async with aiohttp.ClientSession() as http:
            for limit, status in (("5000", 400), ("7", 400), ("abc", 400), ("1000", 200)):
                async with http.get(f"{ep.rest}/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": limit}) as r:
                    body = await r.json(content_type=None)
                    assert r.status == status, (limit, body)
                    if status == 400:
                        assert body["code"] == -1100 and "limit" in body["msg"]
                    else:
                        assert body["bids"] and body["lastUpdateId"] > 0  # the recorded snapshot, as recorded
