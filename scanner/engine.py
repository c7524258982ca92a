"""The engine: which candidates an update touches, evaluating them on the latest state, emitting events.

The way of an update::

    feed: book/funding of key K changed (recv_ns) ──► Engine.touch(K, recv_ns)     O(1): mark K dirty
                                                          │ (K already dirty: coalesced, counted)
    evaluator task (one, owned) ◄── woken ────────────────┘
        drain(): for each dirty key, the candidates of K (index built at start / reload),
                 each evaluated ONCE on the books as they are now → candidate state → events

* **Index.** ``key → candidates`` is built when the candidate set is (re)built, so the cost of an update
  is the number of candidates that touch its instrument, never the total.
* **Coalescing.** Updates only mark keys dirty; the single evaluator drains the dirty set when it runs.
  When updates arrive faster than evaluations, a candidate is evaluated once on the latest state rather
  than once per queued update, and the updates folded away are counted (``arbscan_coalesced_updates``).
* **Reuse.** A settled candidate keeps a hold (:mod:`scanner.reuse`): while the book sides it walks,
  its funding and the deadlines of its time-only checks are unchanged, a wake-up costs a few compares
  and is counted as a reused evaluation; when only time ended the hold, the previous decision is
  refreshed rather than recomputed unless a time-only check changed side. Counted
  (``arbscan_evaluations_reused``); the tallies count it as an evaluation of the same outcome.
* **Episodes end.** A qualified candidate the engine stops watching (a reload removes or redefines it; the
  daemon closes journaled episodes it cannot resume across a long downtime) gets the ``disqualified``
  event that closes its episode, primary reason ``not_watched`` (:meth:`Engine.unwatch`).
* **Timer.** :meth:`Engine.recheck` re-evaluates qualified and dwelling candidates whose books may have
  aged past a limit with no update (a silent feed): the daemon runs it every ``recheck_ms``.
* **Metrics cost.** Prometheus histograms are observed sparingly: ``arbscan_evaluation_seconds`` on one
  full evaluation in :data:`EVAL_SAMPLE` (a deterministic sample: reuses are not timed), and
  ``arbscan_update_to_decision_seconds`` once per updated key per drain (receive time to the end of the
  drain that decided on it), not once per candidate.
* **Clocks.** Evaluation passes ``now_ns`` (local monotonic: book ages) and ``now_ms`` = the market clock
  (latest venue time seen: funding settlements and the candidate dwell), see :mod:`scanner.market`.

:meth:`Engine.drain` is synchronous and is also what the in-process pipeline (:mod:`scanner.pipeline`)
and tests call directly; :meth:`Engine.run` is the daemon's evaluator task.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from prometheus_client import Histogram

from feeds.book import OrderBook
from feeds.instruments import InstrumentId, Kind
from feeds.sync import BookSync
from feeds.updates import FundingSource
from rules.candidates import Candidate
from rules.constraints import Constraints
from rules.decision import Decision
from rules.evaluate import evaluate
from rules.reasons import EVALUATED, Outcome, Reason
from scanner.candidate_state import CandidateState, EventKind, Status, Transition, grade
from scanner.candidates import definition_of
from scanner.market import LiveMarket
from scanner.metrics import Metrics
from scanner.reuse import Hold, Reads, hold_of, reads_of, refresh

log = structlog.get_logger("scanner.engine")

EVAL_SAMPLE = 8  # observe arbscan_evaluation_seconds on one full evaluation in this many


class CandidateEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A state event of a candidate with the full decision behind it (what the journal records).

    ``event_id`` is stable for the same candidate, event, episode and reason
    (:func:`scanner.candidate_state.event_id`); ``dedup_key`` is stable per candidate (cooldowns and
    reports group by it); ``venue_ms`` is the market clock when the decision was made and ``episode_ms``
    the market time the qualifying run (or the rejection reason) began; ``recv_ns`` the local monotonic
    receive time of the update that caused the evaluation. ``assumptions`` are the stated funding
    assumptions the decision used (empty when every rate was live).
    """

    event: EventKind
    event_id: str
    dedup_key: str
    candidate_id: str
    strategy: str
    episode_ms: int
    venue_ms: int
    recv_ns: int
    decision: Decision
    assumptions: tuple[str, ...] = ()
    definition: str = ""  # scanner.candidates.definition_of the candidate ("" when not known)

    def context(self) -> dict[str, object]:
        """Engine-side facts for the journal line's ``context``."""
        context: dict[str, object] = {
            "candidate_id": self.candidate_id,
            "strategy": self.strategy,
            "episode_ms": self.episode_ms,
            "funding_assumptions": list(self.assumptions),
        }
        if self.definition:  # a restart resumes the candidate only if it is still defined so (scanner.resume)
            context["definition"] = self.definition
        return context


EventSink = Callable[[CandidateEvent], None]
# What a decision says when its inputs are not in yet, rather than anything about the market (Engine.resume).
_DATA_NOT_IN = frozenset({Reason.BOOK_NOT_READY, Reason.STALE_BOOK, Reason.LEG_SKEW, Reason.FUNDING_UNKNOWN})
_NOT_WATCHED = Reason.NOT_WATCHED
_replace = msgspec.structs.replace


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """``[engine]`` of the config, in the units the engine uses."""

    hysteresis_band_bps: float = 2.0
    min_qualified_dwell_ms: int = 500
    reuse_decisions: bool = True  # reuse the previous decision when no input changed (scanner.reuse)
    per_candidate_labels: bool = False  # export arbscan_candidate_net_edge_bps{strategy,candidate}
    recheck_ms: int = 250  # qualified/dwelling candidates are re-checked this often without updates (recheck)
    resume_grace_ms: int = 120_000  # a resumed candidate waits this long for its data (Engine.resume)


@dataclass(slots=True)
class _Slot:
    """One candidate, its state and its latest decision."""

    candidate: Candidate
    strategy: str
    state: CandidateState = field(default_factory=CandidateState)
    decision: Decision | None = None
    dirty_ns: int = 0  # earliest receive time of the updates waiting for this candidate (0 = none)
    instruments: tuple[InstrumentId, ...] = ()
    reads: Reads | None = None  # what its evaluation reads (None: not known yet, or never held)
    reusable: bool = True  # False once known to read a DEX quote
    hold: Hold | None = None  # while its check passes, a wake-up changes nothing (scanner.reuse.hold_of)
    held: int = 0  # held evaluations not yet added to the tallies (Engine.stats adds them)
    held_ns: int = 0  # times of the latest held evaluation, 0 when ``decision`` is the latest one
    held_ms: int = 0
    held_recv: tuple[int, int] = (0, 0)  # its legs' receive times (a book may have moved since, undrained)
    resumed_until_ns: int = 0  # resumed: until then missing data is no news; -1: from its first evaluation
    assumed: tuple[str, ...] = ()  # the funding assumptions its latest event stated (a close repeats them)
    definition: str = ""  # scanner.candidates.definition_of the candidate, stated on its events
    resumed_decision: Decision | None = None  # resumed qualified: the decision to close with before its first


class StrategyTally:
    """Plain counters of one strategy, keyed by the enums' string values (cheap to bump per evaluation)."""

    __slots__ = ("events", "full", "outcomes", "primary", "reasons", "reuse_declined", "reused")

    def __init__(self) -> None:
        self.reused = 0  # evaluations answered with the previous decision (scanner.reuse)
        self.full = 0  # evaluations that ran rules.evaluate
        self.reuse_declined = 0  # a hold ended by time, but a time-only check changed side: evaluated in full
        self.outcomes: dict[str, int] = dict.fromkeys((o.value for o in Outcome), 0)
        self.primary: dict[str, int] = dict.fromkeys((r.value for r in EVALUATED), 0)
        self.reasons: dict[str, int] = dict.fromkeys((r.value for r in EVALUATED), 0)
        self.events: dict[str, int] = dict.fromkeys((k.value for k in EventKind), 0)


@dataclass(slots=True)
class EngineStats:
    """What the engine did, as plain counters: the terminal summary reads them, and
    :meth:`Engine.flush_metrics` exports them to Prometheus (by delta, before each scrape and on a timer)
    instead of touching labelled Prometheus children on every evaluation."""

    updates: int = 0
    coalesced: int = 0
    evaluations: int = 0
    drains: int = 0
    rechecks: int = 0  # evaluations made by the timer (Engine.recheck), part of ``evaluations``
    strategies: dict[str, StrategyTally] = field(default_factory=dict)

    def strategy(self, name: str) -> StrategyTally:
        found = self.strategies.get(name)
        if found is None:
            found = self.strategies[name] = StrategyTally()
        return found


def duplicate_ids(candidates: Iterable[Candidate]) -> list[str]:
    """Candidate ids that occur more than once, sorted."""
    counts = Counter(c.id for c in candidates)
    return sorted(cid for cid, n in counts.items() if n > 1)


class Engine:
    """Candidates, their index and state; evaluates what updates touched (see the module docstring).

    ``keys`` maps each instrument to the feed key its book and funding updates arrive under
    (``binance:spot:BTCUSDT``); candidates on instruments no feed carries are kept (and rejected as
    ``book_not_ready``) but never woken by an update.
    """

    def __init__(
        self,
        market: LiveMarket,
        constraints: Constraints,
        *,
        keys: Mapping[InstrumentId, str],
        candidates: Sequence[Candidate] = (),
        settings: EngineSettings | None = None,
        metrics: Metrics | None = None,
        sink: EventSink | None = None,
        strategies: Iterable[str] = (),
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.market = market
        self._now_ns = clock
        self.constraints = constraints
        self.settings = settings or EngineSettings()
        self.metrics = metrics
        self.sink = sink
        self._stats = EngineStats()
        self._keys = dict(keys)
        self._key_instruments: dict[str, list[InstrumentId]] = {}
        # key -> (its instruments' book syncs, its instruments that can have live funding), once every
        # sync exists (syncs live as long as their feed; only perpetual/dated legs have funding)
        self._key_sources: dict[str, tuple[tuple[BookSync, ...], tuple[InstrumentId, ...]]] = {}
        self._slots: dict[str, _Slot] = {}
        self._index: dict[str, list[_Slot]] = {}
        self._dirty: dict[str, int] = {}  # key -> earliest recv_ns among its pending updates
        self._qualified: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._exported: dict[tuple[str, ...], int] = {}  # metric series -> value already exported
        self._candidate_series: set[tuple[str, str]] = set()  # per-candidate gauge series exported
        self._eval_seconds: dict[str, Histogram] = {}
        self._latency = metrics.update_to_decision_seconds if metrics is not None else None
        for strategy in strategies:
            self._strategy(strategy)
        self.set_candidates(candidates)

    # ---- configuration ----------------------------------------------------------------------------

    def set_candidates(
        self,
        candidates: Sequence[Candidate],
        *,
        constraints: Constraints | None = None,
        settings: EngineSettings | None = None,
        keys: Mapping[InstrumentId, str] | None = None,
    ) -> None:
        """(Re)build the candidate set and its index; a candidate whose id survives keeps its state.

        Every candidate is then due for evaluation (constraints or settings may have changed). Duplicate
        ids raise ValueError before anything is replaced (the config loader reports them as a ConfigError).
        """
        dupes = duplicate_ids(candidates)
        if dupes:
            raise ValueError(f"duplicate candidate ids: {', '.join(dupes)}")
        if constraints is not None:
            self.constraints = constraints
        if settings is not None:
            self.settings = settings
        if keys is not None:
            self._keys = dict(keys)
        key_instruments: dict[str, list[InstrumentId]] = {}
        for instrument, key in self._keys.items():
            key_instruments.setdefault(key, []).append(instrument)
        self._key_instruments = key_instruments
        self._key_sources = {}
        old = self._slots
        for kept in old.values():
            self._materialize(kept)
            self._release(kept)
        slots: dict[str, _Slot] = {}
        for candidate in candidates:
            previous = old.get(candidate.id)
            slot = _Slot(
                candidate,
                candidate.strategy.value,
                instruments=tuple(candidate.instruments),
                definition=definition_of(candidate),
            )
            if previous is not None and previous.candidate == candidate:
                slot.state, slot.decision, slot.assumed = previous.state, previous.decision, previous.assumed
                slot.resumed_until_ns, slot.resumed_decision = previous.resumed_until_ns, previous.resumed_decision
            slots[candidate.id] = slot
            self._strategy(slot.strategy)
        for gone in old.values():  # removed, or redefined under the same id: its episode ends here
            successor = slots.get(gone.candidate.id)
            last = gone.decision if gone.decision is not None else gone.resumed_decision
            if (successor is None or successor.state is not gone.state) and last is not None:
                self.unwatch(
                    gone.candidate.id, gone.strategy, gone.state, last, gone.assumed, definition=gone.definition
                )
        index: dict[str, list[_Slot]] = {}
        for slot in slots.values():
            for instrument in slot.candidate.instruments:
                found = self._keys.get(instrument)
                if found is not None:
                    listed = index.setdefault(found, [])
                    if not listed or listed[-1] is not slot:  # both legs on one key: woken once, evaluated once
                        listed.append(slot)
        self._slots, self._index = slots, index
        self._drop_candidate_series()
        self._dirty = dict.fromkeys(index, 0)  # due, but caused by no update: recv 0, no latency observed
        self._recount_qualified()
        self._wake.set()

    def _recount_qualified(self) -> None:
        """Count the qualified candidates per strategy afresh from their states (a reload, a resume) and export."""
        self._qualified = Counter(s.strategy for s in self._slots.values() if s.state.qualified)
        self._publish_qualified()

    def _strategy(self, strategy: str) -> StrategyTally:
        tally = self._stats.strategy(strategy)
        if self.metrics is not None and strategy not in self._eval_seconds:
            self._eval_seconds[strategy] = self.metrics.evaluation_seconds.labels(strategy)
            self.metrics.qualified_now.labels(strategy).set(0)
            self.metrics.best_net_edge.labels(strategy)
        return tally

    # ---- inputs ----------------------------------------------------------------------------------

    def touch(self, key: str, recv_ns: int) -> None:
        """A book or funding state of ``key`` changed (the feeds' ``on_update`` callback). O(1)."""
        self._stats.updates += 1
        dirty = self._dirty
        if key in dirty:
            self._stats.coalesced += 1
            if not dirty[key]:  # due by a reload: this update is the one the drain decides on
                dirty[key] = recv_ns
            return
        if key in self._index:
            dirty[key] = recv_ns
            self._wake.set()

    # ---- evaluation ------------------------------------------------------------------------------

    def drain(self) -> int:
        """Evaluate every candidate touched since the last drain, once each. Returns how many."""
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return 0
        self._stats.drains += 1
        clock = self.market.clock
        for key in dirty:
            clock.advance(self._venue_ms(key))
        todo: Iterable[_Slot]
        single = 0  # the receive time of the only dirty key (0: several, each slot's dirty_ns is set)
        if len(dirty) == 1:  # the common case: one book moved
            [(key, single)] = dirty.items()
            todo = self._index.get(key, ())
        else:
            pending: dict[str, _Slot] = {}
            for key, recv_ns in dirty.items():
                for slot in self._index.get(key, ()):
                    if slot.candidate.id not in pending or recv_ns < slot.dirty_ns:
                        slot.dirty_ns = recv_ns
                    pending[slot.candidate.id] = slot
            todo = pending.values()
        now_ns = self._now_ns()
        live_funding = self.market.live_funding
        count = 0
        for slot in todo:
            count += 1
            hold = slot.hold
            if hold is not None:
                # The common case, a few compares (scanner.reuse.hold_of): nothing this candidate reads
                # changed, and no time-only check can have changed side before the hold's deadlines.
                (
                    first,
                    first_side,
                    first_version,
                    second,
                    second_side,
                    second_version,
                    until_ns,
                    until_ms,
                    live,
                    stuck,
                ) = hold
                now_ms = first.venue_ms if first.venue_ms > second.venue_ms else second.venue_ms
                if (
                    first.walk_versions[first_side] == first_version
                    and second.walk_versions[second_side] == second_version
                    and now_ns < until_ns
                    and now_ms < until_ms
                    and (
                        live is None
                        or (live_funding(live[0]) is live[1] and (len(live) == 2 or live_funding(live[2]) is live[3]))
                    )
                    and (
                        stuck is None
                        or (stuck[0].recv_ns == stuck[1] and (len(stuck) == 2 or stuck[2].recv_ns == stuck[3]))
                    )
                ):
                    slot.held += 1
                    slot.held_ns, slot.held_ms = now_ns, now_ms
                    slot.held_recv = (first.recv_ns, second.recv_ns)
                    slot.dirty_ns = 0
                    continue
                self._release(slot)
                if single:
                    slot.dirty_ns = single
                self._evaluate(slot, now_ns, reuse=self._expired_by_time(hold, now_ms))
                continue
            if single:
                slot.dirty_ns = single
            self._evaluate(slot, now_ns)
        latency = self._latency
        if latency is not None:
            end_ns = self._now_ns()
            for recv_ns in dirty.values():
                if recv_ns:  # 0: due by a (re)load of the candidates, not by an update
                    latency.observe(max(0, end_ns - recv_ns) / 1e9)
        return count

    def _expired_by_time(self, hold: Hold, now_ms: int) -> bool:
        """True if ``hold`` ended only because time passed (its reads are unchanged: scanner.reuse.refresh)."""
        first, first_side, first_version, second, second_side, second_version, _ns, until_ms, live, _stuck = hold
        if first.walk_versions[first_side] != first_version or second.walk_versions[second_side] != second_version:
            return False
        if now_ms >= until_ms:
            return False  # a funding deadline: a stated rate's next settlement, or the settlements counted
        live_funding = self.market.live_funding
        return live is None or (
            live_funding(live[0]) is live[1] and (len(live) == 2 or live_funding(live[2]) is live[3])
        )

    def _release(self, slot: _Slot) -> None:
        """End a slot's hold: its held evaluations go to the tallies."""
        self._tally_held(slot)
        slot.hold = None

    def _tally_held(self, slot: _Slot) -> None:
        held = slot.held
        if not held:
            return
        decision = slot.decision
        assert decision is not None
        tally = self._stats.strategies[slot.strategy]
        tally.reused += held
        tally.outcomes[decision.outcome] += held
        primary = decision.primary_reason
        if primary is not None:
            tally.primary[primary] += held
            for reason in decision.reasons:
                tally.reasons[reason] += held
        self._stats.evaluations += held
        slot.held = 0

    @property
    def stats(self) -> EngineStats:
        """The engine's counters, with every held evaluation so far counted (O(candidates))."""
        for slot in self._slots.values():
            if slot.held:
                self._tally_held(slot)
        return self._stats

    def evaluate_all(self) -> int:
        """Evaluate every candidate now (start-up, reload, tests)."""
        now = self._now_ns()
        for slot in self._slots.values():
            slot.dirty_ns = now
            self._release(slot)
            self._evaluate(slot, now)
        return len(self._slots)

    def _venue_ms(self, key: str) -> int:
        """Latest venue time of the books and live funding behind ``key`` (0 if none yet)."""
        sources = self._key_sources.get(key)
        market = self.market
        if sources is None:
            instruments = self._key_instruments.get(key, ())
            syncs = [market.sync(i) for i in instruments]
            found = tuple(sync for sync in syncs if sync is not None)
            sources = (found, tuple(i for i in instruments if i.kind is not Kind.SPOT))
            if len(found) == len(syncs):
                self._key_sources[key] = sources
        best = 0
        for sync in sources[0]:  # a book being resynced keeps its last venue time: still a time seen
            best = max(best, sync.book.venue_ms)
        for instrument in sources[1]:
            funding = market.live_funding(instrument)  # an assumed rate has no venue time
            if funding is not None and funding.venue_ms > best:
                best = funding.venue_ms
        return best

    def _evaluate(self, slot: _Slot, now_ns: int, *, reuse: bool = False) -> None:
        """Evaluate one candidate; ``reuse``: its hold ended only because time passed, so its previous
        decision is refreshed (scanner.reuse.refresh) unless a time-only check changed side."""
        market = self.market
        instruments = slot.instruments
        books: list[OrderBook | None] = [market.book(i) for i in instruments]
        # The candidate's market time: the latest venue time of its own books. Per candidate rather than
        # global, so that recordings of different dates replayed together (the demo) each count funding
        # settlements and dwell in their own time. Before any leg has a venue time, the global clock.
        now_ms = 0
        for book in books:
            if book is not None and book.venue_ms > now_ms:
                now_ms = book.venue_ms
        now_ms = now_ms or market.clock.now_ms
        market.set_time(now_ms)
        strategy = slot.strategy
        tally = self._stats.strategies[strategy]
        decision: Decision | None = None
        reads = slot.reads
        if reuse and reads is not None and slot.decision is not None:
            decision = refresh(slot.decision, reads, books, now_ns=now_ns, now_ms=now_ms)
            if decision is not None:
                tally.reused += 1
            else:
                tally.reuse_declined += 1
        if decision is None:
            if self.metrics is not None and tally.full % EVAL_SAMPLE == 0:  # the 1st, 9th, ... are timed
                t0 = time.perf_counter()
                decision = evaluate(slot.candidate, market, self.constraints, now_ns=now_ns, now_ms=now_ms)
                self._eval_seconds[strategy].observe(time.perf_counter() - t0)
            else:
                decision = evaluate(slot.candidate, market, self.constraints, now_ns=now_ns, now_ms=now_ms)
            tally.full += 1
            if reads is None and slot.reusable:
                reads = slot.reads = reads_of(decision, instruments)
                slot.reusable = reads is not None
        slot.decision = decision
        slot.held_ns = 0
        self._stats.evaluations += 1
        tally.outcomes[decision.outcome] += 1
        primary = decision.primary_reason
        if primary is not None:
            tally.primary[primary] += 1
            reasons = tally.reasons
            for reason in decision.reasons:
                reasons[reason] += 1
        state = slot.state
        waiting = slot.resumed_until_ns != 0 and self._awaits_data(slot, primary, now_ns)
        if waiting:
            transition = None  # resumed, its data not in yet: no news either way
        elif state.status is Status.REJECTED and not decision.qualified and primary == state.last_reason:
            # Rejected again for the reason last reported: whatever the grade, the state machine makes
            # no transition and emits nothing (CandidateState.observe), so skip building one.
            transition = None
        else:
            inp = grade(
                qualified=decision.qualified,
                reasons=decision.reasons,
                net_bps=decision.net_bps,
                min_net_edge_bps=decision.min_net_edge_bps,
                band_bps=self.settings.hysteresis_band_bps,
            )
            was_qualified = state.qualified
            transition = state.observe(slot.candidate.id, inp, primary, now_ms)
            if was_qualified and not state.qualified:
                self._qualified[strategy] -= 1
                self._publish_qualified(strategy)
        if transition is not None and transition.event is not None:
            self._emit(slot, transition, now_ms)
        # The dwell runs on the candidate's market time, which moves only when its legs update, i.e.
        # exactly when it is evaluated: checking here is checking at every tick of its clock.
        if state.status is Status.DWELLING and state.dwell_due(now_ms, self.settings.min_qualified_dwell_ms):
            self._qualified[strategy] += 1
            self._publish_qualified(strategy)
            self._emit(slot, state.dwell(slot.candidate.id, now_ms), now_ms)
        if reads is not None and self.settings.reuse_decisions and not waiting:
            slot.hold = hold_of(decision, state, reads, books, instruments, market, now_ms)
        slot.dirty_ns = 0

    def _materialize(self, slot: _Slot) -> None:
        """Bring a held decision up to its latest held evaluation (ages, skew, ``now_ms``), as reuse would.

        With the legs' receive times of that evaluation: an update received since (touched, not drained
        yet) belongs to the next evaluation, not to this one.
        """
        if not slot.held_ns:
            return
        previous, reads = slot.decision, slot.reads
        assert previous is not None and reads is not None
        books = [self.market.book(i) for i in slot.instruments]
        decision = refresh(previous, reads, books, now_ns=slot.held_ns, now_ms=slot.held_ms, recv_ns=slot.held_recv)
        if decision is not None:
            slot.decision = decision
        else:  # cannot happen for a hold that held (its checks were on the same side); never crash a read
            log.error("held_decision_not_refreshable", candidate=slot.candidate.id)
        slot.held_ns = 0

    def _emit(self, slot: _Slot, transition: Transition, now_ms: int) -> None:
        # A ``qualified`` event fires only right after a passing evaluation (a dwell needs a PASS on every
        # evaluation), so the latest decision is the passing one it shows.
        decision = slot.decision
        assert decision is not None
        # Stated now: a reload may change the market's assumptions before this episode's close repeats them.
        slot.assumed = self._assumptions(slot)
        self._send(
            slot.candidate.id, slot.strategy, transition, decision, slot.assumed, now_ms, slot.dirty_ns, slot.definition
        )

    def _send(  # noqa: PLR0917 (positional: the fields of the event, in order)
        self,
        candidate_id: str,
        strategy: str,
        transition: Transition,
        decision: Decision,
        assumptions: tuple[str, ...],
        venue_ms: int,
        recv_ns: int,
        definition: str = "",
    ) -> CandidateEvent:
        """Count the transition's event and hand it to the sink (the journal, the alerts)."""
        kind = transition.event
        assert kind is not None
        self._strategy(strategy).events[kind] += 1
        event = CandidateEvent(
            event=kind,
            event_id=transition.event_id,
            dedup_key=candidate_id,
            candidate_id=candidate_id,
            strategy=strategy,
            episode_ms=transition.episode_ms,
            venue_ms=venue_ms,
            recv_ns=recv_ns,
            decision=decision,
            assumptions=assumptions,
            definition=definition,
        )
        if self.sink is not None:
            self.sink(event)
        return event

    def unwatch(
        self,
        candidate_id: str,
        strategy: str,
        state: CandidateState,
        last: Decision,
        assumptions: tuple[str, ...] = (),
        *,
        definition: str = "",
    ) -> CandidateEvent | None:
        """The engine no longer watches a candidate in ``state`` (a slot's, or one the journal recorded):
        close a qualified episode with the ``disqualified`` event that pairs with its ``qualified`` one.

        Not an evaluation (no tally of outcomes or reasons counts it, only the event): its decision is
        ``last``, the latest one made, marked rejected with the sole reason ``not_watched``, and its market
        time is that decision's. Returns the event, or None when ``state`` had no episode to close.
        """
        transition = state.unwatched(candidate_id)
        if transition.event is None:
            return None
        decision = _replace(last, outcome=Outcome.REJECTED, primary_reason=_NOT_WATCHED, reasons=(_NOT_WATCHED,))
        log.info("episode_closed", candidate=candidate_id, reason=_NOT_WATCHED.value, episode_ms=transition.episode_ms)
        # recv_ns 0: caused by no update
        return self._send(candidate_id, strategy, transition, decision, assumptions, decision.now_ms, 0, definition)

    def open_episodes(self) -> list[tuple[str, str, CandidateState, Decision, tuple[str, ...]]]:
        """(candidate id, strategy, state, latest decision, stated assumptions) of every qualified candidate:
        what a clean stop saves, so that the next start can close the episodes it will not watch."""
        found = []
        for slot in self._slots.values():
            if not slot.state.qualified:
                continue
            self._materialize(slot)
            last = slot.decision if slot.decision is not None else slot.resumed_decision  # or: resumed, unevaluated
            if last is not None:
                found.append((slot.candidate.id, slot.strategy, slot.state, last, slot.assumed))
        return found

    def _assumptions(self, slot: _Slot) -> tuple[str, ...]:
        """The stated funding assumptions behind the slot's decision (empty when every rate it used was live)."""
        decision = slot.decision
        if decision is None or decision.funding_source != FundingSource.ASSUMED.value:
            return ()
        # Only the legs whose rate was the assumption: another leg may have had a live rate while its
        # assumption waits, configured, for the stream to stop.
        assumed = {
            leg.instrument
            for leg in decision.legs
            if leg.funding is not None and leg.funding.source == FundingSource.ASSUMED.value
        }
        return tuple(
            f"{inst}: {spec.reason}"
            for inst in slot.candidate.instruments
            if str(inst) in assumed and (spec := self.market.assumption(inst)) is not None
        )

    def _publish_qualified(self, strategy: str | None = None) -> None:
        if self.metrics is None:
            return
        names = (strategy,) if strategy is not None else tuple(self._stats.strategies)
        for name in names:
            self.metrics.qualified_now.labels(name).set(self._qualified[name])

    def resume(
        self,
        states: Mapping[str, CandidateState],
        closing: Mapping[str, tuple[Decision, tuple[str, ...]]] | None = None,
    ) -> int:
        """Start candidates from the states a restart read back from the journal (:mod:`scanner.resume`).

        Only candidates not evaluated yet take theirs; returns how many did. For ``resume_grace_ms`` from its
        first evaluation, a resumed candidate's data being missing (``book_not_ready``, ``stale_book``,
        ``leg_skew``, ``funding_unknown``: the feeds are still starting) is no news: a qualified one is not
        disqualified by it, a rejected one does not report it. Its first decision with data decides; after
        the grace, missing data counts as for any candidate (the re-check timer evaluates a waiting
        qualified candidate meanwhile: it holds nothing). ``closing``: per resumed qualified candidate, the
        decision and stated assumptions its episode closes with should it end before its first evaluation
        (a reload removing it, or the stop saving it: :meth:`open_episodes`).
        """
        count = 0
        for candidate_id, state in states.items():
            slot = self._slots.get(candidate_id)
            if slot is None or slot.decision is not None or slot.state.status is not Status.UNSEEN:
                continue
            slot.state = state
            slot.resumed_until_ns = -1  # the grace starts at its first evaluation (after metadata loads)
            if closing is not None and candidate_id in closing:
                slot.resumed_decision, slot.assumed = closing[candidate_id]
            count += 1
        self._recount_qualified()
        return count

    def _awaits_data(self, slot: _Slot, primary: Reason | None, now_ns: int) -> bool:
        """For a resumed candidate: True while its decision only says its data is not in yet."""
        if primary in _DATA_NOT_IN:
            if slot.resumed_until_ns < 0:
                slot.resumed_until_ns = now_ns + self.settings.resume_grace_ms * 1_000_000
            if now_ns < slot.resumed_until_ns:
                return True
        slot.resumed_until_ns = 0  # the first decision with data (or the grace is over): the usual rules
        return False

    def recheck(self) -> int:
        """Re-evaluate the qualified and dwelling candidates whose books may have aged past a limit.

        Candidates are evaluated when a book they read updates; a feed that stays connected but goes
        silent updates nothing, so without this a qualified candidate would stay qualified on a stale
        book. A held candidate is re-evaluated only once its hold's deadline has passed (before it, no
        time-only check can have changed side); one without a hold (dwelling, or reading a DEX quote),
        on every call. Rejected candidates wait for their next update: nothing is alerted on them.
        Returns how many were evaluated.
        """
        now_ns = self._now_ns()
        count = 0
        for slot in self._slots.values():
            status = slot.state.status
            if status is not Status.QUALIFIED and status is not Status.DWELLING:
                continue
            hold = slot.hold
            reuse = False
            if hold is not None:
                if now_ns < hold[6]:  # until_ns
                    continue
                self._release(slot)
                first, second = hold[0], hold[3]
                reuse = self._expired_by_time(hold, max(first.venue_ms, second.venue_ms))
            slot.dirty_ns = now_ns  # caused by the clock, not by a frame
            self._evaluate(slot, now_ns, reuse=reuse)
            count += 1
        self._stats.rechecks += count
        return count

    async def run_rechecks(self) -> None:
        """Call :meth:`recheck` every ``recheck_ms``, forever (the daemon owns this task)."""
        while True:
            await asyncio.sleep(self.settings.recheck_ms / 1000)  # read each time: a reload may change it
            self.recheck()

    # ---- the evaluator task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Drain whenever woken, forever (the daemon owns this task and cancels it on shutdown)."""
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            self.drain()
            # Let the feeds run before the next drain even if the drain took long: updates that arrive
            # meanwhile coalesce into the next drain.
            await asyncio.sleep(0)

    # ---- reads for metrics and the summary ---------------------------------------------------------

    @property
    def candidates(self) -> list[Candidate]:
        return [s.candidate for s in self._slots.values()]

    def definitions(self) -> dict[str, str]:
        """Each watched candidate's definition (scanner.candidates.definition_of, computed once per load), by id."""
        return {cid: slot.definition for cid, slot in self._slots.items()}

    def qualified_now(self) -> dict[str, int]:
        return {s: n for s, n in self._qualified.items() if n}

    def decisions(self) -> Iterable[Decision]:
        for slot in self._slots.values():
            self._materialize(slot)
        return (s.decision for s in self._slots.values() if s.decision is not None)

    def state_of(self, candidate_id: str) -> tuple[Status, Decision | None]:
        slot = self._slots[candidate_id]
        self._materialize(slot)
        return slot.state.status, slot.decision

    def best_net_edge(self) -> dict[str, float]:
        """Best current net edge per strategy among evaluated candidates (O(candidates): call it on a timer).

        With ``per_candidate_labels`` it also exports each candidate's latest net edge
        (``arbscan_candidate_net_edge_bps{strategy,candidate}``, NaN while it has none): one series per
        configured candidate, removed when a reload drops the candidate.
        """
        best: dict[str, float] = {}
        per_candidate = self.metrics is not None and self.settings.per_candidate_labels
        for slot in self._slots.values():
            d = slot.decision
            if d is not None and math.isfinite(d.net_bps) and d.net_bps > best.get(slot.strategy, float("-inf")):
                best[slot.strategy] = d.net_bps
            if per_candidate:
                assert self.metrics is not None
                series = (slot.strategy, slot.candidate.id)
                self.metrics.candidate_net_edge.labels(*series).set(d.net_bps if d is not None else math.nan)
                self._candidate_series.add(series)
        if self.metrics is not None:
            # NaN, not the last value, for a strategy with no finite net edge now (books not ready, or no
            # candidates left after a reload): a stale number would look like a live opportunity.
            for strategy in self._stats.strategies:
                self.metrics.best_net_edge.labels(strategy).set(best.get(strategy, math.nan))
        return best

    def _drop_candidate_series(self) -> None:
        """Remove the per-candidate series of candidates no longer configured (keeps the label set bounded)."""
        if self.metrics is None or not self._candidate_series:
            return
        live = {(s.strategy, s.candidate.id) for s in self._slots.values()}
        if not self.settings.per_candidate_labels:
            live = set()
        for series in self._candidate_series - live:
            self.metrics.candidate_net_edge.remove(*series)
        self._candidate_series &= live

    def flush_metrics(self) -> None:
        """Export the plain counters to Prometheus by delta (call before a scrape and on a timer)."""
        m = self.metrics
        if m is None:
            return
        exported = self._exported

        def bump(series: tuple[str, ...], value: int, counter: Any) -> None:
            delta = value - exported.get(series, 0)
            if delta > 0:
                counter.inc(delta)
                exported[series] = value

        stats = self.stats  # with the held evaluations so far
        bump(("coalesced",), stats.coalesced, m.coalesced_updates)
        for strategy, tally in stats.strategies.items():
            for outcome, n in tally.outcomes.items():
                bump(("outcome", strategy, outcome), n, m.evaluations.labels(strategy, outcome))
            for reason, n in tally.primary.items():
                bump(("primary", strategy, reason), n, m.primary_rejections.labels(strategy, reason))
            for reason, n in tally.reasons.items():
                bump(("reason", strategy, reason), n, m.rejection_reasons.labels(strategy, reason))
            for event, n in tally.events.items():
                bump(("event", strategy, event), n, m.candidate_events.labels(strategy, event))
            bump(("reused", strategy), tally.reused, m.evaluations_reused.labels(strategy))

    def pending(self) -> int:
        """Keys waiting for the evaluator."""
        return len(self._dirty)
