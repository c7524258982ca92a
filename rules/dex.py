"""Constant-product (Uniswap v2) swap math and the DEX leg of ``cex_dex``.

Two forms of the same formula: exact integers as the v2 ``UniswapV2Library`` computes them on chain
(:func:`get_amount_out`, :func:`get_amount_in`), used to check the float form against real reserves,
and floats in token units (:func:`amount_out`, :func:`amount_in`) used by the evaluator.

The pool fee is taken from the *input* amount. The DEX leg reports its price ex-fee (the price at which
the amount that entered the curve traded) and the fee separately in USD, like a CEX leg:

* selling ``q`` base: ``q·(1−f)`` enters the curve, ``out`` quote comes back; ``vwap = out / (q·(1−f))``,
  notional ``q·vwap``, fee ``f × notional`` (so proceeds = notional − fee = ``out``).
* buying ``q`` base: the curve needs ``c = R_q·q / (R_b − q)`` quote, the trader pays ``c / (1−f)``;
  ``vwap = c / q``, notional ``c``, fee ``c·f / (1−f)`` (the input fee expressed on the notional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rules.market import ConstantProductPool, DexQuote, QuotedSwap

_NAN = float("nan")


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_num: int = 997, fee_den: int = 1000) -> int:
    """Uniswap v2 ``getAmountOut``: integer, rounded down, fee ``1 − fee_num/fee_den`` on the input."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("amounts and reserves must be positive")
    with_fee = amount_in * fee_num
    return (with_fee * reserve_out) // (reserve_in * fee_den + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_num: int = 997, fee_den: int = 1000) -> int:
    """Uniswap v2 ``getAmountIn``: the smallest integer input that yields ``amount_out``."""
    if amount_out <= 0 or reserve_in <= 0 or amount_out >= reserve_out:
        raise ValueError("amount_out must be positive and below reserve_out")
    return (reserve_in * amount_out * fee_den) // ((reserve_out - amount_out) * fee_num) + 1


def amount_out(amount_in: float, reserve_in: float, reserve_out: float, fee_bps: float) -> float:
    """Float ``getAmountOut`` in token units."""
    effective = amount_in * (1.0 - fee_bps / 1e4)
    return effective * reserve_out / (reserve_in + effective)


def amount_in(amount_out: float, reserve_in: float, reserve_out: float, fee_bps: float) -> float:
    """Float ``getAmountIn`` in token units (``inf`` when the pool cannot pay ``amount_out``)."""
    if amount_out >= reserve_out:
        return math.inf
    return reserve_in * amount_out / ((reserve_out - amount_out) * (1.0 - fee_bps / 1e4))


@dataclass(frozen=True, slots=True)
class DexFill:
    """A DEX leg's fill in the same terms as a book walk, plus its fee (USD) and the pool's fee tier."""

    vwap: float
    base: float
    quote: float
    top_price: float
    levels: int
    complete: bool
    fee_usd: float
    fee_tier_bps: float


def usable(quote: DexQuote) -> bool:
    """A quote the math can use: positive finite amounts and a fee tier in [0, 100 %)."""
    if not 0.0 <= quote.fee_bps < 1e4 or not math.isfinite(quote.gas_usd) or quote.gas_usd < 0.0:
        return False
    if isinstance(quote, ConstantProductPool):
        amounts = (quote.base_reserve, quote.quote_reserve)
    else:
        amounts = (quote.amount_in, quote.amount_out)
    return all(math.isfinite(a) and a > 0.0 for a in amounts)


def swap_base(quote: DexQuote, base_qty: float, *, buy: bool) -> DexFill | None:
    """Buy (``buy=True``) or sell ``base_qty`` base against ``quote``; ``None`` if the quote cannot serve it.

    ``None`` means no usable price (invalid numbers, or a router quote for the other direction).
    A pool that cannot deliver the amount, or a router quote smaller than the need, gives an incomplete
    fill (``insufficient_depth``).
    """
    if not usable(quote) or not base_qty > 0.0:
        return None
    f = quote.fee_bps / 1e4
    if isinstance(quote, ConstantProductPool):
        r_base, r_quote = quote.base_reserve, quote.quote_reserve
        top = r_quote / r_base
        if buy:
            if base_qty >= r_base:
                return DexFill(_NAN, 0.0, 0.0, top, 1, False, 0.0, quote.fee_bps)
            curve_in = r_quote * base_qty / (r_base - base_qty)
            fee_usd = curve_in * f / (1.0 - f)
            return DexFill(curve_in / base_qty, base_qty, curve_in, top, 1, True, fee_usd, quote.fee_bps)
        effective = base_qty * (1.0 - f)
        vwap = r_quote / (r_base + effective)
        notional = base_qty * vwap
        return DexFill(vwap, base_qty, notional, top, 1, True, f * notional, quote.fee_bps)
    assert isinstance(quote, QuotedSwap)
    if quote.sell_base == buy:
        return None  # the router quoted the other direction
    if buy:
        price = quote.amount_in / quote.amount_out * (1.0 - f)  # ex-fee quote per base
        filled = min(base_qty, quote.amount_out)
        notional = filled * price
        return DexFill(price, filled, notional, price, 1, filled == base_qty, notional * f / (1.0 - f), quote.fee_bps)
    price = quote.amount_out / (quote.amount_in * (1.0 - f))
    filled = min(base_qty, quote.amount_in)
    notional = filled * price
    return DexFill(price, filled, notional, price, 1, filled == base_qty, f * notional, quote.fee_bps)
