"""Reading each candidate's last state back from the journal (scanner.resume): newest file first, bounded."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from rules.candidates import CexCexCandidate
from rules.decision import Decision
from rules.reasons import Reason
from scanner.candidate_state import CandidateState, Status
from scanner.candidate_state import EventKind as CandidateEventKind
from scanner.candidates import build_candidates, definition_of
from scanner.config import JournalConfig, load_config
from scanner.daemon import Daemon, DaemonOptions
from scanner.engine import CandidateEvent
from scanner.event_log import EventLog
from scanner.journal import EventKind, JournalReader, JournalWriter, journal_files
from scanner.metrics import Metrics
from scanner.pipeline import ReplayPipeline
from scanner.resume import (
    ALIVE_NAME,
    OpenEpisode,
    downtime_s,
    load_open_episodes,
    mark_alive,
    open_episode,
    resume_states,
    save_open_episodes,
)
from tests.daemon_fixtures import WEBHOOK_KEY, WEBHOOK_KEY_ENV, csv_config
from tests.engine_fixtures import LINK_BINANCE, LINK_HUOBI, csv_recordings, demo_config, demo_runtime

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


def test_the_empty_file_a_reopened_writer_starts_does_not_count_against_the_bound(tmp_path: Path) -> None:
    """The daemon opens its journal (a new, empty file) before resuming: that file must not use up the
    byte bound, which would leave only a file larger than the rest of it (found by review)."""
    _history(tmp_path)
    with JournalWriter.open(tmp_path, SETTINGS, Metrics()) as writer:  # the restarted daemon's writer
        assert writer.current_file is not None and writer.current_file.stat().st_size == 0
        found = resume_states(tmp_path, ["other5"], max_bytes=1)
    assert found.states["other5"].last_reason is Reason.STALE_BOOK and found.files_read == 1


def test_downtime_is_read_from_the_heartbeat(tmp_path: Path) -> None:
    assert downtime_s(tmp_path) is None  # never ran
    mark_alive(tmp_path)
    alive = (tmp_path / ALIVE_NAME).stat().st_mtime
    assert downtime_s(tmp_path, now=alive + 42.0) == 42.0
    os.utime(tmp_path / ALIVE_NAME, (alive - 100.0, alive - 100.0))
    mark_alive(tmp_path)  # touched again: the downtime starts over
    assert downtime_s(tmp_path, now=alive + 1.0) <= 1.0
    assert [p.name for p in journal_files(tmp_path)] == []  # the journal's reader ignores it


def _daemon_with_an_open_episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Daemon, str, Path]:
    """A daemon (not started) whose journal says its first candidate was qualified when it stopped."""
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    config_path = csv_config(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    daemon = Daemon(load_config(config_path), DaemonOptions(config_path=config_path, handle_signals=False))
    journal_dir = Path(daemon.config.daemon.journal_dir)
    candidate = daemon.candidates[0].id
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
        _append(writer, EventKind.QUALIFIED, candidate, 1_629_418_213_000, None)
    return daemon, candidate, journal_dir


def _last_seq(journal_dir: Path) -> int:
    return max(event.seq for event in JournalReader(journal_dir).events())


def test_the_daemon_resumes_after_a_short_downtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, candidate, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    mark_alive(journal_dir)
    daemon._resume_candidates(journal_dir, _last_seq(journal_dir), "")
    assert daemon.engine.state_of(candidate)[0] is Status.QUALIFIED
    assert daemon.engine.qualified_now() == {"cex_cex": 1}


def test_the_daemon_starts_afresh_after_a_long_downtime_or_without_a_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, candidate, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    daemon._resume_candidates(journal_dir, _last_seq(journal_dir), "")  # no heartbeat: never resumed
    assert daemon.engine.state_of(candidate)[0] is Status.UNSEEN
    mark_alive(journal_dir)
    limit = daemon.config.engine.resume_max_downtime_s
    long_ago = (journal_dir / ALIVE_NAME).stat().st_mtime - limit - 60.0
    os.utime(journal_dir / ALIVE_NAME, (long_ago, long_ago))
    daemon._resume_candidates(journal_dir, _last_seq(journal_dir), "")
    assert daemon.engine.state_of(candidate)[0] is Status.UNSEEN
    assert not daemon.engine.qualified_now()


def test_open_episodes_are_the_last_events_that_are_qualified_configured_candidates_or_not(tmp_path: Path) -> None:
    _history(tmp_path)
    with JournalWriter.open(tmp_path, SETTINGS, Metrics()) as writer:  # a later run: newer files
        _append(writer, EventKind.QUALIFIED, "gone", 500, None)  # no longer configured
        _append(writer, EventKind.REJECTED, "a", 600, "fee_dominated")  # a's episode was closed after all
        _append(writer, EventKind.QUALIFIED, "other5", 700, None)
    found = resume_states(tmp_path, ["a", "b", "c"])
    assert {cid: e.context["episode_ms"] for cid, e in found.open_episodes.items()} == {"gone": 500, "other5": 700}
    assert found.states["a"].status is Status.REJECTED
    # Read back only as far as the configured candidates need: an open episode older than that is not seen.
    assert "a" not in resume_states(tmp_path, ["other5"], max_bytes=1).open_episodes


def test_an_open_episode_whose_event_does_not_say_enough_to_close_it_is_refused(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path, SETTINGS, Metrics()) as writer:
        context = {"episode_ms": 100, "strategy": "cex_cex"}
        writer.append(EventKind.QUALIFIED, "a", {"primary_reason": None}, context=context)  # not a decision
        writer.append(EventKind.QUALIFIED, "b", {}, context={"episode_ms": 5, "strategy": 7})
    found = resume_states(tmp_path, ["a", "b"])
    with pytest.raises(ValueError, match=r"^seq 1: decision: Object missing required field `strategy`$"):
        open_episode(found.open_episodes["a"])
    with pytest.raises(ValueError, match=r"^seq 2: context.strategy 7 is not a strategy$"):
        open_episode(found.open_episodes["b"])


def _a_real_decision() -> Decision:
    """A decision the engine made on the LINK/USDT csv series (its first with both books)."""
    _config, constraints, _assumptions, _settings = demo_runtime()
    candidate = CexCexCandidate(id="x", buy=LINK_BINANCE, sell=LINK_HUOBI, size_usd=500.0)
    pipeline = ReplayPipeline(csv_recordings(), [candidate], constraints)
    for index, frame in pipeline.merged():
        pipeline.feed(index, frame)
        decision = pipeline.engine.state_of("x")[1]
        if decision is not None and decision.primary_reason is not Reason.BOOK_NOT_READY:
            return decision
    raise AssertionError("no decision with both books")


def test_a_removed_candidates_episode_older_than_the_files_read_is_closed_from_what_the_clean_stop_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal files read to resume the configured candidates are the newest ones: the episode of a
    candidate removed from the config, qualified before them, is not there (found by review). The open
    episodes a clean stop saved close it; a file older than the journal's end, or unreadable, is not trusted."""
    daemon, configured, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    decision = _a_real_decision()
    open_state = CandidateState.resumed(CandidateEventKind.QUALIFIED, episode_ms=5_000, reason=None)
    removed = OpenEpisode("cex_cex:removed", "cex_cex", open_state, decision, ("binance: stated",))
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:  # newer: the configured one's end
        writer.append(EventKind.QUALIFIED, removed.candidate_id, decision, context={"episode_ms": 5_000})
        for n in range(3):
            _append(writer, EventKind.REJECTED, configured, 9_000 + n, "fee_dominated")
    mark_alive(journal_dir)
    last = _last_seq(journal_dir)
    events: list[CandidateEvent] = []
    daemon.engine.sink = events.append

    daemon._resume_candidates(journal_dir, last, "")  # nothing saved: the journal files read do not reach it
    assert events == [] and resume_states(journal_dir, [configured]).open_episodes == {}
    assert save_open_episodes(journal_dir, last, [removed]).name == "open-episodes.json"
    assert all(p.name.startswith("journal-") for p in journal_files(journal_dir))  # the journal reader skips it
    daemon._resume_candidates(journal_dir, last + 1, "")  # saved before the journal's end: not trusted
    assert events == []
    daemon._resume_candidates(journal_dir, last, "")
    [closed] = events
    assert (closed.candidate_id, closed.episode_ms, closed.decision.primary_reason) == (
        "cex_cex:removed",
        5_000,
        Reason.NOT_WATCHED,
    )
    assert closed.decision.net_bps == decision.net_bps and closed.assumptions == ("binance: stated",)
    (journal_dir / "open-episodes.json").write_text('{"journal_seq": 1, "episodes": [{"candidate_id": 7}]}')
    wrong = r"open-episodes.json: Expected `str`, got `int` - at `\$.episodes\[0\].candidate_id`"
    with pytest.raises(ValueError, match=wrong):
        load_open_episodes(journal_dir, 1)


def test_the_saved_episodes_add_to_the_journals_and_resume_a_configured_one_the_files_read_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file a clean stop saved adds to what the journal files read say; it does not replace it (found by
    review): an episode the stop could not list (its close lost on the way to the disk) is still closed from
    the journal, and a configured candidate's saved episode the files read do not reach is resumed."""
    config_path = csv_config(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    daemon = Daemon(load_config(config_path), DaemonOptions(config_path=config_path, handle_signals=False))
    journal_dir = Path(daemon.config.daemon.journal_dir)
    configured = daemon.candidates[0].id
    decision = _a_real_decision()
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
        context = {"episode_ms": 7_000, "strategy": "cex_cex"}
        writer.append(EventKind.QUALIFIED, "cex_cex:gone", decision, context=context)  # not in the saved file
    qualified = CandidateState.resumed(CandidateEventKind.QUALIFIED, episode_ms=8_000, reason=None)
    saved = [OpenEpisode(configured, "cex_cex", qualified, decision, ())]
    save_open_episodes(journal_dir, _last_seq(journal_dir), saved)
    mark_alive(journal_dir)
    events: list[CandidateEvent] = []
    daemon.engine.sink = events.append
    daemon._resume_candidates(journal_dir, _last_seq(journal_dir), "")
    assert [(e.candidate_id, e.episode_ms, e.decision.primary_reason) for e in events] == [
        ("cex_cex:gone", 7_000, Reason.NOT_WATCHED)
    ]
    assert daemon.engine.state_of(configured)[0] is Status.QUALIFIED  # resumed from the saved file
    assert daemon.engine.qualified_now() == {"cex_cex": 1}


def test_where_the_journal_and_the_saved_file_both_hold_an_episode_the_files_later_decision_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, _configured, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    journaled = _a_real_decision()
    later = msgspec.structs.replace(journaled, now_ms=journaled.now_ms + 60_000, net_bps=journaled.net_bps + 1.0)
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
        context = {"episode_ms": 7_000, "strategy": "cex_cex"}
        writer.append(EventKind.QUALIFIED, "cex_cex:gone", journaled, context=context)
    state = CandidateState.resumed(CandidateEventKind.QUALIFIED, episode_ms=7_000, reason=None)
    save_open_episodes(journal_dir, _last_seq(journal_dir), [OpenEpisode("cex_cex:gone", "cex_cex", state, later, ())])
    mark_alive(journal_dir)
    events: list[CandidateEvent] = []
    daemon.engine.sink = events.append
    daemon._resume_candidates(journal_dir, _last_seq(journal_dir), "")
    [closed] = [e for e in events if e.candidate_id == "cex_cex:gone"]
    assert (closed.venue_ms, closed.decision.net_bps) == (later.now_ms, later.net_bps)


@pytest.mark.parametrize("how", ["failed", "event_dropped", "event_skipped", "backlog", "clean"])
def test_only_a_clean_stop_with_every_event_journaled_saves_the_open_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """After a failure the engine may not have drained; with an event lost or waiting for the disk the file
    would not match the journal: then no file, and the next start reads the journal alone."""
    daemon, configured, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    state = CandidateState.resumed(CandidateEventKind.QUALIFIED, episode_ms=7_000, reason=None)
    daemon.engine.resume({configured: state}, {configured: (_a_real_decision(), ())})
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
        daemon.event_log = EventLog(writer, None)
        daemon._stopped_cleanly = how != "failed"
        if how == "event_dropped":
            daemon.event_log.dropped = 1
        elif how == "event_skipped":
            daemon.event_log.skipped = 1
        elif how == "backlog":
            daemon.event_log._backlog.append((object(), 0))  # type: ignore[arg-type]
        daemon._save_open_episodes(_last_seq(journal_dir), "")
    saved = load_open_episodes(journal_dir, _last_seq(journal_dir))
    if how == "clean":
        assert saved is not None and list(saved) == [configured]
    else:
        assert saved is None and not (journal_dir / "open-episodes.json").exists()


def test_the_saved_episodes_name_the_journals_last_event_not_only_its_seq(tmp_path: Path) -> None:
    """A journal started over from scratch (its outbox state gone too) can reach the seq the file was saved
    at with other events: the file also names the last event's id, which the journal reopened reports (found
    by review). With no event in the journal (removed, the outbox kept the seqs), the seq alone decides."""
    journal_dir = tmp_path / "journal"
    decision = _a_real_decision()
    state = CandidateState.resumed(CandidateEventKind.QUALIFIED, episode_ms=7_000, reason=None)
    episode = OpenEpisode("cex_cex:x", "cex_cex", state, decision, ())
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
        assert writer.last_event_id == ""
        event = writer.append(EventKind.QUALIFIED, "cex_cex:x", decision, context={"episode_ms": 7_000})
        assert writer.last_event_id == event.event_id
        save_open_episodes(journal_dir, event.seq, [episode], writer.last_event_id)
    with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as reopened:
        assert (reopened.next_seq - 1, reopened.last_event_id) == (event.seq, event.event_id)
    assert list(load_open_episodes(journal_dir, event.seq, event.event_id) or {}) == ["cex_cex:x"]
    assert load_open_episodes(journal_dir, event.seq, "another-event") is None  # same seq, another journal
    assert list(load_open_episodes(journal_dir, event.seq, "") or {}) == ["cex_cex:x"]  # no event to compare
    assert load_open_episodes(journal_dir, event.seq + 1, event.event_id) is None
    # A file saved before the id was recorded: the seq alone decides, as it did then.
    path = journal_dir / "open-episodes.json"
    legacy = msgspec.json.decode(path.read_bytes())
    del legacy["last_event_id"]
    path.write_bytes(msgspec.json.encode(legacy))
    assert list(load_open_episodes(journal_dir, event.seq, "another-event") or {}) == ["cex_cex:x"]
    # An outbox ahead of the journal (its newest file lost): the event found is not the one before the seq.
    with JournalWriter.open(journal_dir, SETTINGS, Metrics(), min_next_seq=event.seq + 5) as ahead:
        assert (ahead.next_seq, ahead.last_event_id) == (event.seq + 5, "")


def test_a_candidate_redefined_under_its_id_across_a_restart_starts_afresh_and_its_episode_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id names the legs, direction and size, not the rest (a horizon, a fee profile): a restart with a
    redefined candidate used to continue its episode, where a reload ends it. Events now state the
    candidate's definition; a journaled one that differs is not resumed, and its open episode is closed
    (not_watched); the same definition, or none (an older journal), resumes as before."""
    daemon, candidate, journal_dir = _daemon_with_an_open_episode(tmp_path, monkeypatch)
    decision = _a_real_decision()
    current = definition_of(next(c for c in daemon.candidates if c.id == candidate))
    for stated, resumed in (("0123456789abcdef", False), (current, True)):
        with JournalWriter.open(journal_dir, SETTINGS, Metrics()) as writer:
            context = {"episode_ms": 7_000, "strategy": "cex_cex", "definition": stated}
            writer.append(EventKind.QUALIFIED, candidate, decision, context=context)
        mark_alive(journal_dir)
        fresh = Daemon(daemon.config, DaemonOptions(config_path=daemon.options.config_path, handle_signals=False))
        events: list[CandidateEvent] = []
        fresh.engine.sink = events.append
        fresh._resume_candidates(journal_dir, _last_seq(journal_dir), "")
        status = fresh.engine.state_of(candidate)[0]
        if resumed:
            assert status is Status.QUALIFIED and events == []
        else:
            assert status is Status.UNSEEN
            [closed] = events
            assert (closed.candidate_id, closed.episode_ms, closed.decision.primary_reason) == (
                candidate,
                7_000,
                Reason.NOT_WATCHED,
            )
            assert closed.context()["definition"] == stated  # closed as the candidate it was


def test_a_definition_covers_every_field_of_every_candidate_type() -> None:
    """A field added to a candidate type must be named in the fingerprint (or a redefinition by it would go
    unseen across a restart); the fingerprint never depends on the id, and tells two horizons apart."""
    import dataclasses

    from rules.candidates import CexCexCandidate, CexDexCandidate, FundingCarryCandidate, PerpSpotBasisCandidate
    from scanner.candidates import _DEFINED_BY

    for kind in (CexCexCandidate, PerpSpotBasisCandidate, FundingCarryCandidate, CexDexCandidate):
        assert {f.name for f in dataclasses.fields(kind)} - {"id"} <= set(_DEFINED_BY), kind.__name__
    one = next(c for c in build_candidates(demo_config()) if isinstance(c, PerpSpotBasisCandidate))
    assert definition_of(one) == definition_of(dataclasses.replace(one, id="another id"))
    assert definition_of(one) != definition_of(dataclasses.replace(one, horizon_ms=one.horizon_ms + 1))
