"""The candidate state machine: its one transition table, hysteresis grading, dwell, events and their ids."""

from __future__ import annotations

import pytest

from rules.reasons import Reason
from scanner.candidate_state import (
    TRANSITIONS,
    CandidateState,
    CandidateStateError,
    EventKind,
    Input,
    Status,
    event_id,
    grade,
)

CID = "cex_cex:forward:binance:spot:LINK-USDT|huobi:spot:LINK-USDT:500"
NO_EDGE, FEES, BELOW = Reason.NO_GROSS_EDGE, Reason.FEE_DOMINATED, Reason.BELOW_MIN_EDGE


def test_grade_passes_qualified_decisions():
    """A qualified decision is PASS whatever its numbers."""
    assert grade(qualified=True, reasons=(), net_bps=3.0, min_net_edge_bps=1.0, band_bps=0.5) is Input.PASS


@pytest.mark.parametrize(
    ("reasons", "net", "expected"),
    [
        ((BELOW,), 0.5, Input.IN_BAND),  # exactly min - band: still in the band
        ((BELOW,), 0.6, Input.IN_BAND),
        ((BELOW,), 0.49, Input.FAIL),  # below the band
        ((FEES, BELOW), 0.9, Input.FAIL),  # another reason applies: never held by hysteresis
        ((Reason.STALE_BOOK, BELOW), 0.9, Input.FAIL),
    ],
)
def test_grade_hysteresis_band(reasons, net, expected):
    """Only a rejection by below_min_edge alone, within the band, is IN_BAND."""
    assert grade(qualified=False, reasons=reasons, net_bps=net, min_net_edge_bps=1.0, band_bps=0.5) is expected


def test_grade_without_a_minimum_is_a_failure():
    """No min_net_edge_bps (constraints missing): nothing to hold on to."""
    assert grade(qualified=False, reasons=(BELOW,), net_bps=0.9, min_net_edge_bps=None, band_bps=0.5) is Input.FAIL


def test_transition_table_is_closed():
    """Every target of the table is a state, and DWELL_ELAPSED leaves only DWELLING."""
    assert all(isinstance(new, Status) for new, _ in TRANSITIONS.values())
    assert [s for (s, i) in TRANSITIONS if i is Input.DWELL_ELAPSED] == [Status.DWELLING]


def test_first_rejection_is_an_event_and_repeats_are_not():
    """UNSEEN → REJECTED emits `rejected`; the same primary reason again emits nothing; a new one does."""
    state = CandidateState()
    first = state.observe(CID, Input.FAIL, Reason.BOOK_NOT_READY, 1_000)
    assert (first.old, first.new, first.event, first.reason) == (
        Status.UNSEEN,
        Status.REJECTED,
        EventKind.REJECTED,
        Reason.BOOK_NOT_READY,
    )
    assert state.observe(CID, Input.FAIL, Reason.BOOK_NOT_READY, 2_000).event is None
    changed = state.observe(CID, Input.FAIL, NO_EDGE, 3_000)
    assert (changed.event, changed.reason, changed.episode_ms) == (EventKind.REJECTED, NO_EDGE, 3_000)
    assert changed.event_id == event_id(CID, EventKind.REJECTED, 3_000, "no_gross_edge")


def test_qualify_after_dwell_then_disqualify():
    """PASS starts dwelling; the dwell elapses on market time; FAIL then disqualifies, paired by episode."""
    state = CandidateState()
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    entered = state.observe(CID, Input.PASS, None, 5_000)
    assert (entered.new, entered.event) == (Status.DWELLING, None)
    assert not state.dwell_due(5_999, 1_000)
    assert state.observe(CID, Input.PASS, None, 5_500).event is None  # passing keeps it dwelling
    assert state.dwell_due(6_000, 1_000)
    qualified = state.dwell(CID, 6_000)
    assert (qualified.new, qualified.event, qualified.episode_ms) == (Status.QUALIFIED, EventKind.QUALIFIED, 5_000)
    assert state.qualified
    assert state.observe(CID, Input.IN_BAND, BELOW, 7_000).event is None  # band: still qualified
    dropped = state.observe(CID, Input.FAIL, FEES, 8_000)
    assert (dropped.new, dropped.event, dropped.reason) == (Status.REJECTED, EventKind.DISQUALIFIED, FEES)
    assert dropped.episode_ms == 5_000  # the qualified episode it closes
    assert dropped.event_id == event_id(CID, EventKind.DISQUALIFIED, 5_000, "fee_dominated")
    assert dropped.event_id != qualified.event_id
    # The disqualification's reason is the last one reported: the same reason next is not news.
    assert state.observe(CID, Input.FAIL, FEES, 9_000).event is None


def test_failing_while_dwelling_never_alerted():
    """A candidate that fails before its dwell elapses emits only `rejected`, and only on a reason change."""
    state = CandidateState()
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    state.observe(CID, Input.PASS, None, 2_000)
    assert state.observe(CID, Input.FAIL, NO_EDGE, 2_500).event is None
    state.observe(CID, Input.PASS, None, 3_000)
    back = state.observe(CID, Input.FAIL, FEES, 3_200)
    assert (back.old, back.new, back.event) == (Status.DWELLING, Status.REJECTED, EventKind.REJECTED)


def test_in_band_while_dwelling_ends_the_dwell():
    """One PASS then in-band evaluations for the dwell must not qualify: IN_BAND while dwelling rejects
    (an event only on a change of primary reason) and the next PASS dwells afresh from its own time."""
    assert TRANSITIONS[(Status.DWELLING, Input.IN_BAND)] == (Status.REJECTED, EventKind.REJECTED)
    state = CandidateState()
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    state.observe(CID, Input.PASS, None, 2_000)
    fell = state.observe(CID, Input.IN_BAND, BELOW, 2_100)
    assert (fell.old, fell.new, fell.event, fell.reason) == (
        Status.DWELLING,
        Status.REJECTED,
        EventKind.REJECTED,
        BELOW,
    )
    assert not state.dwell_due(3_500, 1_000)  # no longer dwelling, however long
    assert state.observe(CID, Input.IN_BAND, BELOW, 3_500).event is None  # same reason: not news
    state.observe(CID, Input.PASS, None, 4_000)
    again = state.observe(CID, Input.IN_BAND, BELOW, 4_100)
    assert (again.new, again.event) == (Status.REJECTED, None)  # same reason as the last rejection event
    state.observe(CID, Input.PASS, None, 5_000)
    assert not state.dwell_due(5_999, 1_000)  # the dwell restarted at 5_000
    assert state.dwell_due(6_000, 1_000)
    assert state.dwell(CID, 6_000).episode_ms == 5_000


def test_rejected_in_band_does_not_start_dwelling():
    """Hysteresis holds only what has qualified: IN_BAND from REJECTED stays rejected."""
    state = CandidateState()
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    moved = state.observe(CID, Input.IN_BAND, BELOW, 2_000)
    assert (moved.new, moved.event, moved.reason) == (Status.REJECTED, EventKind.REJECTED, BELOW)


def test_illegal_transitions_raise():
    """DWELL_ELAPSED outside DWELLING, or passed to observe(), is our bug."""
    state = CandidateState()
    with pytest.raises(CandidateStateError, match="UNSEEN on DWELL_ELAPSED"):
        state.dwell(CID, 1_000)
    with pytest.raises(CandidateStateError, match="not an evaluation"):
        state.observe(CID, Input.DWELL_ELAPSED, None, 1_000)
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    with pytest.raises(CandidateStateError, match="REJECTED on DWELL_ELAPSED"):
        state.dwell(CID, 2_000)


def test_event_ids_are_stable_and_distinct():
    """Same facts give the same id (a replay re-derives it); any differing fact gives another."""
    base = event_id(CID, EventKind.QUALIFIED, 1_723_161_255_208)
    assert base == event_id(CID, EventKind.QUALIFIED, 1_723_161_255_208)
    others = {
        event_id(CID + "x", EventKind.QUALIFIED, 1_723_161_255_208),
        event_id(CID, EventKind.DISQUALIFIED, 1_723_161_255_208),
        event_id(CID, EventKind.QUALIFIED, 1_723_161_255_209),
        event_id(CID, EventKind.QUALIFIED, 1_723_161_255_208, "fee_dominated"),
    }
    assert base not in others and len(others) == 4
    assert len(base) == 32 and int(base, 16) >= 0


def test_a_reason_that_flips_back_within_one_millisecond_gets_a_new_rejected_id():
    """Rejections for FEES, NO_EDGE, FEES at one market millisecond are three events with three ids (the
    third would repeat the first's: a consumer deduplicating by id would drop it); the next millisecond's
    ids are the plain ones again, so ids stay what a replay re-derives."""
    state = CandidateState()
    ids = [state.observe(CID, Input.FAIL, reason, 7_000).event_id for reason in (FEES, NO_EDGE, FEES, NO_EDGE)]
    assert ids[0] == event_id(CID, EventKind.REJECTED, 7_000, "fee_dominated")
    assert ids[1] == event_id(CID, EventKind.REJECTED, 7_000, "no_gross_edge")
    assert ids[2] == event_id(CID, EventKind.REJECTED, 7_000, "fee_dominated#2")
    assert ids[3] == event_id(CID, EventKind.REJECTED, 7_000, "no_gross_edge#2")
    assert len(set(ids)) == 4
    assert state.observe(CID, Input.FAIL, FEES, 7_001).event_id == event_id(
        CID, EventKind.REJECTED, 7_001, "fee_dominated"
    )


def _in(status: Status) -> CandidateState:
    """A state brought to ``status`` through the machine itself (qualified in episode 5,000)."""
    state = CandidateState()
    if status is Status.UNSEEN:
        return state
    state.observe(CID, Input.FAIL, NO_EDGE, 1_000)
    if status is not Status.REJECTED:
        state.observe(CID, Input.PASS, None, 5_000)
    if status is Status.QUALIFIED:
        state.dwell(CID, 6_000)
    assert state.status is status
    return state


@pytest.mark.parametrize("status", list(Status))
def test_unwatched_returns_every_state_to_unseen_and_closes_only_a_qualified_episode(status):
    state = _in(status)
    closed = state.unwatched(CID)
    assert (closed.old, closed.new, state.status) == (status, Status.UNSEEN, Status.UNSEEN)
    assert (state.last_reason, state.episode_ms, state.dwell_since_ms) == (None, 0, 0)
    if status is Status.QUALIFIED:  # the disqualified that pairs with the qualified of episode 5,000
        assert (closed.event, closed.reason, closed.episode_ms) == (EventKind.DISQUALIFIED, Reason.NOT_WATCHED, 5_000)
        assert closed.event_id == event_id(CID, EventKind.DISQUALIFIED, 5_000, "not_watched")
    else:  # nothing was alerted (a dwell never alerts): nothing to close
        assert (closed.event, closed.event_id, closed.reason) == (None, "", None)
    # Watched again, it starts as a candidate never seen: its first rejection is news.
    assert state.observe(CID, Input.FAIL, NO_EDGE, 9_000).event is EventKind.REJECTED


def test_unwatched_is_not_an_evaluation():
    with pytest.raises(CandidateStateError, match="UNWATCHED is not an evaluation; call unwatched"):
        CandidateState().observe(CID, Input.UNWATCHED, None, 1_000)
