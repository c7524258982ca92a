"""Engine events → journal → alert outbox, in order, losing none while the journal's disk refuses writes.

The outbox takes alerts from journaled events only (its high-water mark is the journal seq, and a
restart re-derives alerts from the journal tail), so an event must be journaled before it can alert.
When a write fails (ENOSPC, EIO: :class:`scanner.errors.JournalIOError`), the event is kept, and so is
every later one, in order: :meth:`EventLog.retry` (the daemon's timer) and every new event try again
from the oldest. Nothing waits on the loop meanwhile. The backlog is bounded: past ``max_backlog`` the
oldest ``rejected`` event is dropped first (rejections are the bulk and alert nobody; a counted loss),
an alert event only when nothing else is left to drop. An event that cannot be encoded at all is our
bug, not the disk's: it is logged and skipped, never retried.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import structlog

from scanner.candidate_state import EventKind
from scanner.engine import CandidateEvent
from scanner.errors import JournalError, JournalIOError, ScannerError
from scanner.journal import JournalEvent, JournalWriter, now_ms
from scanner.metrics import Metrics

log = structlog.get_logger("arbscan.events")

DEFAULT_MAX_BACKLOG = 10_000
RETRY_INTERVAL_NS = 1_000_000_000  # while the disk refuses, new events try again at most this often


class EventLog:
    """The engine's event sink (see the module docstring). ``enqueue`` hands a journaled event to the outbox."""

    def __init__(
        self,
        journal: JournalWriter,
        enqueue: Callable[[JournalEvent], object] | None,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        metrics: Metrics | None = None,
    ) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog}")
        self.journal = journal
        self.enqueue = enqueue
        self.max_backlog = max_backlog
        self.metrics = metrics
        if metrics is not None:  # zero series from the start
            for reason in ("backlog_full", "unencodable"):
                metrics.journal_events_lost.labels(reason)
            metrics.journal_backlog.set(0)
        # (event, wall-clock ms when the engine emitted it): a late write keeps the event's own time, which
        # the outbox's cooldowns compare
        self._backlog: deque[tuple[CandidateEvent, int]] = deque()
        self._failed_ns = 0  # monotonic time of the last refused write (0: none pending)
        self.dropped = 0  # events lost because the backlog was full (rejections first)
        self.skipped = 0  # events that could not be encoded (our bug; logged)

    @property
    def backlog(self) -> int:
        """Events waiting for the journal."""
        return len(self._backlog)

    def __call__(self, event: CandidateEvent) -> None:
        self._backlog.append((event, now_ms()))
        if len(self._backlog) > self.max_backlog:
            self._drop_one()
        if len(self._backlog) == 1 or time.monotonic_ns() - self._failed_ns >= RETRY_INTERVAL_NS:
            self.retry()  # else the disk refused less than a second ago: do not hammer it per event
        else:
            self._export_backlog()

    def retry(self) -> int:
        """Journal (and hand to the outbox) the waiting events, oldest first; returns how many were written."""
        backlog = self._backlog
        written = 0
        while backlog:
            event, emitted_ms = backlog[0]
            try:
                record = self.journal.append(
                    event.event.value,
                    event.dedup_key,
                    event.decision,
                    venue_ts_ms=event.venue_ms or None,
                    local_ts_ms=emitted_ms,
                    event_id=event.event_id,
                    context=event.context(),
                )
            except JournalIOError as exc:
                self._failed_ns = time.monotonic_ns()
                self._export_backlog()
                if written or len(backlog) == 1:  # the first failure of a streak (the journal logged the I/O error)
                    log.error("journal_backlog", waiting=len(backlog), error=str(exc))
                return written
            except JournalError as exc:
                backlog.popleft()
                self.skipped += 1
                if self.metrics is not None:
                    self.metrics.journal_events_lost.labels("unencodable").inc()
                log.error("journal_event_skipped", error=str(exc), candidate=event.candidate_id, kind=event.event.value)
                continue
            backlog.popleft()
            written += 1
            self._after_journal(event, record)
        self._export_backlog()
        if written > 1:
            log.info("journal_backlog_written", events=written)
        return written

    def _export_backlog(self) -> None:
        if self.metrics is not None:
            self.metrics.journal_backlog.set(len(self._backlog))

    def close(self) -> None:
        """A last try at shutdown; what the disk still refuses is lost, and said so."""
        if self._backlog:
            self.retry()
        if self._backlog:
            alerts = sum(event.event is not EventKind.REJECTED for event, _ms in self._backlog)
            log.error("journal_backlog_lost_at_shutdown", events=len(self._backlog), alerts=alerts)

    def _after_journal(self, event: CandidateEvent, record: JournalEvent) -> None:
        if event.event is not EventKind.REJECTED:
            log.info(
                f"candidate_{event.event.value}",
                candidate=event.candidate_id,
                net_bps=round(event.decision.net_bps, 3),
                reason=event.decision.primary_reason,
                funding=event.decision.funding_source,
            )
        if self.enqueue is not None:
            try:
                self.enqueue(record)
            except ScannerError as exc:  # the outbox keeps it and records it first on its next call
                log.error("alert_enqueue_failed", error=str(exc), event_id=event.event_id)

    def _drop_one(self) -> None:
        backlog = self._backlog
        for i, (waiting, _ms) in enumerate(backlog):
            if waiting.event is EventKind.REJECTED:
                del backlog[i]
                break
        else:
            waiting, _ms = backlog.popleft()
        self.dropped += 1
        if self.metrics is not None:
            self.metrics.journal_events_lost.labels("backlog_full").inc()
        log.error(
            "journal_backlog_full_event_dropped",
            kind=waiting.event.value,
            candidate=waiting.candidate_id,
            dropped=self.dropped,
        )
