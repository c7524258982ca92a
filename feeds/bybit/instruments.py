"""Bybit v5 instrument metadata: ``GET /v5/market/instruments-info?category=...``, pure parser.

Spot and linear quantities are base units; inverse contracts are 1 USD (the quote) each. Linear and
inverse rows state their funding interval in minutes (``fundingInterval``: 480 = 8 h), which the ticker
merge falls back on when a ticker does not carry ``fundingIntervalHour``. Replies are paged: follow
``nextPageCursor`` until it is empty.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from feeds.errors import MalformedFrame, VenueRejected
from feeds.instruments import ContractType, InstrumentId, Kind, Market, Venue
from feeds.metadata import InstrumentMeta, ParsedMetadata, decimal, make_meta
from feeds.protocol import RestRequest

PATH = "/v5/market/instruments-info"
CATEGORIES = {Market.SPOT: "spot", Market.LINEAR: "linear", Market.INVERSE: "inverse"}
PAGE_LIMIT = 1000
_MINUTE_MS = 60_000


class PriceFilter(msgspec.Struct):
    tickSize: str


class LotSizeFilter(msgspec.Struct):
    qtyStep: str = ""  # derivatives
    basePrecision: str = ""  # spot: the quantity step
    minNotionalValue: str = ""  # derivatives
    minOrderAmt: str = ""  # spot: minimum order value in quote


class Row(msgspec.Struct):
    symbol: str
    baseCoin: str
    quoteCoin: str
    priceFilter: PriceFilter
    lotSizeFilter: LotSizeFilter
    status: str = "Trading"
    contractType: str = ""  # LinearPerpetual | LinearFutures | InversePerpetual | InverseFutures
    deliveryTime: str = "0"
    fundingInterval: int = 0  # minutes; 0 where there is no funding


class Result(msgspec.Struct):
    rows: list[Row] = msgspec.field(name="list")
    category: str = ""
    nextPageCursor: str = ""


class Reply(msgspec.Struct):
    retCode: int
    retMsg: str = ""
    result: Result | None = None


_reply = msgspec.json.Decoder(Reply)


def instruments_request(market: Market, cursor: str = "") -> RestRequest:
    try:
        params = {"category": CATEGORIES[market], "limit": str(PAGE_LIMIT)}
    except KeyError:
        raise ValueError(f"bybit: no instrument metadata for {market} (spot, linear, inverse)") from None
    if cursor:
        params["cursor"] = cursor
    return RestRequest("GET", PATH, params)


def parse_instruments(body: bytes, market: Market) -> tuple[ParsedMetadata, str]:
    """One page: the instruments and the cursor of the next page ("" on the last)."""
    try:
        reply = _reply.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"instruments-info: {exc}", venue=Venue.BYBIT, sample=body) from None
    if reply.retCode != 0 or reply.result is None:
        raise VenueRejected(Venue.BYBIT, f"instruments-info: {reply.retCode} {reply.retMsg}")
    metas: list[InstrumentMeta] = []
    skipped: list[str] = []
    for row in reply.result.rows:
        ident = _instrument(row, market)
        if isinstance(ident, str):
            skipped.append(f"{row.symbol}: {ident}")
            continue
        metas.append(_meta(row, market, ident))
    return ParsedMetadata(metas, skipped), reply.result.nextPageCursor


def _instrument(row: Row, market: Market) -> InstrumentId | str:
    if market is Market.SPOT:
        return InstrumentId(Venue.BYBIT, market, row.baseCoin, row.quoteCoin, Kind.SPOT)
    if row.contractType.endswith("Perpetual"):
        return InstrumentId(Venue.BYBIT, market, row.baseCoin, row.quoteCoin, Kind.PERP)
    if row.contractType.endswith("Futures"):
        try:
            expiry = datetime.fromtimestamp(int(row.deliveryTime) / 1000, UTC).strftime("%y%m%d")
        except ValueError:
            return f"deliveryTime {row.deliveryTime!r} is not a time"
        return InstrumentId(Venue.BYBIT, market, row.baseCoin, row.quoteCoin, Kind.FUTURE, expiry)
    return f"unknown contractType {row.contractType!r}"


def _meta(row: Row, market: Market, ident: InstrumentId) -> InstrumentMeta:
    where = f"instruments-info {row.symbol}"
    lot_text = row.lotSizeFilter.basePrecision if market is Market.SPOT else row.lotSizeFilter.qtyStep
    notional_text = row.lotSizeFilter.minOrderAmt if market is Market.SPOT else row.lotSizeFilter.minNotionalValue
    inverse = market is Market.INVERSE
    return make_meta(
        ident,
        row.symbol,
        tick=decimal(row.priceFilter.tickSize, venue=Venue.BYBIT, what=f"{where} tickSize"),
        lot=decimal(lot_text, venue=Venue.BYBIT, what=f"{where} lot step"),
        min_notional=decimal(notional_text or "0", venue=Venue.BYBIT, what=f"{where} min notional"),
        contract_type=ContractType.INVERSE if inverse else ContractType.BASE,
        contract_size=decimal("1", venue=Venue.BYBIT, what=where),  # inverse: 1 USD per contract
        funding_interval_ms=row.fundingInterval * _MINUTE_MS if row.fundingInterval > 0 else None,
        active=row.status == "Trading",
    )
