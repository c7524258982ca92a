"""``funding_carry_cex_cex``: long the perp where funding is lower, short where it is higher.

* legs: ``long`` walks its asks to ``size_usd``; ``short`` sells the same base on its bids.
* ``gross`` is the entry spread between the two perps' VWAPs (usually a small cost);
  funding is the carry: the short leg's settlements inside the horizon (received when positive) minus
  the long leg's (paid when positive), each on its venue's own schedule and interval.
* fees: four fills (entry and exit on both legs), the exit at the entry notional. No borrow.
"""

from __future__ import annotations

from rules.candidates import Candidate, FundingCarryCandidate
from rules.constraints import Constraints
from rules.decision import Decision
from rules.market import MarketView
from rules.strategies.legs import LegPlan, Setup
from rules.strategies.two_legs import evaluate_two_legs


def describe(candidate: Candidate) -> Setup:
    assert isinstance(candidate, FundingCarryCandidate)
    return Setup(
        LegPlan("long", candidate.long_perp, buy=True, funding_position=-1),
        LegPlan("short", candidate.short_perp, buy=False, funding_position=1),
        horizon_ms=candidate.horizon_ms,
    )


def evaluate_funding_carry(
    candidate: FundingCarryCandidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    return evaluate_two_legs(candidate, describe, market, constraints, now_ns=now_ns, now_ms=now_ms)
