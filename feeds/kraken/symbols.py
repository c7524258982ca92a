"""Kraken spot symbols: ``BTC/USD`` (websocket v2 names; v1 recordings say ``XBT/USD``, an alias the
instrument metadata carries)."""

from __future__ import annotations

from feeds.instruments import InstrumentId, Kind, Market, Venue


def venue_symbol(instrument: InstrumentId) -> str | None:
    return f"{instrument.base}/{instrument.quote}" if instrument.kind is Kind.SPOT else None


def instrument_id(symbol: str) -> InstrumentId | None:
    base, sep, quote = symbol.partition("/")
    return InstrumentId(Venue.KRAKEN, Market.SPOT, base, quote, Kind.SPOT) if sep and base and quote else None
