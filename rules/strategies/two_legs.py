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

This runs after every book update for every candidate touching the book, so it is written for speed
(``python -m bench.rules_micro``) without changing a bit of its output: the two legs are plain locals
(``*0`` the first leg, ``*1`` the second) rather than per-call objects, reasons are OR-ed bit flags
(``rules.reasons.from_flags``), and the msgspec structs are built positionally, which is several times
faster than by keyword for structs this wide; :func:`_check_fields` keeps that honest at import.
Every float expression keeps the exact operations and order of the formulas in the docstrings (so the
numbers are reproducible to the bit): do not "simplify" one without checking the outputs byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from math import isfinite

import msgspec

from feeds.updates import FundingSource
from rules import dex as dexmath
from rules import funding as fundingmath
from rules.candidates import Candidate
from rules.constraints import Constraints, ResolvedRule
from rules.decision import BookState, Decision, FundingLeg, LegResult
from rules.fees import charges_rebalance
from rules.market import BookView, DexQuote, FillView, MarketView
from rules.reasons import FLAG, Outcome, Reason, from_flags
from rules.strategies.legs import LegStatic, Setup, cex_static, dex_static

_NAN = float("nan")
# How close to a threshold a number in bps counts as on it. Float rounding moves a number computed from
# decimal prices and whole-bps fees by ~1e-12 bps; a price tick moves it by ~1e-3 bps or more.
_TIE_BPS = 1e-9
_HOUR_MS = 3_600_000.0
_FUNDING_TRUST: dict[str, int] = {FundingSource.ASSUMED: 0, FundingSource.REST: 1, FundingSource.LIVE: 2}
_OK, _EMPTY, _CROSSED = BookState.OK, BookState.EMPTY, BookState.CROSSED
_MISSING, _UNUSABLE = BookState.MISSING, BookState.UNUSABLE
_QUALIFIED, _REJECTED = Outcome.QUALIFIED, Outcome.REJECTED
_DexFill = dexmath.DexFill
_CONSTRAINTS_MISSING = FLAG[Reason.CONSTRAINTS_MISSING]
_BOOK_NOT_READY = FLAG[Reason.BOOK_NOT_READY]
_STALE_BOOK = FLAG[Reason.STALE_BOOK]
_LEG_SKEW = FLAG[Reason.LEG_SKEW]
_FUNDING_UNKNOWN = FLAG[Reason.FUNDING_UNKNOWN]
_INSUFFICIENT_DEPTH = FLAG[Reason.INSUFFICIENT_DEPTH]
_LEVERAGE_LIMIT_EXCEEDED = FLAG[Reason.LEVERAGE_LIMIT_EXCEEDED]
_BORROW_LIMIT_EXCEEDED = FLAG[Reason.BORROW_LIMIT_EXCEEDED]
_NO_GROSS_EDGE = FLAG[Reason.NO_GROSS_EDGE]
_FEE_DOMINATED = FLAG[Reason.FEE_DOMINATED]
_BORROW_COST_DOMINATED = FLAG[Reason.BORROW_COST_DOMINATED]
_BELOW_MIN_EDGE = FLAG[Reason.BELOW_MIN_EDGE]


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
    cex_second: tuple[LegStatic, _Limits] | None  # None: a DEX leg, whose rule depends on the quote's venue
    dex_statics: dict[str | None, tuple[LegStatic, _Limits]]  # DEX venue -> its static (filled on demand)
    multiplier: float
    rebalance_usd: float
    # the candidate's own fields (a frozen candidate: read once here rather than on every evaluation)
    strategy: str
    candidate_id: str
    fee_profile: str
    requested: float


def _prepare(candidate: Candidate, setup: Setup, constraints: Constraints) -> _Prepared:
    first = cex_static(setup.first, 0, candidate, constraints, setup)
    multiplier = constraints.multiplier(candidate.strategy)
    cex_second = None
    if setup.second.pool is None:
        second = cex_static(setup.second, 1, candidate, constraints, setup)
        cex_second = (second, _limits((first, second), candidate.size_usd, multiplier))
    return _Prepared(
        setup=setup,
        first=first,
        cex_second=cex_second,
        dex_statics={},
        multiplier=multiplier,
        rebalance_usd=candidate.rebalance_cost_usd if charges_rebalance(candidate.fee_profile) else 0.0,
        strategy=candidate.strategy,
        candidate_id=candidate.id,
        fee_profile=candidate.fee_profile,
        requested=candidate.size_usd,
    )


def _prepare_described(
    candidate: Candidate, describe: Callable[[Candidate], Setup], constraints: Constraints
) -> _Prepared:
    return _prepare(candidate, describe(candidate), constraints)


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
    prepared = constraints.derived(candidate, _prepare_described, candidate, describe, constraints)
    setup = prepared.setup
    horizon_ms = setup.horizon_ms
    flags = 0  # reasons, as rules.reasons.FLAG bits

    # ---- read the market ------------------------------------------------------------------------------
    # Both legs' top of book (their state) is read before any walk. A book's state is ok, empty (a side
    # without a level: its price is NaN, and x != x only for a NaN) or crossed (best bid >= best ask):
    # OrderBook.is_crossed()'s test without reading the top twice, inline (a helper call per leg costs ~5 %).
    static0 = prepared.first
    book0 = market.book(static0.instrument_id)
    recv0, state0 = 0, _MISSING
    if book0 is not None:
        recv0, bid, ask = book0.recv_ns, book0.best_bid_price(), book0.best_ask_price()
        state0 = _EMPTY if bid != bid or ask != ask else _CROSSED if bid >= ask else _OK  # noqa: PLR0124
    book1: BookView | None = None
    quote1: DexQuote | None = None
    recv1, state1 = 0, _MISSING
    cex_second = prepared.cex_second
    if cex_second is not None:
        static1, limits = cex_second
        book1 = market.book(static1.instrument_id)
        if book1 is not None:
            recv1, bid, ask = book1.recv_ns, book1.best_bid_price(), book1.best_ask_price()
            state1 = _EMPTY if bid != bid or ask != ask else _CROSSED if bid >= ask else _OK  # noqa: PLR0124
    else:
        quote1 = market.dex(setup.second.pool or "")
        static1, limits = _dex_static(prepared, quote1, constraints)
        if quote1 is not None:
            recv1 = quote1.recv_ns
            state1 = _OK if dexmath.usable(quote1) else _UNUSABLE

    # ---- size and walks ---------------------------------------------------------------------------------
    size = limits.size
    fill0: FillView | None = None
    if book0 is not None:
        fill0 = book0.walk(market.ask_side if static0.buy else market.bid_side, quote=size)
    base_qty = fill0.base if fill0 is not None else 0.0
    fill1: FillView | dexmath.DexFill | None = None
    if base_qty > 0.0:
        if book1 is not None:
            fill1 = book1.walk(market.ask_side if static1.buy else market.bid_side, base=base_qty)
        elif quote1 is not None and state1 is _OK:
            fill1 = dexmath.swap_base(quote1, base_qty, buy=static1.buy)
            if fill1 is None:
                state1 = _UNUSABLE  # a router quote for the other direction

    # ---- data quality and depth, per leg ----------------------------------------------------------------
    if static0.constraints_missing or static1.constraints_missing:
        flags |= _CONSTRAINTS_MISSING
    if state0 is not _OK or state1 is not _OK:
        flags |= _BOOK_NOT_READY
    age0 = (now_ns - recv0) / 1e6 if book0 is not None else _NAN
    age1 = (now_ns - recv1) / 1e6 if book1 is not None or quote1 is not None else _NAN
    max_age0, max_age1 = static0.max_book_age_ms, static1.max_book_age_ms
    if (max_age0 is not None and age0 > max_age0) or (max_age1 is not None and age1 > max_age1):
        flags |= _STALE_BOOK
    if (fill0 is not None and not fill0.complete) or (fill1 is not None and not fill1.complete):
        flags |= _INSUFFICIENT_DEPTH
    # Skew compares order books only: a DEX pool state changes per block, its freshness is its own age.
    leg_skew, max_skew = _NAN, None
    if book0 is not None and book1 is not None:
        leg_skew = abs(recv0 - recv1) / 1e6
        max_skew = limits.max_skew
        if max_skew is not None and leg_skew > max_skew:
            flags |= _LEG_SKEW

    # ---- prices (bps of the buy leg's notional) ---------------------------------------------------------
    buy, sell = (fill0, fill1) if static0.buy else (fill1, fill0)
    if buy is not None and sell is not None and buy.base > 0.0 and sell.base > 0.0:
        buy_vwap, notional = buy.vwap, buy.quote
        gross_bps = (sell.vwap - buy_vwap) / buy_vwap * 1e4
        buy_top = buy.top_price
        top_gross_bps = (sell.top_price - buy_top) / buy_top * 1e4
    else:
        notional = gross_bps = top_gross_bps = _NAN

    # ---- costs: trading fees, gas, rebalance --------------------------------------------------------------
    # A CEX leg: fee_bps / 1e4 × filled quote × fills (fee_rate is the first step, precomputed); the first
    # leg is always a CEX book. A DEX leg: its pool fee, from the swap.
    fee0 = static0.fee_rate * (fill0.quote if fill0 is not None else _NAN) * static0.fee_fills
    if isinstance(fill1, _DexFill):
        fee1 = fill1.fee_usd
    else:
        fee1 = static1.fee_rate * (fill1.quote if fill1 is not None else _NAN) * static1.fee_fills
    gas_usd = 0.0
    if static1.pool is not None:
        gas_usd += quote1.gas_usd if quote1 is not None else _NAN
    trading_fees_usd = fee0 + fee1

    # ---- funding --------------------------------------------------------------------------------------------
    funding_usd = 0.0
    funding0 = funding1 = None
    worst: str | None = None  # a FundingSource
    if horizon_ms > 0:  # held
        if static0.funding_position != 0:
            funding0 = _funding(static0, fill0, market, now_ms, horizon_ms)
            if funding0 is None:
                flags |= _FUNDING_UNKNOWN
            else:
                funding_usd += funding0.funding_usd
                worst = funding0.source
        if static1.funding_position != 0:
            funding1 = _funding(static1, fill1, market, now_ms, horizon_ms)
            if funding1 is None:
                flags |= _FUNDING_UNKNOWN
            else:
                funding_usd += funding1.funding_usd
                source = funding1.source
                if worst is None or _FUNDING_TRUST[source] < _FUNDING_TRUST[worst]:
                    worst = source

    # ---- borrow ---------------------------------------------------------------------------------------------
    borrow_usd = borrow_cost_usd = 0.0
    max_borrow = borrow_rate = None
    borrow_leg = setup.borrow_leg
    if borrow_leg is not None:
        lender, lent = (static0, fill0) if borrow_leg == 0 else (static1, fill1)
        borrow_usd = lent.quote if lent is not None else _NAN
        if lender.rule is not None:
            max_borrow = lender.rule.max_borrow_usd
            borrow_rate = lender.rule.borrow_rate_bps_per_hour
        rate = borrow_rate if borrow_rate is not None else _NAN
        borrow_cost_usd = rate / 1e4 * (horizon_ms / _HOUR_MS) * borrow_usd
        if max_borrow is not None and borrow_usd > max_borrow:
            flags |= _BORROW_LIMIT_EXCEEDED

    # ---- leverage: the strategy's notional over each leg's equity (fixed per candidate: _limits) -------------
    if limits.leverage_exceeded:
        flags |= _LEVERAGE_LIMIT_EXCEEDED

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
    net_bps = after_fees_bps - borrow_bps  # gross − fees + funding − borrow, the same operations in order
    min_edge = limits.min_edge
    # Ties are decided as the exact decimal numbers would be (_TIE_BPS): a net of exactly the minimum edge
    # qualifies, an edge of exactly 0 does not, whatever the last bit of the float arithmetic says.
    if edge_bps <= _TIE_BPS:
        flags |= _NO_GROSS_EDGE
    elif after_fees_bps <= _TIE_BPS:
        flags |= _FEE_DOMINATED
    elif net_bps <= _TIE_BPS:
        flags |= _BORROW_COST_DOMINATED
    if min_edge is not None and net_bps < min_edge - _TIE_BPS:
        flags |= _BELOW_MIN_EDGE
    if not flags and not isfinite(net_bps):
        # NaN fails every comparison above, so without this it would qualify. Validated inputs cannot get
        # here (constraint values are finite, books and quotes usable); a value that is not is as good as missing.
        flags |= _CONSTRAINTS_MISSING

    # ---- the decision (positional: see _DECISION_FIELDS) -------------------------------------------------------
    reasons = from_flags(flags)
    requested = prepared.requested
    leverages = limits.leverages
    return Decision(
        prepared.strategy,  # strategy
        prepared.candidate_id,  # candidate_id
        _REJECTED if flags else _QUALIFIED,  # outcome
        reasons[0] if flags else None,  # primary_reason
        reasons,  # reasons
        setup.direction,  # direction
        prepared.fee_profile,  # fee_profile
        requested,  # size_usd_requested
        size,  # size_usd
        size < requested,  # size_capped
        notional,  # notional_usd
        base_qty,  # base_qty
        horizon_ms,  # horizon_ms
        (  # legs
            _leg_result(static0, fill0, state0, age0, fee0, leverage=leverages[0], funding=funding0),
            _leg_result(static1, fill1, state1, age1, fee1, leverage=leverages[1], funding=funding1),
        ),
        gross_bps,  # gross_bps
        top_gross_bps,  # top_gross_bps
        top_gross_bps - gross_bps,  # slippage_bps
        trading_fees_bps,  # trading_fees_bps
        rebalance_bps,  # rebalance_bps
        gas_bps,  # gas_bps
        fees_bps,  # fees_bps
        funding_bps,  # funding_bps
        worst,  # funding_source
        borrow_usd,  # borrow_usd
        max_borrow,  # max_borrow_usd
        borrow_rate,  # borrow_rate_bps_per_hour
        borrow_bps,  # borrow_bps
        edge_bps,  # edge_bps
        after_fees_bps,  # after_fees_bps
        net_bps,  # net_bps
        net_bps * notional / 1e4,  # net_usd
        min_edge,  # min_net_edge_bps
        limits.leverage_used,  # leverage_used
        limits.max_leverage,  # max_leverage
        prepared.multiplier,  # leverage_notional_multiplier
        limits.leverage_notional,  # leverage_notional_usd
        leg_skew,  # leg_skew_ms
        max_skew,  # max_leg_skew_ms
        constraints.overrides,  # overrides
        now_ms,  # now_ms
    )


def _dex_static(prepared: _Prepared, quote: DexQuote | None, constraints: Constraints) -> tuple[LegStatic, _Limits]:
    """The DEX leg's static and the pair's limits, for the quote's venue (built on its first sight)."""
    venue = quote.venue if quote is not None else None
    found = prepared.dex_statics.get(venue)
    if found is None:
        setup = prepared.setup
        static = dex_static(setup.second, 1, venue, constraints, setup)
        found = prepared.dex_statics[venue] = (
            static,
            _limits((prepared.first, static), prepared.requested, prepared.multiplier),
        )
    return found


def _funding(
    static: LegStatic, fill: FillView | dexmath.DexFill | None, market: MarketView, now_ms: int, horizon_ms: int
) -> FundingLeg | None:
    """A held perp leg's funding over the horizon; ``None`` when the market has no usable funding for it."""
    view = market.funding(static.instrument_id)
    if view is None or not (view.interval_ms > 0 and isfinite(view.rate)):  # rules.funding.usable, inline
        return None
    rate, interval_ms, next_funding_ms = view.rate, view.interval_ms, view.next_funding_ms
    if fundingmath.missed(next_funding_ms, view.source, now_ms):
        return None  # from a feed that stopped: its rate is not live any more (rules.funding)
    count = fundingmath.settlements(now_ms, horizon_ms, next_funding_ms, interval_ms)
    position = static.funding_position
    amount = position * rate * count * (fill.quote if fill is not None else _NAN)
    return FundingLeg(
        rate,  # rate
        interval_ms,  # interval_ms
        next_funding_ms,  # next_funding_ms
        count,  # settlements
        view.source,  # source
        "short" if position > 0 else "long",  # position
        amount,  # funding_usd
    )


def _leg_result(
    static: LegStatic,
    result: FillView | dexmath.DexFill | None,
    state: BookState,
    age_ms: float,
    fee_usd: float,
    *,
    leverage: float,
    funding: FundingLeg | None,
) -> LegResult:
    if result is None:
        vwap = top = _NAN
        base = quote = 0.0
        levels, complete = 0, None
    else:
        vwap, top, base, quote = result.vwap, result.top_price, result.base, result.quote
        levels, complete = result.levels, result.complete
    fee_bps = static.fee_bps
    if static.pool is not None:  # a swap's fee is its pool fee, shown on the leg's notional
        fee_bps = fee_usd / quote * 1e4 if quote > 0.0 else _NAN
    return LegResult(
        static.plan.name,  # name
        static.instrument,  # instrument
        static.venue,  # venue
        static.market,  # market
        static.symbol,  # symbol
        static.side,  # side
        vwap,  # vwap
        top,  # top_price
        base,  # filled_base
        quote,  # filled_quote
        levels,  # levels
        complete,  # complete
        state,  # book_state
        age_ms,  # book_age_ms
        static.max_book_age_ms,  # max_book_age_ms
        static.role,  # liquidity_role
        fee_bps,  # fee_bps
        static.fee_fills,  # fee_fills
        fee_usd,  # fee_usd
        static.fee_table,  # fee_table
        static.equity_usd,  # equity_usd
        leverage,  # leverage_used
        static.max_leverage,  # max_leverage
        static.rule,  # rule
        funding,  # funding
    )


# The structs above are built positionally, in these field orders (the contract with scanner/ and the
# journal); a field added, removed or moved in rules/decision.py must be mirrored in the calls above.
_DECISION_FIELDS = (
    "strategy", "candidate_id", "outcome", "primary_reason", "reasons", "direction", "fee_profile",
    "size_usd_requested", "size_usd", "size_capped", "notional_usd", "base_qty", "horizon_ms", "legs",
    "gross_bps", "top_gross_bps", "slippage_bps", "trading_fees_bps", "rebalance_bps", "gas_bps", "fees_bps",
    "funding_bps", "funding_source", "borrow_usd", "max_borrow_usd", "borrow_rate_bps_per_hour", "borrow_bps",
    "edge_bps", "after_fees_bps", "net_bps", "net_usd", "min_net_edge_bps", "leverage_used", "max_leverage",
    "leverage_notional_multiplier", "leverage_notional_usd", "leg_skew_ms", "max_leg_skew_ms", "overrides",
    "now_ms",
)  # fmt: skip
_LEG_RESULT_FIELDS = (
    "name", "instrument", "venue", "market", "symbol", "side", "vwap", "top_price", "filled_base",
    "filled_quote", "levels", "complete", "book_state", "book_age_ms", "max_book_age_ms", "liquidity_role",
    "fee_bps", "fee_fills", "fee_usd", "fee_table", "equity_usd", "leverage_used", "max_leverage", "rule",
    "funding",
)  # fmt: skip
_FUNDING_LEG_FIELDS = ("rate", "interval_ms", "next_funding_ms", "settlements", "source", "position", "funding_usd")


def _check_fields(struct: type[msgspec.Struct], expected: tuple[str, ...]) -> None:
    if struct.__struct_fields__ != expected:
        raise TypeError(
            f"{struct.__name__} fields {struct.__struct_fields__} differ from the positional order "
            f"rules.strategies.two_legs builds it with: {expected}"
        )


_check_fields(Decision, _DECISION_FIELDS)
_check_fields(LegResult, _LEG_RESULT_FIELDS)
_check_fields(FundingLeg, _FUNDING_LEG_FIELDS)
