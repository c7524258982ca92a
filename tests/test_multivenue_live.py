"""The live path on every venue at once: one replay exchange serving the Binance, Bybit, OKX and Kraken
captures, one client per venue and market (the daemon's feeds) connected at the same time, and every
client book ending equal to verify-books' offline rebuild of the same recordings."""

from __future__ import annotations

from feeds.bybit.protocol import BybitProtocol
from feeds.feed import VenueFeed
from feeds.instruments import Market, Venue
from feeds.kraken.protocol import KrakenProtocol
from feeds.okx.protocol import OkxProtocol
from feeds.protocol import Channel
from feeds.recordings import open_recordings
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncState
from feeds.venues import get_entry
from tests.venue_fixtures import CRYPTOFEED
from tests.venue_replay_fixtures import books_match, offline_books, venue_feed

# Binance spot and USD-M (with their REST snapshots), Kraken, OKX, Bybit linear and spot.
WS_FILES = ["BINANCE.ws.1.0", "BINANCE_FUTURES.ws.1.0", "KRAKEN.ws.50.0", "OKX.ws.1.0"]
BYBIT_FILES = ["bybit-v5/BYBIT.ws.1.0", "bybit-v5/BYBIT.ws.2.0"]


async def test_every_venue_at_once_ends_equal_to_the_offline_rebuild() -> None:
    paths = [CRYPTOFEED / name for name in WS_FILES + BYBIT_FILES]
    recordings = open_recordings(paths).recordings
    offline = offline_books(paths)
    config = ReplayConfig(start_grace_s=1.0)  # as fast as the clients read
    async with ReplayExchange(recordings=recordings, config=config) as exchange, RestClient() as rest:
        assert sorted(map(str, exchange.mounts())) == sorted(
            map(
                str,
                [
                    (Venue.BINANCE, Market.SPOT),
                    (Venue.BINANCE, Market.USDM),
                    (Venue.KRAKEN, Market.SPOT),
                    (Venue.OKX, Market.FUTURES),
                    (Venue.BYBIT, Market.LINEAR),
                    (Venue.BYBIT, Market.SPOT),
                ],
            )
        )

        def binance(market: Market, symbols: list[str]) -> VenueFeed:
            mount = (Venue.BINANCE, market)
            protocol = get_entry(*mount).protocol(exchange.endpoints(*mount))
            return venue_feed(exchange, mount, protocol, symbols, rest, channels=(Channel.BOOK, Channel.TOP))

        okx = (Venue.OKX, Market.FUTURES)
        kraken_ws = exchange.endpoints(Venue.KRAKEN, Market.SPOT).ws
        feeds = [
            binance(Market.SPOT, ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]),
            binance(Market.USDM, ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]),
            venue_feed(
                exchange,
                (Venue.KRAKEN, Market.SPOT),
                KrakenProtocol(kraken_ws, depth=1000),
                [
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
                ],
                rest,
            ),
            venue_feed(exchange, okx, OkxProtocol(Market.SPOT), ["BTC-USDT"], rest),
            venue_feed(exchange, okx, OkxProtocol(Market.FUTURES), ["BTC-USD-220527"], rest),
            venue_feed(exchange, okx, OkxProtocol(Market.SWAP), ["UNI-USD-SWAP"], rest),
            venue_feed(
                exchange,
                (Venue.BYBIT, Market.LINEAR),
                BybitProtocol(Market.LINEAR, depth=1),
                ["BANDUSDT", "RADUSDT", "SNTUSDT", "AIOZUSDT"],
                rest,
            ),
            venue_feed(
                exchange,
                (Venue.BYBIT, Market.SPOT),
                BybitProtocol(Market.SPOT, depth=1),
                ["OPUSDC", "TUSDUSDT", "KCSUSDT", "CPOOLUSDT", "ARBUSDC", "MASAUSDT"],
                rest,
            ),
        ]
        for feed in feeds:
            await feed.__aenter__()
        try:
            await books_match(exchange, feeds, offline, seconds=60)
            keys = {key for feed in feeds for key in feed.syncs}
            assert len(keys) == 4 + 4 + 10 + 3 + 4 + 6
            assert keys <= set(offline)
            for feed in feeds:
                assert feed.stats.malformed == 0 and feed.stats.unknown_keys == 0, feed.name
                for key, sync in feed.syncs.items():
                    assert sync.state is SyncState.LIVE, key
                    assert (sync.stats.gaps, sync.stats.crossed, sync.stats.checksum_failed) == (0, 0, 0), key
                    assert sync.book.best_bid() == offline[key].best_bid() is not None, key
            checked = sum(s.stats.checksum_ok for feed in feeds for s in feed.syncs.values())
            assert checked == 4269 + 290  # every Kraken and OKX checksum of the captures, verified live
        finally:
            for feed in feeds:
                await feed.__aexit__(None, None, None)
