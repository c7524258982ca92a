"""Kraken spot instrument metadata: ``GET /0/public/AssetPairs``, pure parser.

Kraken's asset codes differ from everyone else's: ``XBT`` is BTC and ``XDG`` is DOGE, in the v1
websocket names (``XBT/USD``), while the v2 websocket already says ``BTC/USD``. The canonical id uses the
common codes; the v1 name stays the venue symbol and the v2 name is an alias, so both book keys resolve.
Tick and lot come from ``tick_size``/``lot_decimals`` (older replies: ``pair_decimals``), the minimum
order value from ``costmin`` where present.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from feeds.errors import MalformedFrame, VenueRejected
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.metadata import InstrumentMeta, ParsedMetadata, decimal, make_meta
from feeds.protocol import RestRequest

PATH = "/0/public/AssetPairs"
COMMON_CODES = {"XBT": "BTC", "XDG": "DOGE"}


class Pair(msgspec.Struct):
    altname: str
    pair_decimals: int
    lot_decimals: int
    wsname: str = ""  # absent for dark-pool ".d" pairs: those have no websocket book
    tick_size: str = ""
    costmin: str = ""
    status: str = "online"


class Reply(msgspec.Struct):
    error: list[str]
    result: dict[str, Pair] = msgspec.field(default_factory=dict)


_reply = msgspec.json.Decoder(Reply)


def common(code: str) -> str:
    return COMMON_CODES.get(code, code)


def v2_symbol(wsname: str) -> str:
    """The v2 websocket name of a v1 ``wsname``: ``XBT/USD`` → ``BTC/USD``."""
    base, _, quote = wsname.partition("/")
    return f"{common(base)}/{common(quote)}"


def asset_pairs_request() -> RestRequest:
    return RestRequest("GET", PATH, {})


def parse_asset_pairs(body: bytes) -> ParsedMetadata:
    try:
        reply = _reply.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"AssetPairs: {exc}", venue=Venue.KRAKEN, sample=body) from None
    if reply.error:
        raise VenueRejected(Venue.KRAKEN, f"AssetPairs: {'; '.join(reply.error)}")
    metas: list[InstrumentMeta] = []
    skipped: list[str] = []
    for name, pair in reply.result.items():
        if "/" not in pair.wsname:
            skipped.append(f"{name}: no websocket name (not a streamed book)")
            continue
        metas.append(_meta(pair))
    return ParsedMetadata(metas, skipped)


def _meta(pair: Pair) -> InstrumentMeta:
    base, _, quote = pair.wsname.partition("/")
    where = f"AssetPairs {pair.altname}"
    tick = (
        decimal(pair.tick_size, venue=Venue.KRAKEN, what=f"{where} tick_size")
        if pair.tick_size
        else Decimal(1).scaleb(-pair.pair_decimals)
    )
    alias = v2_symbol(pair.wsname)
    return make_meta(
        InstrumentId(Venue.KRAKEN, Market.SPOT, common(base), common(quote), Kind.SPOT),
        pair.wsname,
        tick=tick,
        lot=Decimal(1).scaleb(-pair.lot_decimals),
        min_notional=decimal(pair.costmin, venue=Venue.KRAKEN, what=f"{where} costmin") if pair.costmin else Decimal(0),
        active=pair.status == "online",
        aliases=(alias,) if alias != pair.wsname else (),
    )
