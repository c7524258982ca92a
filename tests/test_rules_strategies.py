"""Worked examples, one per strategy and direction, computed by hand in the comments (to 1e-9 bps)."""

from __future__ import annotations

import math
from fractions import Fraction as F

import msgspec
import pytest

from feeds.book import Fill, OrderBook, Side
from feeds.updates import FundingSource
from rules import (
    BasisDirection,
    CexCexCandidate,
    CexDexCandidate,
    ConstantProductPool,
    Decision,
    DexDirection,
    FeeProfile,
    FundingCarryCandidate,
    Outcome,
    PerpSpotBasisCandidate,
    QuotedSwap,
    Reason,
    Rule,
    evaluate,
)
from rules import dex as dexmath
from scanner.market import StaticMarket
from tests.rules_fixtures import (
    BIN_ETH,
    BIN_PERP,
    BIN_SPOT,
    BYBIT_PERP,
    HOUR_MS,
    MS,
    OKX_SPOT,
    book,
    funding,
    simple_constraints,
    template,
)

NOW_NS = 2_000 * MS  # books below are received at 1_000 ms: 1 s old
NOW_MS = 1_723_161_600_000  # wall clock for funding (2024-08-09 00:00 UTC)
TOL = 1e-9  # bps


def bps(x: F) -> float:
    return float(x * 10_000)


def close(actual: float, expected: float, tol: float = TOL) -> bool:
    return abs(actual - expected) <= tol


# ---- cex_cex -------------------------------------------------------------------------------------------


def cex_cex_market() -> StaticMarket:
    return StaticMarket(
        books={
            BIN_SPOT: book([(99.0, 5.0)], [(100.0, 1.0), (101.0, 2.0)]),
            OKX_SPOT: book([(102.0, 0.5), (101.5, 3.0)], [(103.0, 5.0)]),
        }
    )


def test_cex_cex_taker_default_worked_example():
    """Buy 150 USD on Binance asks, sell the same BTC on OKX bids; template fees, 0.30 USD rebalance."""
    # Buy walk (quote = 150): 1.0 BTC @ 100 = 100 USD, then 50 USD @ 101 = 50/101 BTC.
    #   q = 1 + 50/101 = 151/101 BTC;  buy VWAP = 150 / (151/101) = 15150/151 = 100.331125827...
    # Sell walk (base = 151/101): 0.5 @ 102 = 51 USD, then 151/101 − 0.5 = 201/202 BTC @ 101.5.
    #   sell quote = 51 + 201·101.5/202 = 30703.5/202;  sell VWAP = (30703.5/202)/(151/101) = 30703.5/302
    # gross = (30703.5/302 − 15150/151)/(15150/151) = (403.5/302)·(151/15150) = 403.5/30300 → 133.1683168316 bps
    # top gross = (102 − 100)/100 = 200 bps; slippage = 200 − 133.168316831... = 66.831683168... bps
    # fees (template taker: binance spot 10 bps, okx spot 10 bps), in bps of N = 150 USD:
    #   buy 10;  sell 10 · (30703.5/202)/150 = 10 · 30703.5/30300 = 10.133168316...
    #   rebalance 0.30/150 = 20 bps  → fees = 40.133168316... bps
    # net = 133.168316831... − 40.133168316... = 93.035148514... bps; leverage 150·1.0/10000 = 0.015
    market = cex_cex_market()
    cand = CexCexCandidate(id="c1", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=150.0, rebalance_cost_usd=0.30)
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)

    q = F(151, 101)
    buy_vwap = F(15150, 151)
    sell_quote = F(307035, 2020)
    sell_vwap = F(307035, 3020)
    gross = (sell_vwap - buy_vwap) / buy_vwap
    assert gross == F(4035, 303000)
    fees = F(10, 10_000) + F(10, 10_000) * sell_quote / 150 + F(30, 100) / 150
    net = gross - fees

    assert d.outcome is Outcome.QUALIFIED and d.reasons == () and d.primary_reason is None
    assert close(d.base_qty, float(q), 1e-12) and d.notional_usd == pytest.approx(150.0, abs=1e-12)
    buy, sell = d.legs
    assert (buy.venue, buy.market, buy.symbol, buy.side, buy.liquidity_role) == (
        "binance",
        "spot",
        "BTC-USDT",
        "buy",
        "taker",
    )
    assert (sell.venue, sell.side, sell.top_price, buy.top_price) == ("okx", "sell", 102.0, 100.0)
    assert close(buy.vwap, float(buy_vwap), 1e-9) and close(sell.vwap, float(sell_vwap), 1e-9)
    assert buy.levels == 2 and sell.levels == 2 and buy.complete and sell.complete
    assert close(d.gross_bps, bps(gross)) and close(d.gross_bps, 133.16831683168317)
    assert close(d.top_gross_bps, 200.0) and close(d.slippage_bps, 200.0 - bps(gross))
    assert close(d.trading_fees_bps, bps(F(10, 10_000) + F(10, 10_000) * sell_quote / 150))
    assert close(d.rebalance_bps, 20.0) and d.gas_bps == 0.0
    assert close(d.fees_bps, bps(fees)) and close(d.fees_bps, 40.13316831683168)
    assert d.funding_bps == 0.0 and d.borrow_bps == 0.0 and d.funding_source is None
    assert close(d.net_bps, bps(net)) and close(d.net_bps, 93.03514851485149)
    assert close(d.net_usd, float(net * 150), 1e-9)
    assert d.leverage_used == pytest.approx(0.015) and d.max_leverage == 3.0
    assert d.leverage_notional_multiplier == 1.0 and d.leverage_notional_usd == 150.0
    assert buy.book_age_ms == 1_000.0 and buy.max_book_age_ms == 5_000.0 and d.leg_skew_ms == 0.0
    assert buy.fee_table is not None and buy.fee_table.tier == "regular" and buy.fee_table.source == "template"
    assert d.min_net_edge_bps == 5.0 and d.fee_profile == "taker_default" and d.overrides == {}


def test_cex_cex_maker_inventory_uses_the_maker_fee_on_the_passive_leg_and_no_rebalance():
    """maker_inventory: OKX leg (passive_leg=1) pays the Lv1 maker 8 bps; the rebalance cost is waived."""
    # Same walk as above. fees = 10 (binance taker) + 8 · 30703.5/30300 (okx maker) = 18.106534653... bps
    # net = 133.168316831... − 18.106534653... = 115.061782178... bps
    cand = CexCexCandidate(
        id="c2",
        buy=BIN_SPOT,
        sell=OKX_SPOT,
        size_usd=150.0,
        rebalance_cost_usd=0.30,
        fee_profile=FeeProfile.MAKER_INVENTORY,
        passive_leg=1,
    )
    d = evaluate(cand, cex_cex_market(), template(), now_ns=NOW_NS, now_ms=NOW_MS)
    fees = F(10, 10_000) + F(8, 10_000) * F(307035, 303000)
    assert [leg.liquidity_role for leg in d.legs] == ["taker", "maker"]
    assert d.legs[1].fee_bps == 8.0 and d.rebalance_bps == 0.0
    assert close(d.fees_bps, bps(fees)) and close(d.fees_bps, 18.106534653465347)
    assert close(d.net_bps, bps(F(4035, 303000) - fees)) and close(d.net_bps, 115.06178217821782)


# ---- perp_spot_basis ---------------------------------------------------------------------------------------


def test_perp_spot_basis_long_spot_short_perp_worked_example():
    """Cash and carry: buy 1000 USD spot @100, short the perp @100.5, hold 24 h, 1 bp per 8 h funding."""
    # q = 1000/100 = 10 BTC; perp sells 10 @ 100.5 = 1005 USD. gross = 0.5/100 = 50 bps (no slippage).
    # Fees, round trip (×2) at template taker: spot 10 bps·1000·2 = 2.00 USD; perp 5 bps·1005·2 = 1.005 USD
    #   → 3.005 USD / 1000 = 30.05 bps
    # Funding: next settlement in 1 h, every 8 h: +1 h, +9 h, +17 h inside 24 h (+25 h is not) → 3.
    #   short receives 0.0001 · 3 · 1005 = 0.3015 USD → 3.015 bps.  No borrow.
    # net = 50 − 30.05 + 3.015 − 0 = 22.965 bps. Leverage: 1000 · 1.25 / 10000 = 0.125.
    market = StaticMarket(
        books={BIN_SPOT: book([(99.9, 10.0)], [(100.0, 10.0)]), BIN_PERP: book([(100.5, 10.0)], [(100.6, 10.0)])},
        fundings={BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS + HOUR_MS)},
    )
    cand = PerpSpotBasisCandidate(id="b1", spot=BIN_SPOT, perp=BIN_PERP, size_usd=1_000.0, horizon_ms=24 * HOUR_MS)
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)

    assert d.outcome is Outcome.QUALIFIED, d.reasons
    assert d.direction == "long_spot_short_perp" and d.horizon_ms == 24 * HOUR_MS
    spot, perp = d.legs
    assert (spot.name, spot.side, perp.name, perp.side) == ("spot", "buy", "perp", "sell")
    assert spot.fee_fills == 2 and perp.fee_fills == 2 and perp.fee_bps == 5.0
    assert close(d.gross_bps, 50.0) and close(d.slippage_bps, 0.0)
    assert close(d.fees_bps, 30.05) and close(d.funding_bps, 3.015) and d.borrow_bps == 0.0
    assert close(d.net_bps, 22.965)
    assert perp.funding is not None and perp.funding.settlements == 3 and perp.funding.position == "short"
    assert perp.funding.source == "assumed" and d.funding_source == "assumed"
    assert perp.funding.funding_usd == pytest.approx(0.3015, abs=1e-12)
    assert d.leverage_notional_multiplier == 1.25 and d.leverage_notional_usd == 1250.0
    assert d.leverage_used == pytest.approx(0.125)


def test_perp_spot_basis_reverse_borrows_and_pays_borrow_cost():
    """Reverse basis: sell 1000 USD of borrowed spot @100.2, long the perp @100; borrow 0.1 bp/h for 24 h."""
    # q = 1000/100.2 BTC; perp buy q @ 100 → N = 100000/100.2 = 998.00399... USD (the buy leg).
    # gross = (100.2 − 100)/100 = 20 bps.
    # fees ×2: spot 10 bps·1000·2 = 2 USD; perp 5 bps·N·2 = 0.001·N USD → bps: 2/N·1e4 + 10 = 20.04 + 10 = 30.04
    # funding: long pays 0.0001 · 3 · N → −3 bps.
    # borrow: the spot leg's notional 1000 USD borrowed, 0.1 bp/h · 24 h = 2.4 bps of 1000 = 0.24 USD
    #   → 0.24/N·1e4 = 2.4048 bps (template binance:spot rule, max 5000 USD: within the limit).
    # net = 20 − 30.04 − 3 − 2.4048 = −15.4448 bps. edge = 20 − 3 = 17 > 0; after fees = −13.04 ≤ 0
    #   → fee_dominated (primary) and below_min_edge.
    market = StaticMarket(
        books={BIN_SPOT: book([(100.2, 10.0)], [(100.3, 10.0)]), BIN_PERP: book([(99.9, 10.0)], [(100.0, 10.0)])},
        fundings={BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS + HOUR_MS)},
    )
    cand = PerpSpotBasisCandidate(
        id="b2",
        spot=BIN_SPOT,
        perp=BIN_PERP,
        size_usd=1_000.0,
        horizon_ms=24 * HOUR_MS,
        direction=BasisDirection.SHORT_SPOT_LONG_PERP,
    )
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    n = F(100000) / F("100.2")
    assert close(d.notional_usd, float(n), 1e-9)
    assert close(d.gross_bps, 20.0)
    assert close(d.fees_bps, bps(F(2) / n + F(1, 1000))) and close(d.fees_bps, 30.04)
    assert close(d.funding_bps, -3.0)
    assert d.borrow_usd == pytest.approx(1000.0, abs=1e-9) and d.max_borrow_usd == 5_000.0
    assert d.borrow_rate_bps_per_hour == 0.1 and close(d.borrow_bps, bps(F("0.24") / n))
    assert close(d.borrow_bps, 2.4048)
    assert close(d.net_bps, -15.4448)
    assert d.reasons == (Reason.FEE_DOMINATED, Reason.BELOW_MIN_EDGE) and d.primary_reason is Reason.FEE_DOMINATED
    assert d.legs[1].funding is not None and d.legs[1].funding.position == "long"
    assert d.legs[0].rule is not None and d.legs[0].rule.provenance["borrow_rate_bps_per_hour"].scope == "binance:spot"


def test_reverse_basis_with_authenticated_borrow_overlay():
    """An authenticated binance:spot:BTC rule (overlay) sets the borrow; the decision says so."""
    # Same books, funding −5 bp per 8 h (longs receive): +0.0005·3·N → +15 bps.
    # Overlay: borrow 1.0 bp/h, max 500 USD. borrow cost = 1.0·24 bps of 1000 USD = 2.4 USD → 2.4/N·1e4 = 24.048 bps
    # edge = 20 + 15 = 35; after fees = 20 − 30.04 + 15 = 4.96 > 0; net = 4.96 − 24.048 = −19.088
    #   → borrow_limit_exceeded (1000 > 500, primary), borrow_cost_dominated, below_min_edge.
    market = StaticMarket(
        books={BIN_SPOT: book([(100.2, 10.0)], [(100.3, 10.0)]), BIN_PERP: book([(99.9, 10.0)], [(100.0, 10.0)])},
        fundings={BIN_PERP: funding(-0.0005, interval_h=8, next_ms=NOW_MS + HOUR_MS, source=FundingSource.LIVE)},
    )
    signed = Rule(
        venue="binance",
        market="spot",
        asset="BTC",
        max_borrow_usd=500.0,
        borrow_rate_bps_per_hour=1.0,
        source="authenticated",
        as_of="2026-08-21T10:00:00Z",
    )
    constraints = template().overlay(rules=[signed])
    cand = PerpSpotBasisCandidate(
        id="b3",
        spot=BIN_SPOT,
        perp=BIN_PERP,
        size_usd=1_000.0,
        horizon_ms=24 * HOUR_MS,
        direction=BasisDirection.SHORT_SPOT_LONG_PERP,
    )
    d = evaluate(cand, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert close(d.funding_bps, 15.0) and close(d.borrow_bps, 24.048) and close(d.net_bps, -19.088)
    assert d.reasons == (Reason.BORROW_LIMIT_EXCEEDED, Reason.BORROW_COST_DOMINATED, Reason.BELOW_MIN_EDGE)
    rule = d.legs[0].rule
    assert rule is not None and rule.key == "binance:spot:BTC"
    ref = rule.provenance["borrow_rate_bps_per_hour"]
    assert (ref.scope, ref.source, ref.as_of) == ("binance:spot:BTC", "authenticated", "2026-08-21T10:00:00Z")
    assert rule.provenance["max_leverage"].source == "template" and d.funding_source == "live"


def tie_market(buy: float, sell: float) -> StaticMarket:
    return StaticMarket(
        books={
            BIN_SPOT: book([(buy - 1.0, 50.0)], [(buy, 50.0)]),
            OKX_SPOT: book([(sell, 50.0)], [(sell + 1.0, 50.0)]),
        }
    )


def test_a_net_of_exactly_the_minimum_edge_qualifies():
    """Buy at 100.00, sell at 100.05, no fees: the net is exactly 5 bps (in decimals), the float says
    4.999999999999716; with a minimum of 5 bps (below_min_edge only when net < min) it qualifies."""
    constraints = simple_constraints(fees={("binance", "spot"): (0.0, 0.0), ("okx", "spot"): (0.0, 0.0)}, min_edge=5.0)
    cand = CexCexCandidate(id="tie", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1_000.0)
    d = evaluate(cand, tie_market(100.0, 100.05), constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert d.net_bps != 5.0 and close(d.net_bps, bps(F(5, 100) / 100))  # the float is off in its last bits
    assert (d.outcome, d.reasons) == (Outcome.QUALIFIED, ())


def test_an_edge_eaten_exactly_by_fees_is_fee_dominated():
    """Buy at 100.00 paying 1 bps, sell at 100.01 free: after fees exactly 0 (the float says +5.1e-13 bps),
    so fee_dominated; it must not qualify on rounding noise, even with a minimum edge of 0."""
    constraints = simple_constraints(fees={("binance", "spot"): (0.0, 1.0), ("okx", "spot"): (0.0, 0.0)}, min_edge=0.0)
    cand = CexCexCandidate(id="zero", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1_000.0)
    d = evaluate(cand, tie_market(100.0, 100.01), constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert 0.0 < d.net_bps < 1e-9
    assert (d.outcome, d.reasons) == (Outcome.REJECTED, (Reason.FEE_DOMINATED,))


def test_a_net_that_is_not_a_number_never_qualifies():
    """Constraints built in code skip the file's checks: a NaN fee makes every economic comparison false, and
    the decision must still not qualify. Its net is not a number, so it is as good as missing."""
    constraints = simple_constraints(fees={("binance", "spot"): (0.0, math.nan), ("okx", "spot"): (0.0, 0.0)})
    cand = CexCexCandidate(id="nan", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1_000.0)
    d = evaluate(cand, tie_market(100.0, 101.0), constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert math.isnan(d.net_bps) and close(d.gross_bps, 100.0)
    assert (d.outcome, d.reasons) == (Outcome.REJECTED, (Reason.CONSTRAINTS_MISSING,))


# ---- funding_carry_cex_cex ----------------------------------------------------------------------------------


def test_funding_carry_worked_example_counts_each_venue_schedule():
    """Long Binance perp (1 bp / 8 h), short Bybit perp (5 bp / 4 h), 24 h; four taker fills."""
    # q = 1000/100 = 10 BTC; short sells 10 @ 99.98 = 999.8 USD. gross = (99.98 − 100)/100 = −2 bps.
    # fees ×2: binance usdm taker 5 bps·1000·2 = 1.0 USD; bybit linear taker 5.5 bps·999.8·2 = 1.09978 USD
    #   → 2.09978 USD / 1000 = 20.9978 bps
    # binance settlements: +2 h, +10 h, +18 h (+26 h out) = 3 → long pays 0.0001·3·1000 = 0.3 USD
    # bybit settlements (4 h interval): +0.5, 4.5, 8.5, 12.5, 16.5, 20.5 h (+24.5 out) = 6
    #   → short receives 0.0005·6·999.8 = 2.9994 USD. carry = 2.6994 USD = 26.994 bps
    # net = −2 − 20.9978 + 26.994 = 3.9962 bps < 5 (template min edge) → below_min_edge only.
    # leverage: 1000 · 2.0 / 10000 = 0.2
    market = StaticMarket(
        books={
            BIN_PERP: book([(99.9, 10.0)], [(100.0, 10.0)]),
            BYBIT_PERP: book([(99.98, 10.0)], [(100.1, 10.0)]),
        },
        fundings={
            BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS + 2 * HOUR_MS),
            BYBIT_PERP: funding(0.0005, interval_h=4, next_ms=NOW_MS + HOUR_MS // 2, source=FundingSource.REST),
        },
    )
    cand = FundingCarryCandidate(
        id="f1", long_perp=BIN_PERP, short_perp=BYBIT_PERP, size_usd=1_000.0, horizon_ms=24 * HOUR_MS
    )
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    long, short = d.legs
    assert long.funding is not None and short.funding is not None
    assert (long.funding.settlements, short.funding.settlements) == (3, 6)
    assert long.funding.funding_usd == pytest.approx(-0.3) and short.funding.funding_usd == pytest.approx(2.9994)
    assert close(d.gross_bps, -2.0) and close(d.fees_bps, 20.9978) and close(d.funding_bps, 26.994)
    assert close(d.net_bps, 3.9962)
    assert d.reasons == (Reason.BELOW_MIN_EDGE,) and d.outcome is Outcome.REJECTED
    assert d.funding_source == "assumed"  # the least trustworthy of assumed (binance) and rest (bybit)
    assert d.leverage_used == pytest.approx(0.2) and d.leverage_notional_multiplier == 2.0
    assert [leg.fee_fills for leg in d.legs] == [2, 2]


@pytest.mark.parametrize("source", [FundingSource.LIVE, FundingSource.REST, FundingSource.ASSUMED])
def test_a_streamed_rate_whose_settlement_is_missed_is_not_used(source: FundingSource) -> None:
    """The same carry with both legs' next settlement 5 min, then 5 min 1 ms, in the past: a stream that
    still names a settlement that long gone has stopped (an up-to-date one moves on within seconds), so its
    rate is not used: funding_unknown. Within the catch-up it is rolled forward as before; an assumption
    (which rolls with the clock) is always used."""

    def decide(behind_ms: int) -> Decision:
        fundings = {
            BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS - behind_ms, source=source),
            BYBIT_PERP: funding(0.0005, interval_h=4, next_ms=NOW_MS - behind_ms, source=source),
        }
        market = StaticMarket(
            books={BIN_PERP: book([(99.9, 10.0)], [(100.0, 10.0)]), BYBIT_PERP: book([(99.98, 10.0)], [(100.1, 10.0)])},
            fundings=fundings,
        )
        cand = FundingCarryCandidate(
            id="f1", long_perp=BIN_PERP, short_perp=BYBIT_PERP, size_usd=1_000.0, horizon_ms=24 * HOUR_MS
        )
        return evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)

    caught_up = decide(300_000)
    assert [leg.funding.settlements for leg in caught_up.legs if leg.funding is not None] == [3, 6]
    assert Reason.FUNDING_UNKNOWN not in caught_up.reasons
    stopped = decide(300_001)
    if source is FundingSource.ASSUMED:
        assert stopped.reasons == caught_up.reasons
    else:
        assert stopped.reasons[0] is Reason.FUNDING_UNKNOWN and all(leg.funding is None for leg in stopped.legs)


# ---- cex_dex -----------------------------------------------------------------------------------------------


def test_cex_dex_buy_cex_sell_into_constant_product_pool():
    """Buy 10,000 USD of ETH on Binance @2000, sell it into a 1000 ETH / 2.1M USDT pool (0.3 %), 5 USD gas."""
    # q = 10000/2000 = 5 ETH. Into the pool: 5·0.997 = 4.985 ETH enter the curve;
    #   ex-fee VWAP = 2_100_000/(1000 + 4.985) = 2_100_000/1004.985; notional = 5·VWAP
    #   proceeds = 4.985·VWAP (= getAmountOut); pool fee = 0.003·notional
    # gross = (VWAP − 2000)/2000; top gross = (2100 − 2000)/2000 = 500 bps
    # fees (bps of N = 10000): CEX taker 10 bps; pool fee 0.003·5·VWAP/10000; gas 5/10000 = 5 bps
    vwap = F(2_100_000) / F("1004.985")
    gross = (vwap - 2000) / 2000
    pool_fee_usd = F(3, 1000) * 5 * vwap
    fees = F(10, 10_000) + pool_fee_usd / 10_000 + F(5) / 10_000
    market = StaticMarket(
        books={BIN_ETH: book([(1999.0, 10.0)], [(2000.0, 10.0)])},
        pools={
            "uniswap_v2:pool": ConstantProductPool(
                venue="uniswap_v2",
                base_reserve=1_000.0,
                quote_reserve=2_100_000.0,
                fee_bps=30.0,
                gas_usd=5.0,
                recv_ns=NOW_NS - 12_000 * MS,
            )
        },
    )
    cand = CexDexCandidate(id="d1", cex=BIN_ETH, pool="uniswap_v2:pool", size_usd=10_000.0)
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    _, dex = d.legs
    assert (dex.venue, dex.market, dex.side, dex.liquidity_role, dex.fee_fills) == (
        "uniswap_v2",
        "amm",
        "sell",
        "taker",
        1,
    )
    assert close(dex.vwap, float(vwap), 1e-9) and dex.top_price == 2100.0
    assert close(dex.fee_bps, 30.0) and close(dex.fee_usd, float(pool_fee_usd), 1e-9)
    proceeds = dexmath.amount_out(5.0, 1_000.0, 2_100_000.0, 30.0)
    assert dex.filled_quote - dex.fee_usd == pytest.approx(proceeds, rel=1e-14)
    assert close(d.gross_bps, bps(gross)) and close(d.top_gross_bps, 500.0)
    assert close(d.slippage_bps, 500.0 - bps(gross)) and close(d.gas_bps, 5.0)
    assert close(d.fees_bps, bps(fees)) and close(d.net_bps, bps(gross - fees))
    assert dex.book_age_ms == 12_000.0 and dex.max_book_age_ms == 30_000.0  # uniswap_v2:amm rule
    assert dex.rule is not None and dex.rule.key == "uniswap_v2:amm:ETH"
    assert dex.leverage_used == 1.0 and dex.max_leverage == 1.0  # wallet: 10000 USD on 10000 equity
    assert d.outcome is Outcome.QUALIFIED, d.reasons


def test_cex_dex_buy_from_pool_and_router_quote():
    """Buy ETH from the pool (input fee shown on the notional), sell on Binance; then the same via a quote."""
    # Sell 10,000 USD on Binance bids @2000 → q = 5 ETH. Buying 5 ETH from a 1000 ETH / 1.9M pool:
    #   curve input c = 1.9M·5/(1000 − 5) USDT, VWAP = c/5 = 1.9M/995; the trader pays c/0.997;
    #   fee = c·0.003/0.997 (= 30.0902708... bps of the notional c)
    # gross = (2000 − VWAP)/VWAP with N = c (the buy leg)
    c = F(1_900_000) * 5 / 995
    vwap = c / 5
    gross = (2000 - vwap) / vwap
    pool = ConstantProductPool("uniswap_v2", 1_000.0, 1_900_000.0, 30.0, 0.0, NOW_NS)
    market = StaticMarket(books={BIN_ETH: book([(2000.0, 10.0)], [(2001.0, 10.0)])}, pools={"p": pool})
    cand = CexDexCandidate(id="d2", cex=BIN_ETH, pool="p", size_usd=10_000.0, direction=DexDirection.BUY_DEX_SELL_CEX)
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    cex, dex = d.legs
    assert (cex.side, dex.side) == ("sell", "buy")
    assert close(dex.vwap, float(vwap), 1e-9) and close(d.notional_usd, float(c), 1e-9)
    assert close(dex.fee_bps, bps(F(3, 1000) / F(997, 1000))) and close(dex.fee_bps, 30.090270812437314)
    assert close(d.gross_bps, bps(gross))
    # Total paid to the pool = notional + fee = c / 0.997 = what getAmountIn asks for.
    paid = dexmath.amount_in(5.0, 1_900_000.0, 1_000.0, 30.0)
    assert dex.filled_quote + dex.fee_usd == pytest.approx(paid, rel=1e-14)

    # The same trade through a router quote that covers it (5 ETH for `paid` USDT) gives the same numbers.
    quote = QuotedSwap(
        "uniswap_v2", sell_base=False, amount_in=paid, amount_out=5.0, fee_bps=30.0, gas_usd=0.0, recv_ns=NOW_NS
    )
    market.pools["p"] = quote
    dq = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert close(dq.gross_bps, d.gross_bps) and close(dq.fees_bps, d.fees_bps) and close(dq.net_bps, d.net_bps)
    # A quote for fewer ETH than needed is insufficient depth; one for the other direction is unusable.
    market.pools["p"] = QuotedSwap("uniswap_v2", False, paid / 2, 2.5, 30.0, 0.0, NOW_NS)
    assert Reason.INSUFFICIENT_DEPTH in evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS).reasons
    market.pools["p"] = QuotedSwap("uniswap_v2", True, 5.0, 9_000.0, 30.0, 0.0, NOW_NS)
    wrong = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert wrong.primary_reason is Reason.BOOK_NOT_READY and wrong.legs[1].book_state == "unusable"


# ---- limits and data quality ------------------------------------------------------------------------------------


def test_data_quality_reasons_and_precedence():
    """Missing book, stale book, skew, missing funding and depth are each named; the primary follows PRECEDENCE."""
    spot = book([(99.9, 10.0)], [(100.0, 10.0)], recv_ns=NOW_NS - 6_000 * MS)  # 6 s old > 5 s: stale
    perp = book([(100.5, 0.5)], [(100.6, 10.0)], recv_ns=NOW_NS)  # only 0.5 BTC bid: insufficient for 10
    market = StaticMarket(books={BIN_SPOT: spot, BIN_PERP: perp})
    cand = PerpSpotBasisCandidate(id="b", spot=BIN_SPOT, perp=BIN_PERP, size_usd=1_000.0, horizon_ms=HOUR_MS)
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert d.reasons[:4] == (Reason.STALE_BOOK, Reason.LEG_SKEW, Reason.FUNDING_UNKNOWN, Reason.INSUFFICIENT_DEPTH)
    assert d.primary_reason is Reason.STALE_BOOK
    assert d.leg_skew_ms == 6_000.0 and d.max_leg_skew_ms == 2_000.0
    assert d.legs[1].complete is False and d.legs[1].filled_base == 0.5
    # economics are still computed on what could be filled
    assert close(d.gross_bps, 50.0)

    del market.books[BIN_PERP]
    d = evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert d.primary_reason is Reason.BOOK_NOT_READY and d.legs[1].book_state == "missing"
    assert d.legs[1].complete is None and d.gross_bps != d.gross_bps  # NaN: nothing to compare against


def test_crossed_and_empty_books_are_not_ready():
    """A crossed book and a book with an empty side are book_not_ready, with the state on the leg."""
    market = StaticMarket(books={BIN_SPOT: book([(101.0, 1.0)], [(100.0, 1.0)]), OKX_SPOT: book([], [(100.0, 1.0)])})
    d = evaluate(
        CexCexCandidate(id="x", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=50.0),
        market,
        template(),
        now_ns=NOW_NS,
        now_ms=NOW_MS,
    )
    assert [leg.book_state for leg in d.legs] == ["crossed", "empty"]
    assert d.primary_reason is Reason.BOOK_NOT_READY


def test_leverage_limit_and_override_and_size_cap():
    """Leverage uses the strategy multiplier (overridable); size is capped at max_size_usd."""
    market = StaticMarket(
        books={BIN_SPOT: book([(99.9, 100.0)], [(100.0, 100.0)]), BIN_PERP: book([(100.5, 100.0)], [(100.6, 100.0)])},
        fundings={BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS + HOUR_MS)},
    )
    cand = PerpSpotBasisCandidate(id="b", spot=BIN_SPOT, perp=BIN_PERP, size_usd=9_000.0, horizon_ms=HOUR_MS)
    from rules import Strategy

    # 9000 · 1.25 / 10000 = 1.125 ≤ 3; with an override of 4: 9000 · 4 / 10000 = 3.6 > 3
    assert (
        Reason.LEVERAGE_LIMIT_EXCEEDED not in evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS).reasons
    )
    constraints = template().with_overrides({Strategy.PERP_SPOT_BASIS: 4.0})
    d = evaluate(cand, market, constraints, now_ns=NOW_NS, now_ms=NOW_MS)
    assert d.leverage_used == pytest.approx(3.6) and d.max_leverage == 3.0 and d.leverage_notional_usd == 36_000.0
    assert Reason.LEVERAGE_LIMIT_EXCEEDED in d.reasons and d.overrides == {"perp_spot_basis": 4.0}
    big = PerpSpotBasisCandidate(id="b", spot=BIN_SPOT, perp=BIN_PERP, size_usd=50_000.0, horizon_ms=HOUR_MS)
    d = evaluate(big, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert d.size_capped and d.size_usd == 10_000.0 and d.size_usd_requested == 50_000.0
    assert d.notional_usd == pytest.approx(10_000.0)


def test_constraints_missing_for_a_venue_without_fee_table():
    """Kraken has no documented fee table in the template: constraints_missing, named first."""
    from feeds.instruments import InstrumentId, Kind, Market, Venue

    kraken = InstrumentId(Venue.KRAKEN, Market.SPOT, "BTC", "USDT", Kind.SPOT)
    market = StaticMarket(
        books={BIN_SPOT: book([(99.0, 1.0)], [(100.0, 1.0)]), kraken: book([(102.0, 1.0)], [(103.0, 1.0)])}
    )
    d = evaluate(
        CexCexCandidate(id="k", buy=BIN_SPOT, sell=kraken, size_usd=50.0),
        market,
        template(),
        now_ns=NOW_NS,
        now_ms=NOW_MS,
    )
    assert d.primary_reason is Reason.CONSTRAINTS_MISSING and d.legs[1].fee_table is None
    assert d.fees_bps != d.fees_bps and close(d.gross_bps, 200.0)  # gross still computed


def test_decision_serializes_to_json_with_every_number():
    """The journal line round-trips through JSON and names rules, sources, overrides and reasons."""
    cand = CexCexCandidate(id="c1", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=150.0, rebalance_cost_usd=0.30)
    d = evaluate(cand, cex_cex_market(), template(), now_ns=NOW_NS, now_ms=NOW_MS)
    data = msgspec.json.decode(d.to_json())
    assert data == d.to_dict()
    assert data["strategy"] == "cex_cex" and data["outcome"] == "qualified" and data["reasons"] == []
    assert data["legs"][1]["fee_table"]["venue"] == "okx" and data["legs"][1]["fee_table"]["source"] == "template"
    assert data["legs"][0]["rule"]["provenance"]["max_leverage"] == {
        "scope": "default",
        "source": "template",
        "as_of": "2026-08-21",
    }
    assert data["net_bps"] == d.net_bps and data["leverage_notional_multiplier"] == 1.0


class TracedBook(OrderBook):
    """A real OrderBook that records which of its read methods the evaluator calls."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.calls: list[str] = []

    def best_bid_price(self) -> float:
        self.calls.append("best_bid_price")
        return super().best_bid_price()

    def best_ask_price(self) -> float:
        self.calls.append("best_ask_price")
        return super().best_ask_price()

    def is_crossed(self) -> bool:
        self.calls.append("is_crossed")
        return super().is_crossed()

    def walk(self, consume: Side, *, base: float | None = None, quote: float | None = None) -> Fill:
        self.calls.append(f"walk:{consume}")
        return super().walk(consume, base=base, quote=quote)

    def levels(self, side: Side, n: int | None = None) -> list[tuple[float, float]]:
        self.calls.append("levels")  # a copy of the levels: must never be used
        return super().levels(side, n)


def test_books_are_read_in_place_top_and_one_walk_per_leg():
    """Evaluation reads each book's top (crossing included) and walks once; it never copies levels or mutates."""
    spot, perp = TracedBook("s"), TracedBook("p")
    spot.apply([(99.9, 10.0)], [(100.0, 10.0)], last_id=1, venue_ms=0, recv_ns=1_000 * MS)
    perp.apply([(100.5, 10.0)], [(100.6, 10.0)], last_id=1, venue_ms=0, recv_ns=1_000 * MS)
    versions = (spot.version, perp.version)
    spot.calls.clear()  # what apply itself read (its state check reads both tops) is not the evaluation's
    perp.calls.clear()
    market = StaticMarket(
        books={BIN_SPOT: spot, BIN_PERP: perp}, fundings={BIN_PERP: funding(0.0001, interval_h=8, next_ms=NOW_MS + 1)}
    )
    cand = PerpSpotBasisCandidate(id="b", spot=BIN_SPOT, perp=BIN_PERP, size_usd=1_000.0, horizon_ms=HOUR_MS)
    for _ in range(3):
        evaluate(cand, market, template(), now_ns=NOW_NS, now_ms=NOW_MS)
    assert spot.calls == ["best_bid_price", "best_ask_price", "walk:ask"] * 3
    assert perp.calls == ["best_bid_price", "best_ask_price", "walk:bid"] * 3
    assert (spot.version, perp.version) == versions
