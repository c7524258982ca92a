"""The shared REST client against a real loopback HTTP server: weight budgets queue in order, never burst,
and venue answers map onto feeds.errors (429/418 with Retry-After, 5xx, 4xx, refused connections)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from feeds.budget import BudgetRegistry, WindowBudget
from feeds.errors import ConnectionLost, LocalProtocolError, RateLimited, VenueRejected
from feeds.protocol import RestRequest
from feeds.rest import RestClient
from tests.conftest import timeout
from tests.replay_fixtures import wait_until


@dataclass
class Venue:
    """A loopback HTTP peer that records every request and answers as told."""

    url: str = ""
    seen: list[str] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"lastUpdateId":1,"bids":[],"asks":[]}'
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.query.get("symbol", ""))
        if self.hold:
            await self.release.wait()
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    peer = Venue()
    app = web.Application()
    app.router.add_get("/api/v3/depth", peer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield peer
    peer.release.set()
    await runner.cleanup()


def depth(symbol: str, weight: int) -> RestRequest:
    return RestRequest("GET", "/api/v3/depth", {"symbol": symbol, "limit": "1000"}, weight=weight)


async def test_spent_budget_queues_in_arrival_order(venue: Venue) -> None:
    """A storm of snapshot requests: only what fits the weight window goes out, the rest waits in order."""
    budget = WindowBudget("binance:spot:rest", limit=10, window_s=3600)
    async with RestClient() as rest:
        tasks = [
            asyncio.create_task(rest.fetch(venue.url, depth(f"S{i}", 4), budget=budget, venue="binance"))
            for i in range(5)
        ]
        await wait_until(lambda: len(venue.seen) == 2 and len(budget.waiting()) == 3, what="two requests out")
        await asyncio.sleep(0.05)  # give a burst every chance to happen
        assert venue.seen == ["S0", "S1"]
        assert budget.used() == 8
        assert budget.waiting() == [f"/api/v3/depth?symbol=S{i}&limit=1000" for i in (2, 3, 4)]
        assert budget.waits == 0
        await asyncio.gather(tasks[0], tasks[1])
        for task in tasks[2:]:
            task.cancel()
        await asyncio.gather(*tasks[2:], return_exceptions=True)
        assert budget.waiting() == []


async def test_budget_paces_every_window(venue: Venue) -> None:
    """Six requests of weight 5 under 10 per window: all served, in order, never more than 10 in a window."""
    window = timeout(0.2)
    budget = WindowBudget("binance:usdm:rest", limit=10, window_s=window)
    async with RestClient() as rest:
        await asyncio.gather(
            *(rest.fetch(venue.url, depth(f"S{i}", 5), budget=budget, venue="binance") for i in range(6))
        )
    assert venue.seen == [f"S{i}" for i in range(6)]
    grants = list(budget.history)
    assert [g.cost for g in grants] == [5] * 6 and budget.waits >= 2  # 30 units cannot fit one window of 10
    for grant in grants:  # the budget's own clock: the sliding window never held more than the limit
        in_window = sum(g.cost for g in grants if grant.at - window < g.at <= grant.at)
        assert in_window <= 10


async def test_rate_limited_maps_retry_after_and_pauses_the_budget(venue: Venue) -> None:
    """HTTP 429 + Retry-After: RateLimited(retry_after_s) and nobody else on the venue goes out meanwhile."""
    venue.status, venue.headers = 429, {"Retry-After": "7"}
    budget = WindowBudget("binance:spot:rest", limit=6000, window_s=60)
    async with RestClient() as rest:
        with pytest.raises(RateLimited) as caught:
            await rest.fetch(venue.url, depth("BTCUSDT", 5), budget=budget, venue="binance")
    assert caught.value.retry_after_s == 7.0 and caught.value.venue == "binance"
    assert budget.try_acquire(1) is False  # paused until the venue's deadline


async def test_ip_ban_without_header_uses_the_default_wait(venue: Venue) -> None:
    """HTTP 418 (Binance's IP ban) without Retry-After waits the documented default, never zero."""
    venue.status = 418
    budget = WindowBudget("binance:spot:rest", limit=6000, window_s=60)
    async with RestClient() as rest:
        with pytest.raises(RateLimited) as caught:
            await rest.fetch(venue.url, depth("BTCUSDT", 5), budget=budget, venue="binance")
    assert caught.value.retry_after_s == 120.0


async def test_server_error_is_retryable_client_error_is_not(venue: Venue) -> None:
    """5xx → ConnectionLost (retry); 4xx with Binance's error body → VenueRejected with the status."""
    budget = WindowBudget("binance:spot:rest", limit=6000, window_s=60)
    async with RestClient() as rest:
        venue.status = 503
        with pytest.raises(ConnectionLost, match="HTTP 503"):
            await rest.fetch(venue.url, depth("BTCUSDT", 5), budget=budget, venue="binance")
        venue.status, venue.body = 400, b'{"code":-1121,"msg":"Invalid symbol."}'
        with pytest.raises(VenueRejected) as caught:
            await rest.fetch(venue.url, depth("NOPE", 5), budget=budget, venue="binance")
    assert caught.value.status == 400 and "Invalid symbol." in caught.value.detail


async def test_refused_connection_is_connection_lost() -> None:
    """Nobody listening: a ConnectionLost naming the venue, the weight still paid (the venue may count it)."""
    budget = WindowBudget("binance:spot:rest", limit=6000, window_s=60)
    async with RestClient() as rest:
        with pytest.raises(ConnectionLost, match=re.escape("binance: GET http://127.0.0.1:9/api/v3/depth")):
            await rest.fetch("http://127.0.0.1:9", depth("BTCUSDT", 5), budget=budget, venue="binance")
    assert budget.used() == 5


def test_registry_shares_one_budget_per_name_and_rejects_conflicts() -> None:
    """Two feeds of one venue get the same budget; redefining its limit is our bug, not silently accepted."""
    registry = BudgetRegistry()
    spot = registry.get("binance:spot:rest", limit=6000, window_s=60)
    assert registry.get("binance:spot:rest", limit=6000, window_s=60) is spot
    with pytest.raises(LocalProtocolError, match="already defined as 6000/60"):
        registry.get("binance:spot:rest", limit=1200, window_s=60)


async def test_cost_above_the_limit_is_refused_not_queued_forever() -> None:
    """A request heavier than the whole budget could never go out: an immediate LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match="can never fit"):
        await WindowBudget("x", limit=10, window_s=1).acquire(11)


async def test_the_venues_used_weight_header_tightens_our_budget() -> None:
    """Another client on the same IP has spent 5,000 of Binance spot's 6,000 weight this minute: the replay
    exchange's X-MBX-USED-WEIGHT-1M on the snapshot answer says so, and the feed's budget takes it in,
    so what is left is what the venue would still accept (not what we alone spent)."""
    from feeds.binance.protocol import depth_weight
    from feeds.instruments import Market
    from feeds.instruments import Venue as VenueName
    from feeds.replay import ReplayConfig, ReplayExchange
    from tests.replay_fixtures import SPOT, binance_feed

    async with (
        # The venue's minute frozen: the spend and the snapshot request fall in the same one, whenever it runs.
        ReplayExchange(
            [SPOT], config=ReplayConfig(max_frames=200, start_grace_s=0.1, wall_clock=lambda: 1_700_000_010.0)
        ) as exchange,
        RestClient() as rest,
    ):
        assert exchange.faults.spend_weight(VenueName.BINANCE, Market.SPOT, 5000) == 5000
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT"], rest)
        async with feed:
            await wait_until(
                lambda: rest.requests >= 1 and feed.syncs["binance:spot:BTCUSDT"].stats.snapshots >= 1,
                what="the snapshot",
                feeds=[feed],
            )
            budget = rest.budgets.get("binance:spot:rest", limit=6000, window_s=60.0)
            spent = depth_weight(Market.SPOT, feed.protocol.snapshot_limit)  # type: ignore[attr-defined]
            assert budget.venue_extra == 5000 and rest.weight_corrections == 1
            assert budget.used() == 5000 + spent
            assert not budget.try_acquire(6000 - 5000 - spent + 1)  # one unit past what the venue allows
            assert budget.try_acquire(6000 - 5000 - spent)


def test_the_venues_minute_is_a_calendar_minute_not_our_sliding_one() -> None:
    """What the venue counts beyond our grants is held until its own minute ends (found by review): our
    grants of the previous minute neither hide another client's weight nor keep it past its minute."""
    now = [50.0]
    budget = WindowBudget("binance:spot:rest", limit=6000, window_s=60.0, clock=lambda: now[0])
    assert budget.try_acquire(3000)  # ours, at :50
    assert budget.observe_used(3000, window_elapsed_s=50.0) == 0  # the venue agrees
    now[0] = 61.0  # a new minute: another client spends 5,000 at once
    assert budget.observe_used(5000, window_elapsed_s=1.0) == 5000  # our 3,000 are last minute's
    assert budget.used() == 3000 + 5000  # our sliding 3,000 (until :110) and the venue's 5,000
    now[0] = 111.0  # our grant left the window; the venue's minute :60-:120 still holds the 5,000
    assert budget.used() == 5000 and not budget.try_acquire(1001) and budget.try_acquire(1000)
    now[0] = 119.0
    assert budget.observe_used(5900, window_elapsed_s=59.0) == 4900  # at :119, 1,000 of them ours
    now[0] = 120.5  # the venue's minute is over: its extra goes with it
    assert budget.venue_extra == 0 and budget.used() == 1000


async def test_venues_that_count_per_ip_share_one_budget_across_their_markets() -> None:
    """OKX counts 3 connections a second and its REST limits per IP, whatever the market (so does Bybit):
    a spot and a swap feed share one connect and one REST budget. Binance spot and USD-M are separate hosts
    with separate limits: theirs stay apart."""
    from feeds.feed import FeedConfig, VenueFeed
    from feeds.instruments import Market, Venue
    from feeds.protocol import Channel, Subscription
    from feeds.venues import get_entry

    async with RestClient() as rest:
        feeds = {}
        for venue, market, symbol in (
            (Venue.OKX, Market.SPOT, "BTC-USDT"),
            (Venue.OKX, Market.SWAP, "BTC-USDT-SWAP"),
            (Venue.BINANCE, Market.SPOT, "BTCUSDT"),
            (Venue.BINANCE, Market.USDM, "BTCUSDT"),
        ):
            entry = get_entry(venue, market)
            config = FeedConfig(ws_url=entry.endpoints.ws, rest_url=entry.endpoints.rest)
            feeds[(venue, market)] = VenueFeed(
                entry.protocol(), [Subscription(symbol, Channel.BOOK)], rest=rest, config=config
            )
        names = sorted(b.name for b in rest.budgets)
        assert names == [
            "binance:spot:connect",
            "binance:spot:rest",
            "binance:usdm:connect",
            "binance:usdm:rest",
            "okx:connect",
            "okx:rest",
        ]
        assert feeds[(Venue.OKX, Market.SPOT)].rest_budget is feeds[(Venue.OKX, Market.SWAP)].rest_budget
        assert feeds[(Venue.BINANCE, Market.SPOT)].rest_budget is not feeds[(Venue.BINANCE, Market.USDM)].rest_budget
