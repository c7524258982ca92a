"""``perp_spot_basis``: spot against a perpetual of the same base, held for a horizon.

* ``long_spot_short_perp``: buy spot (asks, quote = size) and sell the same base on the perp (bids).
  The short perp receives funding when the rate is positive.
* ``short_spot_long_perp``: sell spot (bids, quote = size) on margin, borrowing the base, and buy the
  perp (asks). The long perp pays a positive rate; the borrow costs
  ``borrow_rate_bps_per_hour × horizon hours`` on the spot leg's notional, and the spot leg's
  ``max_borrow_usd`` limits it.
* ``gross`` is the basis captured at entry, ``(sell VWAP − buy VWAP) / buy VWAP``, assuming the position is
  closed at zero basis; funding counts the settlements inside the horizon on the perp's own schedule;
  fees are a round trip (entry + exit) on both legs, the exit at the entry notional.
"""

from __future__ import annotations

from rules.candidates import BasisDirection, Candidate, PerpSpotBasisCandidate
from rules.constraints import Constraints
from rules.decision import Decision
from rules.market import MarketView
from rules.strategies.legs import LegPlan, Setup
from rules.strategies.two_legs import evaluate_two_legs


def describe(candidate: Candidate) -> Setup:
    assert isinstance(candidate, PerpSpotBasisCandidate)
    forward = candidate.direction is BasisDirection.LONG_SPOT_SHORT_PERP
    return Setup(
        LegPlan("spot", candidate.spot, buy=forward),
        LegPlan("perp", candidate.perp, buy=not forward, funding_position=1 if forward else -1),
        horizon_ms=candidate.horizon_ms,
        borrow_leg=None if forward else 0,
        direction=candidate.direction,
    )


def evaluate_perp_spot_basis(
    candidate: PerpSpotBasisCandidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    return evaluate_two_legs(candidate, describe, market, constraints, now_ns=now_ns, now_ms=now_ms)
