"""Funding streams through the replay exchange on Binance's USD-M ``/market`` route: a stream file in our
recorder's format (the documented markPrice example: no real funding capture exists) reaches the
client's funding state through the daemon's feed."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from feeds.binance.funding import usdm_funding_protocol
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.updates import FundingUpdate
from tests.replay_fixtures import FAST_BACKOFF, FAST_RUNNER, wait_until
from tests.venue_fixtures import BINANCE_MARK_PRICE


async def test_binance_mark_price_file_served_on_the_market_route(tmp_path: Path) -> None:
    second = orjson.loads(BINANCE_MARK_PRICE)
    second["data"].update(E=1562305381000, r="0.00040000", p="11795.00000000")
    path = tmp_path / "usdm" / "btcusdt_20190705.gz"  # the folder names the market (no depth in the file)
    path.parent.mkdir()
    with gzip.open(path, "wb") as f:
        f.write(b"1562305380100000000 " + BINANCE_MARK_PRICE + b"\n")
        f.write(b"1562305381100000000 " + orjson.dumps(second) + b"\n")
    async with ReplayExchange([path], config=ReplayConfig(start_grace_s=0.3)) as exchange, RestClient() as rest:
        assert exchange.mounts() == [(Venue.BINANCE, Market.USDM)]
        endpoints = exchange.endpoints(Venue.BINANCE, Market.USDM)
        market_ws = endpoints.extra["market"]
        protocol = usdm_funding_protocol(ws_url=market_ws, rest_url=endpoints.rest)
        config = FeedConfig(
            ws_url=market_ws, rest_url=endpoints.rest, runner=FAST_RUNNER, snapshot_backoff=FAST_BACKOFF
        )
        feed = VenueFeed(protocol, [Subscription("BTCUSDT", Channel.FUNDING)], rest=rest, config=config)
        async with feed:
            await wait_until(
                lambda: (u := feed.funding.get("binance:usdm:BTCUSDT")) is not None and u.venue_ms == 1562305381000,
                what="the second markPrice frame",
                feeds=[feed],
            )
            update = feed.funding.get("binance:usdm:BTCUSDT")
            assert isinstance(update, FundingUpdate)
            assert (update.rate, update.mark_price, update.next_funding_ms) == (0.0004, 11795.0, 1562306400000)
            assert update.interval_ms == 8 * 3_600_000 and exchange.stats.frames_sent == 2
