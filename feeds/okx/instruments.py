"""OKX instrument metadata: ``GET /api/v5/public/instruments?instType=...``, pure parser.

Spot quantities are base units; swaps and futures are quoted in contracts of ``ctVal`` units of
``ctValCcy``: the base currency for linear contracts (``BTC-USDT-SWAP``: 0.01 BTC), the quote currency for
inverse ones (``BTC-USD-SWAP``: 100 USD). Options are not loaded: they have no canonical instrument id.
"""

from __future__ import annotations

import msgspec

from feeds.errors import MalformedFrame, VenueRejected
from feeds.instruments import ContractType, Market, Venue
from feeds.metadata import InstrumentMeta, ParsedMetadata, decimal, make_meta
from feeds.okx.schemas import Instrument, Instruments
from feeds.okx.symbols import instrument_id, market_of
from feeds.protocol import RestRequest

PATH = "/api/v5/public/instruments"
INST_TYPES = {Market.SPOT: "SPOT", Market.MARGIN: "MARGIN", Market.SWAP: "SWAP", Market.FUTURES: "FUTURES"}

_instruments = msgspec.json.Decoder(Instruments)


def instruments_request(market: Market) -> RestRequest:
    try:
        inst_type = INST_TYPES[market]
    except KeyError:
        raise ValueError(f"okx: no instrument metadata for {market} (spot, margin, swap, futures)") from None
    return RestRequest("GET", PATH, {"instType": inst_type})


def parse_instruments(body: bytes) -> ParsedMetadata:
    """Decode one instruments reply (any instType but OPTION)."""
    try:
        reply = _instruments.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"instruments: {exc}", venue=Venue.OKX, sample=body) from None
    if reply.code != "0":
        raise VenueRejected(Venue.OKX, f"instruments: {reply.code} {reply.msg}")
    metas: list[InstrumentMeta] = []
    skipped: list[str] = []
    for row in reply.data:
        if row.instType == "OPTION":
            skipped.append(f"{row.instId}: options have no canonical instrument id")
            continue
        reason = _check(row)
        if reason:
            skipped.append(f"{row.instId}: {reason}")
            continue
        metas.append(_meta(row))
    return ParsedMetadata(metas, skipped)


def _check(row: Instrument) -> str:
    market = market_of(row.instId)
    expected = {"SPOT": Market.SPOT, "MARGIN": Market.SPOT, "SWAP": Market.SWAP, "FUTURES": Market.FUTURES}
    if expected.get(row.instType) is not market:
        return f"instType {row.instType} does not match the id's shape ({market})"
    if market is Market.SPOT:
        return "" if row.baseCcy and row.quoteCcy else "spot without baseCcy/quoteCcy"
    base, quote = row.instId.split("-")[:2]
    if row.ctType == "linear" and row.ctValCcy != base:
        return f"linear contract valued in {row.ctValCcy!r}, not the base {base}"
    if row.ctType == "inverse" and row.ctValCcy != quote:
        return f"inverse contract valued in {row.ctValCcy!r}, not the quote {quote}"
    if row.ctType not in ("linear", "inverse"):
        return f"unknown ctType {row.ctType!r}"
    return ""


def _meta(row: Instrument) -> InstrumentMeta:
    where = f"instruments {row.instId}"
    market = Market.MARGIN if row.instType == "MARGIN" else market_of(row.instId)
    ident = instrument_id(row.instId, market)
    if market in (Market.SPOT, Market.MARGIN):
        ident = type(ident)(Venue.OKX, market, row.baseCcy, row.quoteCcy, ident.kind)
        contract_type, size = ContractType.BASE, decimal("1", venue=Venue.OKX, what=where)
    else:
        contract_type = ContractType.LINEAR if row.ctType == "linear" else ContractType.INVERSE
        size = decimal(row.ctVal, venue=Venue.OKX, what=f"{where} ctVal")
        if row.ctMult and row.ctMult != "1":
            size *= decimal(row.ctMult, venue=Venue.OKX, what=f"{where} ctMult")
    return make_meta(
        ident,
        row.instId,
        tick=decimal(row.tickSz, venue=Venue.OKX, what=f"{where} tickSz"),
        lot=decimal(row.lotSz, venue=Venue.OKX, what=f"{where} lotSz"),
        contract_type=contract_type,
        contract_size=size,
        active=row.state == "live",
    )
