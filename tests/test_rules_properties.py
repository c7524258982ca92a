"""Properties of the economics (hypothesis), on real ``OrderBook`` objects unless a test says otherwise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.book import Fill, OrderBook
from feeds.instruments import InstrumentId
from rules import (
    PRECEDENCE,
    BasisDirection,
    Candidate,
    CexCexCandidate,
    CexDexCandidate,
    ConstantProductPool,
    Decision,
    DexDirection,
    FeeProfile,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
    QuotedSwap,
    Reason,
    evaluate,
)
from rules.constraints import Constraints
from scanner.market import StaticMarket
from tests.rules_fixtures import (
    BIN_PERP,
    BIN_SPOT,
    BYBIT_PERP,
    HOUR_MS,
    MS,
    OKX_SPOT,
    book,
    funding,
    simple_constraints,
)

NOW_NS = 100_000 * MS
NOW_MS = 1_723_161_600_000
ALL_FEES = {("binance", "spot"): 10.0, ("okx", "spot"): 10.0, ("binance", "usdm"): 5.0, ("bybit", "linear"): 5.5}


@st.composite
def books(draw: st.DrawFn, *, mid: float | None = None, recv_ns: int = NOW_NS) -> OrderBook:
    """A sane book: 1-6 levels a side around a mid, positive spread."""
    m = mid if mid is not None else draw(st.floats(95.0, 105.0))
    half = draw(st.floats(0.005, 0.5))
    n_bids, n_asks = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    steps = st.lists(st.floats(0.01, 0.5), min_size=6, max_size=6)
    qty = st.lists(st.floats(0.01, 5.0), min_size=6, max_size=6)
    bid_steps, ask_steps, bid_qty, ask_qty = draw(steps), draw(steps), draw(qty), draw(qty)
    bids, price = [], m - half
    for i in range(n_bids):
        bids.append((round(price, 6), bid_qty[i]))
        price -= bid_steps[i]
    asks, price = [], m + half
    for i in range(n_asks):
        asks.append((round(price, 6), ask_qty[i]))
        price += ask_steps[i]
    return book(bids, asks, recv_ns=recv_ns)


def fees_constraints(fees: dict[tuple[str, str], float], **kwargs: Any) -> Constraints:
    return simple_constraints(fees={k: (v, v) for k, v in fees.items()}, **kwargs)


# ---- higher fees never raise net ----------------------------------------------------------------------------


@given(
    a=books(),
    b=books(),
    perp=books(),
    size=st.floats(1.0, 2_000.0),
    base_fees=st.fixed_dictionaries({k: st.floats(0.0, 30.0) for k in ALL_FEES}),
    extra=st.fixed_dictionaries({k: st.floats(0.0, 30.0) for k in ALL_FEES}),
    rate=st.floats(-0.001, 0.001),
)
def test_higher_fees_never_raise_net(a, b, perp, size, base_fees, extra, rate):  # noqa: PLR0917 (hypothesis)
    """For every strategy, raising any fee table's rates leaves net the same or lower."""
    market = StaticMarket(
        books={BIN_SPOT: a, OKX_SPOT: b, BIN_PERP: perp, BYBIT_PERP: b},
        fundings={
            BIN_PERP: funding(rate, interval_h=8, next_ms=NOW_MS + 1),
            BYBIT_PERP: funding(0.0, interval_h=4, next_ms=NOW_MS + 1),
        },
    )
    cheap = fees_constraints(base_fees)
    dear = fees_constraints({k: base_fees[k] + extra[k] for k in ALL_FEES})
    for cand in candidates(size):
        low = evaluate(cand, market, cheap, now_ns=NOW_NS, now_ms=NOW_MS)
        high = evaluate(cand, market, dear, now_ns=NOW_NS, now_ms=NOW_MS)
        assert high.fees_bps >= low.fees_bps
        assert high.net_bps <= low.net_bps, cand.id


def candidates(size: float) -> list[Candidate]:
    h = 24 * HOUR_MS
    return [
        CexCexCandidate(id="cc", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=size),
        PerpSpotBasisCandidate(id="fwd", spot=BIN_SPOT, perp=BIN_PERP, size_usd=size, horizon_ms=h),
        PerpSpotBasisCandidate(
            id="rev",
            spot=BIN_SPOT,
            perp=BIN_PERP,
            size_usd=size,
            horizon_ms=h,
            direction=BasisDirection.SHORT_SPOT_LONG_PERP,
        ),
        FundingCarryCandidate(id="fc", long_perp=BIN_PERP, short_perp=BYBIT_PERP, size_usd=size, horizon_ms=h),
    ]


# ---- a larger size never improves VWAP ----------------------------------------------------------------------


@given(a=books(), b=books(), s1=st.floats(1.0, 1_500.0), s2=st.floats(1.0, 1_500.0))
def test_larger_size_never_improves_vwap(a, b, s1, s2):
    """Buying more pays an equal or higher VWAP; selling more gets an equal or lower one; gross never rises."""
    small, large = sorted((s1, s2))
    market = StaticMarket(books={BIN_SPOT: a, OKX_SPOT: b})
    constraints = fees_constraints(ALL_FEES)
    d1 = evaluate(
        CexCexCandidate(id="s", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=small),
        market,
        constraints,
        now_ns=NOW_NS,
        now_ms=NOW_MS,
    )
    d2 = evaluate(
        CexCexCandidate(id="l", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=large),
        market,
        constraints,
        now_ns=NOW_NS,
        now_ms=NOW_MS,
    )
    eps = 1e-12  # VWAP = quote / base is rounded once
    assert d2.legs[0].vwap >= d1.legs[0].vwap * (1 - eps)
    assert d2.legs[1].vwap <= d1.legs[1].vwap * (1 + eps)
    assert d2.gross_bps <= d1.gross_bps + 1e-8
    assert d2.base_qty >= d1.base_qty


# ---- swapping buy and sell venues negates gross ---------------------------------------------------------------


@dataclass
class FlatBook:
    """A BookView that fills any amount at one price on both sides (a price-taker venue).

    With the same execution price on both sides, swapping the venues must exactly negate the price
    difference. Real books (below) have a spread, so the swap cannot negate: it can only make one of the
    two directions profitable.
    """

    price: float
    recv_ns: int = NOW_NS
    venue_ms: int = 0
    version: int = 1

    def best_bid_price(self) -> float:
        return self.price

    def best_ask_price(self) -> float:
        return self.price

    def is_crossed(self) -> bool:
        return False

    def walk(self, consume: Any, *, base: float | None = None, quote: float | None = None) -> Fill:
        b = base if base is not None else quote / self.price  # type: ignore[operator]
        return Fill(self.price, b, b * self.price, self.price, 1, True)


@given(pa=st.floats(50.0, 150.0), pb=st.floats(50.0, 150.0), size=st.floats(1.0, 10_000.0))
def test_swapping_buy_and_sell_venues_negates_gross(pa, pb, size):
    """At the same prices, B→A gross is A→B gross negated (per unit of base: gross × buy price)."""
    market = StaticMarket(books={BIN_SPOT: FlatBook(pa), OKX_SPOT: FlatBook(pb)})  # type: ignore[dict-item]
    constraints = fees_constraints(ALL_FEES)
    ab = CexCexCandidate(id="ab", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=size)
    d_ab = evaluate(ab, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    d_ba = evaluate(ab.swapped("ba"), market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert math.isclose(d_ba.gross_bps * pb, -d_ab.gross_bps * pa, rel_tol=1e-12, abs_tol=1e-9)
    assert math.copysign(1, d_ba.gross_bps) == -math.copysign(1, d_ab.gross_bps) or d_ab.gross_bps == 0.0
    assert math.isclose(d_ba.top_gross_bps * pb, -d_ab.top_gross_bps * pa, rel_tol=1e-12, abs_tol=1e-9)


@given(a=books(), b=books(), size=st.floats(1.0, 1_000.0))
def test_on_real_books_at_most_one_direction_has_gross_edge(a, b, size):
    """With spreads, A→B and B→A cannot both have a positive gross (that would need a crossed book)."""
    market = StaticMarket(books={BIN_SPOT: a, OKX_SPOT: b})
    constraints = fees_constraints(ALL_FEES)
    ab = CexCexCandidate(id="ab", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=size)
    d_ab = evaluate(ab, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    d_ba = evaluate(ab.swapped("ba"), market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert not (d_ab.gross_bps > 0.0 and d_ba.gross_bps > 0.0)


# ---- the identity and the reasons, over every strategy and messy market states ---------------------------------


BOOK_STATES = st.sampled_from(["ok"] * 6 + ["missing", "empty", "crossed"])


@st.composite
def messy_book(draw: st.DrawFn) -> OrderBook | None:
    state = draw(BOOK_STATES)
    recv_ns = NOW_NS - draw(st.integers(0, 3_000)) * MS
    if state == "missing":
        return None
    if state == "empty":
        return book([(99.0, 1.0)], [], recv_ns=recv_ns)
    if state == "crossed":
        return book([(101.0, 1.0)], [(100.0, 1.0)], recv_ns=recv_ns)
    return draw(books(recv_ns=recv_ns))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Candidate, StaticMarket, Constraints]:
    size = draw(st.floats(1.0, 3_000.0))
    horizon = draw(st.integers(1, 72)) * HOUR_MS
    profile = draw(st.sampled_from(list(FeeProfile)))
    passive = draw(st.integers(0, 1))
    rebalance = draw(st.floats(0.0, 5.0))
    kind = draw(st.sampled_from(["cex_cex", "fwd", "rev", "carry", "dex"]))
    if kind == "cex_cex":
        cand: Candidate = CexCexCandidate(
            id=kind,
            buy=BIN_SPOT,
            sell=OKX_SPOT,
            size_usd=size,
            fee_profile=profile,
            passive_leg=passive,
            rebalance_cost_usd=rebalance,
        )
    elif kind in ("fwd", "rev"):
        direction = BasisDirection.LONG_SPOT_SHORT_PERP if kind == "fwd" else BasisDirection.SHORT_SPOT_LONG_PERP
        cand = PerpSpotBasisCandidate(
            id=kind,
            spot=BIN_SPOT,
            perp=BIN_PERP,
            size_usd=size,
            horizon_ms=horizon,
            direction=direction,
            fee_profile=profile,
            passive_leg=passive,
            rebalance_cost_usd=rebalance,
        )
    elif kind == "carry":
        cand = FundingCarryCandidate(
            id=kind,
            long_perp=BIN_PERP,
            short_perp=BYBIT_PERP,
            size_usd=size,
            horizon_ms=horizon,
            fee_profile=profile,
            passive_leg=passive,
            rebalance_cost_usd=rebalance,
        )
    else:
        cand = CexDexCandidate(
            id=kind,
            cex=BIN_SPOT,
            pool="pool",
            size_usd=size,
            fee_profile=profile,
            direction=draw(st.sampled_from(list(DexDirection))),
            rebalance_cost_usd=rebalance,
        )
    books_: dict[InstrumentId, OrderBook] = {}
    for inst in (BIN_SPOT, OKX_SPOT, BIN_PERP, BYBIT_PERP):
        b = draw(messy_book())
        if b is not None:
            books_[inst] = b
    fundings = {}
    for inst in (BIN_PERP, BYBIT_PERP):
        if draw(st.booleans()) or draw(st.booleans()):
            fundings[inst] = funding(
                draw(st.floats(-0.002, 0.002)),
                interval_h=draw(st.sampled_from([1, 4, 8])),
                next_ms=NOW_MS + draw(st.integers(-HOUR_MS, 8 * HOUR_MS)),
            )
    pools: dict[str, Any] = {}
    pool_kind = draw(st.sampled_from(["pool", "pool", "quote", "none"]))
    if pool_kind == "pool":
        pools["pool"] = ConstantProductPool(
            "uniswap_v2",
            draw(st.floats(1.0, 500.0)),
            draw(st.floats(95.0, 105.0)) * 250.0,
            draw(st.sampled_from([5.0, 30.0, 100.0])),
            draw(st.floats(0.0, 20.0)),
            NOW_NS - draw(st.integers(0, 3_000)) * MS,
        )
    elif pool_kind == "quote":
        amount = draw(st.floats(0.5, 40.0))
        sell = draw(st.booleans())
        price = draw(st.floats(95.0, 105.0))
        pools["pool"] = QuotedSwap(
            "uniswap_v2",
            sell,
            amount if sell else amount * price,
            amount * price if sell else amount,
            30.0,
            1.0,
            NOW_NS,
        )
    fees = {k: v for k, v in ALL_FEES.items() if draw(st.integers(0, 9)) > 0}  # sometimes a table is missing
    omit = tuple(draw(st.lists(st.sampled_from(["max_leverage", "max_borrow_usd", "max_book_age_ms"]), max_size=1)))
    constraints = simple_constraints(
        fees={k: (v * 0.5, v) for k, v in fees.items()},
        min_edge=draw(st.floats(-5.0, 20.0)),
        max_size=draw(st.floats(100.0, 5_000.0)),
        equity=draw(st.floats(500.0, 20_000.0)),
        max_leverage=draw(st.floats(0.5, 5.0)),
        max_age_ms=draw(st.floats(100.0, 4_000.0)),
        max_skew_ms=draw(st.floats(0.0, 3_000.0)),
        max_borrow=draw(st.floats(0.0, 3_000.0)),
        borrow_rate=draw(st.floats(0.0, 5.0)),
        omit=omit,
    )
    return cand, StaticMarket(books=books_, fundings=fundings, pools=pools), constraints


def expected_reasons(d: Decision) -> set[Reason]:
    """Every reason, recomputed from the decision's own numbers (the definitions in rules/reasons.py)."""
    found: set[Reason] = set()
    funding_legs = {"perp_spot_basis": {"perp"}, "funding_carry_cex_cex": {"long", "short"}}.get(d.strategy, set())
    borrower = "spot" if d.direction == "short_spot_long_perp" else None
    needed = {"max_leverage", "equity_usd", "min_net_edge_bps", "max_size_usd", "max_book_age_ms", "max_leg_skew_ms"}
    for leg in d.legs:
        dex = leg.market == "amm"
        needs = needed | ({"max_borrow_usd", "borrow_rate_bps_per_hour"} if leg.name == borrower else set())
        if not (dex and leg.book_state == "missing") and (
            (not dex and leg.fee_table is None) or leg.rule is None or needs & set(leg.rule.missing)
        ):
            found.add(Reason.CONSTRAINTS_MISSING)
        if leg.book_state != "ok":
            found.add(Reason.BOOK_NOT_READY)
        if leg.max_book_age_ms is not None and leg.book_age_ms > leg.max_book_age_ms:
            found.add(Reason.STALE_BOOK)
        if leg.name in funding_legs and leg.funding is None:
            found.add(Reason.FUNDING_UNKNOWN)
        if leg.complete is False:
            found.add(Reason.INSUFFICIENT_DEPTH)
        if leg.max_leverage is not None and leg.leverage_used > leg.max_leverage:
            found.add(Reason.LEVERAGE_LIMIT_EXCEEDED)
    if d.max_leg_skew_ms is not None and d.leg_skew_ms > d.max_leg_skew_ms:
        found.add(Reason.LEG_SKEW)
    if d.max_borrow_usd is not None and d.borrow_usd > d.max_borrow_usd:
        found.add(Reason.BORROW_LIMIT_EXCEEDED)
    if d.gross_bps + d.funding_bps <= 0:
        found.add(Reason.NO_GROSS_EDGE)
    elif d.gross_bps - d.fees_bps + d.funding_bps <= 0:
        found.add(Reason.FEE_DOMINATED)
    elif d.net_bps <= 0:
        found.add(Reason.BORROW_COST_DOMINATED)
    if d.min_net_edge_bps is not None and d.net_bps < d.min_net_edge_bps:
        found.add(Reason.BELOW_MIN_EDGE)
    return found


@settings(max_examples=400)
@given(scenarios())
def test_every_listed_reason_is_true_and_none_is_missing(scenario):
    """The reasons are exactly those true of the numbers, in precedence order, the first is primary."""
    cand, market, constraints = scenario
    d = evaluate(cand, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert set(d.reasons) == expected_reasons(d)
    assert list(d.reasons) == sorted(d.reasons, key=PRECEDENCE.index) and len(set(d.reasons)) == len(d.reasons)
    assert d.primary_reason == (d.reasons[0] if d.reasons else None)
    assert (d.outcome == "qualified") == (not d.reasons)


@settings(max_examples=300)
@given(scenarios())
def test_net_is_gross_minus_fees_plus_funding_minus_borrow_exactly(scenario):
    """net = gross − fees + funding − borrow, bit for bit; fees = trading + rebalance + gas; edges consistent."""
    cand, market, constraints = scenario
    d = evaluate(cand, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    same = lambda x, y: x == y or (math.isnan(x) and math.isnan(y))  # noqa: E731
    assert same(d.net_bps, d.gross_bps - d.fees_bps + d.funding_bps - d.borrow_bps)
    assert same(d.fees_bps, d.trading_fees_bps + d.rebalance_bps + d.gas_bps)
    assert same(d.edge_bps, d.gross_bps + d.funding_bps)
    assert same(d.after_fees_bps, d.gross_bps - d.fees_bps + d.funding_bps)
    assert same(d.slippage_bps, d.top_gross_bps - d.gross_bps)
    leg_fees = sum(leg.fee_usd for leg in d.legs)
    if not math.isnan(d.trading_fees_bps):
        assert math.isclose(d.trading_fees_bps, leg_fees / d.notional_usd * 1e4, rel_tol=1e-12, abs_tol=1e-12)
