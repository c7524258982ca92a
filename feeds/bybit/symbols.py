"""Bybit v5 symbols of canonical instruments: ``BTCUSDT`` (spot, linear perpetual), ``BTCUSD`` (inverse
perpetual). Dated futures (``BTCUSDT-26SEP25``) name their expiry differently and are not mapped yet."""

from __future__ import annotations

from feeds.instruments import InstrumentId, Kind


def venue_symbol(instrument: InstrumentId) -> str | None:
    if instrument.kind in (Kind.SPOT, Kind.PERP):
        return f"{instrument.base}{instrument.quote}"
    return None
