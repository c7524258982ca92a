"""Where each candidate stood when the daemon last stopped, read back from the journal's tail.

The journal holds every state event (``qualified``, ``disqualified``, ``rejected``), so a candidate's last
event says where its state machine was: a restart resumes there (:meth:`CandidateState.resumed`) instead of
from UNSEEN. Without it, an opportunity open across a restart was alerted again as a new ``qualified``
episode, and one that closed while the daemon was down never got its ``disqualified`` event.

Files are read newest first and reading stops as soon as every candidate has been found, or past
``max_bytes`` (a candidate added to the config has no event anywhere: it must not make every start read
the whole history). A candidate not found starts from UNSEEN, as before.

Episodes open in the journal are reported too (:attr:`Resumed.open_episodes`: every candidate whose last
event in the files read is ``qualified``, configured or not), so that the daemon can close those it will
not watch: a candidate removed from the config while it was down, every one after a long downtime.

The journal files read are the newest ones only: a removed candidate's episode whose ``qualified`` event is
older is not among them. So a clean stop also saves the open episodes, with their latest decisions
(:func:`save_open_episodes`, ``open-episodes.json`` in the journal directory, with the journal's last seq and event id),
and the next start adds them to the journal's (:func:`load_open_episodes`) when nothing was journaled
after it. After a crash, the journal files read are all there is.

Only a short downtime is resumed: the running daemon touches a heartbeat file (:func:`mark_alive`, in the
journal directory, ignored by the journal's reader), and :func:`downtime_s` says how long ago it last did.
After a long one the market moved on unseen; continuing an episode across it would claim what nobody saw.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import msgspec

from rules.candidates import Strategy
from rules.decision import Decision
from rules.reasons import Reason
from scanner.candidate_state import CandidateState, EventKind
from scanner.journal import JournalEvent, JournalProblem, JournalReader, fsync_dir, journal_files

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
ALIVE_NAME = "alive"  # the heartbeat file, in the journal directory
OPEN_NAME = "open-episodes.json"  # the open episodes at the last clean stop, in the journal directory
_SHOWN = 80  # characters of a journal value quoted in a message
_STRATEGIES = frozenset(s.value for s in Strategy)


@dataclass(slots=True)
class Resumed:
    """The states found (by candidate id), and how much of the journal it took."""

    states: dict[str, CandidateState] = field(default_factory=dict)
    files_read: int = 0
    bytes_read: int = 0
    complete: bool = True  # False: reading stopped at max_bytes with candidates not found
    problems: list[JournalProblem] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "<candidate>: <why>" for last events that say nothing
    # candidate id -> its last event, when that is ``qualified`` (configured or not; in the files read)
    open_episodes: dict[str, JournalEvent] = field(default_factory=dict)
    # candidate id -> the definition its last event states (scanner.candidates.definition_of; "" if none)
    definitions: dict[str, str] = field(default_factory=dict)


def state_of(event: JournalEvent) -> CandidateState:
    """The state ``event`` (the candidate's last) left it in; ValueError if the event does not say."""
    episode = event.context.get("episode_ms")
    if not isinstance(episode, int) or isinstance(episode, bool):
        raise ValueError(f"seq {event.seq}: context.episode_ms must be an integer, got {repr(episode)[:_SHOWN]}")
    kind = EventKind(event.kind.value)  # the journal's enum of the same values
    reason: Reason | None = None
    if kind is not EventKind.QUALIFIED:
        primary = event.decision.get("primary_reason") if isinstance(event.decision, dict) else None
        try:
            reason = Reason(str(primary))
        except ValueError:
            shown = repr(primary)[:_SHOWN]
            raise ValueError(f"seq {event.seq}: decision.primary_reason {shown} is not a reason code") from None
    return CandidateState.resumed(kind, episode_ms=episode, reason=reason)


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """A qualified episode the journal left open, as :meth:`scanner.engine.Engine.unwatch` closes it."""

    candidate_id: str
    strategy: str
    state: CandidateState
    decision: Decision  # the one its ``qualified`` event carried
    assumptions: tuple[str, ...]
    definition: str = ""  # of the candidate whose episode it is ("" when not stated: an older journal)


def open_episode(event: JournalEvent) -> OpenEpisode:
    """The episode a candidate's last event, ``qualified``, left open; ValueError if the event does not say."""
    state = state_of(event)
    strategy = event.context.get("strategy")
    if strategy not in _STRATEGIES:  # it becomes a metrics label: only the known ones
        raise ValueError(f"seq {event.seq}: context.strategy {repr(strategy)[:_SHOWN]} is not a strategy")
    assumptions = event.context.get("funding_assumptions", [])
    if not isinstance(assumptions, list) or not all(isinstance(a, str) for a in assumptions):
        raise ValueError(f"seq {event.seq}: context.funding_assumptions must be a list of strings")
    try:
        decision = Decision.from_dict(event.decision)
    except ValueError as exc:
        raise ValueError(f"seq {event.seq}: decision: {exc}") from None
    return OpenEpisode(event.dedup_key, str(strategy), state, decision, tuple(assumptions), definition_in(event))


def definition_in(event: JournalEvent) -> str:
    """The candidate definition ``event`` states (``context.definition``), or "" (not stated, or not text)."""
    definition = event.context.get("definition", "")
    return definition if isinstance(definition, str) else ""


def resume_states(
    directory: str | PathLike[str], candidate_ids: Iterable[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Resumed:
    """The last state of each of ``candidate_ids`` that the journal in ``directory`` records."""
    wanted = set(candidate_ids)
    seen: set[str] = set()
    result = Resumed()
    reader = JournalReader(directory)
    for path in reversed(journal_files(Path(directory))):
        if not wanted:
            break
        try:
            size = path.stat().st_size
        except OSError as exc:  # removed meanwhile, a dangling link: the reader would report it the same way
            result.problems.append(JournalProblem(path, 0, "corrupt", f"cannot stat: {exc.strerror}"))
            continue
        if size == 0:
            continue  # the file the writer just opened
        if result.bytes_read and result.bytes_read + size > max_bytes:
            result.complete = False
            break
        last: dict[str, JournalEvent] = {}  # every candidate's last event in this file
        for event in reader.file_events(path):
            last[event.dedup_key] = event
        result.files_read += 1
        result.bytes_read += size
        for candidate_id, event in last.items():
            if candidate_id in seen:
                continue  # a newer file has its last event
            seen.add(candidate_id)
            if event.kind.value == EventKind.QUALIFIED.value:  # the journal has its own enum of the same values
                result.open_episodes[candidate_id] = event
            if candidate_id not in wanted:
                continue
            wanted.discard(candidate_id)
            result.definitions[candidate_id] = definition_in(event)
            try:
                result.states[candidate_id] = state_of(event)
            except ValueError as exc:
                result.unreadable.append(f"{candidate_id}: {exc}")
    result.problems += reader.problems
    return result


def mark_alive(directory: str | PathLike[str]) -> None:
    """Touch the heartbeat file (the running daemon, every few seconds and at its end)."""
    (Path(directory) / ALIVE_NAME).touch()  # creates it, or sets its mtime to now


def downtime_s(directory: str | PathLike[str], *, now: float | None = None) -> float | None:
    """Seconds since the heartbeat was last touched, or None if there is none. Wall clock on purpose: the
    file's mtime is the only time that survives the process (and a reboot); a monotonic clock does not."""
    try:
        touched = (Path(directory) / ALIVE_NAME).stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)


class _SavedEpisode(msgspec.Struct, forbid_unknown_fields=True):
    candidate_id: str
    strategy: str
    episode_ms: int
    funding_assumptions: list[str]
    decision: dict[str, Any]
    definition: str = ""  # absent from files saved by a version that did not record it


class _SavedEpisodes(msgspec.Struct, forbid_unknown_fields=True):
    journal_seq: int  # the last seq journaled when they were saved
    episodes: list[_SavedEpisode]
    # That event's id ("" if the journal had none): a journal started over from scratch can reach the same
    # seq. None: saved by a version that did not record it (the seq alone decides, as it did then).
    last_event_id: str | None = None


def save_open_episodes(
    directory: str | PathLike[str], journal_seq: int, episodes: Iterable[OpenEpisode], last_event_id: str = ""
) -> Path:
    """At a clean stop, after the journal's last event (``journal_seq``, ``last_event_id``): the qualified
    episodes left open.

    Written to a temporary file, synced and renamed over the old one: the next start reads a whole file or
    the previous one (whose seq no longer matches). OSError is the caller's to report.
    """
    saved = _SavedEpisodes(
        journal_seq,
        [
            _SavedEpisode(
                e.candidate_id, e.strategy, e.state.episode_ms, list(e.assumptions), e.decision.to_dict(), e.definition
            )
            for e in episodes
        ],
        last_event_id,
    )
    path = Path(directory) / OPEN_NAME
    scratch = path.with_name(OPEN_NAME + ".tmp")
    with scratch.open("wb") as out:
        out.write(msgspec.json.encode(saved))
        out.flush()
        os.fsync(out.fileno())
    scratch.replace(path)
    fsync_dir(path.parent)  # the rename itself survives a power loss
    return path


def load_open_episodes(
    directory: str | PathLike[str], journal_seq: int, last_event_id: str = ""
) -> dict[str, OpenEpisode] | None:
    """The open episodes the last clean stop saved, by candidate, if the journal's last event is still the
    one they were saved after (nothing journaled since: they are exactly the open ones); None when there is
    no such file or it is older (a crash since: the journal decides). The event is its seq and, when the
    journal has one (``last_event_id``; none when the journal was removed and the outbox kept its seqs), its
    id: a journal started over from scratch (outbox state gone too) may reach the same seq with other
    events. (Event ids derive from the candidate, the event and its episode: the same recording replayed
    into a fresh journal gives the same ids, so this tells apart runs on different data, not replays.)
    ValueError says what is wrong with the file."""
    path = Path(directory) / OPEN_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        saved = msgspec.json.decode(data, type=_SavedEpisodes)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if saved.journal_seq != journal_seq:
        return None
    if last_event_id and saved.last_event_id is not None and saved.last_event_id != last_event_id:
        return None
    found: dict[str, OpenEpisode] = {}
    for n, e in enumerate(saved.episodes):
        if e.strategy not in _STRATEGIES:
            raise ValueError(f"{path}: episodes[{n}].strategy {e.strategy[:_SHOWN]!r} is not a strategy")
        try:
            decision = Decision.from_dict(e.decision)
        except ValueError as exc:
            raise ValueError(f"{path}: episodes[{n}].decision: {exc}") from None
        state = CandidateState.resumed(EventKind.QUALIFIED, episode_ms=e.episode_ms, reason=None)
        found[e.candidate_id] = OpenEpisode(
            e.candidate_id, e.strategy, state, decision, tuple(e.funding_assumptions), e.definition
        )
    return found
