"""Candidates: what the daemon asks ``rules`` to evaluate, one frozen type per strategy.

A candidate names its legs (canonical :class:`~feeds.instruments.InstrumentId` values, or a DEX pool id),
a size in USD, and for held positions a horizon. It never holds market data: books, funding and DEX
quotes come from the :class:`~rules.market.MarketView` at evaluation time. Candidates are validated when
built (``__post_init__``), since they come from configuration: a malformed one raises
:class:`~rules.errors.CandidateError` once, at start-up, instead of being rejected on every update.

Leg order is fixed per strategy and is the order of ``Decision.legs``:

================================  ==========================================  =========================
strategy                          legs (``Decision.legs`` order)              walked by ``size_usd``
================================  ==========================================  =========================
``cex_cex``                       buy, sell                                   buy (asks, quote=size)
``perp_spot_basis``               spot, perp                                  spot
``funding_carry_cex_cex``         long perp, short perp                       long (asks, quote=size)
``cex_dex``                       cex, dex                                    cex
================================  ==========================================  =========================

The other leg always trades the same base quantity the first leg filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from feeds.instruments import InstrumentId, Kind
from rules.errors import CandidateError
from rules.fees import FeeProfile


class Strategy(StrEnum):
    CEX_CEX = "cex_cex"
    CEX_DEX = "cex_dex"
    FUNDING_CARRY_CEX_CEX = "funding_carry_cex_cex"
    PERP_SPOT_BASIS = "perp_spot_basis"


# The strategies held over a horizon: they count funding settlements (and need a rate for every perpetual).
HELD_STRATEGIES = frozenset({Strategy.PERP_SPOT_BASIS, Strategy.FUNDING_CARRY_CEX_CEX})


class BasisDirection(StrEnum):
    LONG_SPOT_SHORT_PERP = "long_spot_short_perp"  # cash and carry: buy spot, sell perp
    SHORT_SPOT_LONG_PERP = "short_spot_long_perp"  # reverse: sell borrowed spot, buy perp


class DexDirection(StrEnum):
    BUY_CEX_SELL_DEX = "buy_cex_sell_dex"
    BUY_DEX_SELL_CEX = "buy_dex_sell_cex"


HOUR_MS = 3_600_000

# Sizes, limits and costs are USD amounts, and the walks spend them as amounts of the pair's quote: that is
# only right for a dollar quote. A stablecoin counts at par (1 USDT = 1 USD), as fees and limits do; a pair
# quoted in anything else (ETH-BTC) would spend the size in BTC and compare BTC with USD limits.
USD_QUOTES = frozenset({"USD", "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "PYUSD"})


def quote_problem(instrument: InstrumentId) -> str | None:
    """Why ``instrument`` cannot be a candidate's leg for its quote currency, or None."""
    if instrument.quote in USD_QUOTES:
        return None
    known = ", ".join(sorted(USD_QUOTES))
    return (
        f"{instrument} is quoted in {instrument.quote}: sizes, limits and costs are USD amounts spent in the "
        f"quote, so the quote must be USD or a dollar stablecoin ({known})"
    )


def _check_usd_quoted(cid: str, *instruments: InstrumentId) -> None:
    for instrument in instruments:
        problem = quote_problem(instrument)
        if problem is not None:
            raise CandidateError(cid, problem)


def _check_common(cid: str, size_usd: float, rebalance_cost_usd: float, passive_leg: int, legs: int) -> None:
    if not cid:
        raise CandidateError(cid, "id must not be empty")
    if not (math.isfinite(size_usd) and size_usd > 0.0):
        raise CandidateError(cid, f"size_usd must be a positive number, got {size_usd!r}")
    if not (math.isfinite(rebalance_cost_usd) and rebalance_cost_usd >= 0.0):
        raise CandidateError(cid, f"rebalance_cost_usd must be >= 0, got {rebalance_cost_usd!r}")
    if not 0 <= passive_leg < legs:
        raise CandidateError(cid, f"passive_leg must be 0..{legs - 1}, got {passive_leg}")


def _check_horizon(cid: str, horizon_ms: int) -> None:
    if horizon_ms <= 0:
        raise CandidateError(cid, f"horizon_ms must be > 0, got {horizon_ms}")


def _check_kind(cid: str, name: str, instrument: InstrumentId, kind: Kind) -> None:
    if instrument.kind is not kind:
        raise CandidateError(cid, f"{name} leg {instrument} must be a {kind} instrument, not {instrument.kind}")


def _check_same_base(cid: str, a: InstrumentId, b: InstrumentId) -> None:
    if a.base != b.base:
        raise CandidateError(cid, f"legs trade different bases: {a} and {b}")


def _check_same_pair(cid: str, a: InstrumentId, b: InstrumentId) -> None:
    if (a.base, a.quote) != (b.base, b.quote):
        raise CandidateError(cid, f"legs trade different pairs: {a} and {b}")


@dataclass(frozen=True, slots=True)
class CexCexCandidate:
    """Buy base on ``buy`` walking its asks to ``size_usd``; sell the same base on ``sell`` walking bids.

    ``rebalance_cost_usd`` is the cost of moving inventory back between the two venues after the trade
    (withdrawal fee, transfer); it is charged under ``taker_default`` and waived under ``maker_inventory``
    (inventory is pre-positioned). ``passive_leg`` is the leg quoted as maker under ``maker_inventory``.
    """

    strategy: ClassVar[Strategy] = Strategy.CEX_CEX
    id: str
    buy: InstrumentId
    sell: InstrumentId
    size_usd: float
    fee_profile: FeeProfile = FeeProfile.TAKER_DEFAULT
    passive_leg: int = 0
    rebalance_cost_usd: float = 0.0

    def __post_init__(self) -> None:
        _check_common(self.id, self.size_usd, self.rebalance_cost_usd, self.passive_leg, 2)
        _check_same_pair(self.id, self.buy, self.sell)
        _check_usd_quoted(self.id, self.buy, self.sell)
        if self.buy == self.sell:
            raise CandidateError(self.id, f"buy and sell are the same instrument {self.buy}")

    @property
    def instruments(self) -> tuple[InstrumentId, ...]:
        return (self.buy, self.sell)

    def swapped(self, cid: str) -> CexCexCandidate:
        """The same pair traded the other way round (buy where this one sells)."""
        return CexCexCandidate(
            id=cid,
            buy=self.sell,
            sell=self.buy,
            size_usd=self.size_usd,
            fee_profile=self.fee_profile,
            passive_leg=self.passive_leg,
            rebalance_cost_usd=self.rebalance_cost_usd,
        )


@dataclass(frozen=True, slots=True)
class PerpSpotBasisCandidate:
    """Spot against a perpetual on the same base, held for ``horizon_ms``.

    ``LONG_SPOT_SHORT_PERP`` buys spot (asks, quote = size) and sells the same base on the perp (bids);
    ``SHORT_SPOT_LONG_PERP`` sells borrowed spot (bids, quote = size) and buys the perp (asks). The legs may
    be on the same venue or on two venues.
    """

    strategy: ClassVar[Strategy] = Strategy.PERP_SPOT_BASIS
    id: str
    spot: InstrumentId
    perp: InstrumentId
    size_usd: float
    horizon_ms: int
    direction: BasisDirection = BasisDirection.LONG_SPOT_SHORT_PERP
    fee_profile: FeeProfile = FeeProfile.TAKER_DEFAULT
    passive_leg: int = 0
    rebalance_cost_usd: float = 0.0

    def __post_init__(self) -> None:
        _check_common(self.id, self.size_usd, self.rebalance_cost_usd, self.passive_leg, 2)
        _check_horizon(self.id, self.horizon_ms)
        _check_kind(self.id, "spot", self.spot, Kind.SPOT)
        _check_kind(self.id, "perp", self.perp, Kind.PERP)
        _check_same_base(self.id, self.spot, self.perp)
        _check_usd_quoted(self.id, self.spot, self.perp)

    @property
    def instruments(self) -> tuple[InstrumentId, ...]:
        return (self.spot, self.perp)


@dataclass(frozen=True, slots=True)
class FundingCarryCandidate:
    """Long the perp where funding is lower, short where it is higher, held for ``horizon_ms``.

    The orientation is the candidate's: the daemon builds both orientations (or picks one); the wrong one
    simply shows a negative carry. Entry walks ``long_perp`` asks to ``size_usd`` and sells the same base
    on ``short_perp`` bids; fees are four fills (entry and exit on both legs).
    """

    strategy: ClassVar[Strategy] = Strategy.FUNDING_CARRY_CEX_CEX
    id: str
    long_perp: InstrumentId
    short_perp: InstrumentId
    size_usd: float
    horizon_ms: int
    fee_profile: FeeProfile = FeeProfile.TAKER_DEFAULT
    passive_leg: int = 0
    rebalance_cost_usd: float = 0.0

    def __post_init__(self) -> None:
        _check_common(self.id, self.size_usd, self.rebalance_cost_usd, self.passive_leg, 2)
        _check_horizon(self.id, self.horizon_ms)
        _check_kind(self.id, "long", self.long_perp, Kind.PERP)
        _check_kind(self.id, "short", self.short_perp, Kind.PERP)
        _check_same_base(self.id, self.long_perp, self.short_perp)
        _check_usd_quoted(self.id, self.long_perp, self.short_perp)
        if self.long_perp == self.short_perp:
            raise CandidateError(self.id, f"long and short are the same instrument {self.long_perp}")

    @property
    def instruments(self) -> tuple[InstrumentId, ...]:
        return (self.long_perp, self.short_perp)


@dataclass(frozen=True, slots=True)
class CexDexCandidate:
    """A CEX book against a DEX pool quoted in the same base/quote.

    ``pool`` is the DEX quote's id in the market view (e.g. ``"uniswap_v2:0xBb2b…"``); the quote must be
    expressed in the CEX instrument's base and quote units (the DEX feed maps tokens and decimals).
    The CEX leg is walked to ``size_usd``; the DEX leg swaps the same base quantity. The DEX leg is always
    a taker (a swap), so ``passive_leg`` must be 0 (the CEX leg).
    """

    strategy: ClassVar[Strategy] = Strategy.CEX_DEX
    id: str
    cex: InstrumentId
    pool: str
    size_usd: float
    direction: DexDirection = DexDirection.BUY_CEX_SELL_DEX
    fee_profile: FeeProfile = FeeProfile.TAKER_DEFAULT
    passive_leg: int = 0
    rebalance_cost_usd: float = 0.0

    def __post_init__(self) -> None:
        _check_common(self.id, self.size_usd, self.rebalance_cost_usd, self.passive_leg, 1)
        if not self.pool:
            raise CandidateError(self.id, "pool must not be empty")
        _check_usd_quoted(self.id, self.cex)

    @property
    def instruments(self) -> tuple[InstrumentId, ...]:
        return (self.cex,)


Candidate = CexCexCandidate | PerpSpotBasisCandidate | FundingCarryCandidate | CexDexCandidate
