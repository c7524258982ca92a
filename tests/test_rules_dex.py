"""Constant-product math against real Uniswap v2 data (degenbot golden reserves, v2-core test vector)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules import ConstantProductPool
from rules import dex as dexmath
from tests.rules_fixtures import DATA

GOLDEN = DATA / "dex" / "degenbot" / "golden_data_uniswap_v2_wbtc_weth_17600000.json"


def golden() -> dict[str, object]:
    return json.loads(GOLDEN.read_text())


def test_v2_core_swap_vector():
    """UniswapV2Pair test 'swap' case (1, 5, 10) × 1e18 → 1662497915624478906 wei out."""
    e18 = 10**18
    assert dexmath.get_amount_out(1 * e18, 5 * e18, 10 * e18) == 1662497915624478906
    assert dexmath.amount_out(1.0, 5.0, 10.0, 30.0) == pytest.approx(1.662497915624478906, rel=1e-15)


def test_golden_pool_is_wbtc_weth_with_a_0_3_percent_fee():
    """The recorded pool state at block 17,600,000 (what the tests below rely on)."""
    g = golden()
    assert (g["block"], g["fee_token0"], g["fee_token1"]) == (17600000, "3/1000", "3/1000")
    assert [t["symbol"] for t in g["tokens"]] == ["WBTC", "WETH"]  # type: ignore[attr-defined]
    assert (g["reserves_token0"], g["reserves_token1"]) == (16231137593, 2571336301536722443178)


@given(sats=st.integers(min_value=10_000, max_value=5_000_000_000))
def test_float_amount_out_matches_integer_on_chain_math_wbtc_in(sats: int):
    """Selling WBTC into the real pool: float math = on-chain integer getAmountOut (within 1 wei + 1e-12)."""
    g = golden()
    r0, r1 = int(g["reserves_token0"]), int(g["reserves_token1"])  # type: ignore[call-overload]
    exact = dexmath.get_amount_out(sats, r0, r1)
    approx = dexmath.amount_out(sats / 1e8, r0 / 1e8, r1 / 1e18, 30.0) * 1e18
    assert abs(approx - exact) <= max(1.0, exact * 1e-12)


@given(wei=st.integers(min_value=10**15, max_value=500 * 10**18))
def test_float_amount_out_matches_integer_on_chain_math_weth_in(wei: int):
    """Selling WETH into the real pool, the other direction."""
    g = golden()
    r0, r1 = int(g["reserves_token0"]), int(g["reserves_token1"])  # type: ignore[call-overload]
    exact = dexmath.get_amount_out(wei, r1, r0)
    approx = dexmath.amount_out(wei / 1e18, r1 / 1e18, r0 / 1e8, 30.0) * 1e8
    assert abs(approx - exact) <= max(1.0, exact * 1e-12)


@given(sats=st.integers(min_value=10_000, max_value=10_000_000_000))
def test_get_amount_in_is_the_smallest_input_for_an_output(sats: int):
    """getAmountIn(out) buys at least `out`; one wei less does not (the v2 library's rounding)."""
    g = golden()
    r0, r1 = int(g["reserves_token0"]), int(g["reserves_token1"])  # type: ignore[call-overload]
    needed = dexmath.get_amount_in(sats, r1, r0)  # WETH in for `sats` WBTC out
    assert dexmath.get_amount_out(needed, r1, r0) >= sats
    assert dexmath.get_amount_out(needed - 2, r1, r0) < sats
    approx = dexmath.amount_in(sats / 1e8, r1 / 1e18, r0 / 1e8, 30.0) * 1e18
    assert abs(approx - needed) <= max(2.0, needed * 1e-12)


def test_dex_leg_on_the_real_pool_reproduces_on_chain_amounts():
    """swap_base on the golden pool: proceeds (notional − fee) = getAmountOut; cost (notional + fee) = getAmountIn."""
    g = golden()
    r0, r1 = int(g["reserves_token0"]), int(g["reserves_token1"])  # type: ignore[call-overload]
    pool = ConstantProductPool.from_raw(
        venue="uniswap_v2",
        reserve0=r0,
        reserve1=r1,
        decimals0=8,
        decimals1=18,
        base_is_token0=True,
        fee_bps=30.0,
        gas_usd=0.0,
        recv_ns=0,
    )
    assert pool.base_reserve == 162.31137593 and pool.quote_reserve == pytest.approx(2571.336301536722443178)
    sell = dexmath.swap_base(pool, 2.5, buy=False)
    assert sell is not None and sell.complete
    assert (sell.quote - sell.fee_usd) * 1e18 == pytest.approx(dexmath.get_amount_out(250_000_000, r0, r1), rel=1e-12)
    assert sell.fee_usd == pytest.approx(0.003 * sell.quote, rel=1e-15) and sell.top_price == pytest.approx(
        r1 / 1e18 / (r0 / 1e8)
    )
    buy = dexmath.swap_base(pool, 2.5, buy=True)
    assert buy is not None and buy.complete and buy.vwap > buy.top_price > sell.vwap
    assert (buy.quote + buy.fee_usd) * 1e18 == pytest.approx(dexmath.get_amount_in(250_000_000, r1, r0), rel=1e-12)
    # the pool cannot sell all of its WBTC
    whole = dexmath.swap_base(pool, 162.31137593, buy=True)
    assert whole is not None and whole.complete is False and whole.base == 0.0


def test_unusable_quotes():
    """Non-positive reserves or a fee of 100 % give no price at all."""
    assert dexmath.swap_base(ConstantProductPool("uniswap_v2", 0.0, 1.0, 30.0, 0.0, 0), 1.0, buy=False) is None
    assert dexmath.swap_base(ConstantProductPool("uniswap_v2", 1.0, 1.0, 10_000.0, 0.0, 0), 1.0, buy=False) is None
    with pytest.raises(ValueError):
        dexmath.get_amount_out(0, 1, 1)
