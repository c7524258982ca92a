"""Binance symbols of canonical instruments (exchange-protocols.md §2): ``BTCUSDT`` (spot, USD-M
perpetual), ``BTCUSDT_240927`` (USD-M dated), ``BTCUSD_PERP`` and ``BTCUSD_240927`` (COIN-M)."""

from __future__ import annotations

from feeds.instruments import InstrumentId, Kind, Market


def venue_symbol(instrument: InstrumentId) -> str | None:
    pair, kind, market = f"{instrument.base}{instrument.quote}", instrument.kind, instrument.market
    if market is Market.COINM:
        return f"{pair}_PERP" if kind is Kind.PERP else f"{pair}_{instrument.expiry}" if kind is Kind.FUTURE else None
    if kind in (Kind.SPOT, Kind.PERP):
        return pair
    if kind is Kind.FUTURE and market is Market.USDM:
        return f"{pair}_{instrument.expiry}"
    return None
