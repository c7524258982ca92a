"""Legs: what a strategy declares (:class:`LegPlan`, :class:`Setup`), what is fixed for a candidate under
given constraints (:class:`LegStatic`, built once and memoized), and what is read per evaluation
(:class:`LegState`: the book or DEX quote, its state, the fill).

Splitting the fixed part out keeps the per-update work to reading the market: rule and fee lookups,
canonical names and fee roles are computed on a candidate's first evaluation only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from feeds.instruments import InstrumentId
from rules import dex as dexmath
from rules.candidates import Candidate
from rules.constraints import Constraints, FeeUsed, ResolvedRule
from rules.decision import BookState
from rules.fees import LiquidityRole, liquidity_role
from rules.market import BookView, DexQuote, FillView, MarketView
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
    return LegStatic(
        plan=plan,
        venue=inst.venue,
        market=inst.market,
        symbol=inst.symbol,
        instrument=str(inst),
        side="buy" if plan.buy else "sell",
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
    return LegStatic(
        plan=plan,
        venue=name,
        market=AMM_MARKET,
        symbol=pool,
        instrument=f"{name}:{AMM_MARKET}:{pool}",
        side="buy" if plan.buy else "sell",
        rule=rule,
        fee_table=None,
        role=LiquidityRole.TAKER,
        fee_bps=_NAN,
        fee_fills=1,
        # no quote = no DEX venue to look up: that is book_not_ready, not missing constraints
        constraints_missing=venue is not None and _missing(rule, setup.borrow_leg == index),
    )


@dataclass(slots=True)
class LegState:
    """One leg during one evaluation."""

    static: LegStatic
    book: BookView | None = None
    quote: DexQuote | None = None
    state: BookState = BookState.MISSING
    recv_ns: int = 0
    fill: FillView | dexmath.DexFill | None = None

    @property
    def has_market(self) -> bool:
        return self.book is not None or self.quote is not None


def read_book(static: LegStatic, market: MarketView) -> LegState:
    leg = LegState(static)
    book = leg.book = market.book(static.plan.instrument)
    if book is not None:
        leg.recv_ns = book.recv_ns
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if math.isnan(bid) or math.isnan(ask):
            leg.state = BookState.EMPTY
        else:  # OrderBook.is_crossed()'s test, without reading the top twice
            leg.state = BookState.CROSSED if bid >= ask else BookState.OK
    return leg


def read_quote(static: LegStatic, quote: DexQuote | None) -> LegState:
    leg = LegState(static, quote=quote)
    if quote is not None:
        leg.recv_ns = quote.recv_ns
        leg.state = BookState.OK if dexmath.usable(quote) else BookState.UNUSABLE
    return leg


def fill(leg: LegState, market: MarketView, *, base: float | None = None, quote: float | None = None) -> None:
    """Walk the leg's book (or swap against its DEX quote) for ``base`` or ``quote`` units."""
    if leg.book is not None:
        side = market.ask_side if leg.static.plan.buy else market.bid_side
        leg.fill = leg.book.walk(side, base=base, quote=quote)
    elif leg.quote is not None and leg.state is BookState.OK and base is not None:
        leg.fill = dexmath.swap_base(leg.quote, base, buy=leg.static.plan.buy)
        if leg.fill is None:
            leg.state = BookState.UNUSABLE  # a router quote for the other direction
