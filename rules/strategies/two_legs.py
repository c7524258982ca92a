"""The evaluation every strategy shares: two legs, matched base quantity, costs, limits, reasons.

A strategy module only describes its legs (:class:`~rules.strategies.legs.Setup`). Then
:func:`evaluate_two_legs`

1. takes the candidate's fixed part (rules, fee tiers, roles, names) from the constraints' memo;
2. reads each leg's book or DEX quote, caps the size at ``max_size_usd``, walks the first leg to
   ``size_usd`` (quote amount) and the second leg for the base quantity the first filled;
3. computes, in USD then in bps of the buy leg's notional: gross and top-of-book gross, fees
   (per leg by profile and tier, × 2 fills when held), rebalance, gas, funding, borrow, net;
4. checks limits (freshness, skew, depth, leverage, borrow) and lists every reason (``rules.reasons``).

Books are only read: top of book and one walk per leg. Nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from feeds.updates import FundingSource
from rules import dex as dexmath
from rules import funding as fundingmath
from rules.candidates import Candidate
from rules.constraints import Constraints, ResolvedRule
from rules.decision import BookState, Decision, FundingLeg, LegResult
from rules.fees import charges_rebalance
from rules.market import MarketView
from rules.reasons import Outcome, Reason, ordered
from rules.strategies.legs import LegState, LegStatic, Setup, cex_static, dex_static, fill, read_book, read_quote

_NAN = float("nan")
_HOUR_MS = 3_600_000.0
_FUNDING_TRUST = {FundingSource.ASSUMED: 0, FundingSource.REST: 1, FundingSource.LIVE: 2}


@dataclass(frozen=True, slots=True)
class _Limits:
    """What the two legs' rules fix for a candidate: size, skew and edge limits, the leverage check.

    Computed once per leg pair (not per evaluation): none of it depends on the market.
    """

    rules: tuple[ResolvedRule, ...]
    size: float  # size_usd after the max_size_usd caps
    max_skew: float | None
    min_edge: float | None
    leverage_notional: float
    leverages: tuple[float, float]
    leverage_used: float  # of the binding leg (highest used/max)
    max_leverage: float | None
    leverage_exceeded: bool


def _limits(legs: tuple[LegStatic, LegStatic], requested: float, multiplier: float) -> _Limits:
    rules = tuple(leg.rule for leg in legs if leg.rule is not None)
    caps = [r.max_size_usd for r in rules if r.max_size_usd is not None]
    size = min(requested, *caps) if caps else requested
    skews = [r.max_leg_skew_ms for r in rules if r.max_leg_skew_ms is not None]
    edges = [r.min_net_edge_bps for r in rules if r.min_net_edge_bps is not None]
    # leverage: the strategy's notional over each leg's equity
    leverage_notional = size * multiplier
    leverages = []
    exceeded = False
    binding_ratio, leverage_used, max_leverage = -math.inf, _NAN, None
    for leg in legs:
        rule = leg.rule
        equity = rule.equity_usd if rule is not None else None
        used = leverage_notional / equity if equity is not None else _NAN
        leverages.append(used)
        limit = rule.max_leverage if rule is not None else None
        if limit is not None and not math.isnan(used):
            if used > limit:
                exceeded = True
            if used / limit > binding_ratio:
                binding_ratio, leverage_used, max_leverage = used / limit, used, limit
    return _Limits(
        rules=rules,
        size=size,
        max_skew=min(skews) if skews else None,
        min_edge=max(edges) if edges else None,
        leverage_notional=leverage_notional,
        leverages=(leverages[0], leverages[1]),
        leverage_used=leverage_used,
        max_leverage=max_leverage,
        leverage_exceeded=exceeded,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A candidate's fixed part under one Constraints (memoized there)."""

    setup: Setup
    first: LegStatic
    second: LegStatic | None  # None: a DEX leg, whose rule depends on the quote's venue
    dex_statics: dict[str | None, tuple[LegStatic, _Limits]]  # DEX venue -> its static (filled on demand)
    multiplier: float
    rebalance_usd: float
    limits: _Limits | None  # None with a DEX leg: it depends on the DEX leg's rule


def _prepare(candidate: Candidate, setup: Setup, constraints: Constraints) -> _Prepared:
    first = cex_static(setup.first, 0, candidate, constraints, setup)
    second = None if setup.second.pool is not None else cex_static(setup.second, 1, candidate, constraints, setup)
    multiplier = constraints.multiplier(candidate.strategy)
    return _Prepared(
        setup=setup,
        first=first,
        second=second,
        dex_statics={},
        multiplier=multiplier,
        rebalance_usd=candidate.rebalance_cost_usd if charges_rebalance(candidate.fee_profile) else 0.0,
        limits=_limits((first, second), candidate.size_usd, multiplier) if second is not None else None,
    )


def evaluate_two_legs(
    candidate: Candidate,
    describe: Callable[[Candidate], Setup],
    market: MarketView,
    constraints: Constraints,
    *,
    now_ns: int,
    now_ms: int,
) -> Decision:
    """Evaluate ``candidate`` as ``describe(candidate)`` lays out its legs."""
    prepared = constraints.derived(candidate, lambda: _prepare(candidate, describe(candidate), constraints))
    setup = prepared.setup
    held = setup.horizon_ms > 0
    reasons: list[Reason] = []

    # ---- read the market ------------------------------------------------------------------------------
    first = read_book(prepared.first, market)
    if prepared.second is not None and prepared.limits is not None:
        second = read_book(prepared.second, market)
        limits = prepared.limits
    else:
        quote = market.dex(setup.second.pool or "")
        venue = quote.venue if quote is not None else None
        found = prepared.dex_statics.get(venue)
        if found is None:
            static = dex_static(setup.second, 1, venue, constraints, setup)
            found = prepared.dex_statics[venue] = (
                static,
                _limits((prepared.first, static), candidate.size_usd, prepared.multiplier),
            )
        static, limits = found
        second = read_quote(static, quote)
    legs = (first, second)

    # ---- size and walks ---------------------------------------------------------------------------------
    requested = candidate.size_usd
    size = limits.size
    fill(first, market, quote=size)
    base_qty = first.fill.base if first.fill is not None else 0.0
    if base_qty > 0.0:
        fill(second, market, base=base_qty)

    # ---- data quality and depth, per leg ----------------------------------------------------------------
    ages = []
    for leg in legs:
        static = leg.static
        if static.constraints_missing:
            reasons.append(Reason.CONSTRAINTS_MISSING)
        if leg.state is not BookState.OK:
            reasons.append(Reason.BOOK_NOT_READY)
        age = (now_ns - leg.recv_ns) / 1e6 if leg.has_market else _NAN
        ages.append(age)
        max_age = static.rule.max_book_age_ms if static.rule is not None else None
        if max_age is not None and age > max_age:
            reasons.append(Reason.STALE_BOOK)
        if leg.fill is not None and not leg.fill.complete:
            reasons.append(Reason.INSUFFICIENT_DEPTH)
    # Skew compares order books only: a DEX pool state changes per block, its freshness is its own age.
    leg_skew, max_skew = _NAN, None
    if first.book is not None and second.book is not None:
        leg_skew = abs(first.recv_ns - second.recv_ns) / 1e6
        max_skew = limits.max_skew
        if max_skew is not None and leg_skew > max_skew:
            reasons.append(Reason.LEG_SKEW)

    # ---- prices (bps of the buy leg's notional) ---------------------------------------------------------
    buy, sell = (first, second) if setup.first.buy else (second, first)
    if buy.fill is not None and sell.fill is not None and buy.fill.base > 0.0 and sell.fill.base > 0.0:
        buy_vwap, sell_vwap, notional = buy.fill.vwap, sell.fill.vwap, buy.fill.quote
        gross_bps = (sell_vwap - buy_vwap) / buy_vwap * 1e4
        top_gross_bps = (sell.fill.top_price - buy.fill.top_price) / buy.fill.top_price * 1e4
    else:
        notional = gross_bps = top_gross_bps = _NAN

    # ---- costs: trading fees, gas, rebalance --------------------------------------------------------------
    fee_usd = []
    gas_usd = 0.0
    for leg in legs:
        filled_quote = leg.fill.quote if leg.fill is not None else _NAN
        if isinstance(leg.fill, dexmath.DexFill):
            fee_usd.append(leg.fill.fee_usd)
        else:
            fee_usd.append(leg.static.fee_bps / 1e4 * filled_quote * leg.static.fee_fills)
        if leg.static.plan.pool is not None:
            gas_usd += leg.quote.gas_usd if leg.quote is not None else _NAN
    trading_fees_usd = fee_usd[0] + fee_usd[1]

    # ---- funding --------------------------------------------------------------------------------------------
    funding_usd = 0.0
    fundings: list[FundingLeg | None] = [None, None]
    worst: FundingSource | None = None
    if held:
        for i, leg in enumerate(legs):
            position = leg.static.plan.funding_position
            if position == 0:
                continue
            view = market.funding(leg.static.plan.instrument)
            if view is None or not fundingmath.usable(view):
                reasons.append(Reason.FUNDING_UNKNOWN)
                continue
            count = fundingmath.settlements(now_ms, setup.horizon_ms, view.next_funding_ms, view.interval_ms)
            amount = position * view.rate * count * (leg.fill.quote if leg.fill is not None else _NAN)
            funding_usd += amount
            source = view.source
            if worst is None or _FUNDING_TRUST[source] < _FUNDING_TRUST[worst]:
                worst = source
            fundings[i] = FundingLeg(
                rate=view.rate,
                interval_ms=view.interval_ms,
                next_funding_ms=view.next_funding_ms,
                settlements=count,
                source=source,
                position="short" if position > 0 else "long",
                funding_usd=amount,
            )

    # ---- borrow ---------------------------------------------------------------------------------------------
    borrow_usd = borrow_cost_usd = 0.0
    max_borrow = borrow_rate = None
    if setup.borrow_leg is not None:
        lender = legs[setup.borrow_leg]
        borrow_usd = lender.fill.quote if lender.fill is not None else _NAN
        if lender.static.rule is not None:
            max_borrow = lender.static.rule.max_borrow_usd
            borrow_rate = lender.static.rule.borrow_rate_bps_per_hour
        rate = borrow_rate if borrow_rate is not None else _NAN
        borrow_cost_usd = rate / 1e4 * (setup.horizon_ms / _HOUR_MS) * borrow_usd
        if max_borrow is not None and borrow_usd > max_borrow:
            reasons.append(Reason.BORROW_LIMIT_EXCEEDED)

    # ---- leverage: the strategy's notional over each leg's equity (fixed per candidate: _limits) -------------
    leverages = limits.leverages
    if limits.leverage_exceeded:
        reasons.append(Reason.LEVERAGE_LIMIT_EXCEEDED)

    # ---- economics --------------------------------------------------------------------------------------------
    to_bps = 1e4 / notional
    trading_fees_bps = trading_fees_usd * to_bps
    rebalance_bps = prepared.rebalance_usd * to_bps
    gas_bps = gas_usd * to_bps
    fees_bps = trading_fees_bps + rebalance_bps + gas_bps
    funding_bps = funding_usd * to_bps
    borrow_bps = borrow_cost_usd * to_bps
    edge_bps = gross_bps + funding_bps
    after_fees_bps = gross_bps - fees_bps + funding_bps
    net_bps = gross_bps - fees_bps + funding_bps - borrow_bps
    min_edge = limits.min_edge
    if edge_bps <= 0.0:
        reasons.append(Reason.NO_GROSS_EDGE)
    elif after_fees_bps <= 0.0:
        reasons.append(Reason.FEE_DOMINATED)
    elif net_bps <= 0.0:
        reasons.append(Reason.BORROW_COST_DOMINATED)
    if min_edge is not None and net_bps < min_edge:
        reasons.append(Reason.BELOW_MIN_EDGE)

    # ---- the decision -----------------------------------------------------------------------------------------
    final = ordered(reasons) if reasons else ()
    return Decision(
        strategy=candidate.strategy,
        candidate_id=candidate.id,
        outcome=Outcome.REJECTED if final else Outcome.QUALIFIED,
        primary_reason=final[0] if final else None,
        reasons=final,
        direction=setup.direction,
        fee_profile=candidate.fee_profile,
        size_usd_requested=requested,
        size_usd=size,
        size_capped=size < requested,
        notional_usd=notional,
        base_qty=base_qty,
        horizon_ms=setup.horizon_ms,
        legs=(
            _leg_result(first, ages[0], fee_usd[0], leverages[0], fundings[0]),
            _leg_result(second, ages[1], fee_usd[1], leverages[1], fundings[1]),
        ),
        gross_bps=gross_bps,
        top_gross_bps=top_gross_bps,
        slippage_bps=top_gross_bps - gross_bps,
        trading_fees_bps=trading_fees_bps,
        rebalance_bps=rebalance_bps,
        gas_bps=gas_bps,
        fees_bps=fees_bps,
        funding_bps=funding_bps,
        funding_source=worst,
        borrow_usd=borrow_usd,
        max_borrow_usd=max_borrow,
        borrow_rate_bps_per_hour=borrow_rate,
        borrow_bps=borrow_bps,
        edge_bps=edge_bps,
        after_fees_bps=after_fees_bps,
        net_bps=net_bps,
        net_usd=net_bps * notional / 1e4,
        min_net_edge_bps=min_edge,
        leverage_used=limits.leverage_used,
        max_leverage=limits.max_leverage,
        leverage_notional_multiplier=prepared.multiplier,
        leverage_notional_usd=limits.leverage_notional,
        leg_skew_ms=leg_skew,
        max_leg_skew_ms=max_skew,
        overrides=constraints.overrides,
        now_ms=now_ms,
    )


def _leg_result(leg: LegState, age_ms: float, fee_usd: float, leverage: float, funding: FundingLeg | None) -> LegResult:
    static, result, rule = leg.static, leg.fill, leg.static.rule
    if result is None:
        vwap = top = _NAN
        base = quote = 0.0
        levels, complete = 0, None
    else:
        vwap, top, base, quote = result.vwap, result.top_price, result.base, result.quote
        levels, complete = result.levels, result.complete
    fee_bps = static.fee_bps
    if static.plan.pool is not None:  # a swap's fee is its pool fee, shown on the leg's notional
        fee_bps = fee_usd / quote * 1e4 if quote > 0.0 else _NAN
    return LegResult(
        name=static.plan.name,
        instrument=static.instrument,
        venue=static.venue,
        market=static.market,
        symbol=static.symbol,
        side=static.side,
        vwap=vwap,
        top_price=top,
        filled_base=base,
        filled_quote=quote,
        levels=levels,
        complete=complete,
        book_state=leg.state,
        book_age_ms=age_ms,
        max_book_age_ms=rule.max_book_age_ms if rule is not None else None,
        liquidity_role=static.role,
        fee_bps=fee_bps,
        fee_fills=static.fee_fills,
        fee_usd=fee_usd,
        fee_table=static.fee_table,
        equity_usd=rule.equity_usd if rule is not None else None,
        leverage_used=leverage,
        max_leverage=rule.max_leverage if rule is not None else None,
        rule=rule,
        funding=funding,
    )
