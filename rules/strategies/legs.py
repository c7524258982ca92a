"""Legs: what a strategy declares (:class:`LegPlan`, :class:`Setup`) and what is fixed for a candidate under
given constraints (:class:`LegStatic`, built once and memoized).

Splitting the fixed part out keeps the per-update work to reading the market: rule and fee lookups,
canonical names and fee roles are computed on a candidate's first evaluation only. What is read per
evaluation (book or DEX quote, state, fill) lives in the evaluator's locals (``rules.strategies.two_legs``):
one small object per leg and update was a measurable share of an evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from feeds.instruments import InstrumentId
from rules.candidates import Candidate
from rules.constraints import Constraints, FeeUsed, ResolvedRule
from rules.fees import LiquidityRole, liquidity_role
from rules.model import AMM_MARKET

_NAN = float("nan")

# Every leg needs these limits; the borrowing leg also needs the borrow limit and rate.
REQUIRED = ("max_leverage", "equity_usd", "min_net_edge_bps", "max_size_usd", "max_book_age_ms", "max_leg_skew_ms")
REQUIRED_TO_BORROW = ("max_borrow_usd", "borrow_rate_bps_per_hour")


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One leg as a strategy declares it. ``pool`` set = a DEX leg (``instrument`` is then the CEX pair)."""

    name: str
    instrument: InstrumentId
    buy: bool
    funding_position: int = 0  # +1 short (receives a positive rate), -1 long, 0 no funding counted
    pool: str | None = None


@dataclass(frozen=True, slots=True)
class Setup:
    """A strategy's description of a candidate: two legs, and for held positions the horizon and borrower."""

    first: LegPlan  # a CEX book, walked to size_usd
    second: LegPlan  # matches the first leg's base quantity
    horizon_ms: int = 0  # > 0: held (round-trip fees, funding, borrow)
    borrow_leg: int | None = None
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class LegStatic:
    """Everything about a leg that does not change between evaluations (under one Constraints)."""

    plan: LegPlan
    venue: str
    market: str
    symbol: str
    instrument: str
    side: str
    rule: ResolvedRule | None
    fee_table: FeeUsed | None
    role: LiquidityRole
    fee_bps: float  # CEX legs: per fill by role and tier (NaN without a table); DEX legs: from the fill
    fee_fills: int
    constraints_missing: bool
    # Copies of plan and rule values the evaluator reads on every update (one attribute, not a chain):
    instrument_id: InstrumentId  # plan.instrument
    buy: bool  # plan.buy
    funding_position: int  # plan.funding_position
    pool: str | None  # plan.pool
    fee_rate: float  # fee_bps / 1e4, the first step of fee_bps / 1e4 × notional × fills (same float)
    max_book_age_ms: float | None  # of rule
    equity_usd: float | None  # of rule
    max_leverage: float | None  # of rule


def _static(
    plan: LegPlan,
    *,
    venue: str,
    market: str,
    symbol: str,
    instrument: str,
    rule: ResolvedRule | None,
    fee_table: FeeUsed | None,
    role: LiquidityRole,
    fee_bps: float,
    fee_fills: int,
    constraints_missing: bool,
) -> LegStatic:
    return LegStatic(
        plan=plan,
        venue=venue,
        market=market,
        symbol=symbol,
        instrument=instrument,
        side="buy" if plan.buy else "sell",
        rule=rule,
        fee_table=fee_table,
        role=role,
        fee_bps=fee_bps,
        fee_fills=fee_fills,
        constraints_missing=constraints_missing,
        instrument_id=plan.instrument,
        buy=plan.buy,
        funding_position=plan.funding_position,
        pool=plan.pool,
        fee_rate=fee_bps / 1e4,
        max_book_age_ms=rule.max_book_age_ms if rule is not None else None,
        equity_usd=rule.equity_usd if rule is not None else None,
        max_leverage=rule.max_leverage if rule is not None else None,
    )


def _missing(rule: ResolvedRule | None, borrows: bool) -> bool:
    if rule is None:
        return True
    if not rule.missing:
        return False
    needed = REQUIRED + REQUIRED_TO_BORROW if borrows else REQUIRED
    return any(name in rule.missing for name in needed)


def cex_static(plan: LegPlan, index: int, candidate: Candidate, constraints: Constraints, setup: Setup) -> LegStatic:
    inst = plan.instrument
    rule = constraints.rule_for(inst.venue, inst.market, inst.base)
    table = constraints.fees_for(inst.venue, inst.market)
    role = liquidity_role(candidate.fee_profile, index, candidate.passive_leg)
    fee_bps = _NAN
    if table is not None:
        fee_bps = table.maker_bps if role is LiquidityRole.MAKER else table.taker_bps
    return _static(
        plan,
        venue=inst.venue,
        market=inst.market,
        symbol=inst.symbol,
        instrument=str(inst),
        rule=rule,
        fee_table=table,
        role=role,
        fee_bps=fee_bps,
        fee_fills=2 if setup.horizon_ms > 0 else 1,
        constraints_missing=table is None or _missing(rule, setup.borrow_leg == index),
    )


def dex_static(plan: LegPlan, index: int, venue: str | None, constraints: Constraints, setup: Setup) -> LegStatic:
    """A DEX leg; ``venue`` is the quote's DEX name, ``None`` when there is no quote (then no rule either)."""
    pool = plan.pool or ""
    rule = constraints.rule_for(venue, AMM_MARKET, plan.instrument.base) if venue is not None else None
    name = venue if venue is not None else "dex"
    return _static(
        plan,
        venue=name,
        market=AMM_MARKET,
        symbol=pool,
        instrument=f"{name}:{AMM_MARKET}:{pool}",
        rule=rule,
        fee_table=None,
        role=LiquidityRole.TAKER,
        fee_bps=_NAN,
        fee_fills=1,
        # no quote = no DEX venue to look up: that is book_not_ready, not missing constraints
        constraints_missing=venue is not None and _missing(rule, setup.borrow_leg == index),
    )
