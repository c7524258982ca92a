"""The single entry point: ``evaluate(candidate, market, constraints, now_ns=..., now_ms=...)``."""

from __future__ import annotations

from collections.abc import Callable

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
from rules.strategies import cex_cex, cex_dex, funding_carry, perp_spot_basis
from rules.strategies.legs import Setup
from rules.strategies.two_legs import evaluate_two_legs

# Every strategy is two legs laid out by its ``describe`` (what its evaluate_<strategy> passes to
# evaluate_two_legs). A dict by exact type is one lookup on the hot path instead of an isinstance chain.
_DESCRIBE: dict[type, Callable[[Candidate], Setup]] = {
    CexCexCandidate: cex_cex.describe,
    PerpSpotBasisCandidate: perp_spot_basis.describe,
    FundingCarryCandidate: funding_carry.describe,
    CexDexCandidate: cex_dex.describe,
}


def evaluate(
    candidate: Candidate, market: MarketView, constraints: Constraints, *, now_ns: int, now_ms: int
) -> Decision:
    """Decide whether ``candidate`` qualifies now, with every number and reason.

    ``now_ns`` is the local monotonic clock (``time.monotonic_ns()``), compared with the books'
    ``recv_ns`` for ages and skew. ``now_ms`` is wall/venue epoch time in ms, compared with funding
    settlement times. Pure and deterministic: the same inputs give the same decision.
    """
    describe = _DESCRIBE.get(type(candidate))
    if describe is None:
        describe = _describe_subclass(candidate)
    return evaluate_two_legs(candidate, describe, market, constraints, now_ns=now_ns, now_ms=now_ms)


def _describe_subclass(candidate: object) -> Callable[[Candidate], Setup]:
    for kind, describe in _DESCRIBE.items():
        if isinstance(candidate, kind):
            return describe
    raise TypeError(f"not a candidate: {candidate!r}")
