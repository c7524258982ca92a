"""The engine on real books: the instrument index, burst coalescing, hysteresis and dwell, market time."""

from __future__ import annotations

import itertools
import math

import pytest
from prometheus_client import CollectorRegistry

from feeds.book import Side
from feeds.instruments import InstrumentId
from rules.candidates import BasisDirection, CexCexCandidate, PerpSpotBasisCandidate
from rules.decision import Decision
from rules.fees import FeeProfile
from rules.reasons import Reason
from scanner.candidate_state import CandidateState, EventKind, Status, event_id
from scanner.engine import _DATA_NOT_IN, EVAL_SAMPLE, CandidateEvent, EngineSettings
from scanner.metrics import Metrics
from scanner.pipeline import ReplayPipeline
from tests.engine_fixtures import (
    BTC_PERP,
    BTC_SPOT,
    ETH_PERP,
    ETH_SPOT,
    LINK_BINANCE,
    LINK_HUOBI,
    SETTLEMENT_MS,
    btc_recordings,
    csv_recordings,
    demo_runtime,
)

HOUR_MS = 3_600_000


def basis(cid: str, spot=BTC_SPOT, perp=BTC_PERP, direction=BasisDirection.LONG_SPOT_SHORT_PERP, size=5000.0):
    return PerpSpotBasisCandidate(
        id=cid, spot=spot, perp=perp, size_usd=size, horizon_ms=8 * HOUR_MS, direction=direction
    )


def live_pipeline(candidates, *, metrics=None, sink=None, settings=None):
    """A pipeline over the BTC spot and USD-M recordings, fed until both books are live."""
    _config, constraints, assumptions, demo_settings = demo_runtime()
    pipeline = ReplayPipeline(
        btc_recordings(),
        candidates,
        constraints,
        assumptions=assumptions,
        settings=settings or demo_settings,
        metrics=metrics,
        sink=sink,
        drain_every=10**9,  # the tests drain themselves
    )
    frames = pipeline.merged()
    for index, frame in frames:
        pipeline.feed(index, frame)
        books = pipeline.books
        if all(i in books and pipeline.market.book(i) is not None for i in (BTC_SPOT, BTC_PERP)):
            break
    pipeline.engine.drain()
    return pipeline, frames


def test_an_update_evaluates_only_the_candidates_of_its_instrument():
    """Touching the BTC spot book evaluates the 2 BTC candidates, never the 300 others (cost ∝ touched)."""
    btc = [basis("btc-fwd"), basis("btc-rev", direction=BasisDirection.SHORT_SPOT_LONG_PERP)]
    others = [basis(f"eth-{i}", spot=ETH_SPOT, perp=ETH_PERP, size=100.0 + i) for i in range(300)]
    pipeline, _ = live_pipeline(btc + others)
    engine = pipeline.engine
    before = engine.stats.evaluations
    engine.touch("binance:spot:BTCUSDT", 1)
    assert engine.drain() == 2
    assert engine.stats.evaluations - before == 2
    assert engine.drain() == 0  # nothing dirty any more
    # The ETH candidates were evaluated once at start (their books never went live here) and not since.
    status, decision = engine.state_of("eth-7")
    assert status is Status.REJECTED and decision is not None and decision.primary_reason.value == "book_not_ready"


def test_an_unknown_key_wakes_nothing():
    """Updates of instruments no candidate uses are ignored at O(1)."""
    pipeline, _ = live_pipeline([basis("btc-fwd")])
    engine = pipeline.engine
    engine.touch("binance:spot:DOGEUSDT", 1)
    assert engine.pending() == 0 and engine.drain() == 0


def test_bursts_coalesce_into_one_evaluation_on_the_latest_book():
    """Ten book updates before the evaluator runs: one evaluation, on the book as it is now, 9 coalesced."""
    pipeline, frames = live_pipeline([basis("btc-fwd")])
    engine = pipeline.engine
    spot = pipeline.market.book(BTC_SPOT)
    assert spot is not None
    coalesced, touched = engine.stats.coalesced, 0
    version = spot.version
    for index, frame in frames:  # real frames; the pipeline touches the engine for every changed book
        pipeline.feed(index, frame)
        if spot.version != version and pipeline.source_of(index) == "binance:spot":
            version = spot.version
            touched += 1
            if touched == 10:
                break
    assert engine.stats.coalesced - coalesced >= 9
    assert engine.drain() == 1
    _status, decision = engine.state_of("btc-fwd")
    assert decision is not None
    spot_leg = decision.legs[0]
    assert spot_leg.top_price == spot.best_ask_price()  # the latest ask, not one of the nine before it


def test_flush_metrics_exports_the_tallies():
    """Prometheus counters equal the engine's own tallies after a flush (no double counting on re-flush)."""
    metrics = Metrics(CollectorRegistry())
    pipeline, frames = live_pipeline([basis("btc-fwd")], metrics=metrics)
    engine = pipeline.engine
    for n in range(4000):
        index, frame = next(frames)
        pipeline.feed(index, frame)
        pipeline.engine.drain()
        # Stop where held evaluations are not in the tallies yet: the flush must count them too.
        if n >= 2000 and any(slot.held for slot in engine._slots.values()):
            break
    assert any(slot.held for slot in engine._slots.values())
    engine.flush_metrics()
    engine.flush_metrics()
    tally = engine.stats.strategies["perp_spot_basis"]
    reg = metrics.registry
    for outcome in ("qualified", "rejected"):
        value = reg.get_sample_value("arbscan_evaluations_total", {"strategy": "perp_spot_basis", "outcome": outcome})
        assert value == tally.outcomes[outcome]
    assert sum(tally.outcomes.values()) == engine.stats.evaluations > 100
    for reason, n in tally.primary.items():
        sample = reg.get_sample_value(
            "arbscan_primary_rejections_total", {"strategy": "perp_spot_basis", "reason": reason}
        )
        assert sample == n
    assert reg.get_sample_value("arbscan_coalesced_updates_total") == engine.stats.coalesced
    # Evaluation time is a sample: one full evaluation in EVAL_SAMPLE (the 1st, 9th, ...); reuses are not timed.
    assert tally.full + tally.reused == engine.stats.evaluations and tally.full > 0 and tally.reused > 0
    count = reg.get_sample_value("arbscan_evaluation_seconds_count", {"strategy": "perp_spot_basis"})
    assert count == (tally.full + EVAL_SAMPLE - 1) // EVAL_SAMPLE
    reused = reg.get_sample_value("arbscan_evaluations_reused_total", {"strategy": "perp_spot_basis"})
    assert reused == tally.reused
    # update -> decision: one observation per updated key per drain (one key per frame here, plus the 2 keys
    # of the first drain), not one per candidate evaluated
    latency = reg.get_sample_value("arbscan_update_to_decision_seconds_count")
    assert latency == engine.stats.drains + 1


def test_assumed_funding_counts_the_settlement_in_the_recordings_time():
    """2024 data, 8 h horizon: exactly the 00:00 UTC settlement counts, from the stated assumption."""
    pipeline, frames = live_pipeline([basis("fwd"), basis("rev", direction=BasisDirection.SHORT_SPOT_LONG_PERP)])
    for _ in range(500):
        pipeline.feed(*next(frames))
    pipeline.engine.drain()
    for cid, sign in (("fwd", 1.0), ("rev", -1.0)):
        _status, decision = pipeline.engine.state_of(cid)
        assert decision is not None and decision.funding_source == "assumed"
        funding = decision.legs[1].funding
        assert funding is not None
        assert (funding.source, funding.rate, funding.interval_ms) == ("assumed", 0.0001, 8 * HOUR_MS)
        assert funding.next_funding_ms == SETTLEMENT_MS and funding.settlements == 1
        # 1 bp of the perp leg's notional, received short (forward) and paid long (reverse).
        assert decision.funding_bps == pytest.approx(sign * 1.0, abs=0.01)
        assert 1_723_161_253_000 < decision.now_ms < SETTLEMENT_MS  # the candidate's own market time


def _csv_events(settings: EngineSettings, sizes=(500.0,)):
    _config, constraints, _assumptions, _ = demo_runtime()
    candidates = []
    for size in sizes:
        for cid, buy, sell in (("b>h", LINK_BINANCE, LINK_HUOBI), ("h>b", LINK_HUOBI, LINK_BINANCE)):
            candidates.append(
                CexCexCandidate(
                    id=f"{cid}:{size:g}", buy=buy, sell=sell, size_usd=size, fee_profile=FeeProfile.MAKER_INVENTORY
                )
            )
    events: list[CandidateEvent] = []
    pipeline = ReplayPipeline(csv_recordings(), candidates, constraints, settings=settings, sink=events.append)
    pipeline.run()
    return pipeline, events


def test_hysteresis_and_dwell_on_the_csv_series():
    """LINK Binance/Huobi: qualified only after 1 s of market time, held within the band, alternating events."""
    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    pipeline, events = _csv_events(settings)
    tally = pipeline.engine.stats.strategies["cex_cex"]
    assert tally.outcomes["qualified"] > 0 and tally.outcomes["rejected"] > tally.outcomes["qualified"]
    qualified = [e for e in events if e.event is EventKind.QUALIFIED]
    assert qualified, "the demo constraints must let some crossings qualify"
    for event in qualified:
        d = event.decision
        # The decision attached is the one that qualified outright, at least 1 s before the alert.
        assert d.outcome.value == "qualified" and d.net_bps >= d.min_net_edge_bps == 1.0
        assert event.venue_ms - event.episode_ms >= 1000
        assert d.net_bps == pytest.approx(d.gross_bps - d.fees_bps + d.funding_bps - d.borrow_bps, abs=1e-9)
        buy, sell = d.legs
        assert d.gross_bps == pytest.approx((sell.vwap - buy.vwap) / buy.vwap * 1e4, rel=1e-9)
        # maker_inventory: the buy leg is quoted (maker, 0 bps), the sell leg hedges (taker, 2 bps).
        assert (buy.liquidity_role.value, buy.fee_bps, sell.liquidity_role.value, sell.fee_bps) == (
            "maker",
            0.0,
            "taker",
            2.0,
        )
    per_candidate: dict[str, list[EventKind]] = {}
    for event in events:
        if event.event is not EventKind.REJECTED:
            per_candidate.setdefault(event.candidate_id, []).append(event.event)
    for kinds in per_candidate.values():
        assert kinds[0] is EventKind.QUALIFIED
        assert all(a is not b for a, b in itertools.pairwise(kinds))  # strictly alternating
    # Without the dwell, every one-row crossing alerts: many more alerts on the same decisions.
    _, no_dwell = _csv_events(EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=0))
    assert sum(e.event is EventKind.QUALIFIED for e in no_dwell) > 5 * len(qualified)


def test_reload_keeps_state_of_surviving_candidates():
    """set_candidates: a candidate with the same id and definition keeps its state and decision."""
    pipeline, _ = live_pipeline([basis("a"), basis("b", size=1000.0)])
    engine = pipeline.engine
    status_a, decision_a = engine.state_of("a")
    engine.set_candidates([basis("a"), basis("c", size=2000.0)])
    assert engine.state_of("a") == (status_a, decision_a)
    assert engine.state_of("c") == (Status.UNSEEN, None)
    with pytest.raises(KeyError):
        engine.state_of("b")
    assert engine.pending() == 2  # every key is due again after a reload
    assert engine.drain() == 2
    assert engine.state_of("c")[0] is Status.REJECTED
    settings = engine.settings
    with pytest.raises(ValueError, match="duplicate candidate ids: a"):
        engine.set_candidates([basis("a"), basis("a", size=1.0)], settings=EngineSettings(hysteresis_band_bps=9.0))
    assert engine.settings is settings  # refused before anything was replaced
    assert [c.id for c in engine.candidates] == ["a", "c"]


def test_best_net_edge_is_the_maximum_of_the_latest_decisions():
    """The gauge helper returns the best finite net edge per strategy."""
    pipeline, _ = live_pipeline([basis("fwd"), basis("rev", direction=BasisDirection.SHORT_SPOT_LONG_PERP)])
    best = pipeline.engine.best_net_edge()
    nets = [d.net_bps for d in pipeline.engine.decisions()]
    assert best == {"perp_spot_basis": max(n for n in nets if math.isfinite(n))}


def _candidate_series(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["candidate"]: s.value
        for metric in registry.collect()
        if metric.name == "arbscan_candidate_net_edge_bps"
        for s in metric.samples
    }


def test_per_candidate_labels_export_each_candidates_net_edge():
    """metrics.per_candidate_labels = true: one net-edge series per configured candidate, dropped on reload."""
    import msgspec

    from scanner.runtime import engine_settings
    from tests.engine_fixtures import demo_config

    config = demo_config()
    assert engine_settings(config).per_candidate_labels is False
    on = msgspec.structs.replace(config, metrics=msgspec.structs.replace(config.metrics, per_candidate_labels=True))
    settings = engine_settings(on)
    assert settings.per_candidate_labels is True
    metrics = Metrics(CollectorRegistry())
    fwd, rev = basis("fwd"), basis("rev", direction=BasisDirection.SHORT_SPOT_LONG_PERP)
    pipeline, frames = live_pipeline([fwd, rev], metrics=metrics, settings=settings)
    for _ in range(300):
        pipeline.feed(*next(frames))
    engine = pipeline.engine
    engine.drain()
    engine.best_net_edge()
    exported = _candidate_series(metrics.registry)
    decisions = {cid: engine.state_of(cid)[1] for cid in ("fwd", "rev")}
    assert set(exported) == {"fwd", "rev"}
    for cid, decision in decisions.items():
        assert decision is not None and math.isfinite(decision.net_bps)
        assert exported[cid] == decision.net_bps
    assert exported["fwd"] != exported["rev"]
    engine.set_candidates([fwd])  # a reload drops "rev": its series goes, the label set stays bounded
    engine.best_net_edge()
    assert set(_candidate_series(metrics.registry)) == {"fwd"}


def test_per_candidate_labels_off_exports_no_candidate_series():
    metrics = Metrics(CollectorRegistry())
    pipeline, frames = live_pipeline([basis("fwd")], metrics=metrics)
    for _ in range(100):
        pipeline.feed(*next(frames))
    pipeline.engine.drain()
    assert pipeline.engine.best_net_edge()["perp_spot_basis"] == pipeline.engine.state_of("fwd")[1].net_bps
    assert _candidate_series(metrics.registry) == {}


def test_best_net_edge_gauge_is_nan_when_a_strategy_has_no_finite_net():
    """A strategy whose candidates have no finite net edge now (books not ready) exports NaN, not the
    last value it had."""
    metrics = Metrics(CollectorRegistry())
    pipeline, _frames = live_pipeline([basis("fwd")], metrics=metrics)
    engine = pipeline.engine
    labels = {"strategy": "perp_spot_basis"}
    engine.best_net_edge()
    live = metrics.registry.get_sample_value("arbscan_best_net_edge_bps", labels)
    assert live is not None and math.isfinite(live) and live == engine.state_of("fwd")[1].net_bps
    eth = basis(
        "eth", spot=InstrumentId.parse("binance:spot:ETH-USDT"), perp=InstrumentId.parse("binance:usdm:ETH-USDT-PERP")
    )
    engine.set_candidates([eth])  # no ETH books in the recording: never a finite net
    engine.evaluate_all()
    assert not math.isfinite(engine.state_of("eth")[1].net_bps)
    assert engine.best_net_edge() == {}
    assert math.isnan(metrics.registry.get_sample_value("arbscan_best_net_edge_bps", labels))


def test_recheck_disqualifies_a_qualified_candidate_whose_books_went_silent():
    """A feed that stays connected but sends nothing updates no book: the timer re-check finds it stale."""
    _config, constraints, _assumptions, _ = demo_runtime()
    candidate = CexCexCandidate(
        id="b>h", buy=LINK_BINANCE, sell=LINK_HUOBI, size_usd=500.0, fee_profile=FeeProfile.MAKER_INVENTORY
    )
    events: list[CandidateEvent] = []
    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    pipeline = ReplayPipeline(csv_recordings(), [candidate], constraints, settings=settings, sink=events.append)
    engine = pipeline.engine
    for index, frame in pipeline.merged():
        pipeline.feed(index, frame)
        if engine.state_of(candidate.id)[0] is Status.QUALIFIED:
            break
    assert engine.state_of(candidate.id)[0] is Status.QUALIFIED
    assert engine.recheck() == 0  # no time has passed: the hold holds, nothing is evaluated
    assert engine.state_of(candidate.id)[0] is Status.QUALIFIED
    _status, decision = engine.state_of(candidate.id)
    limit_ms = min(leg.max_book_age_ms for leg in decision.legs)  # type: ignore[union-attr, type-var]
    pipeline.clock.now_ns += int(limit_ms * 1e6) + 1_000_000  # silence: the clock moves, no frame comes
    rechecks = engine.stats.rechecks
    assert engine.recheck() == 1
    status, decision = engine.state_of(candidate.id)
    assert status is Status.REJECTED and decision is not None
    assert decision.primary_reason is not None and decision.primary_reason.value == "stale_book"
    assert events[-1].event is EventKind.DISQUALIFIED and events[-1].candidate_id == candidate.id
    assert events[-1].recv_ns == pipeline.clock.now_ns  # caused by the clock, not by a frame
    assert engine.stats.rechecks == rechecks + 1
    assert engine.recheck() == 0  # rejected candidates wait for their next update


def test_reading_a_held_decision_ignores_an_update_not_yet_drained():
    """A book moved (deep level, walk version unchanged) after the held evaluation and before the next drain:
    reading the decision, or reloading the candidates, builds the held evaluation's decision, never fails."""
    _config, constraints, _assumptions, _ = demo_runtime()
    cand = CexCexCandidate(
        id="b>h", buy=LINK_BINANCE, sell=LINK_HUOBI, size_usd=500.0, fee_profile=FeeProfile.MAKER_INVENTORY
    )
    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    pipeline = ReplayPipeline(csv_recordings(), [cand], constraints, settings=settings)
    engine = pipeline.engine
    for index, frame in pipeline.merged():
        pipeline.feed(index, frame)
        if engine._slots[cand.id].hold is not None:
            break
    hold = engine._slots[cand.id].hold
    assert hold is not None
    first, second = hold[0], hold[3]
    engine.touch(first.key, pipeline.clock.now_ns)
    engine.drain()  # a wake-up that changes nothing: held
    _status, held = engine.state_of(cand.id)
    assert held is not None and held.max_leg_skew_ms is not None
    late = max(first.recv_ns, second.recv_ns) + int(held.max_leg_skew_ms * 1e6) + 5_000_000
    versions = list(first.walk_versions)
    deep = first.levels(Side.BID)[-1][0] * 0.5
    first.apply([(deep, 1.0)], [], last_id=first.last_id + 1, venue_ms=first.venue_ms, recv_ns=late)
    assert first.walk_versions == versions  # nothing the candidate walks moved
    engine.touch(first.key, late)  # the feed's touch; the evaluator has not drained yet
    engine.set_candidates([cand])  # a reload in between (it reads every decision)
    _status, after = engine.state_of(cand.id)
    assert after == held  # the held evaluation's decision, not one with the undrained receive time
    engine.drain()
    _status, drained = engine.state_of(cand.id)
    assert drained is not None and Reason.LEG_SKEW in drained.reasons  # the update's evaluation sees the skew


def _link_candidate() -> CexCexCandidate:
    return CexCexCandidate(
        id="b>h", buy=LINK_BINANCE, sell=LINK_HUOBI, size_usd=500.0, fee_profile=FeeProfile.MAKER_INVENTORY
    )


def _link_pipeline(events: list[CandidateEvent]) -> ReplayPipeline:
    _config, constraints, _assumptions, _ = demo_runtime()
    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000, resume_grace_ms=60_000)
    return ReplayPipeline(csv_recordings(), [_link_candidate()], constraints, settings=settings, sink=events.append)


def test_a_candidate_resumed_as_qualified_continues_its_episode_and_closes_it_with_the_same_event():
    """A restart in the middle of a qualified episode: the resumed engine neither alerts it again nor loses
    its end. Its first event is the very ``disqualified`` (same id, same episode) the uninterrupted engine
    emitted, and its missing books at start (book_not_ready) are no news."""
    candidate = _link_candidate()
    events: list[CandidateEvent] = []
    first = _link_pipeline(events)
    frames = list(first.merged())
    at = 0
    for at, (index, frame) in enumerate(frames, start=1):  # noqa: B007 (at is read after the loop)
        first.feed(index, frame)
        if first.engine.state_of(candidate.id)[0] is Status.QUALIFIED:
            break
    [opened] = [e for e in events if e.event is EventKind.QUALIFIED]
    for index, frame in frames[at:]:  # the uninterrupted run, to the end of that episode
        first.feed(index, frame)
        if first.engine.state_of(candidate.id)[0] is not Status.QUALIFIED:
            break
    closed = events[-1]
    assert closed.event is EventKind.DISQUALIFIED and closed.episode_ms == opened.episode_ms

    # The restarted daemon's books start from the latest frame of each venue before the restart (the csv
    # series sends whole books): the frames from the earliest of those on.
    latest = {index: n for n, (index, _frame) in enumerate(frames[:at])}
    start = min(latest.values())
    resumed_events: list[CandidateEvent] = []
    second = _link_pipeline(resumed_events)
    second.clock.now_ns = frames[start][1].recv_ns
    state = CandidateState.resumed(EventKind.QUALIFIED, episode_ms=opened.episode_ms, reason=None)
    assert second.engine.resume({candidate.id: state, "gone": state}) == 1  # "gone" is not configured
    assert second.engine.qualified_now() == {"cex_cex": 1}
    second.engine.drain()  # the start-up evaluation: no book yet
    status, decision = second.engine.state_of(candidate.id)
    assert status is Status.QUALIFIED and decision is not None and decision.primary_reason is Reason.BOOK_NOT_READY
    for index, frame in frames[start:]:
        second.feed(index, frame)
        if second.engine.state_of(candidate.id)[0] is not Status.QUALIFIED:
            break
    assert resumed_events == [closed]  # not alerted again; closed exactly as without the restart


def test_a_resumed_qualified_candidate_whose_books_never_come_is_disqualified_after_the_grace():
    candidate = _link_candidate()
    events: list[CandidateEvent] = []
    pipeline = _link_pipeline(events)
    pipeline.clock.now_ns = 10**12
    state = CandidateState.resumed(EventKind.QUALIFIED, episode_ms=1_000, reason=None)
    assert pipeline.engine.resume({candidate.id: state}) == 1
    pipeline.engine.drain()
    assert pipeline.engine.recheck() == 1  # no hold while waiting: the timer evaluates it
    assert events == [] and pipeline.engine.state_of(candidate.id)[0] is Status.QUALIFIED
    pipeline.clock.now_ns += 60_000 * 1_000_000  # the grace is over
    assert pipeline.engine.recheck() == 1
    [event] = events
    assert (event.event, event.episode_ms, event.decision.primary_reason) == (
        EventKind.DISQUALIFIED,
        1_000,
        Reason.BOOK_NOT_READY,
    )
    assert not pipeline.engine.qualified_now()


def test_a_candidate_resumed_as_rejected_reports_neither_its_missing_books_nor_its_last_rejection_again():
    """Resumed as rejected for the reason its first decision with data gives: the start-up book_not_ready
    and that same rejection are no news; every later event is what an uninterrupted engine emitted."""
    candidate = _link_candidate()
    fresh: list[CandidateEvent] = []
    plain = _link_pipeline(fresh)
    frames = list(plain.merged())[:400]
    plain.clock.now_ns = frames[0][1].recv_ns
    plain.engine.drain()
    for index, frame in frames:
        plain.feed(index, frame)
    assert fresh[0].decision.primary_reason is Reason.BOOK_NOT_READY  # the start-up rejection
    first_with_data = next(n for n, e in enumerate(fresh) if e.decision.primary_reason not in _DATA_NOT_IN)
    reason = fresh[first_with_data].decision.primary_reason
    assert reason is not None and len(fresh) > first_with_data + 1
    resumed: list[CandidateEvent] = []
    again = _link_pipeline(resumed)
    again.clock.now_ns = frames[0][1].recv_ns
    state = CandidateState.resumed(EventKind.REJECTED, episode_ms=1_000, reason=reason)
    assert again.engine.resume({candidate.id: state}) == 1
    again.engine.drain()
    for index, frame in frames:
        again.feed(index, frame)
    assert resumed == fresh[first_with_data + 1 :]


def _qualified_link_pipeline(events: list[CandidateEvent]) -> tuple[ReplayPipeline, CandidateEvent]:
    """The LINK csv series played until its candidate is qualified; the ``qualified`` event."""
    pipeline = _link_pipeline(events)
    for index, frame in pipeline.merged():
        pipeline.feed(index, frame)
        if pipeline.engine.state_of(_link_candidate().id)[0] is Status.QUALIFIED:
            break
    [opened] = [e for e in events if e.event is EventKind.QUALIFIED]
    return pipeline, opened


@pytest.mark.parametrize("reload", ["removed", "redefined", "kept"])
def test_a_reload_that_removes_or_redefines_a_qualified_candidate_closes_its_episode(reload):
    """Its ``qualified`` event is paired by a ``disqualified`` of the same episode, reason ``not_watched``,
    with the numbers of its latest decision; an unchanged candidate continues its episode silently."""
    events: list[CandidateEvent] = []
    pipeline, opened = _qualified_link_pipeline(events)
    engine = pipeline.engine
    candidate = _link_candidate()
    _status, last = engine.state_of(candidate.id)
    assert last is not None and last.qualified
    before = len(events)
    other = basis("other")
    replacement = {
        "removed": [other],
        "redefined": [CexCexCandidate(id=candidate.id, buy=LINK_BINANCE, sell=LINK_HUOBI, size_usd=900.0), other],
        "kept": [candidate, other],
    }[reload]
    engine.set_candidates(replacement)
    new = events[before:]
    tally = engine.stats.strategies["cex_cex"]
    if reload == "kept":
        assert new == [] and engine.state_of(candidate.id)[0] is Status.QUALIFIED
        assert engine.qualified_now() == {"cex_cex": 1}
        return
    [closed] = new
    assert closed.event is EventKind.DISQUALIFIED and closed.candidate_id == candidate.id
    assert closed.episode_ms == opened.episode_ms
    assert closed.event_id == event_id(candidate.id, EventKind.DISQUALIFIED, opened.episode_ms, "not_watched")
    assert closed.decision.primary_reason is Reason.NOT_WATCHED and closed.decision.reasons == (Reason.NOT_WATCHED,)
    assert not closed.decision.qualified
    assert closed.decision.net_bps == last.net_bps and closed.venue_ms == last.now_ms and closed.recv_ns == 0
    assert tally.events["disqualified"] == 1 and "not_watched" not in tally.primary  # an event, not an evaluation
    assert engine.qualified_now() == {}
    if reload == "redefined":
        assert engine.state_of(candidate.id) == (Status.UNSEEN, None)


def test_a_decision_reads_back_from_its_json_line_nans_included():
    """Decision.from_dict inverts to_dict (what the journal holds, where JSON's null stands for NaN): real
    decisions before the books are ready (NaN numbers, legs not walked) and after (funding legs, fee tables,
    rules), each back to the same JSON bytes."""
    decisions = []
    _config, constraints, assumptions, _settings = demo_runtime()
    candidates = [basis("fwd"), basis("rev", direction=BasisDirection.SHORT_SPOT_LONG_PERP)]
    pipeline = ReplayPipeline(btc_recordings(), candidates, constraints, assumptions=assumptions)
    pipeline.engine.drain()
    decisions += list(pipeline.engine.decisions())  # no book yet
    for n, (index, frame) in enumerate(pipeline.merged()):
        pipeline.feed(index, frame)
        if n == 3000:
            break
    decisions += list(pipeline.engine.decisions())
    assert {d.primary_reason for d in decisions} >= {Reason.BOOK_NOT_READY, Reason.FEE_DOMINATED}
    assert any(math.isnan(d.net_bps) for d in decisions) and any(leg.funding for d in decisions for leg in d.legs)
    for decision in decisions:
        back = Decision.from_dict(decision.to_dict())
        assert back.to_json() == decision.to_json() and back.legs[0].book_state is decision.legs[0].book_state
    with pytest.raises(ValueError, match=r"Expected `float`, got `str` - at `\$.net_bps`"):
        Decision.from_dict({**decisions[-1].to_dict(), "net_bps": "high"})


def test_a_resumed_episode_closes_with_the_decision_it_resumed_with_until_its_first_evaluation():
    """Resumed qualified and not evaluated yet (its feed not delivering), it has no decision of this run: a
    stop still saves its episode and a reload removing it still closes it, with the decision it resumed
    with (found by review: it was left out of both, and its episode never ended)."""
    events: list[CandidateEvent] = []
    pipeline, opened = _qualified_link_pipeline(events)
    _status, last = pipeline.engine.state_of(_link_candidate().id)
    assert last is not None
    resumed_events: list[CandidateEvent] = []
    fresh = _link_pipeline(resumed_events)
    state = CandidateState.resumed(EventKind.QUALIFIED, episode_ms=opened.episode_ms, reason=None)
    closing = {_link_candidate().id: (last, ("a stated rate",))}
    assert fresh.engine.resume({_link_candidate().id: state}, closing) == 1
    [(cid, strategy, saved_state, decision, assumptions)] = fresh.engine.open_episodes()
    assert (cid, strategy, saved_state, decision, assumptions) == (
        _link_candidate().id, "cex_cex", state, last, ("a stated rate",)
    )  # fmt: skip
    fresh.engine.set_candidates([])
    [closed] = resumed_events
    assert (closed.event, closed.episode_ms, closed.decision.primary_reason) == (
        EventKind.DISQUALIFIED,
        opened.episode_ms,
        Reason.NOT_WATCHED,
    )
    assert closed.decision.net_bps == last.net_bps and closed.assumptions == ("a stated rate",)


def test_an_event_states_only_the_assumptions_its_decision_used():
    """A carry whose Binance leg has a live rate and whose Bybit leg only its assumption (both configured):
    the event's stated assumptions name the Bybit leg alone (it used to name every configured one)."""
    from feeds.book import OrderBook
    from feeds.sequencing import BybitRules
    from feeds.sync import BookSync
    from feeds.updates import BookSnapshot, FundingSource, FundingUpdate
    from rules.candidates import FundingCarryCandidate
    from rules.constraints import Constraints
    from rules.template import template_document
    from scanner.engine import Engine
    from scanner.market import FundingAssumptionSpec, LiveMarket, MarketClock
    from tests.rules_fixtures import BIN_PERP, BYBIT_PERP

    now_ms = 1_723_161_600_000
    books = {}
    for inst, (bid, ask) in ((BIN_PERP, (99.9, 100.0)), (BYBIT_PERP, (100.2, 100.3))):
        sync = BookSync(OrderBook(str(inst)), BybitRules())
        sync.on_snapshot(BookSnapshot(str(inst), 1, [(bid, 50.0)], [(ask, 50.0)], venue_ms=now_ms, recv_ns=1))
        books[inst] = sync
    live = FundingUpdate("binance:usdm:BTCUSDT", 0.0001, 8 * 3_600_000, now_ms + 3_600_000, source=FundingSource.LIVE)
    assumptions = {
        inst: FundingAssumptionSpec(inst, 0.0002, 8 * 3_600_000, f"stated for {inst.venue}") for inst in books
    }
    market = LiveMarket(books, lambda inst: live if inst == BIN_PERP else None, assumptions, MarketClock())
    events: list[CandidateEvent] = []
    cand = FundingCarryCandidate(
        id="carry", long_perp=BIN_PERP, short_perp=BYBIT_PERP, size_usd=1_000.0, horizon_ms=8 * 3_600_000
    )
    engine = Engine(
        market,
        Constraints(template_document()),
        keys={i: str(i) for i in books},
        candidates=[cand],
        sink=events.append,
        clock=lambda: 2,
    )
    engine.evaluate_all()
    [event] = events
    assert [leg.funding.source for leg in event.decision.legs if leg.funding is not None] == ["live", "assumed"]
    assert event.assumptions == ("bybit:linear:BTC-USDT-PERP: stated for bybit",)


def _bare_engine(candidates, *, keys, metrics=None):  # type: ignore[no-untyped-def]
    """An engine over a market with no book yet (every decision book_not_ready)."""
    from rules.constraints import Constraints
    from rules.template import template_document
    from scanner.engine import Engine
    from scanner.market import LiveMarket, MarketClock

    market = LiveMarket({}, lambda _inst: None, {}, MarketClock())
    return Engine(market, Constraints(template_document()), keys=keys, candidates=candidates, metrics=metrics)


def test_keys_due_by_a_load_of_the_candidates_are_not_update_latency():
    """Building (or reloading) the candidate set makes every key due, with no update behind it: the drain that
    evaluates them observes no update→decision latency (it observed the whole start-up as one); an update
    that comes before that drain is the one it decides on."""
    metrics = Metrics(CollectorRegistry())
    engine = _bare_engine([basis("b")], keys={BTC_SPOT: "spot", BTC_PERP: "perp"}, metrics=metrics)
    reg = metrics.registry
    assert engine.drain() == 1
    assert reg.get_sample_value("arbscan_update_to_decision_seconds_count") == 0
    engine.set_candidates([basis("b")])
    engine.touch("perp", 1)  # an update before the drain: its receive time is the one observed
    assert engine.drain() == 1
    assert reg.get_sample_value("arbscan_update_to_decision_seconds_count") == 1


def test_a_candidate_with_both_legs_on_one_key_is_evaluated_once_per_update():
    """Two instruments of one book key (a feed key both legs map to): the candidate is woken once."""
    engine = _bare_engine([basis("b")], keys={BTC_SPOT: "one", BTC_PERP: "one"})
    engine.drain()
    engine.touch("one", 5)
    assert engine.drain() == 1 and engine.stats.evaluations == 2


def test_a_spot_market_instrument_with_a_perp_suffix_is_refused():
    """binance:spot:BTC-USDT-PERP named the spot book a second time (both legs of a basis on one book)."""
    with pytest.raises(ValueError, match="a spot instrument is BASE-QUOTE"):
        InstrumentId.parse("binance:spot:BTC-USDT-PERP")
    assert InstrumentId.parse("binance:usdm:BTC-USDT-PERP").kind.value == "perp"


def test_a_held_decision_is_rebuilt_with_its_own_receive_times_after_its_books_stop():
    """At a clean stop the feeds close (their books reset) before the open episodes are saved: the held
    decision is rebuilt from the receive times of its held evaluation, not NaN ages for books now gone."""
    from rules.candidates import CexCexCandidate
    from rules.evaluate import evaluate
    from scanner.market import StaticMarket
    from scanner.reuse import reads_of, refresh
    from tests.rules_fixtures import BIN_SPOT, MS, OKX_SPOT, book, template

    market = StaticMarket(
        books={BIN_SPOT: book([(99.0, 5.0)], [(100.0, 5.0)]), OKX_SPOT: book([(101.0, 5.0)], [(102.0, 5.0)])}
    )
    cand = CexCexCandidate(id="c", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=100.0)
    previous = evaluate(cand, market, template(), now_ns=1_100 * MS, now_ms=1)
    reads = reads_of(previous, cand.instruments)
    assert reads is not None
    rebuilt = refresh(previous, reads, [None, None], now_ns=1_200 * MS, now_ms=2, recv_ns=(1_000 * MS, 1_150 * MS))
    assert rebuilt is not None
    assert [leg.book_age_ms for leg in rebuilt.legs] == [200.0, 50.0] and rebuilt.leg_skew_ms == 150.0
