"""The live path: the daemon's Binance client (spot + USD-M feeds, websockets, REST snapshots), pointed at
the replay exchange, ends with exactly the books and counters ``verify-books`` rebuilds from the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.instruments import Market
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.verify import COUNTERS, verify_paths
from tests.replay_fixtures import CF_SPOT, CF_USDM, SPOT, USDM, binance_feed, caught_up, same_book, wait_until

CF_SPOT_SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
CF_USDM_SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]


async def live_equals_offline(paths: list[Path], spot: list[str], usdm: list[str], *, seconds: float) -> int:
    """Replay ``paths`` to a spot and a USD-M feed; assert books and counters equal verify-books'."""
    report = verify_paths(paths)
    assert report.ok and len(report.books) == len(spot) + len(usdm)
    config = ReplayConfig(autostart=False)  # start once both feeds subscribed: they see every frame
    async with ReplayExchange(paths, config=config) as exchange, RestClient() as rest:
        spot_feed = binance_feed(exchange, Market.SPOT, spot, rest)
        usdm_feed = binance_feed(exchange, Market.USDM, usdm, rest)
        async with spot_feed, usdm_feed:
            feeds = [spot_feed, usdm_feed]
            await wait_until(lambda: exchange.subscriber_count() == 2, what="both feeds to subscribe", feeds=feeds)
            exchange.start()
            await caught_up(exchange, feeds, seconds=seconds)
            for result in report.books:
                feed = spot_feed if result.market == "spot" else usdm_feed
                sync = feed.syncs[result.key]
                assert same_book(sync.book, result.book), result.key
                live = sync.stats.as_dict()
                assert {name: live[name] for name in COUNTERS} == result.counters, result.key
                assert sync.book.best_bid() == result.book.best_bid() and result.book.best_bid() is not None
            assert exchange.stats.hold_timeouts == 0  # every recorded snapshot met its client's request
            assert [s.kind for s in exchange.served] == ["recorded"] * len(report.books)
            assert spot_feed.stats.malformed == usdm_feed.stats.malformed == 0
    return len(report.books)


async def test_cryptofeed_binance_spot_and_usdm_live_equal_offline() -> None:
    """Eight books from the cryptofeed captures, each bracketing its own REST snapshot."""
    assert await live_equals_offline([CF_SPOT, CF_USDM], CF_SPOT_SYMBOLS, CF_USDM_SYMBOLS, seconds=20) == 8


@pytest.mark.slow
async def test_hftbacktest_spot_and_usdm_live_equal_offline() -> None:
    """The whole hftbacktest capture (spot across 0808→0809, USD-M with pu): four books, ~280k frames."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    assert await live_equals_offline([SPOT, USDM], symbols, symbols, seconds=180) == 4
