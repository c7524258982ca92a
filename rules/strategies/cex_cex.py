"""``cex_cex``: buy on one venue, sell the same base on another, at the same moment.

* legs: ``buy`` walks venue A's asks to ``size_usd`` (quote), filling ``q`` base; ``sell`` walks venue B's
  bids for ``q`` base.
* ``gross = (sell VWAP − buy VWAP) / buy VWAP``; slippage = top-of-book gross − gross.
* fees: one fill per leg at the profile's role and the account's tier; the candidate's rebalance cost
  (moving inventory back) under ``taker_default``; no funding, no borrow (inventory is held on both venues).
"""

from __future__ import annotations

from rules.candidates import Candidate, CexCexCandidate
from rules.constraints import Constraints
from rules.decision import Decision
from rules.market import MarketView
from rules.strategies.legs import LegPlan, Setup
from rules.strategies.two_legs import evaluate_two_legs


def describe(candidate: Candidate) -> Setup:
    assert isinstance(candidate, CexCexCandidate)
    return Setup(LegPlan("buy", candidate.buy, buy=True), LegPlan("sell", candidate.sell, buy=False))


def evaluate_cex_cex(
    candidate: CexCexCandidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    return evaluate_two_legs(candidate, describe, market, constraints, now_ns=now_ns, now_ms=now_ms)
