"""OKX instrument ids: which market a ``instId`` belongs to, and its canonical :class:`InstrumentId`.

OKX names every instrument type on one websocket: ``BTC-USDT`` (spot, also the margin book),
``BTC-USDT-SWAP`` (perpetual), ``BTC-USD-220527`` (dated future), ``BTC-USD-220527-30000-C`` (option).
"""

from __future__ import annotations

from feeds.errors import MalformedFrame
from feeds.instruments import InstrumentId, Kind, Market, Venue

_PARTS_SPOT, _PARTS_DATED, _PARTS_OPTION = 2, 3, 5


def market_of(inst_id: str) -> Market:
    """The market of an ``instId`` from its shape; an unknown shape is a malformed frame."""
    parts = inst_id.split("-")
    if len(parts) == _PARTS_SPOT and all(parts):
        return Market.SPOT
    if len(parts) == _PARTS_DATED and parts[2] == "SWAP":
        return Market.SWAP
    if len(parts) == _PARTS_DATED and parts[2].isdigit():
        return Market.FUTURES
    if len(parts) == _PARTS_OPTION and parts[2].isdigit() and parts[4] in ("C", "P"):
        return Market.OPTION
    raise MalformedFrame(f"unknown instId shape {inst_id!r}", venue="okx")


def instrument_id(inst_id: str, market: Market | None = None) -> InstrumentId:
    """Canonical id: ``BTC-USDT`` → okx:spot:BTC-USDT, ``BTC-USDT-SWAP`` → okx:swap:BTC-USDT-PERP,
    ``BTC-USD-220527`` → okx:futures:BTC-USD-220527. Options have no canonical id (strike and type are
    not part of :class:`InstrumentId`); they are rebuilt by verify-books only."""
    found = market_of(inst_id)
    parts = inst_id.split("-")
    base, quote = parts[0], parts[1]
    if found is Market.SPOT:
        chosen = market if market in (Market.SPOT, Market.MARGIN) else Market.SPOT
        return InstrumentId(Venue.OKX, chosen, base, quote, Kind.SPOT)
    if found is Market.SWAP:
        return InstrumentId(Venue.OKX, Market.SWAP, base, quote, Kind.PERP)
    if found is Market.FUTURES:
        return InstrumentId(Venue.OKX, Market.FUTURES, base, quote, Kind.FUTURE, parts[2])
    raise ValueError(f"okx {inst_id!r}: options have no canonical instrument id")


def venue_symbol(instrument: InstrumentId) -> str | None:
    """``BTC-USDT`` (spot and margin), ``BTC-USDT-SWAP`` (perpetual), ``BTC-USD-220527`` (dated future)."""
    pair = f"{instrument.base}-{instrument.quote}"
    if instrument.kind is Kind.SPOT:
        return pair
    if instrument.kind is Kind.PERP:
        return f"{pair}-SWAP"
    if instrument.kind is Kind.FUTURE:
        return f"{pair}-{instrument.expiry}"
    return None


def parse_symbol(inst_id: str, market: Market) -> InstrumentId | None:
    """The canonical id of an ``instId`` of ``market``, or None (another market's, an option, no instId)."""
    try:
        found = instrument_id(inst_id, market)
    except (MalformedFrame, ValueError):
        return None
    return found if found.market is market else None
