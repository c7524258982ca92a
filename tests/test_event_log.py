"""A full disk under the journal loses no alert: events wait, in order, and are journaled and alerted later.

The events are the engine's own, from the LINK/USDT csv series replayed in-process; the journal is the
real writer on a temporary directory whose file descriptor is pointed at ``/dev/full`` for the outage, so
every ``write(2)`` fails with ENOSPC as it would on a full disk.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rules.candidates import CexCexCandidate
from rules.fees import FeeProfile
from scanner.candidate_state import EventKind
from scanner.config import JournalConfig
from scanner.engine import CandidateEvent, EngineSettings
from scanner.event_log import EventLog
from scanner.journal import JournalEvent, JournalReader, JournalWriter, now_ms
from scanner.metrics import Metrics
from scanner.pipeline import ReplayPipeline
from tests.engine_fixtures import LINK_BINANCE, LINK_HUOBI, csv_recordings, demo_runtime

SETTINGS = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000)


@pytest.fixture(scope="module")
def engine_events() -> list[CandidateEvent]:
    _config, constraints, _assumptions, _ = demo_runtime()
    candidates = [
        CexCexCandidate(id=f"{cid}:500", buy=buy, sell=sell, size_usd=500.0, fee_profile=FeeProfile.MAKER_INVENTORY)
        for cid, buy, sell in (("b>h", LINK_BINANCE, LINK_HUOBI), ("h>b", LINK_HUOBI, LINK_BINANCE))
    ]
    events: list[CandidateEvent] = []
    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    ReplayPipeline(csv_recordings(), candidates, constraints, settings=settings, sink=events.append).run()
    assert {e.event for e in events} == set(EventKind)
    return events


class DiskFull:
    """Point the journal's descriptor at /dev/full (ENOSPC on every write) until ``restore``."""

    def __init__(self, journal: JournalWriter) -> None:
        self.fd = journal._fd
        self.saved = os.dup(self.fd)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, self.fd)
        os.close(full)

    def restore(self) -> None:
        os.dup2(self.saved, self.fd)
        os.close(self.saved)


def test_events_wait_through_a_full_disk_and_are_journaled_and_alerted_in_order(
    tmp_path: Path, engine_events: list[CandidateEvent]
) -> None:
    metrics = Metrics()
    alerted: list[JournalEvent] = []
    events = engine_events[:40]
    with JournalWriter.open(tmp_path, SETTINGS, metrics) as journal:
        log = EventLog(journal, alerted.append, metrics=metrics)
        for event in events[:10]:
            log(event)
        assert len(alerted) == 10 and log.backlog == 0
        full = DiskFull(journal)
        for event in events[10:30]:
            log(event)
        assert log.backlog == 20 and len(alerted) == 10  # nothing journaled, nothing alerted, nothing lost
        assert log.retry() == 0 and log.backlog == 20  # still full
        assert metrics.journal_backlog._value.get() == 20
        # One refused write for the first event of the outage, one for the explicit retry: later events
        # within a second of a refusal only join the backlog (the disk is not hammered per event).
        assert metrics.journal_errors._value.get() == 2
        full.restore()
        time.sleep(0.02)
        retried_ms = now_ms()
        assert log.retry() == 20 and log.backlog == 0
        assert metrics.journal_backlog._value.get() == 0
        for event in events[30:]:
            log(event)
    assert [record.event_id for record in alerted] == [event.event_id for event in events]
    assert [record.seq for record in alerted] == list(range(1, len(events) + 1))  # no seq burnt by a failure
    written = list(JournalReader(tmp_path).events())
    assert [(e.seq, e.event_id, e.kind.value) for e in written] == [(r.seq, r.event_id, r.kind.value) for r in alerted]
    assert log.dropped == 0 and log.skipped == 0
    # A late write keeps the time the engine emitted the event (the outbox's cooldowns compare it).
    assert all(record.local_ts_ms < retried_ms for record in alerted[10:30])


def test_a_full_backlog_drops_rejections_before_alerts(tmp_path: Path, engine_events: list[CandidateEvent]) -> None:
    alerted: list[JournalEvent] = []
    alerts = [e for e in engine_events if e.event is not EventKind.REJECTED][:3]
    rejections = [e for e in engine_events if e.event is EventKind.REJECTED][:6]
    metrics = Metrics()
    with JournalWriter.open(tmp_path, SETTINGS, metrics) as journal:
        log = EventLog(journal, alerted.append, max_backlog=5, metrics=metrics)
        full = DiskFull(journal)
        for event in (rejections[0], alerts[0], *rejections[1:4], alerts[1], rejections[4], alerts[2], rejections[5]):
            log(event)
        assert log.backlog == 5 and log.dropped == 4
        lost = metrics.journal_events_lost
        assert (lost.labels("backlog_full")._value.get(), lost.labels("unencodable")._value.get()) == (4, 0)
        full.restore()
        assert log.retry() == 5
    kept = [record.event_id for record in alerted]
    assert [e.event_id for e in alerts] == [k for k in kept if k in {e.event_id for e in alerts}]  # every alert
    assert len(kept) == 5 and sum(k in {e.event_id for e in rejections} for k in kept) == 2
