"""Canonical instrument identity.

Venue symbols (``BTCUSDT``, ``BTC-USDT-SWAP``, ``XBT/USD``) live only inside ``feeds/<venue>/``; after
parsing, everything speaks :class:`InstrumentId`. Two ids are equal only if venue, market, base, quote
and kind all agree, so rules can never compare a spot book with a perpetual by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

_ASSET = re.compile(r"[A-Z0-9]{1,20}")  # a base or quote asset in an instrument id (BTC, USDT, 1000PEPE)


class Venue(StrEnum):
    BINANCE = "binance"
    BYBIT = "bybit"
    OKX = "okx"
    KRAKEN = "kraken"
    HUOBI = "huobi"  # only as a labelled CSV replay (defi-arbitrage series)


class Market(StrEnum):
    """A venue's product line; each has its own endpoints and sync rules."""

    SPOT = "spot"
    USDM = "usdm"  # Binance USD-M futures (fapi/fstream)
    COINM = "coinm"  # Binance COIN-M futures (dapi/dstream), inverse
    LINEAR = "linear"  # Bybit linear (USDT/USDC perpetuals and futures)
    INVERSE = "inverse"  # Bybit inverse
    SWAP = "swap"  # OKX perpetual swaps
    FUTURES = "futures"  # OKX dated futures
    OPTION = "option"  # OKX options (books rebuilt by verify-books only)
    MARGIN = "margin"  # OKX margin books (same as spot)


class Kind(StrEnum):
    SPOT = "spot"
    PERP = "perp"
    FUTURE = "future"
    OPTION = "option"


class ContractType(StrEnum):
    """How a book quantity converts to base units."""

    BASE = "base"  # quantity is in base units (spot, Binance USD-M, Bybit linear)
    LINEAR = "linear"  # quantity is contracts of ``contract_size`` base units (OKX USDT swaps)
    INVERSE = "inverse"  # quantity is contracts of ``contract_size`` quote units (COIN-M, OKX USD swaps)


@dataclass(frozen=True, slots=True)
class InstrumentId:
    """One tradable instrument on one venue, in canonical form.

    ``symbol`` is the canonical pair name (``BTC-USDT``, ``BTC-USDT-PERP``). What the venue calls it
    lives in :class:`InstrumentSpec` and inside ``feeds/<venue>/`` only.
    """

    venue: Venue
    market: Market
    base: str
    quote: str
    kind: Kind
    expiry: str = ""  # YYMMDD for dated futures/options, "" otherwise
    # Instruments key the market's books and the rules' caches on every evaluation: hash once.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        fields = (self.venue, self.market, self.base, self.quote, self.kind, self.expiry)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[InstrumentId], tuple[Venue, Market, str, str, Kind, str]]:
        # Rebuilt through __init__, so that the hash is this process's (str hashes are salted per process).
        return InstrumentId, (self.venue, self.market, self.base, self.quote, self.kind, self.expiry)

    @property
    def symbol(self) -> str:
        suffix = {Kind.SPOT: "", Kind.PERP: "-PERP"}.get(self.kind, f"-{self.expiry}" if self.expiry else "")
        return f"{self.base}-{self.quote}{suffix}"

    def __str__(self) -> str:
        return f"{self.venue}:{self.market}:{self.symbol}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Parse ``venue:market:BASE-QUOTE[-PERP|-YYMMDD]`` (the form ``str()`` produces)."""
        try:
            venue_s, market_s, sym = text.split(":")
            venue, market = Venue(venue_s), Market(market_s)
        except ValueError as exc:
            raise ValueError(f"instrument {text!r}: expected venue:market:BASE-QUOTE[-PERP]") from exc
        parts = sym.split("-")
        if not all(_ASSET.fullmatch(part) for part in parts[:2]):
            # binance:spot:btc-usdt would subscribe BTCUSDT a second time under another key; BTC- an empty quote.
            raise ValueError(f"instrument {text!r}: base and quote are upper-case letters and digits (BASE-QUOTE)")
        if len(parts) == 2:
            kind = Kind.SPOT if market in (Market.SPOT, Market.MARGIN) else Kind.PERP
            if kind is Kind.PERP:
                raise ValueError(f"instrument {text!r}: a {market} instrument needs -PERP or an expiry")
            return cls(venue, market, parts[0], parts[1], kind)
        if len(parts) == 3 and market in (Market.SPOT, Market.MARGIN):
            # A spot market trades pairs only: binance:spot:BTC-USDT-PERP would name the spot book twice.
            raise ValueError(f"instrument {text!r}: a {market} instrument is BASE-QUOTE (no -PERP or expiry)")
        if len(parts) == 3 and parts[2] == "PERP":
            return cls(venue, market, parts[0], parts[1], Kind.PERP)
        if len(parts) == 3 and parts[2].isdigit():
            return cls(venue, market, parts[0], parts[1], Kind.FUTURE, parts[2])
        raise ValueError(f"instrument {text!r}: expected BASE-QUOTE, BASE-QUOTE-PERP or BASE-QUOTE-YYMMDD")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static metadata of an instrument, loaded from the venue's REST metadata and refreshed."""

    instrument: InstrumentId
    venue_symbol: str
    tick_size: float
    lot_size: float
    min_notional: float = 0.0
    contract_type: ContractType = ContractType.BASE
    contract_size: float = 1.0  # base units (LINEAR) or quote units (INVERSE) per contract
