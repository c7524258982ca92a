"""Funding streams through the replay exchange on Binance's USD-M ``/market`` route: a stream file in our
recorder's format (the documented markPrice example: no real funding capture exists) reaches the
client's funding state through the daemon's feed."""

from __future__ import annotations

import gzip
import math
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


async def test_funding_of_a_stream_whose_connection_is_down_is_forgotten(tmp_path: Path) -> None:
    """A rate no connection streams any more is not live: the feed forgets it when its last connection goes
    down and tells the engine (on_update), instead of serving it, labelled live, until its settlement."""
    path = tmp_path / "usdm" / "btcusdt_20190705.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as f:
        f.write(b"1562305380100000000 " + BINANCE_MARK_PRICE + b"\n")
    key = "binance:usdm:BTCUSDT"
    told: list[str] = []
    async with ReplayExchange([path], config=ReplayConfig(start_grace_s=0.3)) as exchange, RestClient() as rest:
        endpoints = exchange.endpoints(Venue.BINANCE, Market.USDM)
        market_ws = endpoints.extra["market"]
        protocol = usdm_funding_protocol(ws_url=market_ws, rest_url=endpoints.rest)
        config = FeedConfig(
            ws_url=market_ws, rest_url=endpoints.rest, runner=FAST_RUNNER, snapshot_backoff=FAST_BACKOFF
        )
        subscriptions = [Subscription("BTCUSDT", Channel.FUNDING)]
        feed = VenueFeed(protocol, subscriptions, rest=rest, config=config, on_update=lambda k, _ns: told.append(k))
        async with feed:
            await wait_until(lambda: feed.funding.get(key) is not None, what="the markPrice frame", feeds=[feed])
            assert told == [key] and feed.stats.funding_dropped == 0
            assert exchange.faults.drop_connections() == 1
            await wait_until(lambda: feed.funding.get(key) is None, what="the funding dropped", feeds=[feed])
            assert feed.stats.funding_dropped == 1
            assert told == [key, key]  # the engine re-evaluates the candidates that read it


def test_the_age_of_a_dropped_funding_state_is_exported_as_nan() -> None:
    """arbscan_funding_age_seconds of a state dropped with its stream is NaN, not its last age frozen."""
    from prometheus_client import CollectorRegistry, Gauge

    from feeds.funding import FundingBook
    from scanner.daemon import export_funding_ages

    gauge = Gauge("age", "", ["venue", "symbol"], registry=CollectorRegistry())
    book, exported = FundingBook(), set[str]()
    key = "binance:usdm:BTCUSDT"
    book.apply(FundingUpdate(key, 0.0001, 8 * 3_600_000, 1562306400000, venue_ms=1, recv_ns=1_000_000_000))
    export_funding_ages(gauge, "binance", book, exported, 3_500_000_000)
    assert gauge.labels("binance", "BTCUSDT")._value.get() == 2.5 and exported == {key}
    assert book.forget(key) and not book.forget(key)
    export_funding_ages(gauge, "binance", book, exported, 4_000_000_000)
    assert math.isnan(gauge.labels("binance", "BTCUSDT")._value.get()) and exported == set()
