"""The durable alert outbox: an append-only, fsynced log of what must be delivered and what was.

One file, ``<dir>/outbox.log``, one JSON object per line, each written by a single ``write(2)`` and
fsynced before the call returns:

``{"op":"enq","seq":17,"at_ms":…,"event":{…journal record…},"deliver":["ops","slack"],"skip":{"x":"cooldown"}}``
    a journal event handed to the alerts: one line for all webhooks, so a crash either records the
    event for every webhook or for none (and the journal catch-up re-enqueues it).
``{"op":"ack","id":"<event id>.<webhook>","status":204,"attempts":2,"at_ms":…}``
    written only after the receiver answered 2xx.
``{"op":"mark","seq":…}``
    journal events up to ``seq`` need no catch-up (none wanted an alert; written after a catch-up and at a
    clean stop, so that a start does not read a long run of rejections again).
``{"op":"dead","id":…,"status":400,"reason":"…","attempts":1,"at_ms":…}``
    the receiver refused the alert for good (a 4xx that retrying cannot fix); also in ``dead.jsonl``.
``{"op":"state","seq":…,"cool":[[webhook,event,dedup_key,ms],…],"sent":[[alert id,ms],…],"held":[…]}``
    written by compaction: the journal high-water mark, the cooldown memory, the alert ids already
    enqueued (an event re-derived after a restart with the same id is not alerted twice) and those the
    cooldown held back (the close of an episode a webhook was not told of is held back too).

On open the log is replayed (a torn last line is moved aside exactly as in the journal) to rebuild the
pending alerts per webhook in enqueue order, the cooldown memory, ``journal_seq`` (the last journal seq
handed over) and the alert ids ever enqueued, then compacted. Compaction rewrites the log with only what
is still needed (tmp file, fsync, atomic rename, directory fsync).

**Exactly once across restarts.** The engine re-derives the same events after a restart with the same
stable ids; every alert id enqueued (pending, delivered or dead) is remembered durably, and
:meth:`Outbox.record_event` never enqueues a remembered id again. The memory is bounded: ids enqueued in
the last ``remember_ms`` (8 days: longer than any cooldown) and at most ``remember_ids`` of them, the
newest kept; ids of pending alerts are always kept. Nothing here touches the network:
:mod:`scanner.alerts` decides and delivers.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from scanner.errors import AlertError
from scanner.journal import JournalProblem, encode_record, fsync_dir, now_ms, repair_tail

log = structlog.get_logger("scanner.outbox")

LOG_NAME = "outbox.log"
DEAD_NAME = "dead.jsonl"
_COMPACT_BYTES = 1 << 20  # compact once the log is this big and mostly settled
_COOL_MEMORY_MS = 8 * 86_400_000  # longer than the largest cooldown a config may set (7 days)
REMEMBER_MS = _COOL_MEMORY_MS  # alert ids enqueued this recently are never enqueued again
REMEMBER_IDS = 50_000  # ... and at most this many of them (about 3 MB of state line), the newest kept


def alert_id(event_id: str, webhook: str) -> str:
    """The idempotency key of one event's alert to one webhook (stable across restarts)."""
    return f"{event_id}.{webhook}"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One undelivered alert."""

    alert_id: str
    webhook: str
    seq: int
    event: dict[str, Any]  # the journal record of the event
    enqueued_ms: int  # wall clock at enqueue (persisted)
    enqueued_mono_ns: int  # the same instant on this process's monotonic clock, for ages


class Outbox:
    """Pending alerts per webhook, persisted in an append-only log. Build it with :meth:`open`."""

    def __init__(self, directory: Path, *, remember_ms: int = REMEMBER_MS, remember_ids: int = REMEMBER_IDS) -> None:
        if remember_ms < 0 or remember_ids < 0:
            raise AlertError(f"outbox {directory}: remember_ms={remember_ms}, remember_ids={remember_ids}: need >= 0")
        self.directory = directory
        self.remember_ms = remember_ms
        self.remember_ids = remember_ids
        self.path = directory / LOG_NAME
        self.repairs: list[JournalProblem] = []
        self._pending: dict[str, OrderedDict[str, OutboxEntry]] = {}
        self._attempts: dict[str, int] = {}
        self._cool: dict[tuple[str, str, str], int] = {}
        self._sent: dict[str, int] = {}  # alert id -> enqueue wall ms, kept as long as the cooldown memory
        self._held: dict[str, int] = {}  # alert id the cooldown held back -> wall ms, kept as long as _sent
        self._seq = 0
        self._settled = 0  # ack/dead lines since the last compaction
        self._fd = -1
        self._size = 0
        self._compacted_size = 0  # what the last compaction wrote: the floor of the next trigger
        self.fresh = True  # no log existed: a first start

    @classmethod
    def open(
        cls, directory: str | os.PathLike[str], *, remember_ms: int = REMEMBER_MS, remember_ids: int = REMEMBER_IDS
    ) -> Outbox:
        outbox = cls(Path(directory), remember_ms=remember_ms, remember_ids=remember_ids)
        try:
            outbox.directory.mkdir(parents=True, exist_ok=True)
            if outbox.path.exists():
                outbox.fresh = False
                repair = repair_tail(outbox.path, _is_whole)
                if repair is not None:
                    outbox.repairs.append(repair)
                    log.warning("outbox_repaired", problem=str(repair))
                outbox._replay()
            outbox._fd = os.open(outbox.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            outbox._size = os.fstat(outbox._fd).st_size
        except OSError as exc:
            raise AlertError(f"outbox {outbox.path}: cannot open: {exc.strerror or exc}") from exc
        if outbox._size:
            try:
                outbox.compact()  # drops settled alerts and forgets ids and cooldowns past their memory
            except AlertError as exc:  # the replayed log is whole: a full disk must not stop the start
                log.warning("outbox_compaction_deferred", problem=str(exc))
        return outbox

    # ---- queries ----

    @property
    def journal_seq(self) -> int:
        """The highest journal seq handed to the outbox (events up to it need no catch-up)."""
        return self._seq

    def pending(self, webhook: str) -> list[OutboxEntry]:
        return list(self._pending.get(webhook, {}).values())

    def head(self, webhook: str) -> OutboxEntry | None:
        queue = self._pending.get(webhook)
        return next(iter(queue.values())) if queue else None

    def webhooks(self) -> list[str]:
        """Webhooks that have pending alerts."""
        return [name for name, queue in self._pending.items() if queue]

    def depth(self, webhook: str) -> int:
        return len(self._pending.get(webhook, ()))

    def oldest_age_s(self, webhook: str) -> float:
        head = self.head(webhook)
        return 0.0 if head is None else max(0.0, (time.monotonic_ns() - head.enqueued_mono_ns) / 1e9)

    def attempts(self, alert: str) -> int:
        return self._attempts.get(alert, 0)

    def last_alert_ms(self, webhook: str, event: str, dedup_key: str) -> int | None:
        """Event time of the last alert enqueued for (webhook, event, dedup key): the cooldown memory."""
        return self._cool.get((webhook, event, dedup_key))

    def known(self, alert: str) -> bool:
        """True if this alert id was enqueued before (pending, delivered or dead)."""
        return alert in self._sent

    def held_back(self, alert: str) -> bool:
        """True if the cooldown held this alert id back (recorded with reason ``cooldown``)."""
        return alert in self._held

    # ---- changes (each durable when it returns) ----

    def record_event(self, record: dict[str, Any], *, deliver: list[str], skip: dict[str, str]) -> list[OutboxEntry]:
        """Record a journal event for delivery to ``deliver`` (and why the others were skipped).

        A webhook whose alert id for this event is remembered (:meth:`known`) is skipped as a duplicate:
        whatever the caller decided, the same alert is never enqueued twice.
        """
        repeated = [webhook for webhook in deliver if self.known(alert_id(record["id"], webhook))]
        if repeated:
            deliver = [webhook for webhook in deliver if webhook not in repeated]
            skip = dict(skip, **dict.fromkeys(repeated, "duplicate"))
        at = now_ms()
        line = {"op": "enq", "seq": record["seq"], "at_ms": at, "event": record, "deliver": deliver, "skip": skip}
        self._append(line)
        return self._apply_enq(line, time.monotonic_ns())

    def mark(self, seq: int) -> None:
        """Journal events up to ``seq`` are handled (none of them wanted an alert that is not recorded, or a first
        start on an old journal: history is not alerted): a cheap line, so that the next start's catch-up does
        not read them again."""
        if seq > self._seq:
            self._append({"op": "mark", "seq": seq})
            self._seq = seq

    def ack(self, alert: str, *, status: int, attempts: int) -> None:
        """Record a delivery. If the disk refuses the line, the alert is settled in memory all the same (it was
        delivered: not again in this run) and AlertError says so; a restart sends it once more, under the
        same idempotency key."""
        try:
            self._append({"op": "ack", "id": alert, "status": status, "attempts": attempts, "at_ms": now_ms()})
        finally:
            self._settle(alert)

    def dead(self, alert: str, *, status: int | None, reason: str, attempts: int) -> None:
        """Give up on an alert the receiver refused for good; it is kept in ``dead.jsonl``. Settled in memory even
        if the disk refuses the lines (AlertError then says so): retrying a refusal cannot help; a restart tries
        it once more."""
        entry = self._find(alert)
        line = {"op": "dead", "id": alert, "status": status, "reason": reason, "attempts": attempts, "at_ms": now_ms()}
        dead_line = dict(line, webhook=entry.webhook if entry else None, event=entry.event if entry else None)
        try:
            try:
                with (self.directory / DEAD_NAME).open("ab") as f:
                    f.write(encode_record(dead_line))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise AlertError(f"outbox {self.directory / DEAD_NAME}: write failed: {exc.strerror}") from exc
            self._append(line)
        finally:
            self._settle(alert)

    def note_attempt(self, alert: str) -> int:
        """Count a failed attempt (in memory: after a restart the count starts again, the alert stays)."""
        self._attempts[alert] = self._attempts.get(alert, 0) + 1
        return self._attempts[alert]

    def maybe_compact(self) -> None:
        # Twice what the last compaction kept: a large id memory alone never makes every ack compact.
        if self._size >= max(_COMPACT_BYTES, 2 * self._compacted_size) and self._settled > 0:
            self.compact()

    def compact(self) -> None:
        """Rewrite the log with only the pending alerts, the cooldown and id memory and the high-water mark."""
        now = now_ms()
        self._forget_ids(now - self.remember_ms)
        lines = [encode_record({"op": "state", "seq": self._seq, **self._memory(horizon=now - _COOL_MEMORY_MS)})]
        by_event: OrderedDict[str, tuple[OutboxEntry, list[str]]] = OrderedDict()
        for queue in self._pending.values():
            for entry in queue.values():
                key = entry.event["id"]
                by_event.setdefault(key, (entry, []))[1].append(entry.webhook)
        for entry, webhooks in sorted(by_event.values(), key=lambda item: item[0].seq):
            line = {"op": "enq", "seq": entry.seq, "at_ms": entry.enqueued_ms, "event": entry.event}
            lines.append(encode_record(dict(line, deliver=webhooks, skip={})))
        tmp = self.path.with_name(LOG_NAME + ".tmp")
        try:
            with tmp.open("wb") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.directory)
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise AlertError(f"outbox {self.path}: compaction failed: {exc.strerror or exc}") from exc
        before, self._size, self._settled = self._size, sum(len(line) for line in lines), 0
        self._compacted_size = self._size
        log.info("outbox_compacted", bytes_before=before, bytes_after=self._size, pending=len(by_event))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ---- internals ----

    def _append(self, line: dict[str, Any]) -> None:
        data = encode_record(line)
        if self._fd < 0:
            raise AlertError(f"outbox {self.path}: closed")
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, f"short write ({written} of {len(data)} bytes)")
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)  # keep the log ending on a whole line
            except OSError:
                log.error("outbox_truncate_failed", file=str(self.path))
            raise AlertError(f"outbox {self.path}: write failed: {exc.strerror or exc}") from exc
        self._size += written

    def _apply_enq(self, line: dict[str, Any], mono_now: int) -> list[OutboxEntry]:
        record, seq, at = line["event"], int(line["seq"]), int(line["at_ms"])
        self._seq = max(self._seq, seq)
        # Ages survive a restart through the wall clock, then run on this process's monotonic clock.
        mono = mono_now - max(0, now_ms() - at) * 1_000_000
        entries = []
        for webhook in line["deliver"]:
            entry = OutboxEntry(alert_id(record["id"], webhook), webhook, seq, record, at, mono)
            self._pending.setdefault(webhook, OrderedDict())[entry.alert_id] = entry
            key = (webhook, record["event"], record["dedup_key"])
            # max: compaction replays old pending alerts after the newer cooldown memory.
            self._cool[key] = max(self._cool.get(key, 0), int(record["local_ts_ms"]))
            self._sent.setdefault(entry.alert_id, at)
            entries.append(entry)
        for webhook, reason in line.get("skip", {}).items():
            if reason == "cooldown":
                self._held[alert_id(record["id"], webhook)] = at
        return entries

    def _memory(self, horizon: int) -> dict[str, Any]:
        """Cooldown memory newer than ``horizon`` (wall ms) and the remembered alert ids, for a state line."""
        return {
            "cool": [[w, e, k, ms] for (w, e, k), ms in self._cool.items() if ms >= horizon],
            "sent": [[alert, ms] for alert, ms in self._sent.items()],
            "held": [[alert, ms] for alert, ms in self._held.items()],
        }

    def _forget_ids(self, horizon: int) -> None:
        """Keep the ids enqueued at or after ``horizon`` (wall ms), at most ``remember_ids``, and every pending one."""
        pending = {alert for queue in self._pending.values() for alert in queue}
        recent = sorted(
            ((ms, alert) for alert, ms in self._sent.items() if ms >= horizon and alert not in pending),
            key=lambda item: item[0],  # stable: ids of one millisecond stay in enqueue order
        )
        kept = recent[max(0, len(recent) - self.remember_ids) :]
        before = len(self._sent)
        self._sent = {alert: ms for alert, ms in self._sent.items() if alert in pending} | {a: ms for ms, a in kept}
        forgotten = before - len(self._sent)
        held = sorted(((ms, alert) for alert, ms in self._held.items() if ms >= horizon), key=lambda item: item[0])
        self._held = {alert: ms for ms, alert in held[max(0, len(held) - self.remember_ids) :]}
        if forgotten > 0:
            log.info("outbox_ids_forgotten", forgotten=forgotten, remembered=len(self._sent))

    def _settle(self, alert: str) -> None:
        for queue in self._pending.values():
            if queue.pop(alert, None) is not None:
                break
        self._attempts.pop(alert, None)
        self._settled += 1

    def _find(self, alert: str) -> OutboxEntry | None:
        for queue in self._pending.values():
            if alert in queue:
                return queue[alert]
        return None

    def _replay(self) -> None:
        mono_now = time.monotonic_ns()
        with self.path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = orjson.loads(raw)
                    op = line["op"]
                    if op == "enq":
                        self._apply_enq(line, mono_now)
                    elif op in ("ack", "dead"):
                        self._settle(line["id"])
                    elif op == "mark":
                        self._seq = max(self._seq, int(line["seq"]))
                    elif op == "state":
                        self._seq = max(self._seq, int(line["seq"]))
                        for webhook, event, key, ms in line["cool"]:
                            self._cool[(webhook, event, key)] = int(ms)
                        for alert, ms in line.get("sent", ()):
                            self._sent[alert] = int(ms)
                        for alert, ms in line.get("held", ()):
                            self._held[alert] = int(ms)
                    else:
                        raise ValueError(f"unknown op {op!r}")
                except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                    # Only a disk fault gets here (every line is written whole): say where, keep going.
                    problem = JournalProblem(self.path, number, "corrupt", f"{type(exc).__name__}: {exc}")
                    self.repairs.append(problem)
                    log.error("outbox_line_unreadable", problem=str(problem))


def _is_whole(fragment: bytes) -> bool:
    try:
        line = orjson.loads(fragment)
    except orjson.JSONDecodeError:
        return False
    return isinstance(line, dict) and "op" in line
