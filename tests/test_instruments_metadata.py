"""Instrument metadata: parsers on the REAL recorded metadata responses (cryptofeed ``EXCH.0``), canonical
ids, exact contract arithmetic, the catalog, and loading/refreshing over a loopback HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from aiohttp import web

from feeds.binance.instruments import parse_exchange_info
from feeds.bybit.instruments import parse_instruments as parse_bybit
from feeds.errors import MalformedFrame, VenueRejected
from feeds.funding_history import fetch_history
from feeds.instruments import ContractType, InstrumentId, Kind, Market, Venue
from feeds.kraken.instruments import parse_asset_pairs
from feeds.metadata import InstrumentCatalog, round_to_lot, to_base, to_contracts, to_quote
from feeds.metadata_loader import RefreshStats, load, refresh_forever, refresh_once
from feeds.okx.instruments import parse_instruments as parse_okx
from feeds.rest import RestClient
from tests.conftest import timeout
from tests.venue_fixtures import (
    BINANCE_FUTURES_META,
    BINANCE_META,
    BYBIT_INSTRUMENTS_LINEAR,
    BYBIT_INSTRUMENTS_SPOT,
    KRAKEN_META,
    OKX_META,
    rest_body,
)


def by_symbol(metas):
    return {m.venue_symbol: m for m in metas}


def test_okx_instruments_of_every_type_from_the_recording():
    """OKX.0: spot, swaps (linear and inverse) and futures; options are left out with a reason."""
    spot = by_symbol(parse_okx(rest_body(OKX_META, "instType=SPOT")).instruments)
    swaps = by_symbol(parse_okx(rest_body(OKX_META, "instType=SWAP")).instruments)
    futures = by_symbol(parse_okx(rest_body(OKX_META, "instType=FUTURES")).instruments)
    options = parse_okx(rest_body(OKX_META, "instType=OPTION&uly=BTC-USD"))
    assert (len(spot), len(swaps), len(futures), len(options.instruments), len(options.skipped)) == (
        513,
        166,
        104,
        0,
        346,
    )
    btc = spot["BTC-USDT"]
    assert str(btc.instrument) == "okx:spot:BTC-USDT"
    assert (btc.tick_size, btc.lot_size, btc.spec.contract_type) == (
        Decimal("0.1"),
        Decimal("0.00000001"),
        ContractType.BASE,
    )
    linear, inverse = swaps["BTC-USDT-SWAP"], swaps["UNI-USD-SWAP"]
    assert str(linear.instrument) == "okx:swap:BTC-USDT-PERP"
    assert (linear.spec.contract_type, linear.contract_size, linear.spec.contract_size) == (
        ContractType.LINEAR,
        Decimal("0.01"),
        0.01,
    )
    assert str(inverse.instrument) == "okx:swap:UNI-USD-PERP"
    assert (inverse.spec.contract_type, inverse.contract_size) == (ContractType.INVERSE, Decimal("10"))
    dated = futures["BTC-USD-220527"]
    assert dated.instrument == InstrumentId(Venue.OKX, Market.FUTURES, "BTC", "USD", Kind.FUTURE, "220527")
    assert str(dated.instrument) == "okx:futures:BTC-USD-220527" and dated.contract_size == Decimal("100")


def test_binance_spot_and_usdm_exchange_info_from_the_recordings():
    spot = by_symbol(parse_exchange_info(rest_body(BINANCE_META, "exchangeInfo"), Market.SPOT).instruments)
    usdm = parse_exchange_info(rest_body(BINANCE_FUTURES_META, "exchangeInfo"), Market.USDM)
    futures = by_symbol(usdm.instruments)
    btc = spot["BTCUSDT"]
    assert str(btc.instrument) == "binance:spot:BTC-USDT"
    assert (btc.tick_size, btc.lot_size, btc.min_notional) == (Decimal("0.01"), Decimal("0.00001"), Decimal("10"))
    perp = futures["BTCUSDT"]
    assert str(perp.instrument) == "binance:usdm:BTC-USDT-PERP"
    assert (perp.tick_size, perp.lot_size, perp.min_notional, perp.spec.contract_type) == (
        Decimal("0.01"), Decimal("0.001"), Decimal("5"), ContractType.BASE,
    )  # fmt: skip
    assert str(futures["BTCUSDT_210924"].instrument) == "binance:usdm:BTC-USDT-210924"
    assert usdm.skipped == ["BTCSTUSDT: contractType '' is not tradable"]
    assert spot["NKNUSDT"].instrument != futures["SUSHIUSDT"].instrument  # spot never equals a perpetual


def test_kraken_asset_pairs_from_the_recording():
    """XBT becomes BTC in the canonical id; the v1 name is the symbol, the v2 name an alias."""
    parsed = parse_asset_pairs(rest_body(KRAKEN_META, "AssetPairs"))
    pairs = by_symbol(parsed.instruments)
    xbt = pairs["XBT/USD"]
    assert str(xbt.instrument) == "kraken:spot:BTC-USD" and xbt.aliases == ("BTC/USD",)
    assert (xbt.tick_size, xbt.lot_size) == (Decimal("0.1"), Decimal("0.00000001"))
    assert str(pairs["XMR/USD"].instrument) == "kraken:spot:XMR-USD" and pairs["XMR/USD"].aliases == ()
    assert (
        all(s.endswith("no websocket name (not a streamed book)") for s in parsed.skipped) and len(parsed.skipped) == 11
    )


def test_bybit_v5_documented_examples():
    """The recorded BYBIT.0 is the retired v2 API; the v5 parser is checked on the docs' examples."""
    linear, cursor = parse_bybit(BYBIT_INSTRUMENTS_LINEAR, Market.LINEAR)
    (perp,) = linear.instruments
    assert cursor == "" and str(perp.instrument) == "bybit:linear:BTC-USDT-PERP"
    assert (perp.tick_size, perp.lot_size, perp.min_notional, perp.funding_interval_ms) == (
        Decimal("0.10"), Decimal("0.001"), Decimal("5"), 8 * 3_600_000,
    )  # fmt: skip
    spot, _ = parse_bybit(BYBIT_INSTRUMENTS_SPOT, Market.SPOT)
    (pair,) = spot.instruments
    assert str(pair.instrument) == "bybit:spot:BTC-USDT"
    assert (pair.tick_size, pair.lot_size, pair.min_notional, pair.funding_interval_ms) == (
        Decimal("0.1"), Decimal("0.000001"), Decimal("5"), None,
    )  # fmt: skip
    with pytest.raises(VenueRejected):
        parse_bybit(b'{"retCode":10001,"retMsg":"params error","result":null}', Market.SPOT)


def test_exact_contract_conversion():
    """3 contracts of 0.01 BTC are exactly 0.03 BTC; inverse 100 USD contracts convert through the price."""
    swaps = by_symbol(parse_okx(rest_body(OKX_META, "instType=SWAP")).instruments)
    linear, inverse = swaps["BTC-USDT-SWAP"], swaps["BTC-USD-SWAP"]
    price = Decimal("30236.1")
    assert to_base(linear, Decimal(3), price) == Decimal("0.03")
    assert to_base(linear, Decimal("2.9"), price) == Decimal("0.029")
    assert to_quote(linear, Decimal(3), price) == Decimal("907.083")
    assert to_contracts(linear, Decimal("0.03"), price) == Decimal(3)
    assert to_quote(inverse, Decimal(7), price) == Decimal(700)
    assert to_base(inverse, Decimal(7), Decimal(35000)) == Decimal("0.02")
    assert to_contracts(inverse, Decimal("0.02"), Decimal(35000)) == Decimal(7)
    assert round_to_lot(linear, Decimal("3.7")) == Decimal(3)
    assert 2.9 * linear.spec.contract_size != 0.029  # why the decimals exist
    with pytest.raises(ValueError, match="positive price"):
        to_base(inverse, Decimal(1), Decimal(0))


def test_catalog_lookup_and_atomic_refresh():
    catalog = InstrumentCatalog()
    swaps = parse_okx(rest_body(OKX_META, "instType=SWAP")).instruments
    catalog.replace(Venue.OKX, Market.SWAP, swaps)
    catalog.replace(Venue.KRAKEN, Market.SPOT, parse_asset_pairs(rest_body(KRAKEN_META, "AssetPairs")).instruments)
    assert catalog.by_key("okx:swap:BTC-USDT-SWAP") is catalog.by_id(InstrumentId.parse("okx:swap:BTC-USDT-PERP"))
    assert catalog.by_symbol(Venue.KRAKEN, Market.SPOT, "BTC/USD") is catalog.by_symbol(
        Venue.KRAKEN, Market.SPOT, "XBT/USD"
    )
    assert catalog.specs(Venue.OKX, Market.SWAP)["UNI-USD-SWAP"].contract_size == 10.0
    catalog.replace(Venue.OKX, Market.SWAP, [m for m in swaps if m.venue_symbol != "UNI-USD-SWAP"])
    assert catalog.by_key("okx:swap:UNI-USD-SWAP") is None and catalog.by_key("okx:swap:BTC-USD-SWAP") is not None


def test_malformed_metadata_is_a_precise_error():
    with pytest.raises(MalformedFrame, match="tickSz"):
        parse_okx(
            b'{"code":"0","data":[{"instId":"BTC-USDT","instType":"SPOT","baseCcy":"BTC","quoteCcy":"USDT","tickSz":"x","lotSz":"1"}]}'
        )
    with pytest.raises(VenueRejected, match="50011"):
        parse_okx(b'{"code":"50011","msg":"Too Many Requests","data":[]}')
    with pytest.raises(MalformedFrame, match="PRICE_FILTER"):
        parse_exchange_info(b'{"symbols":[{"symbol":"A","baseAsset":"A","quoteAsset":"B","filters":[]}]}', Market.SPOT)


# ---- over REST (a real loopback HTTP server serving the recorded bodies) --------------------------


Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp apps on 127.0.0.1 (port 0); returns their base URL; cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_load_and_refresh_over_rest_keeps_the_old_metadata_on_failure(serve):
    """The OKX swaps body recorded in OKX.0, served over loopback; a 500 later leaves the catalog intact."""
    body = rest_body(OKX_META, "instType=SWAP")
    calls: list[str] = []
    retried = asyncio.Event()

    async def instruments(request: web.Request) -> web.Response:
        calls.append(request.query_string)
        if len(calls) >= 3:
            retried.set()  # the failure of call 2 was handled: this is the retry
        if len(calls) > 1:
            return web.Response(status=500, text="upstream down")
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v5/public/instruments", instruments)
    base = await serve(app)
    catalog = InstrumentCatalog()
    async with RestClient() as rest:
        result = await refresh_once(catalog, rest, Venue.OKX, Market.SWAP, base_url=base)
        assert len(result.instruments) == 166 and calls == ["instType=SWAP"]
        assert catalog.by_key("okx:swap:BTC-USDT-SWAP") is not None
        stats = RefreshStats()
        refresh = refresh_forever(
            catalog, rest, Venue.OKX, Market.SWAP, base_url=base, interval_s=0.01, retry_s=0.01, stats=stats
        )
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(refresh)
            async with asyncio.timeout(timeout(5)):
                await retried.wait()
            task.cancel()
        assert stats.loads == 0 and stats.failures >= 1 and "HTTP 500" in stats.last_error
        assert len(catalog) == 166 and catalog.by_key("okx:swap:BTC-USDT-SWAP") is not None


async def test_bybit_pages_are_followed(serve):
    page2 = BYBIT_INSTRUMENTS_LINEAR.replace(b'"BTCUSDT"', b'"ETHUSDT"').replace(b'"BTC"', b'"ETH"')
    page1 = BYBIT_INSTRUMENTS_LINEAR.replace(b'"nextPageCursor": ""', b'"nextPageCursor": "next%3D1"')

    async def info(request: web.Request) -> web.Response:
        return web.Response(body=page2 if request.query.get("cursor") == "next%3D1" else page1)

    app = web.Application()
    app.router.add_get("/v5/market/instruments-info", info)
    base = await serve(app)
    async with RestClient() as rest:
        result = await load(rest, Venue.BYBIT, Market.LINEAR, base_url=base)
    assert [str(m.instrument) for m in result.instruments] == [
        "bybit:linear:BTC-USDT-PERP",
        "bybit:linear:ETH-USDT-PERP",
    ]
    assert result.requests == 2


async def test_funding_history_pages_backwards_over_rest(serve):
    """OKX history newest first, 2 per page here: paged with ``after`` until the range is covered."""
    rows = [(1703059200000 - i * 28_800_000, f"0.000{i + 1}") for i in range(5)]

    async def history(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "9" * 15))
        page = [r for r in rows if r[0] < after][:2]
        data = ",".join(
            f'{{"instId":"BTC-USD-SWAP","fundingRate":"{rate}","fundingTime":"{t}","realizedRate":"{rate}"}}'
            for t, rate in page
        )
        return web.Response(body=f'{{"code":"0","msg":"","data":[{data}]}}'.encode())

    app = web.Application()
    app.router.add_get("/api/v5/public/funding-rate-history", history)
    base = await serve(app)
    async with RestClient() as rest:
        records = await fetch_history(
            rest, Venue.OKX, Market.SWAP, "BTC-USD-SWAP", start_ms=rows[3][0], end_ms=rows[0][0], base_url=base
        )
    assert [(r.funding_ms, r.rate) for r in records] == [(t, float(rate)) for t, rate in reversed(rows[:4])]


def test_books_made_before_metadata_get_their_contract_terms():
    """A swap book created without metadata walks contracts once the catalog gives it its size."""
    from feeds.book import Side
    from feeds.okx.protocol import OkxProtocol

    catalog = InstrumentCatalog()
    catalog.replace(Venue.OKX, Market.SWAP, parse_okx(rest_body(OKX_META, "instType=SWAP")).instruments)
    book = OkxProtocol(Market.SWAP, checksum=False).new_sync("okx:swap:BTC-USDT-SWAP").book
    book.apply([(30000.0, 5.0)], [(30001.0, 3.0)], last_id=1, venue_ms=0, recv_ns=0)
    assert catalog.apply_contract_terms(book)
    fill = book.walk(Side.ASK, base=0.03)  # 0.03 BTC = 3 contracts of 0.01 BTC
    assert (fill.complete, fill.base, fill.vwap) == (True, 0.03, 30001.0)
    unknown = OkxProtocol(Market.SWAP, checksum=False).new_sync("okx:swap:NOPE-USDT-SWAP").book
    assert not catalog.apply_contract_terms(unknown)
