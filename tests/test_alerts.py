"""Alert webhooks against a real aiohttp receiver: signatures, formats, retries, outages, restarts, secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import prometheus_client
import pytest
import structlog

from scanner.alerts import (
    IDEMPOTENCY_HEADER,
    AlertDispatcher,
    BacklogLimits,
    Backoff,
    RollingLimit,
    sign,
    summary,
    verify,
)
from scanner.candidate_state import EventKind as CandidateEventKind
from scanner.candidate_state import event_id
from scanner.config import JournalConfig
from scanner.errors import AlertError
from scanner.journal import EventKind, JournalEvent, JournalWriter
from scanner.logging import configure_logging
from scanner.metrics import Metrics
from scanner.outbox import LOG_NAME
from tests.conftest import ROOT, timeout
from tests.sinks_fixtures import KEY, Decision, Receiver, wait_for, webhook

FAST_RETRY = {"retry_initial_s": 0.02, "retry_max_s": 0.1}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBSCAN_TEST_WEBHOOK_KEY", KEY)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[JournalWriter]:
    with JournalWriter.open(tmp_path / "journal", JournalConfig(), Metrics()) as writer:
        yield writer


def qualified(journal: JournalWriter, key: str, net: float = 3.25, **kw: Any) -> JournalEvent:
    d = Decision(strategy="perp_spot_basis", candidate_id=key, net_bps=net, size_usd=5000.0, slippage_bps=0.5)
    return journal.append(EventKind.QUALIFIED, key, d, venue_ts_ms=1_723_161_255_201, **kw)


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Running:
    """A dispatcher whose run() is an owned task; ``async with`` stops it gracefully and closes it."""

    def __init__(self, dispatcher: AlertDispatcher) -> None:
        self.dispatcher = dispatcher
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AlertDispatcher:
        self._task = asyncio.create_task(self.dispatcher.run())
        return self.dispatcher

    async def __aexit__(self, *exc: object) -> None:
        self.dispatcher.stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout(10))
        self.dispatcher.close()


async def test_generic_alert_is_signed_and_carries_the_journal_record(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """One qualified event → one POST whose HMAC verifies and whose body is the journal record."""
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", receiver.url())], metrics)
    async with Running(dispatcher):
        event = qualified(journal, "cand-1")
        assert dispatcher.enqueue(event) == [f"{event.event_id}.ops"]
        assert dispatcher.enqueue(event) == []  # the same event again: already in the outbox
        rejected = journal.append(EventKind.REJECTED, "cand-1", {"primary_reason": "stale_book"})
        assert dispatcher.enqueue(rejected) == []  # rejections never alert
        await wait_for(lambda: len(receiver.deliveries) == 1 and dispatcher.outbox.depth("ops") == 0)
    [delivery] = receiver.deliveries
    assert delivery.path == "/hook"
    assert delivery.signature_ok is True
    assert delivery.headers[IDEMPOTENCY_HEADER] == f"{event.event_id}.ops"
    assert delivery.headers["Content-Type"] == "application/json"
    body = delivery.body
    assert body.pop("enqueued_ms") > 0
    assert body == {
        "idempotency_key": f"{event.event_id}.ops",
        "event": "qualified",
        "event_id": event.event_id,
        "seq": 1,
        "dedup_key": "cand-1",
        "local_ts_ms": event.local_ts_ms,
        "venue_ts_ms": 1_723_161_255_201,
        "summary": "arbscan QUALIFIED perp_spot_basis cand-1: net +3.25 bps on 5,000 USD",
        "context": {},
        "decision": {
            "strategy": "perp_spot_basis",
            "candidate_id": "cand-1",
            "net_bps": 3.25,
            "size_usd": 5000.0,
            "slippage_bps": 0.5,
            "funding_source": None,
            "primary_reason": None,
        },
    }
    assert metric(metrics, "arbscan_webhook_sent_total", webhook="ops") == 1
    assert metric(metrics, "arbscan_webhook_failures_total", webhook="ops") == 0
    assert metric(metrics, "arbscan_webhook_outbox_depth", webhook="ops") == 0
    assert metric(metrics, "arbscan_webhook_outbox_oldest_age_seconds", webhook="ops") == 0


async def test_slack_discord_and_telegram_bodies(tmp_path: Path, receiver: Receiver, journal: JournalWriter) -> None:
    """Each chat format gets its own body shape with the idempotency key in it; disqualified opt-in works."""
    hooks = [
        webhook("slack", receiver.url("slack"), format="slack", on=["qualified", "disqualified"]),
        webhook("discord", receiver.url("discord"), format="discord"),
        webhook("tg", receiver.url("tg"), format="telegram", telegram_chat_id="-100123", secret_env=None),
    ]
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    async with Running(dispatcher):
        event = qualified(journal, "c")
        assert len(dispatcher.enqueue(event)) == 3
        gone = journal.append(
            EventKind.DISQUALIFIED, "c", {"strategy": "cex_cex", "net_bps": -1.0, "primary_reason": "below_min_edge"}
        )
        assert dispatcher.enqueue(gone) == [f"{gone.event_id}.slack"]
        await wait_for(lambda: len(receiver.deliveries) == 4)
    by_path = {(d.path, d.body.get("text", d.body.get("content", ""))[:20]): d for d in receiver.deliveries}
    line = "arbscan QUALIFIED perp_spot_basis c: net +3.25 bps on 5,000 USD"
    slack = by_path[("/slack", line[:20])]
    assert slack.body == {"text": f"{line}\nidempotency key: `{event.event_id}.slack`"}
    assert slack.signature_ok is True
    discord = by_path[("/discord", line[:20])].body
    assert discord == {
        "content": line,
        "embeds": [{"footer": {"text": f"idempotency key: {event.event_id}.discord"}}],
        "allowed_mentions": {"parse": []},
    }
    tg = by_path[("/tg", line[:20])]
    assert tg.body == {
        "chat_id": "-100123",
        "text": f"{line}\nidempotency key: {event.event_id}.tg",
        "disable_web_page_preview": True,
    }
    assert tg.signature_ok is None  # no key configured: not signed
    slack_gone = by_path[("/slack", "arbscan DISQUALIFIED")].body
    assert slack_gone["text"].startswith("arbscan DISQUALIFIED cex_cex c: net -1.00 bps (now below_min_edge)")


async def test_receiver_down_then_up_across_a_restart_delivers_every_alert_exactly_once(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """Alerts queued while the receiver is down survive a dispatcher restart and arrive once each, in order."""
    await receiver.stop()
    hooks = [webhook("ops", receiver.url(), **FAST_RETRY)]
    metrics = Metrics()
    expected: list[str] = []

    first = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    async with Running(first):
        for i in range(5):
            expected += first.enqueue(qualified(journal, f"c{i}"))
        await wait_for(lambda: metric(metrics, "arbscan_webhook_failures_total", webhook="ops") >= 3)
        assert metric(metrics, "arbscan_webhook_outbox_depth", webhook="ops") == 5

    metrics = Metrics()
    second = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert second.outbox.depth("ops") == 5
    async with Running(second):
        for i in range(5, 8):
            expected += second.enqueue(qualified(journal, f"c{i}"))
        await wait_for(lambda: metric(metrics, "arbscan_webhook_failures_total", webhook="ops") >= 2)
        assert metric(metrics, "arbscan_webhook_outbox_oldest_age_seconds", webhook="ops") > 0
        await receiver.start()  # same port
        await wait_for(lambda: second.outbox.depth("ops") == 0, what="the outbox to drain")
    assert len(expected) == 8
    assert receiver.keys() == expected
    assert all(d.signature_ok for d in receiver.deliveries)
    assert metric(metrics, "arbscan_webhook_sent_total", webhook="ops") == 8

    third = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    async with Running(third):
        assert third.outbox.depth("ops") == 0
        assert await third.drain(0)
    assert receiver.keys() == expected


_CRASHING_DAEMON = textwrap.dedent(
    """
    import asyncio, sys
    from scanner.alerts import AlertDispatcher
    from scanner.config import JournalConfig
    from scanner.journal import EventKind, JournalWriter
    from scanner.metrics import Metrics
    from tests.sinks_fixtures import webhook

    async def main() -> None:
        state, url = sys.argv[1], sys.argv[2]
        alerts = AlertDispatcher.open(state + "/outbox", [webhook("ops", url, retry_initial_s=0.02)], Metrics())
        alerts.catch_up(state + "/journal")
        journal = JournalWriter.open(state + "/journal", JournalConfig(), Metrics())
        task = asyncio.create_task(alerts.run())
        for i in range(3):
            alerts.enqueue(journal.append(EventKind.QUALIFIED, f"c{i}", {"net_bps": i}))
        # Killed between journal.append and enqueue: only the journal has this one.
        journal.append(EventKind.QUALIFIED, "c3", {"net_bps": 3})
        journal.sync()
        print("ready", flush=True)
        await task

    asyncio.run(main())
    """
)


async def test_sigkilled_daemon_loses_nothing_and_the_journal_catch_up_fills_the_gap(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A process killed with SIGKILL while the receiver is down: the next one delivers all 4 alerts once."""
    await receiver.stop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_DAEMON,
        str(tmp_path),
        receiver.url(),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout(60))
        assert line == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", receiver.url())], metrics)
    assert dispatcher.outbox.depth("ops") == 3
    assert dispatcher.catch_up(tmp_path / "journal") == 1
    assert dispatcher.catch_up(tmp_path / "journal") == 0  # idempotent
    await receiver.start()
    async with Running(dispatcher):
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0 and len(receiver.deliveries) == 4)
    assert [d.body["dedup_key"] for d in receiver.deliveries] == ["c0", "c1", "c2", "c3"]
    assert [d.body["seq"] for d in receiver.deliveries] == [1, 2, 3, 4]
    assert len(set(receiver.keys())) == 4


async def test_failed_enqueue_is_not_skipped_by_a_later_one_nor_after_a_restart(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """The outbox's disk fails (its descriptor points at /dev/full: ENOSPC) for two events; a third one,
    after the disk is back, records all three in journal order; after a restart the receiver gets each once."""
    outbox_dir = tmp_path / "outbox"
    dispatcher = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], Metrics())
    zero = qualified(journal, "c0")
    assert dispatcher.enqueue(zero) == [f"{zero.event_id}.ops"]
    log_fd = dispatcher.outbox._fd
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log_fd)  # the outbox's own descriptor now fails every write with ENOSPC
        first, second = qualified(journal, "c1"), qualified(journal, "c2")
        with pytest.raises(AlertError, match="write failed: No space left on device"):
            dispatcher.enqueue(first)
        with pytest.raises(AlertError, match="write failed: No space left on device"):
            dispatcher.enqueue(second)  # first is retried before it, and fails again
        assert dispatcher.outbox.journal_seq == 1  # never past an event that is only in the journal
    finally:
        os.close(full)
    healthy = os.open(outbox_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND)
    os.dup2(healthy, log_fd)
    os.close(healthy)
    third = qualified(journal, "c3")
    assert dispatcher.enqueue(third) == [f"{e.event_id}.ops" for e in (first, second, third)]
    assert dispatcher.enqueue(first) == []  # recorded now: not twice
    dispatcher.close()

    restarted = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], Metrics())
    assert restarted.outbox.journal_seq == 4
    assert [e.seq for e in restarted.outbox.pending("ops")] == [1, 2, 3, 4]
    assert restarted.catch_up(tmp_path / "journal") == 0  # nothing was left only in the journal
    async with Running(restarted):
        await wait_for(lambda: restarted.outbox.depth("ops") == 0 and len(receiver.deliveries) == 4)
    assert [d.body["dedup_key"] for d in receiver.deliveries] == ["c0", "c1", "c2", "c3"]
    assert [d.body["seq"] for d in receiver.deliveries] == [1, 2, 3, 4]
    assert len(set(receiver.keys())) == 4


async def test_failed_enqueue_then_restart_catches_it_up_from_the_journal(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """An event whose enqueue failed, then a process end before any retry: catch_up finds it in the journal."""
    outbox_dir = tmp_path / "outbox"
    dispatcher = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], Metrics())
    dispatcher.enqueue(qualified(journal, "c0"))
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, dispatcher.outbox._fd)
        with pytest.raises(AlertError, match="No space left on device"):
            dispatcher.enqueue(qualified(journal, "c1"))
    finally:
        os.close(full)
    dispatcher.close()

    restarted = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], Metrics())
    assert restarted.outbox.journal_seq == 1
    assert restarted.catch_up(tmp_path / "journal") == 1
    assert restarted.enqueue(qualified(journal, "c2")) != []
    async with Running(restarted):
        await wait_for(lambda: restarted.outbox.depth("ops") == 0 and len(receiver.deliveries) == 3)
    assert [d.body["dedup_key"] for d in receiver.deliveries] == ["c0", "c1", "c2"]
    assert len(set(receiver.keys())) == 3


async def test_alert_backlog_past_its_limit_is_re_read_from_the_journal_in_order(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """The outbox's disk refuses writes for longer than the held-events limit (3): the events no webhook
    wants are never held, the rest are let go (a counted spill) and, once the disk is back, re-read from the
    journal in chunks (2 per call) by new events and by the timer's retry(); the receiver gets every alert
    once, in journal order."""
    outbox_dir = tmp_path / "outbox"
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(
        outbox_dir,
        [webhook("ops", receiver.url())],
        metrics,
        limits=BacklogLimits(max_unrecorded=3, reread_chunk=2, reread_retry_s=0),
    )
    assert dispatcher.catch_up(tmp_path / "journal") == 0  # as the daemon does: the journal is known
    zero = qualified(journal, "c0")
    assert dispatcher.enqueue(zero) == [f"{zero.event_id}.ops"]
    log_fd = dispatcher.outbox._fd
    full = os.open("/dev/full", os.O_WRONLY)
    held: list[tuple[int, float]] = []
    try:
        os.dup2(full, log_fd)
        for n in range(1, 6):
            rejected = journal.append(EventKind.REJECTED, f"r{n}", Decision("perp_spot_basis", f"r{n}", -1.0, 1.0, 0.0))
            assert dispatcher.enqueue(rejected) == []  # a rejection alerts nobody: nothing to hold
            with pytest.raises(AlertError, match="No space left on device"):
                dispatcher.enqueue(qualified(journal, f"c{n}"))
            held.append((dispatcher.held, metric(metrics, "arbscan_webhook_unrecorded_events")))
        assert dispatcher.retry() == []  # the timer's retry: refused, logged once, no error raised
    finally:
        os.close(full)
    # In memory: never more than 3. Waiting in all (the gauge): every alert event not yet in the outbox.
    assert held == [(1, 1.0), (2, 2.0), (3, 3.0), (0, 4.0), (1, 5.0)]  # the 4th passed the limit: let go
    assert metric(metrics, "arbscan_webhook_backlog_spills_total") == 1.0
    assert dispatcher.outbox.journal_seq == 1
    healthy = os.open(outbox_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND)
    os.dup2(healthy, log_fd)
    os.close(healthy)
    last = qualified(journal, "c6")
    recorded = dispatcher.enqueue(last)  # c1, c2 from the journal; c5 and c6 wait their turn
    assert len(recorded) == 2 and dispatcher.backlog == 4
    recorded += dispatcher.retry()  # c3, c4
    recorded += dispatcher.retry()  # the journal part is done: c5 and c6 from memory
    assert len(recorded) == 6 and dispatcher.retry() == [] and dispatcher.backlog == 0
    assert metric(metrics, "arbscan_webhook_unrecorded_events") == 0.0
    assert dispatcher.outbox.journal_seq == last.seq
    async with Running(dispatcher):
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0 and len(receiver.deliveries) == 7)
    assert [d.body["dedup_key"] for d in receiver.deliveries] == [f"c{n}" for n in range(7)]
    assert len(set(receiver.keys())) == 7


async def test_a_reload_during_a_re_read_does_not_strand_the_rest_of_the_backlog(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """A reload makes a let-go event wanted that was not when it was let go (found by review): the backlog
    must not read empty before the re-read reaches its end, or the timer would stop retrying."""
    outbox_dir = tmp_path / "outbox"
    only_qualified = [webhook("ops", receiver.url(), on=["qualified"])]
    dispatcher = AlertDispatcher.open(
        outbox_dir, only_qualified, Metrics(), limits=BacklogLimits(max_unrecorded=1, reread_chunk=1, reread_retry_s=0)
    )
    dispatcher.catch_up(tmp_path / "journal")
    log_fd = dispatcher.outbox._fd
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log_fd)
        with pytest.raises(AlertError):
            dispatcher.enqueue(qualified(journal, "c1"))
        closed = journal.append(EventKind.DISQUALIFIED, "c1", Decision("perp_spot_basis", "c1", -1.0, 1.0, 0.0))
        assert dispatcher.enqueue(closed) == []  # not wanted (yet): not held
        with pytest.raises(AlertError):
            dispatcher.enqueue(qualified(journal, "c2"))  # past the limit: c1 and c2 let go
    finally:
        os.close(full)
    healthy = os.open(outbox_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND)
    os.dup2(healthy, log_fd)
    os.close(healthy)
    dispatcher.reconfigure([webhook("ops", receiver.url(), on=["qualified", "disqualified"])])
    recorded: list[str] = []
    for _ in range(5):  # the daemon's timer
        recorded += dispatcher.retry()
    assert dispatcher.backlog == 0 and len(recorded) == 3
    assert [(e.event["event"], e.event["dedup_key"]) for e in dispatcher.outbox.pending("ops")] == [
        ("qualified", "c1"),
        ("disqualified", "c1"),
        ("qualified", "c2"),
    ]
    dispatcher.close()


async def test_alert_backlog_without_a_journal_to_re_read_drops_the_oldest_and_counts_it(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """Embedded use without catch_up (no journal known): past the limit the oldest held event is lost, counted."""
    outbox_dir = tmp_path / "outbox"
    limits = BacklogLimits(max_unrecorded=1)
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], metrics, limits=limits)
    log_fd = dispatcher.outbox._fd
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log_fd)
        for key in ("c1", "c2"):
            with pytest.raises(AlertError, match="No space left on device"):
                dispatcher.enqueue(qualified(journal, key))
    finally:
        os.close(full)
    healthy = os.open(outbox_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND)
    os.dup2(healthy, log_fd)
    os.close(healthy)
    assert dispatcher.lost == 1
    assert metric(metrics, "arbscan_webhook_events_lost_total") == 1.0
    dispatcher.enqueue(qualified(journal, "c3"))
    assert [e.event["dedup_key"] for e in dispatcher.outbox.pending("ops")] == ["c2", "c3"]
    dispatcher.close()


async def test_first_start_on_an_old_journal_does_not_re_alert_history(tmp_path: Path, journal: JournalWriter) -> None:
    """A new outbox starts at the journal's end: old events are marked seen, not sent."""
    for i in range(3):
        qualified(journal, f"old{i}")
    journal.sync()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", "http://127.0.0.1:9/x")], Metrics())
    assert dispatcher.catch_up(tmp_path / "journal") == 0
    assert dispatcher.outbox.journal_seq == 3
    assert dispatcher.outbox.depth("ops") == 0
    dispatcher.close()


async def test_server_errors_and_429_are_retried_with_backoff(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """500, 503 and 429 (Retry-After honoured) are failures counted and retried until a 2xx; sent once."""
    receiver.statuses = [500, 503, 429]
    receiver.retry_after = "0"
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", receiver.url(), **FAST_RETRY)], metrics)
    async with Running(dispatcher):
        [alert] = dispatcher.enqueue(qualified(journal, "c"))
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == [alert]
    assert metric(metrics, "arbscan_webhook_failures_total", webhook="ops") == 3
    assert metric(metrics, "arbscan_webhook_sent_total", webhook="ops") == 1
    acks = [orjson.loads(x) for x in (tmp_path / "outbox" / LOG_NAME).read_bytes().splitlines()]
    assert [(a["op"], a.get("status"), a.get("attempts")) for a in acks] == [("enq", None, None), ("ack", 200, 4)]


async def test_refused_alert_goes_to_dead_letters_and_the_queue_moves_on(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """A 400 (the body will never be accepted) is not retried: dead letter, counted, next alert delivered."""
    receiver.statuses = [400]
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", receiver.url(), **FAST_RETRY)], metrics)
    async with Running(dispatcher):
        [refused] = dispatcher.enqueue(qualified(journal, "a"))
        [accepted] = dispatcher.enqueue(qualified(journal, "b"))
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == [accepted]
    dead = [orjson.loads(x) for x in (tmp_path / "outbox" / "dead.jsonl").read_bytes().splitlines()]
    assert [(d["id"], d["status"], d["reason"]) for d in dead] == [(refused, 400, "HTTP 400: no")]
    assert metric(metrics, "arbscan_webhook_failures_total", webhook="ops") == 1


async def test_cooldown_per_event_and_dedup_key_survives_a_restart(tmp_path: Path, journal: JournalWriter) -> None:
    """Within cooldown_s the same (event, dedup key) is suppressed and counted, also after a restart."""
    hooks = [webhook("ops", "http://127.0.0.1:9/x", cooldown_s=60, on=["qualified", "disqualified"])]
    metrics = Metrics()
    t0 = 1_800_000_000_000
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert dispatcher.enqueue(qualified(journal, "c", local_ts_ms=t0)) != []
    assert dispatcher.enqueue(qualified(journal, "c", local_ts_ms=t0 + 1_000)) == []
    assert dispatcher.enqueue(qualified(journal, "other", local_ts_ms=t0 + 1_000)) != []
    gone = journal.append(EventKind.DISQUALIFIED, "c", {}, local_ts_ms=t0 + 2_000)
    assert dispatcher.enqueue(gone) != []
    dispatcher.close()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert dispatcher.enqueue(qualified(journal, "c", local_ts_ms=t0 + 59_999)) == []
    assert dispatcher.enqueue(qualified(journal, "c", local_ts_ms=t0 + 60_000)) != []
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="cooldown") == 2
    assert dispatcher.outbox.depth("ops") == 4
    dispatcher.close()


async def test_the_close_of_an_alerted_episode_is_never_held_back_by_the_cooldown(
    tmp_path: Path, journal: JournalWriter
) -> None:
    """Q1 at 0 s, D1 at 250 s, Q2 at 300 s, D2 at 400 s, cooldown 300 s: Q2 is sent (300 s after Q1), so D2,
    its close, is sent too although D1 was 150 s before (the receiver would otherwise keep episode 2 open),
    also after a restart. Q3 at 500 s is held back by the cooldown, and so is D3, its close, at 820 s although
    D2 was 420 s before: the receiver never sees a close for an episode it was not told of."""
    hooks = [webhook("ops", "http://127.0.0.1:9/x", cooldown_s=300, on=["qualified", "disqualified"])]
    metrics = Metrics()
    t0 = 1_800_000_000_000

    def episode(kind: EventKind, start_s: int, at_s: int) -> JournalEvent:
        """The engine's event of the episode that began at ``start_s`` (its id derives from the start)."""
        context = {"candidate_id": "c", "episode_ms": t0 + start_s * 1000}
        reason = "fee_dominated" if kind is EventKind.DISQUALIFIED else ""
        stable = event_id("c", CandidateEventKind(kind.value), t0 + start_s * 1000, reason)
        return journal.append(kind, "c", {}, local_ts_ms=t0 + at_s * 1000, event_id=stable, context=context)

    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert dispatcher.enqueue(episode(EventKind.QUALIFIED, 0, 0)) != []
    assert dispatcher.enqueue(episode(EventKind.DISQUALIFIED, 0, 250)) != []
    assert dispatcher.enqueue(episode(EventKind.QUALIFIED, 300, 300)) != []
    dispatcher.close()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert dispatcher.enqueue(episode(EventKind.DISQUALIFIED, 300, 400)) != []  # was: suppressed, episode 2 open
    assert dispatcher.enqueue(episode(EventKind.QUALIFIED, 500, 500)) == []  # Q3, 200 s after Q2: cooldown
    dispatcher.outbox.compact()  # what the cooldown held back is remembered across compaction and restart
    dispatcher.close()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    # D3, 420 s after D2 (outside the cooldown), closes an episode this webhook was never told of: held back too
    assert dispatcher.enqueue(episode(EventKind.DISQUALIFIED, 500, 820)) == []
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="cooldown") == 2
    assert [e.event["event"] for e in dispatcher.outbox.pending("ops")] == [
        "qualified",
        "disqualified",
        "qualified",
        "disqualified",
    ]
    dispatcher.close()


async def test_an_event_re_derived_after_a_restart_is_not_alerted_twice(tmp_path: Path, journal: JournalWriter) -> None:
    """The engine's stable event ids: the same id under a new seq (after a restart) is suppressed as a duplicate."""
    hooks = [webhook("ops", "http://127.0.0.1:9/x", cooldown_s=0)]
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert dispatcher.enqueue(qualified(journal, "c", event_id="stable-id-1")) == ["stable-id-1.ops"]
    dispatcher.outbox.ack("stable-id-1.ops", status=200, attempts=1)
    dispatcher.outbox.compact()  # delivered and compacted away: the id is still remembered
    dispatcher.close()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    again = qualified(journal, "c", event_id="stable-id-1")
    assert again.seq == 2
    assert dispatcher.enqueue(again) == []
    assert dispatcher.enqueue(qualified(journal, "c", event_id="stable-id-2")) == ["stable-id-2.ops"]
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="duplicate") == 1
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="cooldown") == 0
    dispatcher.close()


async def test_re_derived_event_reaches_a_real_receiver_once_across_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Delivered, process restarted (new journal writer, dispatcher and metrics on the same directories),
    the engine re-derives the same event (same id, new seq): the receiver gets it once, counted as duplicate."""
    hooks = [webhook("ops", receiver.url(), cooldown_s=0)]
    with JournalWriter.open(tmp_path / "journal", JournalConfig(), Metrics()) as journal:
        dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
        async with Running(dispatcher):
            first = qualified(journal, "c", event_id="cand-c.qualified.1")
            assert dispatcher.enqueue(first) == ["cand-c.qualified.1.ops"]
            await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == ["cand-c.qualified.1.ops"]

    metrics = Metrics()
    with JournalWriter.open(tmp_path / "journal", JournalConfig(), Metrics()) as journal:
        dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
        async with Running(dispatcher):
            assert dispatcher.catch_up(tmp_path / "journal") == 0  # nothing was left undelivered
            again = qualified(journal, "c", event_id="cand-c.qualified.1")
            assert again.seq == first.seq + 1
            assert dispatcher.enqueue(again) == []
            fresh = qualified(journal, "c", event_id="cand-c.qualified.2")
            assert dispatcher.enqueue(fresh) == ["cand-c.qualified.2.ops"]
            await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == ["cand-c.qualified.1.ops", "cand-c.qualified.2.ops"]
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="duplicate") == 1
    assert metric(metrics, "arbscan_webhook_sent_total", webhook="ops") == 1


async def test_event_re_derived_while_its_alert_is_pending_is_delivered_once(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """Receiver down: the alert waits in the outbox; after a restart the engine re-derives the event before
    the receiver is back. One delivery, with the original idempotency key; the copy counted as duplicate."""
    await receiver.stop()
    hooks = [webhook("ops", receiver.url(), cooldown_s=0, **FAST_RETRY)]
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    async with Running(dispatcher):
        assert dispatcher.enqueue(qualified(journal, "c", event_id="stable-7")) == ["stable-7.ops"]
        await wait_for(lambda: dispatcher.outbox.attempts("stable-7.ops") >= 1)
    metrics = Metrics()
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    assert [e.alert_id for e in dispatcher.outbox.pending("ops")] == ["stable-7.ops"]
    assert dispatcher.enqueue(qualified(journal, "c", event_id="stable-7")) == []
    await receiver.start()
    async with Running(dispatcher):
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == ["stable-7.ops"]
    assert metric(metrics, "arbscan_webhook_suppressed_total", webhook="ops", reason="duplicate") == 1


async def test_removed_webhook_keeps_its_alerts_until_it_returns(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """A reload without the webhook keeps its pending alerts (and its gauge); restoring it delivers them once."""
    metrics = Metrics()
    hooks = [webhook("ops", receiver.url())]
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, metrics)
    [alert] = dispatcher.enqueue(qualified(journal, "c"))
    dispatcher.reconfigure([])
    assert dispatcher.webhooks == []
    async with Running(dispatcher):
        assert dispatcher.enqueue(qualified(journal, "d")) == []
        assert await dispatcher.drain(0)  # nothing pending for configured webhooks
        assert metric(metrics, "arbscan_webhook_outbox_depth", webhook="ops") == 1
        dispatcher.reconfigure(hooks)
        await wait_for(lambda: dispatcher.outbox.depth("ops") == 0)
    assert receiver.keys() == [alert]


async def test_secrets_never_reach_logs_metrics_or_errors(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """Failing deliveries to a URL with tokens in path and query log the webhook name only."""
    stream = io.StringIO()
    configure_logging(level="debug", json=True, stream=stream, cache=False)
    try:
        await receiver.stop()
        url = receiver.url("hook/PATHTOKEN123", "token=QUERYTOKEN456")
        metrics = Metrics()
        dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", url, **FAST_RETRY)], metrics)
        async with Running(dispatcher):
            dispatcher.enqueue(qualified(journal, "c"))
            await wait_for(lambda: metric(metrics, "arbscan_webhook_failures_total", webhook="ops") >= 2)
        logging.getLogger("aiohttp.client").warning("library says: %s", url)
    finally:
        structlog.reset_defaults()
        for handler in logging.getLogger().handlers[:]:
            if getattr(handler, "_arbscan_handler", False):
                logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    lines = [orjson.loads(line) for line in text.splitlines()]
    failures = [line for line in lines if line["event"] == "alert_delivery_failed"]
    assert failures and failures[0]["webhook"] == "ops"
    assert failures[0]["failure"].startswith("ClientConnectorError: Connect call failed")
    assert lines[-1]["event"] == "library says: [redacted]"
    exposition = prometheus_client.generate_latest(metrics.registry).decode()
    for secret in ("PATHTOKEN123", "QUERYTOKEN456", KEY):
        assert secret not in text
        assert secret not in exposition


async def test_cancelled_run_closes_its_session_and_keeps_the_outbox(tmp_path: Path, journal: JournalWriter) -> None:
    """Hard cancellation (no stop()) ends run() cleanly; what was pending is still on disk for the next start."""
    dispatcher = AlertDispatcher.open(
        tmp_path / "outbox", [webhook("ops", "http://127.0.0.1:9/x", **FAST_RETRY)], Metrics()
    )
    task = asyncio.create_task(dispatcher.run())
    [alert] = dispatcher.enqueue(qualified(journal, "c"))
    await wait_for(lambda: dispatcher.outbox.attempts(alert) >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dispatcher.close()
    again = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", "http://127.0.0.1:9/x")], Metrics())
    assert [e.alert_id for e in again.outbox.pending("ops")] == [alert]
    again.close()


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The documented construction, checked against a value computed independently with hashlib."""
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k", "1700000000", body) == f"sha256={expected}"
    assert verify(b"k", "1700000000", body, f"sha256={expected}")
    assert not verify(b"k", "1700000001", body, f"sha256={expected}")
    assert not verify(b"other", "1700000000", body, f"sha256={expected}")


def test_rolling_limit_allows_n_per_minute() -> None:
    """At most N sends in any 60 s window; the wait is until the oldest send leaves the window."""
    limit = RollingLimit(2)
    s = 1_000_000_000
    assert limit.delay_s(0) == 0.0
    limit.record(0)
    limit.record(10 * s)
    assert limit.delay_s(20 * s) == 40.0
    assert limit.delay_s(60 * s) == 0.0
    limit.record(60 * s)
    assert limit.delay_s(61 * s) == 9.0


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    """Delays are drawn in [d/2, d] with d doubling from the initial delay to the cap."""
    backoff = Backoff(1.0, 10.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 7  # jittered, not constant
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_summary_says_when_funding_was_assumed() -> None:
    """A decision that used a stated funding assumption says so in the alert text."""
    record = {
        "event": "qualified",
        "dedup_key": "k",
        "decision": {"strategy": "perp_spot_basis", "candidate_id": "x", "net_bps": 2.0, "funding_source": "assumed"},
    }
    assert summary(record) == "arbscan QUALIFIED perp_spot_basis x: net +2.00 bps [funding assumed, not live]"
    assert summary({"event": "qualified", "dedup_key": "k", "decision": {"net_bps": None}}) == "arbscan QUALIFIED k"


async def test_a_disk_that_refuses_the_delivery_records_does_not_stop_delivery(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """The outbox's disk full after two alerts were enqueued: their acks cannot be written. Delivery goes on
    (the worker used to die with the daemon), each alert is sent once in this run and counted as a refused
    write; a restart on a healthy disk sends them once more, under the same idempotency keys. A start whose
    compaction the disk refuses still opens the outbox from its whole log."""
    metrics = Metrics()
    outbox_dir = tmp_path / "outbox"
    dispatcher = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], metrics)
    ids = [dispatcher.enqueue(qualified(journal, key))[0] for key in ("c1", "c2")]
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, dispatcher.outbox._fd)
    os.close(full)
    async with Running(dispatcher):
        await wait_for(lambda: len(receiver.deliveries) == 2 and dispatcher.outbox.depth("ops") == 0)
        await asyncio.sleep(0.2)  # nothing is sent again in this run
    assert [d.headers[IDEMPOTENCY_HEADER] for d in receiver.deliveries] == ids
    assert metric(metrics, "arbscan_webhook_outbox_write_failures_total") >= 2
    (outbox_dir / (LOG_NAME + ".tmp")).mkdir()  # compaction cannot write its new log
    restarted = AlertDispatcher.open(outbox_dir, [webhook("ops", receiver.url())], Metrics())
    assert [e.alert_id for e in restarted.outbox.pending("ops")] == ids  # never acknowledged on disk
    async with Running(restarted):
        await wait_for(lambda: len(receiver.deliveries) == 4)
    assert [d.headers[IDEMPOTENCY_HEADER] for d in receiver.deliveries[2:]] == ids


async def test_events_no_webhook_wants_are_not_read_again_at_the_next_start(
    tmp_path: Path, journal: JournalWriter
) -> None:
    """The outbox's mark moved only with alerts, so every start read (and held in memory) every rejection since
    the last one: 924 MB for 50,000 real events (found by review). Now a catch-up and a clean stop mark the
    events seen as handled, durably, and the events are streamed, never listed."""
    hooks = [webhook("ops", "http://127.0.0.1:9/x")]
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    assert dispatcher.catch_up(tmp_path / "journal") == 0  # a first start: the (empty) journal's end
    alert = dispatcher.enqueue(qualified(journal, "c"))
    for n in range(50):
        dispatcher.enqueue(journal.append(EventKind.REJECTED, f"r{n}", {"primary_reason": "fee_dominated"}))
    assert alert and dispatcher.outbox.journal_seq == 1  # rejections write nothing as they come
    dispatcher.close()  # a clean stop marks them
    reopened = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    assert reopened.outbox.journal_seq == 51
    for n in range(20):  # written while the daemon was down (a crash before its stop): read once, then marked
        journal.append(EventKind.REJECTED, f"later{n}", {"primary_reason": "fee_dominated"})
    journal.sync()
    assert reopened.catch_up(tmp_path / "journal") == 0
    assert reopened.outbox.journal_seq == 71 and [e.alert_id for e in reopened.outbox.pending("ops")] == alert
    reopened.outbox.close()
    again = AlertDispatcher.open(tmp_path / "outbox", hooks, Metrics())
    assert again.outbox.journal_seq == 71
    again.outbox.close()


async def test_a_receiver_that_echoes_its_url_does_not_put_the_token_in_the_records(
    tmp_path: Path, receiver: Receiver, journal: JournalWriter
) -> None:
    """A refusal that quotes the request's path and query (Express: "Cannot POST /services/..."): the dead
    letter and the log keep the status and the words, not the parts of the URL that may be a token."""
    receiver.statuses = [400]
    receiver.echo_path = True
    url = receiver.url("services/T0ABCDEF/B0XYZ/q8Zr7YsecretPathToken", "key=abcdefghijklmnop")
    dispatcher = AlertDispatcher.open(tmp_path / "outbox", [webhook("ops", url)], Metrics())
    async with Running(dispatcher):
        dispatcher.enqueue(qualified(journal, "c"))
        await wait_for((tmp_path / "outbox" / "dead.jsonl").exists)
    [dead] = [orjson.loads(line) for line in (tmp_path / "outbox" / "dead.jsonl").read_bytes().splitlines()]
    assert dead["reason"] == "HTTP 400: Cannot POST <hidden>?<hidden>"
    records = (tmp_path / "outbox" / "dead.jsonl").read_text() + (tmp_path / "outbox" / LOG_NAME).read_text()
    assert "q8Zr7YsecretPathToken" not in records and "abcdefghijklmnop" not in records
