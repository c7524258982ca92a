"""The event journal: append-only JSONL of candidate events, the input of reports and of the alert outbox.

One line per event, written whole by a single ``write(2)`` on an ``O_APPEND`` descriptor::

    {"seq":17,"id":"9f0c…","event":"qualified","dedup_key":"…","local_ts_ms":1723161255208,
     "venue_ts_ms":1723161255201,"context":{…what the engine adds…},"decision":{…the decision from rules/…}}

``seq`` increases by one per event across files and restarts. Files live in one directory and are named
``journal-<first seq, 12 digits>-<UTC start time>.jsonl``, so sorting names sorts events. A new file is
started at every open, when the current one would pass ``rotate_bytes`` and when it is older than
``rotate_interval_s``; old files are kept as they are.

Durability: each line is fsynced after ``fsync_every`` events or ``fsync_interval_ms`` after the first
unsynced one (``run()`` does the timed part off the event loop). A failed or short write is rolled back
(truncated), so a full disk never leaves half a line. A failed fsync is logged and counted
(``arbscan_journal_errors_total``) and the journal goes on: the lines are written, only their durability is
in doubt, and retrying cannot restore it (Linux reports a writeback error once and may drop the pages), so
the next fsync covers the next events. It does not stop the daemon, nor make a written event look unwritten
(which would journal it twice). After a crash or power loss the last line may be torn:
on open the writer moves the torn bytes to ``<file>.torn-<offset>`` (nothing is lost) and truncates the file
to its last whole line, so the journal never *ends* in a torn line; the reader meanwhile tolerates one and
reports it, and every corrupt line anywhere, as ``file:line``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NoReturn

import msgspec
import orjson
import structlog

from scanner.config import JournalConfig
from scanner.errors import JournalError, JournalIOError
from scanner.metrics import Metrics

log = structlog.get_logger("scanner.journal")

_NAME = re.compile(r"^journal-(\d{12})-(\d{8}T\d{6}\.\d{6}Z)\.jsonl$")
_FIELDS = ("seq", "id", "event", "dedup_key", "local_ts_ms", "venue_ts_ms", "decision")
_CHUNK = 1 << 16


class EventKind(StrEnum):
    QUALIFIED = "qualified"  # a candidate qualified and stayed qualified for the dwell time
    DISQUALIFIED = "disqualified"  # a qualified candidate dropped below the hysteresis band
    REJECTED = "rejected"  # a rejected candidate whose primary reason changed


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One journal line. ``decision`` is opaque here: whatever JSON-able mapping ``rules/`` produced."""

    seq: int
    event_id: str  # unique per event; the alert idempotency key derives from it
    kind: EventKind
    dedup_key: str  # stable per candidate: cooldowns and reports group by it
    local_ts_ms: int  # wall-clock UTC when the event was emitted
    venue_ts_ms: int | None  # the venue's time of the newest data the decision used
    decision: Any
    context: Mapping[str, Any] = field(default_factory=dict)  # engine-side facts (candidate, episode, assumptions)

    def to_record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.event_id,
            "event": self.kind.value,
            "dedup_key": self.dedup_key,
            "local_ts_ms": self.local_ts_ms,
            "venue_ts_ms": self.venue_ts_ms,
            "context": self.context,
            "decision": self.decision,
        }

    @classmethod
    def from_record(cls, record: Any) -> JournalEvent:
        """Rebuild an event from its decoded line; ValueError says what is wrong with it."""
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        missing = [f for f in _FIELDS if f not in record]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        seq, event_id, kind, dedup, local, venue = (record[f] for f in _FIELDS[:6])
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"seq must be a positive integer, got {seq!r}")
        if not isinstance(event_id, str) or not event_id or not isinstance(dedup, str):
            raise ValueError("id and dedup_key must be strings")
        if not isinstance(local, int) or not (venue is None or isinstance(venue, int)):
            raise ValueError("local_ts_ms and venue_ts_ms must be integers")
        try:
            event_kind = EventKind(kind)
        except ValueError:
            raise ValueError(f"unknown event {kind!r}") from None
        context = record.get("context", {})
        if not isinstance(context, dict):
            raise ValueError("context must be an object")
        return cls(seq, event_id, event_kind, dedup, local, venue, record["decision"], context)


def _default(obj: Any) -> Any:
    # Decisions may be msgspec structs; orjson already handles dataclasses, enums and datetimes.
    if isinstance(obj, msgspec.Struct):
        return msgspec.to_builtins(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One JSON line (with its newline); TypeError if something in it cannot be encoded."""
    return orjson.dumps(record, default=_default, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)


def new_event_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    """Wall-clock UTC milliseconds: a timestamp on the event, never used to measure an age."""
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalProblem:
    """A line the reader skipped (or the writer repaired), with where it is."""

    file: Path
    line: int
    kind: Literal["torn_tail", "corrupt", "invalid", "out_of_order"]
    detail: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.detail}"


def journal_files(directory: Path) -> list[Path]:
    """The journal files of ``directory`` in event order (sidecars and strangers ignored)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def first_seq(path: Path) -> int:
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a journal file name")
    return int(match.group(1))


class JournalReader:
    """Reads every file of a journal directory in order; problems are collected, never raised."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.problems: list[JournalProblem] = []

    def events(self, after_seq: int = 0) -> Generator[JournalEvent, None, None]:
        """Events with ``seq > after_seq`` in increasing seq order; files wholly before it are not opened."""
        files = journal_files(self.directory)
        last_seq = after_seq
        for i, path in enumerate(files):
            if i + 1 < len(files) and first_seq(files[i + 1]) <= after_seq + 1:
                continue  # every seq in this file is below the next file's first one
            for number, event in self._read_file(path):
                if event.seq <= after_seq:
                    continue
                if event.seq <= last_seq:  # a repeat (files copied together): skipped, never counted twice
                    detail = f"seq {event.seq} after seq {last_seq}"
                    self.problems.append(JournalProblem(path, number, "out_of_order", detail))
                    continue
                last_seq = event.seq
                yield event

    def file_events(self, path: Path) -> Iterator[JournalEvent]:
        """The valid events of one journal file, in file order (problems collected like :meth:`events`)."""
        for _number, event in self._read_file(path):
            yield event

    def _read_file(self, path: Path) -> Iterator[tuple[int, JournalEvent]]:
        try:
            f = path.open("rb")
        except OSError as exc:
            self.problems.append(JournalProblem(path, 0, "corrupt", f"cannot open: {exc.strerror}"))
            return
        with f:
            for number, line in enumerate(f, start=1):
                torn = not line.endswith(b"\n")
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    if torn:
                        detail = f"{len(line)} bytes without a newline (an interrupted write)"
                        self.problems.append(JournalProblem(path, number, "torn_tail", detail))
                    else:
                        self.problems.append(JournalProblem(path, number, "corrupt", _decode_detail(line, exc)))
                    continue
                try:
                    event = JournalEvent.from_record(record)
                except ValueError as exc:
                    self.problems.append(JournalProblem(path, number, "invalid", str(exc)))
                    continue
                yield number, event


def read_journal(
    directory: str | os.PathLike[str], *, after_seq: int = 0
) -> tuple[list[JournalEvent], list[JournalProblem]]:
    """Every event and every problem of a journal directory."""
    reader = JournalReader(directory)
    events = list(reader.events(after_seq))
    return events, reader.problems


def _decode_detail(line: bytes, exc: orjson.JSONDecodeError) -> str:
    if not line.strip():
        return "empty line"
    if line.strip(b"\0\n") == b"":
        return f"{len(line)} NUL bytes (blocks never written before a power loss)"
    return f"not JSON: {exc.msg} at byte {exc.pos}"


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


class JournalWriter:
    """The single writer of a journal directory. Build it with :meth:`open`; ``close()`` when done."""

    def __init__(
        self,
        directory: Path,
        settings: JournalConfig,
        metrics: Metrics,
        next_seq: int,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.directory = directory
        self._clock = monotonic_ns
        self.settings = settings
        self.metrics = metrics
        self.repairs: list[JournalProblem] = []  # what open() found and repaired
        self.last_event_id = ""  # of the last event written, or found at open ("" if none was readable)
        self._next_seq = next_seq
        self._fd = -1
        self._path: Path | None = None
        self._size = 0
        self._opened_ns = 0
        self._unsynced = 0
        self._first_unsynced_ns = 0
        # Bumped whenever the unsynced count is reset by other means than a background fsync (a blocking
        # sync, a new file): a background fsync that overlapped one must not subtract its count from
        # events written after it (they may sit in a file it never synced).
        self._generation = 0
        self._flusher = False
        self._wake = asyncio.Event()
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        settings: JournalConfig,
        metrics: Metrics,
        *,
        min_next_seq: int = 1,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> JournalWriter:
        """Repair the tail of the newest file, find the last seq and start a new file.

        ``min_next_seq`` keeps seqs increasing even if the journal was removed while the outbox that
        remembers them was kept (pass ``outbox.journal_seq + 1``).
        """
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            repairs, last_seq, last_event_id = _recover(path)
        except OSError as exc:
            metrics.journal_errors.inc()
            raise JournalError(f"journal {path}: cannot open: {exc.strerror or exc}") from exc
        writer = cls(path, settings, metrics, max(last_seq + 1, min_next_seq), monotonic_ns)
        writer.repairs = repairs
        # An outbox ahead of the journal (its newest file lost) moves the seq on: the event found is not
        # the one before it any more.
        writer.last_event_id = last_event_id if min_next_seq <= last_seq + 1 else ""
        for problem in repairs:
            metrics.journal_errors.inc()
            log.warning("journal_repaired", problem=str(problem))
        writer._start_file()
        return writer

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def current_file(self) -> Path | None:
        return self._path

    @property
    def unsynced(self) -> int:
        """Events written since the last fsync."""
        return self._unsynced

    def append(
        self,
        kind: EventKind | str,
        dedup_key: str,
        decision: Any,
        *,
        venue_ts_ms: int | None = None,
        local_ts_ms: int | None = None,
        event_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> JournalEvent:
        """Write one event (durable on the fsync cadence) and return it; JournalError if it was not written.

        ``kind`` is an :class:`EventKind` or its value (the engine's own enum of the same values works).
        ``decision`` and ``context`` may hold msgspec structs, dataclasses, enums: anything orjson encodes.
        """
        if self._closed:
            raise JournalError(f"journal {self.directory}: append after close")
        kind = EventKind(kind)
        event = JournalEvent(
            seq=self._next_seq,
            event_id=event_id or new_event_id(),
            kind=kind,
            dedup_key=dedup_key,
            local_ts_ms=now_ms() if local_ts_ms is None else local_ts_ms,
            venue_ts_ms=venue_ts_ms,
            decision=decision,
            context={} if context is None else context,
        )
        try:
            line = encode_record(event.to_record())
        except TypeError as exc:
            self.metrics.journal_errors.inc()
            raise JournalError(f"journal: {kind} event {dedup_key!r} cannot be encoded: {exc}") from exc
        if self._fd < 0:
            self._start_file()  # an earlier rotation could not create its file: try again
        else:
            self._maybe_rotate(len(line))
        self._write(line)
        self.last_event_id = event.event_id
        self._next_seq += 1
        self.metrics.journal_events.labels(event=kind.value).inc()
        self.metrics.journal_bytes.set(self._size)
        self._unsynced += 1
        now = self._clock()
        if self._unsynced == 1:
            self._first_unsynced_ns = now
            self._wake.set()
        if self._unsynced >= self.settings.fsync_every:
            if self._flusher:
                self._wake.set()
            else:
                self.sync_written()
        elif not self._flusher and now - self._first_unsynced_ns >= self.settings.fsync_interval_ms * 1_000_000:
            self.sync_written()
        return event

    def sync_written(self) -> None:
        """fsync what is written; a failure is logged and counted, not raised (the lines are written; only
        their durability is in doubt: module docstring). :meth:`sync` raises instead."""
        with contextlib.suppress(JournalIOError):
            self.sync()

    def sync(self) -> None:
        """fsync the current file now (blocking)."""
        if self._fd < 0 or self._unsynced == 0:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail("fsync", exc)
        finally:  # synced, or given up (module docstring): a retry would report success for lost pages
            self._unsynced = 0
            self._generation += 1

    async def run(self) -> None:
        """Own the time-based fsync cadence (run it in the daemon's TaskGroup); syncs once more on exit."""
        interval_ns = self.settings.fsync_interval_ms * 1_000_000
        self._flusher = True
        try:
            while not self._closed:
                if self._unsynced == 0:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                remaining_ns = self._first_unsynced_ns + interval_ns - self._clock()
                if self._unsynced < self.settings.fsync_every and remaining_ns > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining_ns / 1e9)
                    continue
                await self._sync_off_loop()
        finally:
            self._flusher = False
            if not self._closed:
                self.sync_written()

    async def _sync_off_loop(self) -> None:
        # fsync can take milliseconds: do it in a thread on a duplicate descriptor, so that a rotation
        # closing the original meanwhile cannot pull the descriptor from under it.
        count, started, generation = self._unsynced, self._clock(), self._generation
        fd = os.dup(self._fd)
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as exc:  # the flusher goes on: these events are given up like synced ones (module docstring)
            self._report("fsync", exc, events=count)
        finally:
            os.close(fd)
        if generation != self._generation:
            return  # a sync or rotation meanwhile already covered these ``count``; the rest are not synced
        self._unsynced = max(0, self._unsynced - count)
        if self._unsynced:
            self._first_unsynced_ns = started  # conservative: the newer events are at most this old

    def close(self) -> None:
        """fsync and close; idempotent. A failed fsync is logged and counted, like any other (module docstring)."""
        if self._closed:
            return
        try:
            self.sync_written()
        finally:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._wake.set()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- files ----

    def _maybe_rotate(self, incoming: int) -> None:
        if self._size == 0:
            return
        too_big = self._size + incoming > self.settings.rotate_bytes
        interval = self.settings.rotate_interval_s
        too_old = interval > 0 and self._clock() - self._opened_ns >= interval * 1_000_000_000
        if too_big or too_old:
            old = self._path
            self.sync_written()  # the old file's lines are written: a failed fsync is logged, not the new event's
            os.close(self._fd)
            self._fd = -1
            self._start_file()
            log.info("journal_rotated", closed=str(old), opened=str(self._path), by="size" if too_big else "time")

    def _start_file(self) -> None:
        stamp = datetime.now(UTC)
        while True:
            name = f"journal-{self._next_seq:012d}-{stamp:%Y%m%dT%H%M%S.%f}Z.jsonl"
            path = self.directory / name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o640)
                break
            except FileExistsError:
                stamp = stamp.replace(microsecond=(stamp.microsecond + 1) % 1_000_000)
            except OSError as exc:
                self._fail("create", exc)
        fsync_dir(self.directory)
        self._fd, self._path, self._size = fd, path, 0
        self._generation += 1
        self._opened_ns = self._clock()
        self.metrics.journal_bytes.set(0)

    def _write(self, line: bytes) -> None:
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
        except OSError as exc:
            # Roll back a partial line so the file still ends on a whole one; if even that fails, the
            # next open() repairs the tail.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self._fail("write", exc)
        self._size += written

    def _fail(self, what: str, exc: OSError) -> NoReturn:
        self._report(what, exc)
        raise JournalIOError(f"journal {self._path}: {what} failed: {exc.strerror or exc}") from exc


    def _report(self, what: str, exc: OSError, **context: int) -> None:
        self.metrics.journal_errors.inc()
        log.error("journal_io_failed", op=what, file=str(self._path), error=exc.strerror or str(exc), **context)


def _recover(directory: Path) -> tuple[list[JournalProblem], int, str]:
    """Repair the newest non-empty file's tail; return the repairs, the last seq written and the last
    readable event's id ("" if none)."""
    problems: list[JournalProblem] = []
    for path in reversed(journal_files(directory)):
        if path.stat().st_size == 0:
            path.unlink()  # a file opened but never written: nothing to keep
            continue
        problem = repair_tail(path, _is_whole_event)
        if problem is not None:
            problems.append(problem)
        return (problems, *_last_event(path))
    return problems, 0, ""


def _is_whole_event(fragment: bytes) -> bool:
    try:
        JournalEvent.from_record(orjson.loads(fragment))
    except (orjson.JSONDecodeError, ValueError):
        return False
    return True


def repair_tail(path: Path, is_whole: Callable[[bytes], bool]) -> JournalProblem | None:
    """Make ``path`` end on a whole line: a torn last line moves to ``<name>.torn-<offset>`` (fsynced).

    A last line that ``is_whole`` accepts only lost its newline: the newline is added instead.
    """
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        end_of_last_line = _last_newline_end(f, size)
        if end_of_last_line == size:
            return None
        f.seek(end_of_last_line)
        fragment = f.read()
        line_no = _count_lines(f, end_of_last_line) + 1
        if is_whole(fragment):  # a whole record that only lost its newline: keep it in place
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return JournalProblem(path, line_no, "torn_tail", "a whole record without its newline: newline added")
        sidecar = path.with_name(f"{path.name}.torn-{end_of_last_line}")
        with sidecar.open("wb") as side:
            side.write(fragment)
            side.flush()
            os.fsync(side.fileno())
        f.truncate(end_of_last_line)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    detail = f"{len(fragment)} bytes of an interrupted write moved to {sidecar.name}"
    return JournalProblem(path, line_no, "torn_tail", detail)


def _last_newline_end(f: Any, size: int) -> int:
    """Offset just past the last newline (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _CHUNK)
        f.seek(start)
        found = f.read(pos - start).rfind(b"\n")
        if found >= 0:
            return int(start + found + 1)
        pos = start
    return 0


def _count_lines(f: Any, upto: int) -> int:
    f.seek(0)
    count, remaining = 0, upto
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count


def _last_event(path: Path) -> tuple[int, str]:
    """The seq and id of the last readable line (read backwards); if none is readable, the seq the name
    implies and no id."""
    with path.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        carry, whole_lines = b"", 0
        while pos > 0:
            start = max(0, pos - _CHUNK)
            f.seek(start)
            lines = (f.read(pos - start) + carry).split(b"\n")
            pos = start
            # Unless at the start of the file, the first piece may be the end of a longer line.
            carry, complete = (b"", lines) if start == 0 else (lines[0], lines[1:])
            for line in reversed(complete):
                if not line:
                    continue
                whole_lines += 1
                try:
                    event = JournalEvent.from_record(orjson.loads(line))
                except (orjson.JSONDecodeError, ValueError):
                    continue
                return event.seq, event.event_id
    return first_seq(path) - 1 + whole_lines, ""


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
