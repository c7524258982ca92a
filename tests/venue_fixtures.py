"""Real recorded Bybit, OKX and Kraken frames for the venue tests, plus documented examples where no
recording exists (funding streams, Bybit v5 instruments-info), each quoted with its source.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
CRYPTOFEED = DATA / "cryptofeed"
OKX_WS = CRYPTOFEED / "OKX.ws.1.0"
OKX_META = CRYPTOFEED / "OKX.0"
KRAKEN_WS = CRYPTOFEED / "KRAKEN.ws.50.0"
KRAKEN_META = CRYPTOFEED / "KRAKEN.0"
BYBIT_DIR = CRYPTOFEED / "bybit-v5"
BYBIT_LINEAR_WS = BYBIT_DIR / "BYBIT.ws.1.0"
BYBIT_SPOT_WS = BYBIT_DIR / "BYBIT.ws.2.0"
BINANCE_META = CRYPTOFEED / "BINANCE.0"
BINANCE_FUTURES_META = CRYPTOFEED / "BINANCE_FUTURES.0"


@cache
def messages(path: Path) -> tuple[tuple[int, bytes], ...]:
    """(receive ns, message) of every received frame of a cryptofeed websocket capture, in order."""
    out = []
    with path.open("rb") as f:
        for line in f:
            if line[:1].isdigit():
                stamp, _, body = line.rstrip(b"\n").partition(b": ")
                whole, _, frac = stamp.partition(b".")
                out.append((int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9]), body))
    return tuple(out)


def message(path: Path, needle: bytes, nth: int = 0) -> bytes:
    """The ``nth`` received message containing ``needle``."""
    hits = (m for _, m in messages(path) if needle in m)
    for _ in range(nth):
        next(hits)
    return next(hits)


def rest_bodies(path: Path, url_part: str) -> Iterator[bytes]:
    """Bodies of the recorded REST responses whose URL contains ``url_part`` (cryptofeed ``EXCH.0``)."""
    with path.open("rb") as f:
        for line in f:
            target, sep, rest = line.partition(b" -> ")
            if sep and url_part.encode() in target:
                yield rest.partition(b": ")[2].rstrip(b"\n")


def rest_body(path: Path, url_part: str) -> bytes:
    return next(rest_bodies(path, url_part))


# ---- documented examples (no real capture of these exists) -------------------------------------------

#: Binance USD-M Mark Price Stream, "Response Example" (developers.binance.com/docs/derivatives/
#: usds-margined-futures/websocket-market-streams/Mark-Price-Stream), in a combined-stream envelope.
BINANCE_MARK_PRICE = (
    b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT",'
    b'"p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}}'
)

#: Bybit v5 ticker, linear "Response Example" (bybit-exchange/docs docs/v5/websocket/public/ticker.mdx).
BYBIT_TICKER_SNAPSHOT = (
    b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","tickDirection":"PlusTick",'
    b'"price24hPcnt":"0.017103","lastPrice":"17216.00","prevPrice24h":"16926.50","highPrice24h":"17281.50",'
    b'"lowPrice24h":"16915.00","prevPrice1h":"17238.00","markPrice":"17217.33","indexPrice":"17227.36",'
    b'"openInterest":"68744.761","openInterestValue":"1183601235.91","turnover24h":"1570383121.943499",'
    b'"volume24h":"91705.276","nextFundingTime":"1673280000000","fundingRate":"-0.000212",'
    b'"bid1Price":"17215.50","bid1Size":"84.489","ask1Price":"17216.00","ask1Size":"83.020"},'
    b'"cs":24987956059,"ts":1673272861686}'
)

#: Bybit v5 instruments-info, linear "Response Example" (bybit-exchange/docs docs/v5/market/instrument.mdx).
BYBIT_INSTRUMENTS_LINEAR = b"""{
    "retCode": 0, "retMsg": "OK",
    "result": {"category": "linear", "list": [{
        "symbol": "BTCUSDT", "symbolId": 5, "contractType": "LinearPerpetual", "status": "Trading",
        "baseCoin": "BTC", "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0",
        "deliveryFeeRate": "", "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
        "unifiedMarginTrade": true, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
        "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": false,
        "preListingInfo": null, "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "symbolType": ""}],
    "nextPageCursor": ""},
    "retExtInfo": {}, "time": 1735809771618}"""

#: Bybit v5 instruments-info, spot "Response Example" (same file).
BYBIT_INSTRUMENTS_SPOT = b"""{
    "retCode": 0, "retMsg": "OK",
    "result": {"category": "spot", "list": [{
        "symbolId": 9, "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0",
        "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
        "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001", "minOrderQty": "0.000011",
            "maxOrderQty": "83", "minOrderAmt": "5", "maxOrderAmt": "8000000", "maxLimitOrderQty": "83",
            "maxMarketOrderQty": "41.5", "postOnlyMaxLimitOrderSize": "60000"},
        "priceFilter": {"tickSize": "0.1"},
        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"}, "symbolType": ""}]},
    "retExtInfo": {}, "time": 1760027412300}"""


def okx_funding_push(inst_id: str, rate: str, funding_ms: int, next_ms: int, ts_ms: int) -> bytes:
    """An OKX ``funding-rate`` push in the field layout documented in exchange-protocols.md §4.3
    (OKX:public-data-websocket-funding-rate-channel); values are the caller's."""
    return (
        b'{"arg":{"channel":"funding-rate","instId":"%s"},"data":[{"formulaType":"withRate",'
        b'"fundingRate":"%s","fundingTime":"%d","impactValue":"20000","instId":"%s","instType":"SWAP",'
        b'"interestRate":"0.0001","maxFundingRate":"0.00375","method":"current_period",'
        b'"minFundingRate":"-0.00375","nextFundingRate":"","nextFundingTime":"%d","premium":"0.0001",'
        b'"settFundingRate":"0.0001","settState":"settled","ts":"%d"}]}'
    ) % (inst_id.encode(), rate.encode(), funding_ms, inst_id.encode(), next_ms, ts_ms)
