"""Candidates from the daemon config: strategies × leg pairs × directions × sizes.

Run at start and on every reload; ids are stable strings built from what a candidate *is* (strategy,
direction, legs, size), so a reload that keeps a candidate keeps its state, and journal lines about the
same candidate can be grouped across restarts::

    cex_cex:forward:binance:spot:LINK-USDT|huobi:spot:LINK-USDT:1000
    perp_spot_basis:reverse:binance:spot:BTC-USDT|binance:usdm:BTC-USDT-PERP:5000

The config loader (:mod:`scanner.config`) has already checked leg kinds, pairs and feeds; the rules'
candidate types check themselves again when built (:class:`rules.errors.CandidateError`).
"""

from __future__ import annotations

import hashlib

from rules.candidates import (
    BasisDirection,
    Candidate,
    CexCexCandidate,
    CexDexCandidate,
    DexDirection,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
    Strategy,
)
from rules.fees import FeeProfile
from scanner.config import Config, Direction, StrategyConfig, candidate_id

__all__ = ["HOUR_MS", "build_candidates", "candidate_id"]

HOUR_MS = 3_600_000


def build_candidates(config: Config) -> list[Candidate]:
    """Every candidate the config describes, in config order."""
    profile = config.constraints.fee_profile
    out: list[Candidate] = []
    for strategy in config.strategies:
        out.extend(_strategy_candidates(strategy, profile))
    return out


def _strategy_candidates(s: StrategyConfig, profile: FeeProfile) -> list[Candidate]:
    out: list[Candidate] = []
    fee_profile, passive_leg, rebalance = profile, int(s.passive_leg), s.rebalance_cost_usd
    horizon_ms = round((s.horizon_hours or 0.0) * HOUR_MS)
    if s.strategy is Strategy.CEX_DEX:
        pool = s.dex_pool or ""
        for cex in s.cex_instruments():
            for direction in s.directions():
                dex_direction = (
                    DexDirection.BUY_CEX_SELL_DEX if direction is Direction.FORWARD else DexDirection.BUY_DEX_SELL_CEX
                )
                for size in s.sizes_usd:
                    cid = candidate_id(s.strategy, direction, (str(cex), pool), size)
                    out.append(
                        CexDexCandidate(
                            id=cid,
                            cex=cex,
                            pool=pool,
                            size_usd=size,
                            direction=dex_direction,
                            fee_profile=fee_profile,
                            passive_leg=passive_leg,
                            rebalance_cost_usd=rebalance,
                        )
                    )
        return out
    for a, b in s.legs():
        for direction in s.directions():
            for size in s.sizes_usd:
                cid = candidate_id(s.strategy, direction, (str(a), str(b)), size)
                forward = direction is Direction.FORWARD
                candidate: Candidate
                if s.strategy is Strategy.CEX_CEX:
                    buy, sell = (a, b) if forward else (b, a)
                    candidate = CexCexCandidate(
                        id=cid,
                        buy=buy,
                        sell=sell,
                        size_usd=size,
                        fee_profile=fee_profile,
                        passive_leg=passive_leg,
                        rebalance_cost_usd=rebalance,
                    )
                elif s.strategy is Strategy.PERP_SPOT_BASIS:
                    basis = BasisDirection.LONG_SPOT_SHORT_PERP if forward else BasisDirection.SHORT_SPOT_LONG_PERP
                    candidate = PerpSpotBasisCandidate(
                        id=cid,
                        spot=a,
                        perp=b,
                        size_usd=size,
                        horizon_ms=horizon_ms,
                        direction=basis,
                        fee_profile=fee_profile,
                        passive_leg=passive_leg,
                        rebalance_cost_usd=rebalance,
                    )
                else:
                    long_perp, short_perp = (a, b) if forward else (b, a)
                    candidate = FundingCarryCandidate(
                        id=cid,
                        long_perp=long_perp,
                        short_perp=short_perp,
                        size_usd=size,
                        horizon_ms=horizon_ms,
                        fee_profile=fee_profile,
                        passive_leg=passive_leg,
                        rebalance_cost_usd=rebalance,
                    )
                out.append(candidate)
    return out


# What a definition fingerprint covers, by name: every field that changes a candidate's economics. Named, not
# taken from the class, so that a field added to a candidate type later changes no fingerprint (a restart
# would end every open episode); extending this list does, once (say so in its commit).
_DEFINED_BY = (
    "buy", "sell", "spot", "perp", "long_perp", "short_perp", "cex", "pool",
    "size_usd", "horizon_ms", "direction", "fee_profile", "passive_leg", "rebalance_cost_usd",
)  # fmt: skip


def definition_of(candidate: Candidate) -> str:
    """A fingerprint of what ``candidate`` is beyond its id (the fields of ``_DEFINED_BY`` it has, and its
    strategy). The id names only some of them, so a restart tells a redefined candidate (same id, say a new
    horizon) from the one its journal recorded, as a reload does by comparing them."""
    fields = [(name, str(getattr(candidate, name))) for name in _DEFINED_BY if hasattr(candidate, name)]
    text = repr((candidate.strategy.value, fields))  # str of enums, floats and instruments: stable
    return hashlib.sha256(text.encode()).hexdigest()[:16]
