"""Canonical instrument → the venue's own symbol, for subscribing and for the feed keys updates arrive under.

The config names instruments canonically (``binance:usdm:BTC-USDT-PERP``); a feed subscribes venue
symbols (``BTCUSDT``) and its updates carry ``book_key(venue, market, venue_symbol)``. These are the
documented naming schemes of each venue (``docs/exchange-protocols.md``); when the venue registry
(:mod:`feeds.venues`) grows a per-venue naming hook this table should move there.
"""

from __future__ import annotations

from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.updates import book_key
from scanner.errors import ConfigError


def venue_symbol(instrument: InstrumentId) -> str:
    """``BTCUSDT`` for Binance/Bybit, ``BTC-USDT-SWAP`` for OKX, ``BTC/USD`` for Kraken, and so on."""
    venue, market, kind = instrument.venue, instrument.market, instrument.kind
    base, quote = instrument.base, instrument.quote
    if venue in (Venue.BINANCE, Venue.BYBIT, Venue.HUOBI):
        if kind in (Kind.SPOT, Kind.PERP) and market is not Market.COINM and market is not Market.INVERSE:
            return f"{base}{quote}"
        if venue is Venue.BINANCE and market is Market.COINM:
            return f"{base}{quote}_PERP" if kind is Kind.PERP else f"{base}{quote}_{instrument.expiry}"
        if venue is Venue.BINANCE and kind is Kind.FUTURE:
            return f"{base}{quote}_{instrument.expiry}"
        if venue is Venue.BYBIT and market is Market.INVERSE and kind is Kind.PERP:
            return f"{base}{quote}"
    elif venue is Venue.OKX:
        if kind is Kind.SPOT:
            return f"{base}-{quote}"
        if kind is Kind.PERP:
            return f"{base}-{quote}-SWAP"
        if kind is Kind.FUTURE:
            return f"{base}-{quote}-{instrument.expiry}"
    elif venue is Venue.KRAKEN and kind is Kind.SPOT:
        return f"{base}/{quote}"
    raise ConfigError("(config)", [(str(instrument), "no venue symbol is known for this instrument")])


def feed_key(instrument: InstrumentId) -> str:
    """The key the instrument's book and funding updates arrive under (``binance:usdm:BTCUSDT``)."""
    return book_key(instrument.venue, instrument.market, venue_symbol(instrument))
