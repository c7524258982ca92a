"""What the daemon connects to: venue symbols, real URLs by default, overrides that move every route."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from feeds.errors import UnknownInstrument
from feeds.instruments import InstrumentId, Market, Venue
from feeds.protocol import Channel
from feeds.venues import feed_key, get_entry
from scanner.config import Config, FeedConfig
from scanner.errors import ConfigError
from scanner.feedplan import plan_feeds, unreachable_feeds
from scanner.market import next_aligned_ms
from tests.engine_fixtures import demo_config


def venue_symbol(inst: InstrumentId) -> str:
    return get_entry(inst.venue, inst.market).venue_symbol(inst)


@pytest.mark.parametrize(
    ("instrument", "symbol"),
    [
        ("binance:spot:BTC-USDT", "BTCUSDT"),
        ("binance:usdm:BTC-USDT-PERP", "BTCUSDT"),
        ("binance:coinm:BTC-USD-PERP", "BTCUSD_PERP"),
        ("binance:coinm:BTC-USD-240927", "BTCUSD_240927"),
        ("bybit:linear:ETH-USDT-PERP", "ETHUSDT"),
        ("okx:swap:BTC-USDT-PERP", "BTC-USDT-SWAP"),
        ("okx:futures:BTC-USD-220527", "BTC-USD-220527"),
        ("okx:spot:BTC-USDT", "BTC-USDT"),
        ("kraken:spot:BTC-USD", "BTC/USD"),
        ("huobi:spot:LINK-USDT", "LINKUSDT"),
    ],
)
def test_venue_symbols(instrument: str, symbol: str) -> None:
    """Canonical ids map to each venue's documented symbol (its registry entry, feeds/<venue>/), the feed
    key upper-cases it, and where the symbol's shape says it the entry maps it back."""
    inst = InstrumentId.parse(instrument)
    assert venue_symbol(inst) == symbol
    assert feed_key(inst) == f"{inst.venue}:{inst.market}:{symbol.upper()}"
    back = get_entry(inst.venue, inst.market).instrument_id(symbol)
    assert back == (inst if inst.venue.value in ("okx", "kraken") else None)


def test_unknown_venue_symbol_is_an_error() -> None:
    """No silent guess for an instrument whose naming we do not know: exit 2, and a config error in a plan."""
    with pytest.raises(UnknownInstrument, match="no venue symbol") as caught:
        venue_symbol(InstrumentId.parse("bybit:linear:BTC-USDT-250926"))
    assert caught.value.exit_code == 2
    config = demo_config()
    dated = ("BTC-USDT-250926",)
    feeds = (msgspec.structs.replace(config.feeds[0], venue=Venue.BYBIT, market=Market.LINEAR, symbols=dated),)
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.symbols.*no venue symbol"):
        plan_feeds(msgspec.structs.replace(config, feeds=feeds))


def live_only(config: Config) -> Config:
    """The demo config without its huobi csv-replay feed (which has no live venue to plan)."""
    return msgspec.structs.replace(config, feeds=tuple(f for f in config.feeds if f.venue.value != "huobi"))


def test_huobi_has_no_live_feed_to_run() -> None:
    """huobi is a csv-replay series only: `arbscan run` refuses it (unreachable_feeds), unless a ws_url names a
    replay; the demo plans it through its replay."""
    config = demo_config()
    assert unreachable_feeds(config) == [
        ("feeds[3].venue", "got 'huobi': huobi:spot has no live feed, only the demo's csv-replay")
    ]
    replayed = tuple(
        msgspec.structs.replace(f, ws_url="ws://127.0.0.1:9/huobi/spot") if f.venue.value == "huobi" else f
        for f in config.feeds
    )
    assert unreachable_feeds(msgspec.structs.replace(config, feeds=replayed)) == []


def test_real_urls_by_default() -> None:
    """Without overrides: Binance's real hosts, USD-M on /public plus mark prices on /market."""
    plans = {p.name: p for p in plan_feeds(live_only(demo_config()))}
    assert plans["binance:spot"].ws_url == "wss://stream.binance.com:9443"
    assert plans["binance:usdm"].ws_url == "wss://fstream.binance.com/public"
    market = plans["binance:usdm/market"]
    assert market.ws_url == "wss://fstream.binance.com/market"
    assert [(s.venue_symbol, s.channel) for s in market.subscriptions] == [
        ("BTCUSDT", Channel.FUNDING),
        ("ETHUSDT", Channel.FUNDING),
    ]
    assert {s.channel for s in plans["binance:spot"].subscriptions} == {Channel.BOOK, Channel.TOP}


def test_an_overridden_url_moves_the_sibling_routes(tmp_path: Path) -> None:
    """ws_url on USD-M (a replay exchange) also moves /market: no connection is left on the real venue."""
    config = live_only(demo_config())
    feeds = tuple(
        msgspec.structs.replace(f, ws_url="ws://127.0.0.1:9/binance/usdm/public", rest_url="http://127.0.0.1:9/x")
        if f.market.value == "usdm"
        else f
        for f in config.feeds
    )
    plans = {p.name: p for p in plan_feeds(msgspec.structs.replace(config, feeds=feeds))}
    assert plans["binance:usdm"].ws_url == "ws://127.0.0.1:9/binance/usdm/public"
    assert plans["binance:usdm/market"].ws_url == "ws://127.0.0.1:9/binance/usdm/market"
    assert plans["binance:usdm/market"].rest_url == "http://127.0.0.1:9/x"


def test_protocol_hook_labels_a_feed() -> None:
    """The demo's hook replaces protocol, endpoints and label of the feeds it claims, and only those."""
    from feeds.csvbook import CsvBookProtocol
    from feeds.venues import Endpoints

    def hook(feed: FeedConfig, endpoints: Endpoints):
        if feed.venue is Venue.HUOBI:
            return CsvBookProtocol(Venue.HUOBI), "csv-replay", Endpoints("ws://127.0.0.1:1/huobi/spot", "http://x")
        return None

    plans = {(p.name, p.label): p for p in plan_feeds(demo_config(), protocol_hook=hook)}
    huobi = plans[("huobi:spot", "csv-replay")]
    assert isinstance(huobi.protocol, CsvBookProtocol) and huobi.ws_url == "ws://127.0.0.1:1/huobi/spot"
    assert [s.channel for s in huobi.subscriptions] == [Channel.BOOK]
    assert plans[("binance:usdm", "live")].market is Market.USDM


def test_assumed_funding_is_aligned_to_utc_multiples() -> None:
    """8 h: 00:00, 08:00, 16:00 UTC; strictly after now (a settlement at now has just happened)."""
    eight = 8 * 3_600_000
    assert next_aligned_ms(1_723_161_253_937, eight) == 1_723_161_600_000  # 2024-08-08 23:54 → 08-09 00:00
    assert next_aligned_ms(1_723_161_600_000, eight) == 1_723_161_600_000 + eight
    assert next_aligned_ms(1_629_417_600_000, 3_600_000) == 1_629_421_200_000
