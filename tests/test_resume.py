"""Reading each candidate's last state back from the journal (scanner.resume): newest file first, bounded."""

from __future__ import annotations

from pathlib import Path

from rules.reasons import Reason
from scanner.candidate_state import Status
from scanner.config import JournalConfig
from scanner.journal import EventKind, JournalWriter
from scanner.metrics import Metrics
from scanner.resume import resume_states

# Rotate after every event or two: each candidate's history spreads over several files.
SETTINGS = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000, rotate_bytes=4096, rotate_interval_s=0)


def _append(writer: JournalWriter, kind: EventKind, candidate: str, episode_ms: int, reason: str | None) -> None:
    decision = {"candidate_id": candidate, "primary_reason": reason, "padding": "x" * 1500}
    writer.append(kind, candidate, decision, venue_ts_ms=episode_ms + 5, context={"episode_ms": episode_ms})


def _history(directory: Path) -> None:
    with JournalWriter.open(directory, SETTINGS, Metrics()) as writer:
        _append(writer, EventKind.REJECTED, "a", 100, "book_not_ready")
        _append(writer, EventKind.QUALIFIED, "a", 200, None)
        _append(writer, EventKind.REJECTED, "b", 150, "fee_dominated")
        _append(writer, EventKind.QUALIFIED, "c", 300, None)
        _append(writer, EventKind.DISQUALIFIED, "c", 300, "no_gross_edge")
        for n in range(6):  # newer files about other candidates only
            _append(writer, EventKind.REJECTED, f"other{n}", 400 + n, "stale_book")


def test_each_candidate_resumes_from_its_last_event(tmp_path: Path) -> None:
    _history(tmp_path)
    found = resume_states(tmp_path, ["a", "b", "c", "new"])
    assert found.complete and found.files_read >= 5 and found.problems == [] and found.unreadable == []
    states = {cid: (s.status, s.episode_ms, s.last_reason) for cid, s in found.states.items()}
    assert states == {
        "a": (Status.QUALIFIED, 200, None),
        "b": (Status.REJECTED, 150, Reason.FEE_DOMINATED),
        "c": (Status.REJECTED, 300, Reason.NO_GROSS_EDGE),
    }  # "new" has no event: it starts unseen


def test_reading_stops_at_the_byte_bound_and_says_so(tmp_path: Path) -> None:
    _history(tmp_path)
    found = resume_states(tmp_path, ["a", "b", "c"], max_bytes=8192)
    assert not found.complete and found.states == {}  # a, b and c are older than the newest 8 KB
    assert found.bytes_read <= 8192 and found.files_read >= 1
    assert resume_states(tmp_path, ["other5"], max_bytes=1).states["other5"].last_reason is Reason.STALE_BOOK


def test_a_last_event_that_does_not_say_where_the_candidate_stood_is_reported(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path, SETTINGS, Metrics()) as writer:
        _append(writer, EventKind.REJECTED, "a", 100, "no_such_reason")
        writer.append(EventKind.QUALIFIED, "b", {}, context={"episode_ms": "soon"})
    found = resume_states(tmp_path, ["a", "b"])
    assert found.states == {}
    assert sorted(found.unreadable) == [
        "a: seq 1: decision.primary_reason 'no_such_reason' is not a reason code",
        "b: seq 2: context.episode_ms must be an integer, got 'soon'",
    ]
