"""``cex_dex``: a CEX book against a DEX pool (or a router quote), one shot.

* legs: ``cex`` walks the CEX book to ``size_usd`` (asks to buy, bids to sell), filling ``q`` base;
  ``dex`` swaps ``q`` base the other way (see :mod:`rules.dex` for the constant-product math and how the
  pool's input fee is shown as a fee).
* ``gross = (sell VWAP − buy VWAP) / buy VWAP`` with the DEX price ex-fee; slippage includes the
  pool's price impact (marginal price → average price).
* costs: the CEX fee by profile and tier, the pool fee, the swap's gas (USD), and the rebalance cost
  under ``taker_default``. No funding, no borrow. The DEX leg is checked against the
  ``<dex>:amm:<base>`` rule (wallet capital, quote freshness).
"""

from __future__ import annotations

from rules.candidates import Candidate, CexDexCandidate, DexDirection
from rules.constraints import Constraints
from rules.decision import Decision
from rules.market import MarketView
from rules.strategies.legs import LegPlan, Setup
from rules.strategies.two_legs import evaluate_two_legs


def describe(candidate: Candidate) -> Setup:
    assert isinstance(candidate, CexDexCandidate)
    buy_cex = candidate.direction is DexDirection.BUY_CEX_SELL_DEX
    return Setup(
        LegPlan("cex", candidate.cex, buy=buy_cex),
        LegPlan("dex", candidate.cex, buy=not buy_cex, pool=candidate.pool),
        direction=candidate.direction,
    )


def evaluate_cex_dex(
    candidate: CexDexCandidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    return evaluate_two_legs(candidate, describe, market, constraints, now_ns=now_ns, now_ms=now_ms)
