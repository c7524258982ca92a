"""Alert webhooks: decide which journal events become alerts, and deliver them from the durable outbox.

::

    engine ─► journal.append(...) ─► JournalEvent ─► AlertDispatcher.enqueue(event)
                                                        │ per webhook: `on` filter, cooldown per (event, dedup key)
                                                        ▼
                                                  Outbox (fsynced before enqueue returns)
                                                        │ one worker per webhook, FIFO, owned by run()
                                                        ▼
                           rate limit (per rolling minute) ─► POST ─► 2xx: ack recorded (fsynced)
                                                                   └► else: jittered capped backoff, retry

Exactly once, as far as the sender controls it: an alert leaves the outbox only when its ack is on disk,
and its ack is written only after a 2xx. The one window left (a crash between the receiver's 2xx and
our fsync of the ack) re-sends the alert with the same ``idempotency_key``, so receivers can drop it.
``AlertDispatcher.catch_up`` re-enqueues journal events written after the outbox's last record (a crash
between ``journal.append`` and ``enqueue``).

While the outbox's own disk refuses writes, the events that want an alert wait in memory, in order (no
later one may pass them: the outbox's high-water mark is a journal seq). Past ``max_unrecorded`` of them
the memory is let go: they are all in the journal already, so they are re-read from it, once the outbox
writes again, instead of being held (a counted ``spill``, never a loss).

Bodies: ``generic`` (our JSON, below), ``slack`` (``{"text"}``), ``discord`` (``{"content", "embeds"}``),
``telegram`` (Bot API ``sendMessage``). When the webhook has a key, every request carries
``X-Arbscan-Timestamp: <unix seconds>`` and ``X-Arbscan-Signature: sha256=<hex HMAC-SHA256(key,
timestamp + "." + body)>``; every request carries ``Idempotency-Key``.

Secrets: URLs and keys live in :class:`~scanner.config.Secret` objects and are registered with the log
redactor; failures are described by exception class and status, never by ``str(exc)`` (aiohttp quotes URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import random
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from scanner import __version__
from scanner.candidate_state import EventKind as CandidateEventKind
from scanner.candidate_state import event_id
from scanner.config import ResolvedWebhook, WebhookConfig, WebhookFormat, resolve_webhook
from scanner.errors import AlertError
from scanner.journal import EventKind, JournalEvent, JournalReader, encode_record
from scanner.metrics import Metrics
from scanner.outbox import Outbox, OutboxEntry, alert_id

log = structlog.get_logger("scanner.alerts")

SIGNATURE_HEADER = "X-Arbscan-Signature"
TIMESTAMP_HEADER = "X-Arbscan-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class BacklogLimits:
    """How events wait while the outbox cannot write (module docstring)."""

    max_unrecorded: int = 10_000  # held in memory; past it they are let go, to be re-read from the journal
    reread_chunk: int = 200  # alert events recorded from the journal per call once the outbox writes again
    reread_retry_s: float = 5.0  # after a failed re-read, the next one waits this long

    def __post_init__(self) -> None:
        if self.max_unrecorded < 1 or self.reread_chunk < 1 or self.reread_retry_s < 0:
            raise ValueError(f"bad alert backlog limits: {self}")


# 4xx answers that say "this body will never be accepted": retrying the same bytes cannot help.
# Other 4xx (401, 403, 404, 410...) mean a misconfigured endpoint: kept and retried until fixed (SIGHUP).
_REFUSED = frozenset({400, 413, 415, 422})
_RETRY_AFTER_CAP_S = 3600.0
_MAX_TEXT = 1900  # Discord caps content at 2000 characters; Slack and Telegram allow more


# ---------------------------------------------------------------------------------------------------------
# Bodies and signatures (pure)
# ---------------------------------------------------------------------------------------------------------


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp + "." + body``."""
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(key: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (constant-time comparison)."""
    return hmac.compare_digest(sign(key, timestamp, body), signature)


def summary(record: dict[str, Any]) -> str:
    """One human line about a journal event, from the decision's fields where present."""
    decision = record.get("decision")
    d: dict[str, Any] = decision if isinstance(decision, dict) else {}
    event = str(record.get("event", "?"))
    parts = [f"arbscan {event.upper()}", str(d.get("strategy", "")), str(d.get("candidate_id", record["dedup_key"]))]
    text = " ".join(p for p in parts if p)
    net, size = d.get("net_bps"), d.get("size_usd")
    if isinstance(net, int | float) and math.isfinite(net):
        text += f": net {net:+.2f} bps"
        if isinstance(size, int | float) and math.isfinite(size):
            text += f" on {size:,.0f} USD"
    if event == EventKind.DISQUALIFIED and d.get("primary_reason"):
        text += f" (now {d['primary_reason']})"
    if d.get("funding_source") == "assumed":
        text += " [funding assumed, not live]"
    return text


def render(fmt: WebhookFormat, entry: OutboxEntry, *, telegram_chat_id: str | None = None) -> bytes:
    """The request body of ``entry`` in the webhook's format (deterministic)."""
    record = entry.event
    line = summary(record)
    if fmt is WebhookFormat.GENERIC:
        body: dict[str, Any] = {
            "idempotency_key": entry.alert_id,
            "event": record["event"],
            "event_id": record["id"],
            "seq": record["seq"],
            "dedup_key": record["dedup_key"],
            "local_ts_ms": record["local_ts_ms"],
            "venue_ts_ms": record["venue_ts_ms"],
            "enqueued_ms": entry.enqueued_ms,
            "summary": line,
            "context": record.get("context", {}),
            "decision": record["decision"],
        }
    elif fmt is WebhookFormat.SLACK:
        body = {"text": f"{line}\nidempotency key: `{entry.alert_id}`"}
    elif fmt is WebhookFormat.DISCORD:
        body = {
            "content": line[:_MAX_TEXT],
            "embeds": [{"footer": {"text": f"idempotency key: {entry.alert_id}"}}],
            "allowed_mentions": {"parse": []},  # a symbol that looks like @everyone pings nobody
        }
    else:
        body = {
            "chat_id": telegram_chat_id,
            "text": f"{line}\nidempotency key: {entry.alert_id}",
            "disable_web_page_preview": True,
        }
    return orjson.dumps(body)


def request_headers(webhook: ResolvedWebhook, entry: OutboxEntry, body: bytes, timestamp: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"arbscan/{__version__}",
        IDEMPOTENCY_HEADER: entry.alert_id,
    }
    if webhook.secret is not None:
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(webhook.secret.reveal().encode(), timestamp, body)
    return headers


# ---------------------------------------------------------------------------------------------------------
# Pacing
# ---------------------------------------------------------------------------------------------------------


class RollingLimit:
    """At most ``per_minute`` sends in any 60 s window (monotonic clock)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: deque[int] = deque()

    def delay_s(self, now_ns: int) -> float:
        while self._sent and now_ns - self._sent[0] >= 60_000_000_000:
            self._sent.popleft()
        if len(self._sent) < self.per_minute:
            return 0.0
        return (self._sent[0] + 60_000_000_000 - now_ns) / 1e9

    def record(self, now_ns: int) -> None:
        self._sent.append(now_ns)


class Backoff:
    """Doubling delays from ``initial_s``, capped at ``max_s``, each drawn in [d/2, d] (jitter)."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self.initial_s, self.max_s, self.rng = initial_s, max_s, rng
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(self.failures, 60))
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


# ---------------------------------------------------------------------------------------------------------
# The dispatcher
# ---------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Lane:
    """A webhook's delivery state; its worker reads ``webhook`` afresh for every attempt (reload swaps it)."""

    webhook: ResolvedWebhook
    limit: RollingLimit
    backoff: Backoff
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    not_before_ns: int = 0
    # A webhook removed by a reload keeps its lane (idle): if it comes back, the same single worker
    # resumes, so two workers can never send the same head alert.
    active: bool = True


class AlertDispatcher:
    """Turns journal events into durable alerts and delivers them. See the module docstring.

    Lifecycle: ``open()`` (sync; reads the outbox), ``catch_up()`` once, ``run()`` as an owned task,
    ``enqueue()`` from the engine, ``stop()`` + await ``run()`` for a graceful end, ``close()``.
    """

    def __init__(
        self,
        outbox: Outbox,
        webhooks: Sequence[WebhookConfig],
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
        limits: BacklogLimits = BacklogLimits(),
    ) -> None:
        self.outbox = outbox
        self.limits = limits
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._lanes: dict[str, _Lane] = {}
        self._stopping = False
        self._stop = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None
        # Events whose enqueue failed (the outbox could not write), oldest first. No later event is recorded
        # before them: the outbox's high-water mark (where catch_up resumes after a restart) must never
        # pass an event that is only in the journal.
        self._unrecorded: deque[JournalEvent] = deque()
        # Past max_unrecorded, the events through this seq are not held but re-read from the journal (0: none).
        self._reread_through = 0
        self._journal_dir: str | PathLike[str] | None = None  # known from catch_up(): where to re-read
        self._spilled = 0  # alert events let go and not yet re-read (for the backlog gauge)
        self._reread_not_before = 0  # monotonic ns: a failed re-read is not tried again before it
        # The journal reader of a re-read in progress (kept between chunks), the event read past a chunk's end,
        # and how many of the reader's problems were logged already.
        self._rereading: tuple[JournalReader, Generator[JournalEvent, None, None]] | None = None
        self._reread_next: JournalEvent | None = None
        self._reread_problems = 0
        self._retry_failing = False  # retry() logs a refusal once per streak
        self.spills = 0  # times the held events were let go, to be re-read from the journal
        self.lost = 0  # events dropped because there was no journal to re-read them from (no catch_up yet)
        self._seen_seq = 0  # the highest journal seq handed over (wanted or not): Outbox.mark
        self.reconfigure(webhooks)
        for name in outbox.webhooks():
            self._export_gauges(name)
            if name not in self._lanes:
                log.warning("outbox_webhook_not_configured", webhook=name, pending=outbox.depth(name))

    @classmethod
    def open(
        cls,
        directory: str | PathLike[str],
        webhooks: Sequence[WebhookConfig],
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
        limits: BacklogLimits = BacklogLimits(),
    ) -> AlertDispatcher:
        outbox = Outbox.open(directory)
        with contextlib.ExitStack() as on_failure:
            on_failure.callback(outbox.close)  # a bad webhook config must not leak the outbox's descriptor
            dispatcher = cls(outbox, webhooks, metrics, rng=rng, limits=limits)
            on_failure.pop_all()
        return dispatcher

    # ---- configuration ----

    def reconfigure(self, webhooks: Sequence[WebhookConfig]) -> None:
        """Apply a (re)loaded ``[[webhooks]]`` list; pending alerts of a removed webhook stay in the outbox.

        Raises ConfigError (and changes nothing) if a URL or key can no longer be read.
        """
        self.apply(self.resolve(webhooks))

    @staticmethod
    def resolve(webhooks: Sequence[WebhookConfig]) -> dict[str, ResolvedWebhook]:
        """Read every URL and key (ConfigError if one can no longer be read); changes nothing."""
        return {w.name: resolve_webhook(w) for w in webhooks}

    def apply(self, resolved: Mapping[str, ResolvedWebhook]) -> None:
        """Apply webhooks read by :meth:`resolve` (cannot fail on configuration)."""
        for name, lane in self._lanes.items():
            if name not in resolved and lane.active:
                lane.active = False
                lane.wake.set()
                log.info("webhook_removed", webhook=name, pending=self.outbox.depth(name))
        for name, webhook in resolved.items():
            cfg = webhook.config
            existing = self._lanes.get(name)
            if existing is not None:
                existing.active = True
                existing.webhook = webhook
                existing.limit.per_minute = cfg.rate_limit_per_min
                existing.backoff.initial_s, existing.backoff.max_s = cfg.retry_initial_s, cfg.retry_max_s
                existing.wake.set()
                continue
            backoff = Backoff(cfg.retry_initial_s, cfg.retry_max_s, self._rng)
            lane = self._lanes[name] = _Lane(webhook, RollingLimit(cfg.rate_limit_per_min), backoff)
            self._export_gauges(name)
            if self._tg is not None and self._session is not None:
                self._tg.create_task(self._worker(lane, self._session), name=f"webhook:{name}")

    @property
    def webhooks(self) -> list[str]:
        """The configured (active) webhooks."""
        return [name for name, lane in self._lanes.items() if lane.active]

    # ---- events in ----

    def enqueue(self, event: JournalEvent) -> list[str]:
        """Make ``event`` an alert for every webhook that wants it; durable on return. Returns the alert ids.

        Idempotent: an event whose seq the outbox has already seen is ignored, and an event id already
        alerted to a webhook (an event the engine re-derived after a restart) is not alerted again.
        Suppressions are counted in ``arbscan_webhook_suppressed{reason="cooldown"|"duplicate"}``.

        Raises AlertError if the outbox cannot write. The event is then kept and recorded first by the next
        call (whose returned ids include its alerts); until it is, no later event is recorded either, so the
        outbox's high-water mark stays below it and a restart's :meth:`catch_up` re-reads it from the journal.
        An event no webhook wants is not kept (recording it writes nothing), nor a reason to retry.
        Past :attr:`BacklogLimits.max_unrecorded` kept events, they are let go and re-read from the journal,
        in chunks, by the calls (this one, :meth:`retry`) once the outbox writes again; meanwhile a new event
        waits its turn behind them without an error.
        """
        last = self._unrecorded[-1].seq if self._unrecorded else self._reread_through
        if event.seq <= self.outbox.journal_seq or event.seq <= last:
            return []
        self._seen_seq = max(self._seen_seq, event.seq)
        if not self._wanted(event):
            return []  # recording it would write nothing (the held events are retried by retry(), on a timer)
        self._unrecorded.append(event)
        return self._flush()

    def retry(self) -> list[str]:
        """Record the held events if the outbox writes again (the daemon's timer: a quiet market may bring
        no new event for hours). Returns the alert ids recorded; a refusal is logged once per streak."""
        if not self.backlog:
            return []
        try:
            return self._flush()
        except AlertError as exc:
            if not self._retry_failing:
                self._retry_failing = True
                log.error("alert_backlog_retry_failed", held=self.backlog, error=str(exc))
            return []

    @property
    def held(self) -> int:
        """Events held in memory (at most :attr:`BacklogLimits.max_unrecorded` after a failed write)."""
        return len(self._unrecorded)

    @property
    def backlog(self) -> int:
        """Events waiting for the outbox: held in memory, and let go to be re-read from the journal (at least
        one while a re-read is due: a reload may have changed which events are wanted since they were let go)."""
        return len(self._unrecorded) + (max(self._spilled, 1) if self._reread_through else 0)

    def _flush(self) -> list[str]:
        ids: list[str] = []
        try:
            if self._reread_through:
                ids += self._reread()
                if self._reread_through:
                    return ids  # re-read in chunks (or waiting after a failure): later events wait their turn
            while self._unrecorded:
                ids += self._record(self._unrecorded[0])  # AlertError: it stays, and so does every later one
                self._unrecorded.popleft()
            self._retry_failing = False
        except AlertError:
            if len(self._unrecorded) > self.limits.max_unrecorded:
                self._let_go()
            raise
        finally:
            self.metrics.webhook_unrecorded.set(self.backlog)
        return ids

    def _let_go(self) -> None:
        """Past the limit: re-read the held events from the journal later, or (no journal known) lose the oldest."""
        if self._journal_dir is not None:
            self._stop_rereading()  # a reader made before may not list the journal file the new ones are in
            self._reread_through = self._unrecorded[-1].seq
            self._spilled += len(self._unrecorded)
            self._unrecorded.clear()
            self.spills += 1
            self.metrics.webhook_backlog_spills.inc()
            log.warning("alert_backlog_spilled", through_seq=self._reread_through, reread_from="journal")
        else:  # catch_up was never called (embedded use): nothing to re-read from
            dropped = self._unrecorded.popleft()
            self.lost += 1
            self.metrics.webhook_events_lost.inc()
            log.error("alert_event_lost", seq=dropped.seq, kind=dropped.kind.value, reason="backlog_full")

    def _wanting(self, kind: str) -> list[_Lane]:
        """The active webhooks whose ``on`` list takes events of ``kind``."""
        return [lane for lane in self._lanes.values() if lane.active and kind in lane.webhook.config.on]

    def _wanted(self, event: JournalEvent) -> bool:
        return bool(self._wanting(event.kind.value))

    def _reread(self) -> list[str]:
        """Record the next let-go events from the journal, from the outbox's high-water mark: at most
        :attr:`BacklogLimits.reread_chunk` wanted ones per call (each is an fsync; a recovery must not stall
        the loop). The journal is read on from where the last chunk stopped (its reader is kept between
        calls); after a failure it is read again from the high-water mark, not before
        :attr:`BacklogLimits.reread_retry_s`."""
        assert self._journal_dir is not None
        now = time.monotonic_ns()
        if now < self._reread_not_before:
            return []
        if self._rereading is None:
            reader = JournalReader(self._journal_dir)
            self._rereading = (reader, reader.events(after_seq=self.outbox.journal_seq))
        reader, events = self._rereading
        ids: list[str] = []
        recorded = 0
        try:
            while True:
                event = self._reread_next or next(events, None)
                self._reread_next = None
                if event is None or event.seq > self._reread_through:
                    break
                wanted = self._wanted(event)
                if wanted and recorded == self.limits.reread_chunk:
                    self._reread_next = event  # the first of the next call
                    return ids
                ids += self._record(event)
                if wanted:
                    recorded += 1
                    self._spilled = max(0, self._spilled - 1)
        except AlertError:
            self._reread_not_before = now + int(self.limits.reread_retry_s * 1e9)
            self._stop_rereading()
            raise
        finally:
            for problem in reader.problems[self._reread_problems :]:
                log.warning("journal_problem", problem=str(problem))
            self._reread_problems = len(reader.problems)
        self._stop_rereading()
        self._reread_through = self._spilled = 0
        log.info("alert_backlog_reread", through_seq=self.outbox.journal_seq)
        return ids

    def _stop_rereading(self) -> None:
        if self._rereading is not None:
            self._rereading[1].close()  # the generator closes the journal file it had open
        self._rereading, self._reread_next, self._reread_problems = None, None, 0

    def _record(self, event: JournalEvent) -> list[str]:
        if event.seq <= self.outbox.journal_seq:
            return []
        kind = event.kind.value
        wanting = self._wanting(kind)
        if not wanting:
            return []
        deliver: list[str] = []
        skip: dict[str, str] = {}
        opened_by = _opening_event_id(event)
        for lane in wanting:
            name = lane.webhook.name
            last = self.outbox.last_alert_ms(name, kind, event.dedup_key)
            if self.outbox.known(alert_id(event.event_id, name)):
                # The engine re-derived an event it had emitted before a restart (same stable id).
                skip[name] = "duplicate"
            elif opened_by is not None and self.outbox.known(alert_id(opened_by, name)):
                # The close of an episode this webhook was told of: never held back by the cooldown, or the
                # receiver would keep the episode open (its previous close may be within the cooldown).
                deliver.append(name)
            elif opened_by is not None and self.outbox.held_back(alert_id(opened_by, name)):
                skip[name] = "cooldown"  # its qualified was held back from this webhook: so is its close
            # Event timestamps, not an age: the cooldown must hold across restarts and in a replay.
            elif last is not None and event.local_ts_ms - last < lane.webhook.config.cooldown_s * 1000:
                skip[name] = "cooldown"
            else:
                deliver.append(name)
        # The stored record is the decoded JSON line, so what is sent is what the journal says.
        record = orjson.loads(encode_record(event.to_record()))
        entries = self.outbox.record_event(record, deliver=deliver, skip=skip)
        for name, reason in skip.items():  # counted once recorded: a failed write is retried, not counted twice
            self.metrics.webhook_suppressed.labels(webhook=name, reason=reason).inc()
        for entry in entries:
            self._lanes[entry.webhook].wake.set()
        if skip:
            log.info("alert_suppressed", kind=kind, dedup_key=event.dedup_key, webhooks=sorted(skip))
        return [entry.alert_id for entry in entries]

    def catch_up(self, journal_dir: str | PathLike[str]) -> int:
        """Enqueue journal events newer than the outbox's last record; returns how many became alerts.

        A new outbox (first start) starts at the journal's end instead: history is not re-alerted.
        """
        self._journal_dir = journal_dir
        reader = JournalReader(journal_dir)
        # Streamed, never listed: the run since the last alert may be a long one of rejections.
        events = reader.events(after_seq=self.outbox.journal_seq)
        if self.outbox.fresh:
            last = 0
            for event in events:
                last = event.seq
            self._report(reader)
            if last:
                self.outbox.mark(last)
            return 0
        alerted = seen = 0
        for event in events:
            seen += 1
            alerted += bool(self.enqueue(event))
        self._report(reader)
        self._mark_handled()
        if alerted:
            log.info("alerts_caught_up", events=seen, alerted=alerted)
        return alerted

    @staticmethod
    def _report(reader: JournalReader) -> None:
        for problem in reader.problems:
            log.warning("journal_problem", problem=str(problem))

    def _mark_handled(self) -> None:
        """Record that the events seen so far need no catch-up (none waits unrecorded): Outbox.mark."""
        if self._unrecorded or self._reread_through or self._seen_seq <= self.outbox.journal_seq:
            return
        try:
            self.outbox.mark(self._seen_seq)
        except AlertError as exc:  # only a shortcut for the next start: never worth stopping for
            log.warning("outbox_mark_failed", problem=str(exc))

    # ---- delivery ----

    async def run(self, session: aiohttp.ClientSession | None = None) -> None:
        """Deliver until :meth:`stop` (graceful) or cancellation. Uses ``session`` if given, else owns one."""
        own = session is None
        active = self._session = session or aiohttp.ClientSession()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for name, lane in self._lanes.items():
                    tg.create_task(self._worker(lane, active), name=f"webhook:{name}")
                await self._stop.wait()
        finally:
            self._tg = None
            self._session = None
            if own:
                await active.close()

    def stop(self) -> None:
        """Finish the requests in flight, then let :meth:`run` return."""
        self._stopping = True
        self._stop.set()
        for lane in self._lanes.values():
            lane.wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing configured is pending (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while any(self.outbox.depth(name) for name in self.webhooks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.05, remaining))
        return True

    def close(self) -> None:
        self._stop_rereading()
        self._mark_handled()
        self.outbox.close()

    async def _worker(self, lane: _Lane, session: aiohttp.ClientSession) -> None:
        while not self._stopping:
            entry = self.outbox.head(lane.webhook.name) if lane.active else None
            if entry is None:
                await _wait(lane.wake, None)
                continue
            now = time.monotonic_ns()
            if now < lane.not_before_ns:
                await _wait(lane.wake, (lane.not_before_ns - now) / 1e9)
                continue
            delay = lane.limit.delay_s(now)
            if delay > 0:
                lane.not_before_ns = now + int(delay * 1e9)
                continue
            lane.limit.record(now)
            await self._attempt(lane, entry, session)

    async def _attempt(self, lane: _Lane, entry: OutboxEntry, session: aiohttp.ClientSession) -> None:
        webhook = lane.webhook
        cfg = webhook.config
        body = render(cfg.format, entry, telegram_chat_id=cfg.telegram_chat_id)
        timestamp = str(int(time.time()))  # a header value the receiver checks for freshness, not an age
        headers = request_headers(webhook, entry, body, timestamp)
        status: int | None = None
        retry_after: float | None = None
        failure: str
        try:
            async with session.post(
                webhook.url.reveal(),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s),
                allow_redirects=False,  # a signed body goes where it was configured to go, nowhere else
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    # Acknowledge before any further await: cancellation cannot fall between 2xx and the ack.
                    attempts = self.outbox.attempts(entry.alert_id) + 1
                    self._outbox_write(self.outbox.ack, entry.alert_id, status=status, attempts=attempts)
                    self.metrics.webhook_sent.labels(webhook=cfg.name).inc()
                    lane.backoff.reset()
                    lane.not_before_ns = 0
                    log.info(
                        "alert_delivered", webhook=cfg.name, alert=entry.alert_id, status=status, attempts=attempts
                    )
                    self._outbox_write(self.outbox.maybe_compact)
                    return
                retry_after = _retry_after(response.headers.get("Retry-After"))
                # The start of the answer says why (Slack: "invalid_payload"); the log redactor scrubs it.
                said = (await response.content.read(200)).decode("utf-8", "replace").strip()
                failure = f"HTTP {status}" + (f": {_scrubbed(said, webhook.url.reveal())}" if said else "")
        except TimeoutError:
            failure = f"timeout after {cfg.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            failure = _describe(exc)
        attempts = self.outbox.note_attempt(entry.alert_id)
        self.metrics.webhook_failures.labels(webhook=cfg.name).inc()
        if status is not None and status in _REFUSED:
            self._outbox_write(self.outbox.dead, entry.alert_id, status=status, reason=failure, attempts=attempts)
            log.error("alert_refused", webhook=cfg.name, alert=entry.alert_id, status=status, attempts=attempts)
            return
        delay = lane.backoff.next_delay()
        if retry_after is not None:
            delay = max(delay, retry_after)
        lane.not_before_ns = time.monotonic_ns() + int(delay * 1e9)
        log.warning(
            "alert_delivery_failed",
            webhook=cfg.name,
            alert=entry.alert_id,
            failure=failure,
            attempts=attempts,
            retry_in_s=round(delay, 3),
        )

    def _outbox_write(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """A delivery's record (ack, dead letter, compaction): a disk that refuses it must not stop delivery. The
        outbox settles the alert in memory all the same; a restart may send it once more (same idempotency
        key). Logged and counted; the write is not retried here."""
        try:
            write(*args, **kwargs)
        except AlertError as exc:
            self.metrics.webhook_outbox_write_failures.inc()
            log.error("outbox_write_failed", problem=str(exc), op=getattr(write, "__name__", "write"))

    def _export_gauges(self, name: str) -> None:
        # Computed at scrape time: always current, no refresh task needed.
        self.metrics.outbox_depth.labels(webhook=name).set_function(lambda: self.outbox.depth(name))
        self.metrics.outbox_oldest_age.labels(webhook=name).set_function(lambda: self.outbox.oldest_age_s(name))


def _scrubbed(said: str, url: str) -> str:
    """A receiver's answer without the parts of its URL that may be a token: many echo the path ("Cannot POST
    /services/T0/B0/token"), and the log redactor knows only the whole URL and a few chat hosts."""
    parts = urlsplit(url)
    for secret in (parts.path, parts.query, *parts.path.split("/")):
        if len(secret) >= 8:
            said = said.replace(secret, "<hidden>")
    return said


async def _wait(event: asyncio.Event, timeout_s: float | None) -> None:
    """Until ``event`` is set or ``timeout_s`` passes (None: no timeout)."""
    event.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: our own backoff is close enough
    return min(max(0.0, seconds), _RETRY_AFTER_CAP_S) if math.isfinite(seconds) else None


def _describe(exc: aiohttp.ClientError) -> str:
    """A failure in words that cannot carry the URL (``str(exc)`` of aiohttp errors often does)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: {exc.os_error.strerror or type(exc.os_error).__name__}"
    return type(exc).__name__


def _opening_event_id(event: JournalEvent) -> str | None:
    """For an engine's ``disqualified`` event, the id of the ``qualified`` event of its episode, else None.

    Both carry the episode's start (``context.episode_ms``), and ids are derived from it
    (:func:`scanner.candidate_state.event_id`)."""
    if event.kind is not EventKind.DISQUALIFIED:
        return None
    candidate, episode = event.context.get("candidate_id"), event.context.get("episode_ms")
    if not isinstance(candidate, str) or not isinstance(episode, int):
        return None
    return event_id(candidate, CandidateEventKind.QUALIFIED, episode)
