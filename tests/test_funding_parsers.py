"""Funding on every perpetual venue: documented examples decoded field by field, intervals of 8, 4 and 1 h,
funding history parsers, and the funding state store.

No real capture of a funding stream exists (data/SOURCES.md): these use the venues' documented examples
(quoted in tests/venue_fixtures.py with their sources) and the field layouts of exchange-protocols.md.
"""

from __future__ import annotations

import orjson
import pytest

from feeds.binance.funding import (
    MarkPriceParser,
    funding_info_request,
    parse_funding_info,
    parse_history,
    usdm_funding_protocol,
)
from feeds.bybit import funding as bybit_funding
from feeds.bybit.protocol import BybitProtocol
from feeds.errors import MalformedFrame, VenueRejected
from feeds.funding import HOUR_MS, FundingBook, FundingRecord
from feeds.instruments import Market
from feeds.okx import funding as okx_funding
from feeds.okx.protocol import OkxProtocol
from feeds.protocol import Channel, Subscription
from feeds.updates import Control, ControlKind, FundingSource, FundingUpdate
from tests.venue_fixtures import BINANCE_MARK_PRICE, BYBIT_TICKER_SNAPSHOT, okx_funding_push

# The public fundingInfo sample exchange-protocols.md §2.3 cites (asterdex/api-docs issue 1): 4 h and 8 h.
BINANCE_FUNDING_INFO = (
    b'[{"symbol":"BLZUSDT","adjustedFundingRateCap":"0.03000000","adjustedFundingRateFloor":"-0.03000000",'
    b'"fundingIntervalHours":4,"disclaimer":false},{"symbol":"GTCUSDT","adjustedFundingRateCap":"0.03000000",'
    b'"adjustedFundingRateFloor":"-0.03000000","fundingIntervalHours":8,"disclaimer":false}]'
)


# ---- Binance -----------------------------------------------------------------------------------------


def test_binance_mark_price_example_field_by_field():
    """The documented markPriceUpdate: r per interval, T next funding, p/i mark and index, E venue time."""
    (update,) = MarkPriceParser()(BINANCE_MARK_PRICE, 42)
    assert update == FundingUpdate(
        key="binance:usdm:BTCUSDT",
        rate=0.00038167,
        interval_ms=8 * HOUR_MS,  # BTCUSDT is not in fundingInfo: Binance's default
        next_funding_ms=1562306400000,
        mark_price=11794.15,
        index_price=11784.62659091,
        venue_ms=1562305380000,
        recv_ns=42,
        source=FundingSource.LIVE,
    )
    assert update.rate_per_hour == pytest.approx(0.00038167 / 8)


def test_binance_intervals_8_4_and_1_hours():
    """fundingInfo lists adjusted symbols only: listed → their hours, others → 8 h."""
    intervals = parse_funding_info(BINANCE_FUNDING_INFO)
    assert intervals == {"BLZUSDT": 4 * HOUR_MS, "GTCUSDT": 8 * HOUR_MS}
    one_hour = parse_funding_info(b'[{"symbol":"BTCUSDT","fundingIntervalHours":1}]')
    parser = MarkPriceParser({**intervals, **one_hour})
    blz = BINANCE_MARK_PRICE.replace(b"btcusdt@", b"blzusdt@").replace(b'"s":"BTCUSDT"', b'"s":"BLZUSDT"')
    eth = BINANCE_MARK_PRICE.replace(b"btcusdt@", b"ethusdt@").replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')
    (btc_u,), (blz_u,), (eth_u,) = parser(BINANCE_MARK_PRICE, 0), parser(blz, 0), parser(eth, 0)
    assert (btc_u.interval_ms, blz_u.interval_ms, eth_u.interval_ms) == (HOUR_MS, 4 * HOUR_MS, 8 * HOUR_MS)
    assert btc_u.rate_per_hour == pytest.approx(0.00038167)
    assert blz_u.rate_per_hour == pytest.approx(0.00038167 / 4)
    assert funding_info_request().path == "/fapi/v1/fundingInfo"


def test_binance_funding_runs_on_the_market_endpoint_through_the_binance_protocol():
    """markPrice@1s subscribed on /market; its frames come out of the Binance protocol as funding."""
    proto = usdm_funding_protocol()
    assert proto.ws_url == "wss://fstream.binance.com/market"
    url = proto.url(proto.ws_url, [Subscription("BTCUSDT", Channel.FUNDING)])
    assert url == "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s"
    (update,) = proto.receive(BINANCE_MARK_PRICE, 9).updates
    assert isinstance(update, FundingUpdate) and update.key == "binance:usdm:BTCUSDT" and update.recv_ns == 9


def test_binance_all_market_array_and_delivery_contracts():
    """!markPrice@arr: every perpetual; a delivery contract (r "", T 0, as documented) has no funding."""
    data = orjson.loads(BINANCE_MARK_PRICE)["data"]
    delivery = {**data, "s": "BTCUSDT_230929", "r": "", "T": 0}
    frame = orjson.dumps({"stream": "!markPrice@arr@1s", "data": [data, delivery]})
    updates = MarkPriceParser()(frame, 0)
    assert [u.key for u in updates] == ["binance:usdm:BTCUSDT"]
    # One symbol's bad rate costs that symbol only: reported as a venue error when it turns bad (not
    # every second while it stays bad), the others still read.
    parser = MarkPriceParser()
    bad = {**data, "s": "ETHUSDT", "r": "nan"}
    updates = parser(orjson.dumps({"stream": "!markPrice@arr@1s", "data": [bad, data]}), 0)
    reason = "markPrice ETHUSDT: 'nan' is not a finite number"
    assert updates[0] == Control(ControlKind.ERROR, reason, "binance:usdm:ETHUSDT")
    assert isinstance(updates[1], FundingUpdate) and updates[1].key == "binance:usdm:BTCUSDT"
    again = parser(orjson.dumps({"stream": "!markPrice@arr@1s", "data": [bad, data]}), 1)
    assert [type(u) for u in again] == [FundingUpdate]
    healed = parser(orjson.dumps({"stream": "!markPrice@arr@1s", "data": [{**data, "s": "ETHUSDT"}]}), 2)
    assert [u.key for u in healed] == ["binance:usdm:ETHUSDT"]  # type: ignore[union-attr]
    assert parser(orjson.dumps({"stream": "!markPrice@arr@1s", "data": [bad]}), 3)[0] == updates[0]


def test_binance_history_and_errors():
    body = (
        b'[{"symbol":"BTCUSDT","fundingRate":"0.00010000","fundingTime":1570636800000,"markPrice":"34287.54619963"},'
        b'{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":"34287.54619963"}]'
    )
    assert parse_history(body) == [
        FundingRecord("binance:usdm:BTCUSDT", 1570608000000, -0.0375, mark_price=34287.54619963),
        FundingRecord("binance:usdm:BTCUSDT", 1570636800000, 0.0001, mark_price=34287.54619963),
    ]
    with pytest.raises(VenueRejected, match="-1121"):
        parse_history(b'{"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(MalformedFrame):
        parse_funding_info(b'[{"symbol":"X","fundingIntervalHours":"soon"}]')


# ---- Bybit -------------------------------------------------------------------------------------------


def test_bybit_ticker_example_field_by_field_with_the_instrument_interval():
    """The documented linear ticker snapshot; its interval comes from instruments-info (480 min)."""
    proto = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 480 * 60_000})
    (update,) = proto.receive(BYBIT_TICKER_SNAPSHOT, 11).updates
    assert update == FundingUpdate(
        key="bybit:linear:BTCUSDT",
        rate=-0.000212,
        interval_ms=8 * HOUR_MS,
        next_funding_ms=1673280000000,
        mark_price=17217.33,
        index_price=17227.36,
        venue_ms=1673272861686,
        recv_ns=11,
    )


def test_bybit_delta_merge_and_funding_interval_hour():
    """A delta omits unchanged fields; ``fundingIntervalHour`` (4, then 1) overrides the metadata."""
    merge = bybit_funding.TickerMerge(Market.LINEAR, {"BTCUSDT": 8 * HOUR_MS})
    snapshot = orjson.loads(BYBIT_TICKER_SNAPSHOT)
    first = merge.apply("snapshot", {**snapshot["data"], "fundingIntervalHour": "4"}, 1, 0)
    assert first is not None and first.interval_ms == 4 * HOUR_MS and first.rate_per_hour == pytest.approx(-0.000053)
    moved = merge.apply("delta", {"symbol": "BTCUSDT", "markPrice": "17220.00"}, 2, 0)
    assert moved is not None and (moved.rate, moved.mark_price, moved.index_price) == (-0.000212, 17220.0, 17227.36)
    hourly = merge.apply("delta", {"symbol": "BTCUSDT", "fundingRate": "0.0001", "fundingIntervalHour": "1"}, 3, 0)
    assert hourly is not None and hourly.interval_ms == HOUR_MS and hourly.rate_per_hour == pytest.approx(0.0001)
    assert merge.apply("delta", {"symbol": "BTCUSDT", "bid1Price": "17215.60"}, 4, 0) is None  # no funding field
    assert merge.fields("BTCUSDT")["bid1Price"] == "17215.60"


def test_bybit_without_any_interval_reports_instead_of_guessing():
    proto = BybitProtocol(Market.LINEAR)
    received = proto.receive(BYBIT_TICKER_SNAPSHOT, 0)
    assert [type(u) for u in received.updates] == [Control]
    assert received.updates[0].kind is ControlKind.ERROR and "BTCUSDT" in received.updates[0].detail
    again = proto.receive(BYBIT_TICKER_SNAPSHOT, 1)
    assert again.updates == [Control(ControlKind.IGNORED, "tickers.BTCUSDT")]  # reported once


def test_bybit_history():
    # Layout of GET /v5/market/funding/history (exchange-protocols.md §3.3), newest first as Bybit sends it.
    body = (
        b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":['
        b'{"symbol":"ETHPERP","fundingRate":"0.0001","fundingRateTimestamp":"1672041600000"},'
        b'{"symbol":"ETHPERP","fundingRate":"0.00012","fundingRateTimestamp":"1672012800000"}]},"time":1672051897447}'
    )
    assert bybit_funding.parse_history(body) == [
        FundingRecord("bybit:linear:ETHPERP", 1672012800000, 0.00012),
        FundingRecord("bybit:linear:ETHPERP", 1672041600000, 0.0001),
    ]
    request = bybit_funding.history_request("ETHPERP", end_ms=1672051897447)
    assert request.params == {"category": "linear", "symbol": "ETHPERP", "limit": "200", "endTime": "1672051897447"}
    with pytest.raises(VenueRejected, match="10001"):
        bybit_funding.parse_history(b'{"retCode":10001,"retMsg":"params error","result":null}')


# ---- OKX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [8, 4, 1])
def test_okx_funding_push_and_interval_from_times(hours):
    """interval = nextFundingTime - fundingTime; the rate is for the period settled at fundingTime."""
    funding_ms = 1_700_006_400_000
    frame = okx_funding_push("BTC-USD-SWAP", "0.0001", funding_ms, funding_ms + hours * HOUR_MS, 1_700_000_000_123)
    (update,) = OkxProtocol().receive(frame, 5).updates
    assert update == FundingUpdate(
        key="okx:swap:BTC-USD-SWAP",
        rate=0.0001,
        interval_ms=hours * HOUR_MS,
        next_funding_ms=funding_ms,
        venue_ms=1_700_000_000_123,
        recv_ns=5,
    )
    assert update.rate_per_hour == pytest.approx(0.0001 / hours)


def test_okx_funding_with_no_interval_is_malformed():
    frame = okx_funding_push("BTC-USD-SWAP", "0.0001", 5, 5, 1)
    with pytest.raises(MalformedFrame, match="no interval"):
        OkxProtocol().receive(frame, 0)


def test_okx_history():
    # Layout of GET /api/v5/public/funding-rate-history (exchange-protocols.md §4.3), newest first.
    body = (
        b'{"code":"0","msg":"","data":[{"formulaType":"noRate","fundingRate":"0.0000746572921449",'
        b'"fundingTime":"1703059200000","instId":"BTC-USD-SWAP","instType":"SWAP","method":"current_period",'
        b'"realizedRate":"0.0000746572921449"},{"formulaType":"noRate","fundingRate":"-0.0001",'
        b'"fundingTime":"1703030400000","instId":"BTC-USD-SWAP","instType":"SWAP","method":"current_period",'
        b'"realizedRate":"-0.0000999"}]}'
    )
    assert okx_funding.parse_history(body) == [
        FundingRecord("okx:swap:BTC-USD-SWAP", 1703030400000, -0.0001, realized_rate=-0.0000999),
        FundingRecord("okx:swap:BTC-USD-SWAP", 1703059200000, 0.0000746572921449, realized_rate=0.0000746572921449),
    ]
    assert okx_funding.history_request("BTC-USD-SWAP", after_ms=1703059200000).params == {
        "instId": "BTC-USD-SWAP",
        "limit": "400",
        "after": "1703059200000",
    }


# ---- the funding state store ---------------------------------------------------------------------


def test_funding_book_keeps_the_newest_venue_time():
    book = FundingBook()
    new = FundingUpdate("okx:swap:X", 0.0002, HOUR_MS, 10, venue_ms=200, recv_ns=2_000)
    old = FundingUpdate("okx:swap:X", 0.0001, HOUR_MS, 10, venue_ms=100, recv_ns=3_000)
    assert book.apply(new) and not book.apply(old)
    assert book.get("okx:swap:X") is new and book.age_ns("okx:swap:X", 5_000) == 3_000 and len(book) == 1
    assert book.get("okx:swap:Y") is None and book.age_ns("okx:swap:Y", 0) is None


# ---- values no carry can use ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_a_rate_or_price_that_is_not_finite_is_malformed(bad):
    """``float()`` takes these; a NaN rate compares false with every threshold and an infinite one swamps
    every carry, so each parser refuses them in every numeric field, naming the value."""
    reason = f"'{bad}' is not a finite number"
    value = bad.encode()
    for field in (b'"r":"0.00038167"', b'"p":"11794.15000000"', b'"i":"11784.62659091"'):
        with pytest.raises(MalformedFrame, match=f"markPrice BTCUSDT: {reason}"):
            MarkPriceParser()(BINANCE_MARK_PRICE.replace(field, field.split(b":")[0] + b':"%s"' % value), 1)
    history = b'[{"symbol":"BTCUSDT","fundingRate":"%s","fundingTime":1570636800000,"markPrice":"%s"}]'
    for rate, mark in ((value, b"1.0"), (b"0.0001", value)):
        with pytest.raises(MalformedFrame, match=reason):
            parse_history(history % (rate, mark))
    proto = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * HOUR_MS})
    for field in (b'"fundingRate":"-0.000212"', b'"markPrice":"17217.33"', b'"indexPrice":"17227.36"'):
        with pytest.raises(MalformedFrame, match=reason):
            proto.receive(BYBIT_TICKER_SNAPSHOT.replace(field, field.split(b":")[0] + b':"%s"' % value), 1)
    with pytest.raises(MalformedFrame, match=f"funding-rate BTC-USD-SWAP: {reason}"):
        OkxProtocol().receive(okx_funding_push("BTC-USD-SWAP", bad, 5, 5 + 8 * HOUR_MS, 1), 0)
    okx_history = b'{"code":"0","msg":"","data":[{"fundingRate":"%s","fundingTime":"1","instId":"X-SWAP"%s}]}'
    for rate, realized in ((value, b""), (b"0.0001", b',"realizedRate":"%s"' % value)):
        with pytest.raises(MalformedFrame, match=reason):
            okx_funding.parse_history(okx_history % (rate, realized))
    bybit_history = b'{"retCode":0,"result":{"list":[{"symbol":"X","fundingRate":"%s","fundingRateTimestamp":"1"}]}}'
    with pytest.raises(MalformedFrame, match=reason):
        bybit_funding.parse_history(bybit_history % value)


@pytest.mark.parametrize("price", ["0", "-5"])
def test_a_mark_or_index_price_not_above_zero_is_malformed(price):
    for field in (b'"p":"11794.15000000"', b'"i":"11784.62659091"'):
        frame = BINANCE_MARK_PRICE.replace(field, field.split(b":")[0] + b':"%s"' % price.encode())
        with pytest.raises(MalformedFrame, match=f"'{price}' is not a price above 0"):
            MarkPriceParser()(frame, 1)
    history = b'[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingTime":1570636800000,"markPrice":"%s"}]'
    with pytest.raises(MalformedFrame, match=f"'{price}' is not a price above 0"):
        parse_history(history % price.encode())
    proto = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * HOUR_MS})
    frame = BYBIT_TICKER_SNAPSHOT.replace(b'"indexPrice":"17227.36"', b'"indexPrice":"%s"' % price.encode())
    with pytest.raises(MalformedFrame, match=f"'{price}' is not a price above 0"):
        proto.receive(frame, 1)


def test_a_refused_bybit_ticker_delta_leaves_nothing_behind():
    """A refused delta is not merged (a NaN rate left merged would refuse every later delta, found by
    review), and the state before it does not go on either: the delta may have carried other changes (a
    new nextFundingTime), so the symbol's deltas are ignored until its next snapshot (found by review)."""
    proto = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * HOUR_MS})
    (first,) = proto.receive(BYBIT_TICKER_SNAPSHOT, 1).updates
    assert isinstance(first, FundingUpdate) and first.rate == -0.000212
    delta = b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT",%s},"cs":1,"ts":1673272861700}'
    with pytest.raises(MalformedFrame, match="'nan' is not a finite number"):
        proto.receive(delta % b'"fundingRate":"nan","nextFundingTime":"1673308800000"', 2)
    assert proto.tickers.fields("BTCUSDT") == {}
    ignored = Control(ControlKind.IGNORED, "tickers.BTCUSDT")
    assert proto.receive(delta % b'"markPrice":"17218.00"', 3).updates == [ignored]
    (again,) = proto.receive(BYBIT_TICKER_SNAPSHOT, 4).updates
    assert isinstance(again, FundingUpdate) and (again.rate, again.recv_ns) == (-0.000212, 4)


def test_binance_mark_price_naming_another_symbol_than_its_stream_is_refused():
    """btcusdt@markPrice@1s carrying ETHUSDT's event must not become ETHUSDT's funding."""
    proto = usdm_funding_protocol()
    frame = BINANCE_MARK_PRICE.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"', 1)
    with pytest.raises(MalformedFrame, match="markPrice for binance:usdm:ETHUSDT on stream of BTCUSDT"):
        proto.receive(frame, 9)
