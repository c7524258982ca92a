"""The engine's decision reuse (scanner.reuse) is invisible: real books, with and without it, same decisions.

Two pipelines replay the same real Binance BTC spot + USD-M slice in lockstep, one engine reusing
decisions, one evaluating every woken candidate in full. After every record, every candidate's latest
decision must be identical in both (every field, floats to the bit), and so must the events. The slice
is made to exercise the time-only checks the reuse re-runs:

* a forced stale period: the spot stream is held back for longer than ``max_book_age_ms`` (then
  released, in order, as if received late), and tight age and skew limits that flip on their own;
* funding settlements entering the horizon: a 330 s horizon that the 2024-08-09 00:00 UTC settlement
  enters mid-slice, and (second run) a 1-minute stated interval whose next settlement rolls every minute.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import pytest

from feeds.instruments import InstrumentId
from feeds.updates import FundingSource, FundingUpdate
from rules.candidates import BasisDirection, CexCexCandidate, PerpSpotBasisCandidate
from rules.decision import Decision
from rules.funding import CATCH_UP_MS
from rules.reasons import Reason
from rules.validation import load_constraints
from scanner.engine import CandidateEvent, EngineSettings
from scanner.market import FundingAssumptionSpec
from scanner.pipeline import ReplayPipeline
from tests.engine_fixtures import BTC_PERP, BTC_SPOT, DEMO_CONSTRAINTS, SETTLEMENT_MS, btc_recordings

RECORDS = 14_000
HOLD = range(3_000, 9_000)  # records during which the spot stream is held back (~9 s of market time)
MINUTE_MS = 60_000


def _constraints() -> object:
    """The demo constraints with tight spot/perp age and skew limits (they flip on the real data)."""
    document = json.loads(DEMO_CONSTRAINTS.read_text())
    template = {k: v for k, v in document["rules"][0].items() if k in ("source", "as_of")}
    for market, limit in (("spot", {"max_book_age_ms": 400.0}), ("usdm", {"max_leg_skew_ms": 250.0})):
        scoped = [
            r
            for r in document["rules"]
            if (r.get("venue"), r.get("market"), r.get("asset")) == ("binance", market, None)
        ]
        if scoped:
            scoped[0].update(limit)
        else:
            document["rules"].append({"venue": "binance", "market": market, **limit, **template})
    return load_constraints(json.dumps(document), "test: tight limits")


def _candidates() -> list[PerpSpotBasisCandidate | CexCexCandidate]:
    found: list[PerpSpotBasisCandidate | CexCexCandidate] = [
        PerpSpotBasisCandidate(
            id=f"basis-{horizon_ms}-{direction.value}",
            spot=BTC_SPOT,
            perp=BTC_PERP,
            size_usd=5000.0,
            horizon_ms=horizon_ms,
            direction=direction,
        )
        for horizon_ms in (8 * 3_600_000, 330_000, 90_000)
        for direction in BasisDirection
    ]
    found += [  # 50k walks deep: diffs reach its levels far more often
        CexCexCandidate(id=f"cex-{buy.market}-{size:.0f}", buy=buy, sell=sell, size_usd=size)
        for buy, sell in ((BTC_SPOT, BTC_PERP), (BTC_PERP, BTC_SPOT))
        for size in (2_000.0, 50_000.0)
    ]
    return found


def _pipeline(reuse: bool, interval_ms: int, events: list[CandidateEvent]) -> ReplayPipeline:
    assumptions: dict[InstrumentId, FundingAssumptionSpec] = {
        BTC_PERP: FundingAssumptionSpec(BTC_PERP, 0.0001, interval_ms, "test")
    }
    return ReplayPipeline(
        btc_recordings(),
        _candidates(),
        _constraints(),  # type: ignore[arg-type]
        assumptions=assumptions,
        settings=EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=200, reuse_decisions=reuse),
        sink=events.append,
    )


def _bits(value: float | None) -> object:
    return None if value is None else struct.pack("<d", value)


def _same(a: Decision, b: Decision, where: str) -> None:
    assert (a.outcome, a.primary_reason, a.reasons) == (b.outcome, b.primary_reason, b.reasons), where
    for name in ("net_bps", "gross_bps", "fees_bps", "funding_bps", "leg_skew_ms", "top_gross_bps"):
        assert _bits(getattr(a, name)) == _bits(getattr(b, name)), f"{where}: {name}"
    for leg_a, leg_b in zip(a.legs, b.legs, strict=True):
        assert _bits(leg_a.book_age_ms) == _bits(leg_b.book_age_ms), where
    assert a.to_json() == b.to_json(), where  # every other field


@pytest.mark.slow  # ~8 s per run: two pipelines over 14,000 records, 10 candidates
@pytest.mark.parametrize(
    ("interval_ms", "read_every"),
    [(8 * 3_600_000, 1), (MINUTE_MS, 7), (5, 1)],
    ids=["8h-assumption-read-every-record", "1min-assumption-read-every-7th", "5ms-assumption-read-every-record"],
)
def test_reuse_gives_the_decisions_of_a_full_evaluation_at_every_update(interval_ms: int, read_every: int) -> None:
    """Reading a decision builds a held one (Engine.state_of); reading only every 7th record leaves the
    held evaluations in between unread, so the evaluation after a hold ends starts from an older decision."""
    reused_events: list[CandidateEvent] = []
    full_events: list[CandidateEvent] = []
    reusing = _pipeline(True, interval_ms, reused_events)
    full = _pipeline(False, interval_ms, full_events)
    ids = [c.id for c in _candidates()]
    held: list[tuple[int, object]] = []
    seen_reasons: set[Reason] = set()
    settlements: set[int] = set()
    next_funding: set[int] = set()
    for n, (index, frame) in enumerate(reusing.merged()):
        if n >= RECORDS:
            break
        if n in HOLD and reusing.source_of(index) == "binance:spot":
            held.append((index, frame))  # spot goes quiet: its book ages past max_book_age_ms
            continue
        batch = [(index, frame)]
        if n == HOLD.stop and held:
            # released in order, received now: the sequence stays intact, the books catch up
            batch = [(i, dataclasses.replace(f, recv_ns=frame.recv_ns)) for i, f in held] + batch
            held = []
        for i, f in batch:
            assert reusing.feed(i, f) == full.feed(i, f)
            if n % read_every:
                continue
            for cid in ids:
                status_a, a = reusing.engine.state_of(cid)
                status_b, b = full.engine.state_of(cid)
                assert status_a is status_b, f"record {n} {cid}"
                if a is None or b is None:
                    assert a is b
                    continue
                _same(a, b, f"record {n} {cid}")
                seen_reasons.update(a.reasons)
                funding = a.legs[1].funding
                if funding is not None:
                    settlements.add(funding.settlements)
                    next_funding.add(funding.next_funding_ms)
    assert [e.event_id for e in reused_events] == [e.event_id for e in full_events]
    assert [e.decision.to_json() for e in reused_events] == [e.decision.to_json() for e in full_events]
    # The slice exercised what it is meant to (else the comparison proves little).
    stats_a, stats_b = reusing.engine.stats, full.engine.stats
    assert stats_a.evaluations == stats_b.evaluations > 10 * RECORDS // 2
    reused = sum(t.reused for t in stats_a.strategies.values())
    declined = sum(t.reuse_declined for t in stats_a.strategies.values())
    assert sum(t.reused for t in stats_b.strategies.values()) == 0
    assert reused > stats_a.evaluations // 2, (reused, stats_a.evaluations)
    for strategy, tally_a in stats_a.strategies.items():  # held evaluations are tallied like any other
        tally_b = stats_b.strategies[strategy]
        assert tally_a.outcomes == tally_b.outcomes, strategy
        assert (tally_a.primary, tally_a.reasons) == (tally_b.primary, tally_b.reasons), strategy
    assert declined > 0  # inputs unchanged but a time-only check changed side: evaluated in full
    assert {Reason.STALE_BOOK, Reason.LEG_SKEW} <= seen_reasons
    assert len(reused_events) > 10
    if interval_ms == 5:
        # A settlement every 5 ms falls inside the steps a candidate's market time takes, backwards too when a
        # diff stamped before the ticker that ran ahead of it lands (found by review: held decisions then
        # differed; a book's venue time now never goes back).
        assert len(next_funding) > 1_000
    elif interval_ms == MINUTE_MS:
        assert len(next_funding) >= 2 and {1, 2} <= settlements  # 90 s horizon, settlements every minute
    else:
        assert SETTLEMENT_MS in next_funding and {0, 1} <= settlements  # 00:00 UTC enters the 330 s horizon
    assert all(math.isfinite(d.net_bps) for d in reusing.engine.decisions() if d.reasons == ())


@pytest.mark.slow  # ~4 s: two pipelines over 4,000 records
def test_a_held_decision_ends_when_its_streamed_funding_misses_a_settlement() -> None:
    """A live funding update for the perp (as a stream that then stops) names a settlement that, by the
    1,500th record's venue time, lies CATCH_UP_MS behind: from then on its rate is not used, and the perp's
    stated assumption is (without one the leg's funding is unknown: tests/test_rules_strategies.py). Held
    decisions must switch at the same record as full evaluations, though nothing they read changed: the hold
    has the moment as a deadline."""
    probe = _pipeline(True, 8 * 3_600_000, [])
    for n, (index, frame) in enumerate(probe.merged()):
        if n == 1_500:
            break
        probe.feed(index, frame)
    stale_from_ms = probe.market.clock.now_ms
    update = FundingUpdate(
        key="binance:usdm:BTCUSDT",
        rate=0.0001,
        interval_ms=8 * 3_600_000,
        next_funding_ms=stale_from_ms - CATCH_UP_MS - 1,
        source=FundingSource.LIVE,
    )
    pipelines = []
    for reuse in (True, False):
        pipeline = _pipeline(reuse, 8 * 3_600_000, [])
        # The pipeline's market reads no stream: this one stands in for a feed's last update of the perp.
        pipeline.market._funding = lambda inst: update if inst == BTC_PERP else None
        pipelines.append(pipeline)
    reusing, full = pipelines
    ids = [c.id for c in _candidates() if c.id.startswith("basis-")]
    sources: dict[int, set[str | None]] = {}
    for n, (index, frame) in enumerate(reusing.merged()):
        if n >= 4_000:
            break
        assert reusing.feed(index, frame) == full.feed(index, frame)
        for cid in ids:
            (_, a), (_, b) = reusing.engine.state_of(cid), full.engine.state_of(cid)
            assert a is not None and b is not None
            _same(a, b, f"record {n} {cid}")
            sources.setdefault(n, set()).add(a.funding_source)
    switched = min(n for n, found in sources.items() if "assumed" in found)
    assert 1_400 <= switched <= 1_500  # the stream's rate was used until then, the assumption after
    assert all(found == {"live"} for n, found in sources.items() if 100 < n < switched)
    assert all(found == {"assumed"} for n, found in sources.items() if n > switched + 100)
    assert sum(t.reused for t in reusing.engine.stats.strategies.values()) > 0
