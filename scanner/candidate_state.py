"""Per-candidate state: rejected ↔ qualified with hysteresis and a minimum dwell, transitions in one table.

Every evaluation of a candidate is graded (:func:`grade`) into one of three inputs:

* ``PASS``: the decision qualifies (net edge at or above ``min_net_edge_bps``, no other reason);
* ``IN_BAND``: it is rejected *only* because net edge is below the minimum, and by no more than the
  hysteresis band (``net >= min_net_edge_bps - band``): a qualified candidate stays qualified, so a
  number wobbling around the threshold does not flap;
* ``FAIL``: anything else (a real rejection).

States and transitions (all of them in :data:`TRANSITIONS`; anything else raises
:class:`CandidateStateError`, h11 style: an illegal transition is our bug, never tolerated)::

                  PASS                         DWELL_ELAPSED
    UNSEEN ──────────────────► DWELLING ───────────────────────► QUALIFIED
      │  IN_BAND/FAIL            │   ▲ PASS                         │ ▲ PASS/IN_BAND
      ▼         IN_BAND/FAIL     │   │                              │ │
    REJECTED ◄───────────────────┘   │                FAIL          │ │
      │ ▲ IN_BAND/FAIL ──────────────┴──PASS    REJECTED ◄──────────┘
      └─┘ (event only if the primary reason changed)

Events (what reaches the journal, metrics and the alert outbox) are emitted only:

* ``qualified`` when the candidate has stayed qualified for ``min_qualified_dwell_ms`` of market time
  (DWELLING → QUALIFIED), passing on every evaluation meanwhile (an in-band one ends the dwell: the
  band only holds a candidate that has already qualified); the decision attached is the latest one,
  which therefore passes;
* ``disqualified`` when a qualified candidate fails (QUALIFIED → REJECTED);
* ``rejected`` when a rejection's primary reason differs from the last rejection event's (the first
  rejection of a candidate counts as a change). A candidate that fails (or falls in band) while still
  dwelling never alerted, so it only emits ``rejected``, and only on a reason change.

``UNWATCHED`` is not an evaluation: the daemon stops watching the candidate (a reload removed or redefined
it; a restart after a downtime too long to resume across). Every state goes back to UNSEEN, and a
qualified one emits the ``disqualified`` event that closes its episode, with primary reason
``not_watched``: whoever received its ``qualified`` is never left with an episode that never ends.

Dwell is measured on the market clock (latest venue time seen), not the wall clock: a replay at any
speed then alerts on the same decisions as the recording would have live, and live the market clock
tracks wall time within the feeds' latency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import Enum, StrEnum

import msgspec

from rules.reasons import Reason
from scanner.errors import ScannerError


class CandidateStateError(ScannerError):
    """An input the candidate state machine has no transition for (our bug)."""


class Status(Enum):
    UNSEEN = "unseen"  # never evaluated
    REJECTED = "rejected"
    DWELLING = "dwelling"  # qualifies, waiting for the minimum dwell before alerting
    QUALIFIED = "qualified"  # qualified and alerted


class Input(Enum):
    PASS = "pass"
    IN_BAND = "in_band"
    FAIL = "fail"
    DWELL_ELAPSED = "dwell_elapsed"
    UNWATCHED = "unwatched"  # the daemon stopped watching the candidate (module docstring)


class EventKind(StrEnum):
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    REJECTED = "rejected"


S, In, K = Status, Input, EventKind
# (state, input) -> (new state, event emitted on this transition, or None). ``REJECTED`` events are
# further filtered on a change of primary reason (see CandidateState.observe).
TRANSITIONS: dict[tuple[Status, Input], tuple[Status, EventKind | None]] = {
    (S.UNSEEN, In.PASS): (S.DWELLING, None),
    (S.UNSEEN, In.IN_BAND): (S.REJECTED, K.REJECTED),
    (S.UNSEEN, In.FAIL): (S.REJECTED, K.REJECTED),
    (S.REJECTED, In.PASS): (S.DWELLING, None),
    (S.REJECTED, In.IN_BAND): (S.REJECTED, K.REJECTED),  # hysteresis holds only what has qualified
    (S.REJECTED, In.FAIL): (S.REJECTED, K.REJECTED),
    (S.DWELLING, In.PASS): (S.DWELLING, None),
    # Hysteresis holds only what has qualified: a dwell needs a PASS on every evaluation.
    (S.DWELLING, In.IN_BAND): (S.REJECTED, K.REJECTED),
    (S.DWELLING, In.FAIL): (S.REJECTED, K.REJECTED),
    (S.DWELLING, In.DWELL_ELAPSED): (S.QUALIFIED, K.QUALIFIED),
    (S.QUALIFIED, In.PASS): (S.QUALIFIED, None),
    (S.QUALIFIED, In.IN_BAND): (S.QUALIFIED, None),
    (S.QUALIFIED, In.FAIL): (S.REJECTED, K.DISQUALIFIED),
    (S.UNSEEN, In.UNWATCHED): (S.UNSEEN, None),
    (S.REJECTED, In.UNWATCHED): (S.UNSEEN, None),
    (S.DWELLING, In.UNWATCHED): (S.UNSEEN, None),  # never alerted: nothing to close
    (S.QUALIFIED, In.UNWATCHED): (S.UNSEEN, K.DISQUALIFIED),
}
del S, In, K


def grade(
    *,
    qualified: bool,
    reasons: Sequence[Reason],
    net_bps: float,
    min_net_edge_bps: float | None,
    band_bps: float,
) -> Input:
    """Turn a decision into a state-machine input (see the module docstring)."""
    if qualified:
        return Input.PASS
    if (
        min_net_edge_bps is not None
        and len(reasons) == 1
        and reasons[0] is Reason.BELOW_MIN_EDGE
        and net_bps >= min_net_edge_bps - band_bps
    ):
        return Input.IN_BAND
    return Input.FAIL


def event_id(candidate_id: str, kind: EventKind, episode_ms: int, reason: str = "") -> str:
    """A stable id for one event: the same candidate, event kind, episode start and reason give the same id.

    The episode start is market (venue) time, so replaying the same recording yields the same ids; the
    alert outbox derives the alerts' idempotency keys from it, so an alert re-derived after a restart
    carries the key of the one already sent and the receiver can drop it.
    """
    text = f"{candidate_id}|{kind.value}|{episode_ms}|{reason}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Transition(msgspec.Struct, frozen=True, gc=False):
    """What one input did to a candidate: the event to emit (or None) and its episode facts.

    A frozen msgspec struct: one is built per evaluation, and a frozen dataclass costs ~10x to build.
    """

    old: Status
    new: Status
    event: EventKind | None
    episode_ms: int  # market time the current episode (qualifying run or rejection reason) began
    event_id: str  # "" when no event
    reason: Reason | None  # the primary reason of a rejected/disqualified event


class CandidateState:
    """The state of one candidate. Pure: the caller passes market time in; nothing here reads a clock."""

    __slots__ = ("_rejected_ids", "dwell_since_ms", "episode_ms", "last_reason", "status")

    def __init__(self) -> None:
        self.status = Status.UNSEEN
        self.last_reason: Reason | None = None  # primary reason of the last ``rejected``/``disqualified`` event
        self.dwell_since_ms = 0  # market time the candidate (re)entered DWELLING
        self.episode_ms = 0  # market time the current episode began
        # The ``rejected`` ids issued at the market millisecond of the latest one (that millisecond, its ids):
        # a reason that flips and flips back within one millisecond must not repeat an id (_rejected_id).
        self._rejected_ids: tuple[int, list[str]] = (-1, [])

    @classmethod
    def resumed(cls, kind: EventKind, *, episode_ms: int, reason: Reason | None) -> CandidateState:
        """The state a candidate's last journaled event left it in (a restart resumes from the journal).

        After ``qualified``: QUALIFIED in that episode, so a pass continues it silently and a failure closes
        it with the ``disqualified`` event that pairs with it (same episode, :func:`event_id`). After
        ``disqualified`` or ``rejected``: REJECTED with that primary reason, so the same rejection again is
        not news. DWELLING is never journaled: a candidate that was dwelling starts its dwell again.
        """
        state = cls()
        state.status = Status.QUALIFIED if kind is EventKind.QUALIFIED else Status.REJECTED
        state.last_reason = None if kind is EventKind.QUALIFIED else reason
        state.episode_ms = episode_ms
        return state

    def _fire(self, inp: Input) -> tuple[Status, Status, EventKind | None]:
        try:
            new, event = TRANSITIONS[(self.status, inp)]
        except KeyError:
            raise CandidateStateError(f"illegal candidate transition {self.status.name} on {inp.name}") from None
        old, self.status = self.status, new
        return old, new, event

    def observe(self, candidate_id: str, inp: Input, reason: Reason | None, now_ms: int) -> Transition:
        """Apply one graded evaluation made at market time ``now_ms``; ``reason`` is its primary reason."""
        if inp is Input.DWELL_ELAPSED or inp is Input.UNWATCHED:
            method = "dwell" if inp is Input.DWELL_ELAPSED else "unwatched"
            raise CandidateStateError(f"{inp.name} is not an evaluation; call {method}()")
        old, new, event = self._fire(inp)
        if new is Status.DWELLING and old is not Status.DWELLING:
            self.dwell_since_ms = self.episode_ms = now_ms  # a qualifying episode begins
            return Transition(old, new, None, now_ms, "", None)
        if event is EventKind.REJECTED and reason == self.last_reason and old is not Status.UNSEEN:
            event = None  # same primary reason as the last rejection event: not news
        if event is None:
            return Transition(old, new, None, self.episode_ms, "", None)
        # A disqualification closes the qualified episode it belongs to (its key pairs with that episode's
        # ``qualified`` event); a rejection with a new reason opens a rejection episode now.
        episode = self.episode_ms if event is EventKind.DISQUALIFIED else now_ms
        self.last_reason = reason
        self.episode_ms = now_ms
        if event is EventKind.REJECTED:
            key = self._rejected_id(candidate_id, now_ms, reason or "")
        else:
            key = event_id(candidate_id, event, episode, reason or "")
        return Transition(old, new, event, episode, key, reason)

    def _rejected_id(self, candidate_id: str, now_ms: int, reason: str) -> str:
        """:func:`event_id` of a ``rejected`` event opened at ``now_ms``, unique among the candidate's events:
        a second rejection for the same reason within one market millisecond (the reason flipped to another
        and back) takes an ordinal, ``reason#2``, where the plain id would repeat the first one's."""
        ms, issued = self._rejected_ids
        if ms != now_ms:
            issued = []
            self._rejected_ids = (now_ms, issued)
        key = event_id(candidate_id, EventKind.REJECTED, now_ms, reason)
        n = 1
        while key in issued:
            n += 1
            key = event_id(candidate_id, EventKind.REJECTED, now_ms, f"{reason}#{n}")
        issued.append(key)
        return key

    def dwell_due(self, now_ms: int, dwell_ms: int) -> bool:
        """True if the candidate is dwelling and has qualified for at least ``dwell_ms`` of market time."""
        return self.status is Status.DWELLING and now_ms - self.dwell_since_ms >= dwell_ms

    def dwell(self, candidate_id: str, now_ms: int) -> Transition:
        """The minimum dwell has elapsed: DWELLING → QUALIFIED and the ``qualified`` event."""
        old, new, event = self._fire(Input.DWELL_ELAPSED)
        self.last_reason = None  # the next rejection is news whatever its reason
        assert event is EventKind.QUALIFIED
        key = event_id(candidate_id, event, self.episode_ms)
        return Transition(old, new, event, self.episode_ms, key, None)

    def unwatched(self, candidate_id: str) -> Transition:
        """The daemon stopped watching the candidate: back to UNSEEN; a qualified episode is closed by the
        ``disqualified`` event that pairs with its ``qualified`` one (same episode), reason ``not_watched``."""
        episode = self.episode_ms
        old, new, event = self._fire(Input.UNWATCHED)
        self.last_reason, self.dwell_since_ms, self.episode_ms = None, 0, 0
        if event is None:
            return Transition(old, new, None, episode, "", None)
        reason = Reason.NOT_WATCHED
        return Transition(old, new, event, episode, event_id(candidate_id, event, episode, reason), reason)

    @property
    def qualified(self) -> bool:
        return self.status is Status.QUALIFIED
