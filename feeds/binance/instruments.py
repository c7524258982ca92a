"""Binance instrument metadata: ``exchangeInfo`` of spot, USD-M and COIN-M, pure parser.

* spot ``/api/v3/exchangeInfo``: ``BTCUSDT`` → ``binance:spot:BTC-USDT``; tick ``PRICE_FILTER.tickSize``,
  lot ``LOT_SIZE.stepSize``, minimum order value ``MIN_NOTIONAL.minNotional`` (newer: ``NOTIONAL``).
* USD-M ``/fapi/v1/exchangeInfo``: ``contractType`` PERPETUAL → ``binance:usdm:BTC-USDT-PERP``; quarterly
  ``BTCUSDT_220624`` → ``binance:usdm:BTC-USDT-220624``; quantities in base units; ``MIN_NOTIONAL.notional``.
* COIN-M ``/dapi/v1/exchangeInfo``: inverse contracts of ``contractSize`` USD (``BTCUSD_PERP``: 100).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from feeds.errors import MalformedFrame
from feeds.instruments import ContractType, InstrumentId, Kind, Market, Venue
from feeds.metadata import InstrumentMeta, ParsedMetadata, decimal, make_meta
from feeds.protocol import RestRequest

PATHS = {
    Market.SPOT: "/api/v3/exchangeInfo",
    Market.USDM: "/fapi/v1/exchangeInfo",
    Market.COINM: "/dapi/v1/exchangeInfo",
}
WEIGHTS = {Market.SPOT: 20, Market.USDM: 1, Market.COINM: 1}
_DATED = ("CURRENT_QUARTER", "NEXT_QUARTER", "CURRENT_MONTH", "NEXT_MONTH")


class Filter(msgspec.Struct):
    filterType: str
    tickSize: str = ""
    stepSize: str = ""
    minNotional: str = ""  # spot MIN_NOTIONAL / NOTIONAL
    notional: str = ""  # USD-M MIN_NOTIONAL


class Symbol(msgspec.Struct):
    symbol: str
    status: str = ""  # spot and USD-M
    contractStatus: str = ""  # COIN-M
    baseAsset: str = ""
    quoteAsset: str = ""
    contractType: str = ""  # futures: PERPETUAL, CURRENT_QUARTER, ...
    contractSize: int | float = 0  # COIN-M: USD per contract
    filters: list[Filter] = msgspec.field(default_factory=list)


class ExchangeInfo(msgspec.Struct):
    symbols: list[Symbol]


_info = msgspec.json.Decoder(ExchangeInfo)


def exchange_info_request(market: Market) -> RestRequest:
    try:
        return RestRequest("GET", PATHS[market], {}, weight=WEIGHTS[market])
    except KeyError:
        raise ValueError(f"binance has no {market} market (spot, usdm, coinm)") from None


def parse_exchange_info(body: bytes, market: Market) -> ParsedMetadata:
    try:
        info = _info.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"exchangeInfo: {exc}", venue=Venue.BINANCE, sample=body) from None
    metas: list[InstrumentMeta] = []
    skipped: list[str] = []
    for row in info.symbols:
        ident = _instrument(row, market)
        if isinstance(ident, str):
            skipped.append(f"{row.symbol}: {ident}")
            continue
        metas.append(_meta(row, market, ident))
    return ParsedMetadata(metas, skipped)


def _instrument(row: Symbol, market: Market) -> InstrumentId | str:
    if not row.baseAsset or not row.quoteAsset:
        return "no baseAsset/quoteAsset"
    if market is Market.SPOT:
        return InstrumentId(Venue.BINANCE, market, row.baseAsset, row.quoteAsset, Kind.SPOT)
    if row.contractType == "PERPETUAL":
        return InstrumentId(Venue.BINANCE, market, row.baseAsset, row.quoteAsset, Kind.PERP)
    if row.contractType in _DATED:
        expiry = row.symbol.rpartition("_")[2]
        if not (len(expiry) == 6 and expiry.isdigit()):
            return f"dated contract without a YYMMDD suffix ({row.contractType})"
        return InstrumentId(Venue.BINANCE, market, row.baseAsset, row.quoteAsset, Kind.FUTURE, expiry)
    return f"contractType {row.contractType!r} is not tradable"


def _meta(row: Symbol, market: Market, ident: InstrumentId) -> InstrumentMeta:
    where = f"exchangeInfo {row.symbol}"
    filters = {f.filterType: f for f in row.filters}
    price, lot = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE")
    if price is None or lot is None:
        raise MalformedFrame(f"{where}: PRICE_FILTER or LOT_SIZE missing", venue=Venue.BINANCE)
    notional = filters.get("MIN_NOTIONAL") or filters.get("NOTIONAL")
    notional_text = (notional.minNotional or notional.notional) if notional is not None else "0"
    inverse = market is Market.COINM
    if inverse and not row.contractSize:
        raise MalformedFrame(f"{where}: COIN-M symbol without contractSize", venue=Venue.BINANCE)
    status = row.contractStatus or row.status
    return make_meta(
        ident,
        row.symbol,
        tick=decimal(price.tickSize, venue=Venue.BINANCE, what=f"{where} tickSize"),
        lot=decimal(lot.stepSize, venue=Venue.BINANCE, what=f"{where} stepSize"),
        min_notional=decimal(notional_text, venue=Venue.BINANCE, what=f"{where} min notional"),
        contract_type=ContractType.INVERSE if inverse else ContractType.BASE,
        contract_size=Decimal(str(row.contractSize)) if inverse else Decimal(1),
        active=status == "TRADING",
    )
