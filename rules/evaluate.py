"""The single entry point: ``evaluate(candidate, market, constraints, now_ns=..., now_ms=...)``."""

from __future__ import annotations

from rules.candidates import (
    Candidate,
    CexCexCandidate,
    CexDexCandidate,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
)
from rules.constraints import Constraints
from rules.decision import Decision
from rules.market import MarketView
from rules.strategies.cex_cex import evaluate_cex_cex
from rules.strategies.cex_dex import evaluate_cex_dex
from rules.strategies.funding_carry import evaluate_funding_carry
from rules.strategies.perp_spot_basis import evaluate_perp_spot_basis


def evaluate(
    candidate: Candidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    """Decide whether ``candidate`` qualifies now, with every number and reason.

    ``now_ns`` is the local monotonic clock (``time.monotonic_ns()``), compared with the books'
    ``recv_ns`` for ages and skew. ``now_ms`` is wall/venue epoch time in ms, compared with funding
    settlement times. Pure and deterministic: the same inputs give the same decision.
    """
    if isinstance(candidate, CexCexCandidate):
        return evaluate_cex_cex(candidate, market, constraints, now_ns=now_ns, now_ms=now_ms)
    if isinstance(candidate, PerpSpotBasisCandidate):
        return evaluate_perp_spot_basis(candidate, market, constraints, now_ns=now_ns, now_ms=now_ms)
    if isinstance(candidate, FundingCarryCandidate):
        return evaluate_funding_carry(candidate, market, constraints, now_ns=now_ns, now_ms=now_ms)
    if isinstance(candidate, CexDexCandidate):
        return evaluate_cex_dex(candidate, market, constraints, now_ns=now_ns, now_ms=now_ms)
    raise TypeError(f"not a candidate: {candidate!r}")
