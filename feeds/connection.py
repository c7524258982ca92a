"""The generic websocket runner: keeps one set of subscriptions streaming, across failures and rollovers.

It knows no venue. Everything venue-shaped comes from the :class:`~feeds.protocol.VenueProtocol`: the URL,
the subscribe frames, the application ping, the documented limits (streams per connection, messages per
second, maximum lifetime, idle timeout). The runner

* opens the connection within the venue's connection budget (attempts per window, shared per venue),
  subscribes (in the URL when the protocol puts subscriptions there, else with subscribe frames paid from
  the per-connection message budget), and pumps every frame through ``protocol.receive`` with its local
  receive time (``time.monotonic_ns()`` taken at receipt);
* performs the connection-level actions itself (:class:`SendText`, :class:`Reconnect`) and hands updates
  and the other actions (snapshots, resubscribes) to its :class:`ConnectionSink` synchronously: nothing
  is awaited while a frame is handled;
* sends websocket pings and the protocol's application ping on their intervals, and treats a connection
  that produced neither a frame nor a pong for ``limits.idle_timeout_s`` as dead;
* reconnects after a failure with jittered capped backoff (:mod:`feeds.backoff`), giving up only on a
  fatal error (a programming error is never retried);
* replaces a connection before the venue's maximum lifetime, or when told to (``serverShutdown``), by
  OVERLAPPING a new connection with the old one: both stream until the sink reports that the new one has
  caught up (:meth:`ConnectionRunner.handover_complete`), or ``overlap_max_s`` passed; only then is the
  old one closed. Books never drop; the duplicates are skipped by the sync rules. Should the replacement
  die during the overlap, the old connection stays and the rollover is retried after a backoff.

Lifecycle: ``await runner.run()`` runs until cancelled (or raises a fatal error); every task it starts
belongs to its TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from feeds.backoff import Backoff, BackoffPolicy, Decision, classify
from feeds.budget import WindowBudget
from feeds.errors import FeedError, LocalProtocolError, MalformedFrame, VenueRejected
from feeds.protocol import Subscription, VenueProtocol
from feeds.updates import Action, Received, Reconnect, SendText

log = structlog.get_logger("feeds.connection")

_conn_ids = itertools.count(1)
_HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerConfig:
    """Connection behaviour that is not a venue fact. Times in seconds."""

    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    ping_interval_s: float | None = 20.0  # our websocket pings (they also count as venue messages)
    ping_timeout_s: float = 20.0  # no pong within this: the connection is dead
    rollover_margin_s: float = 600.0  # replace a connection this long before the venue's max lifetime
    max_lifetime_s: float | None = None  # override the venue's lifetime (a cautious operator, tests)
    overlap_max_s: float = 30.0  # the old connection is closed at the latest this long after the new is up
    max_frame_bytes: int = 16 * 2**20
    compression: bool = False  # market-data venues do not deflate; skipping it saves CPU on every frame
    reserve_messages_per_s: float = 1.0  # leave this much of the venue's message rate for library pongs

    def __post_init__(self) -> None:
        problems = [
            f"{name}={value} must be > 0"
            for name, value in (
                ("open_timeout_s", self.open_timeout_s),
                ("close_timeout_s", self.close_timeout_s),
                ("ping_timeout_s", self.ping_timeout_s),
                ("overlap_max_s", self.overlap_max_s),
                ("max_frame_bytes", self.max_frame_bytes),
            )
            if value <= 0
        ]
        if self.ping_interval_s is not None and self.ping_interval_s <= 0:
            problems.append(f"ping_interval_s={self.ping_interval_s} must be > 0 or None")
        if self.max_lifetime_s is not None and self.max_lifetime_s <= 0:
            problems.append(f"max_lifetime_s={self.max_lifetime_s} must be > 0 or None")
        if self.rollover_margin_s < 0 or self.reserve_messages_per_s < 0:
            problems.append("rollover_margin_s and reserve_messages_per_s must be >= 0")
        if problems:
            raise ValueError("invalid runner config: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """Identity of one websocket connection of a runner (ids are unique in the process)."""

    conn_id: int
    runner: str
    url: str
    replacing: int | None  # the connection this one overlaps and replaces, if any


class ConnectionSink(Protocol):
    """Where a runner delivers what it receives. Every method is called synchronously, in frame order."""

    def on_connection_up(self, runner: ConnectionRunner, conn: ConnInfo) -> None: ...

    def on_received(self, runner: ConnectionRunner, conn: ConnInfo, received: Received) -> None: ...

    def on_malformed(self, runner: ConnectionRunner, conn: ConnInfo, error: MalformedFrame) -> None: ...

    def on_connection_down(self, runner: ConnectionRunner, conn: ConnInfo, reason: str) -> None: ...


#: Called with every raw frame and what it decoded to (None when malformed): the recorder's hook.
FrameTap = Callable[[str | bytes, int, "Received | None"], None]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message written to a connection, on the monotonic clock: what the venue's message rate counts."""

    conn_id: int
    at_ns: int  # time.monotonic_ns() immediately before the write (nothing is awaited in between)
    kind: str  # "text" or "ping"


@dataclass(slots=True)
class RunnerStats:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    rollovers: int = 0
    overlap_timeouts: int = 0  # handovers that ended by ``overlap_max_s``, not by the sink
    failed_rollovers: int = 0  # replacements that died during the overlap (the old connection was kept)
    subscribe_budget_rollovers: int = 0  # resubscribes that replaced the connection (hourly budget spent)
    idle_timeouts: int = 0
    frames: int = 0
    malformed: int = 0
    sent: int = 0
    last_delay_s: float = 0.0
    delays: list[float] = field(default_factory=list)  # backoff delays taken (most recent 64)
    # The most recent writes, so the pacing can be checked against the venue's rate from our own clock.
    sends: deque[SentMessage] = field(default_factory=lambda: deque(maxlen=256))


class _Conn:
    """One open websocket and its helpers; owned by the runner's TaskGroup."""

    __slots__ = (
        "done",
        "handed_over",
        "info",
        "last_alive_ns",
        "messages",
        "opened_ns",
        "outbox",
        "reason",
        "retiring",
        "subscribe_ops",
        "ws",
    )

    def __init__(self, info: ConnInfo, ws: ClientConnection, messages: WindowBudget) -> None:
        self.info = info
        self.ws = ws
        self.messages = messages
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.opened_ns = self.last_alive_ns = time.monotonic_ns()
        self.done = asyncio.Event()
        self.handed_over = asyncio.Event()
        self.reason = ""
        self.subscribe_ops: deque[int] = deque()  # monotonic ns of each subscribe/unsubscribe request queued
        self.retiring = False  # its subscribe budget is spent: a replacement was asked for (resubscribe)

    def subscribe_ops_last_hour(self, now_ns: int) -> int:
        ops = self.subscribe_ops
        while ops and now_ns - ops[0] >= _HOUR_NS:
            ops.popleft()
        return len(ops)


class ConnectionRunner:
    """Streams ``subscriptions`` of one venue endpoint into a sink, forever (see the module docstring)."""

    def __init__(
        self,
        protocol: VenueProtocol,
        subscriptions: Sequence[Subscription],
        *,
        base_url: str,
        sink: ConnectionSink,
        connect_budget: WindowBudget,
        config: RunnerConfig | None = None,
        name: str = "",
        tap: FrameTap | None = None,
    ) -> None:
        limits = protocol.limits
        if not subscriptions:
            raise LocalProtocolError("a connection runner needs at least one subscription")
        if len(subscriptions) > limits.max_streams_per_connection:
            raise LocalProtocolError(
                f"{len(subscriptions)} subscriptions exceed {limits.max_streams_per_connection} per connection"
            )
        self.protocol = protocol
        self.subscriptions = tuple(subscriptions)
        self.base_url = base_url
        self.sink = sink
        self.connect_budget = connect_budget
        self.config = config or RunnerConfig()
        self.name = name or f"{protocol.venue}:{protocol.market}"
        self.tap = tap
        self.stats = RunnerStats()
        self._log = log.bind(venue=str(protocol.venue), market=str(protocol.market), runner=self.name)
        url = protocol.url(base_url, self.subscriptions)
        # A protocol that names the streams in the URL (combined streams) needs no subscribe frames.
        self._in_url = url != protocol.url(base_url, ())
        self.url = url if self._in_url else protocol.url(base_url, ())
        self._conns: dict[int, _Conn] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._wake = asyncio.Event()
        self._rollover_reason = ""
        rate = max(1.0, limits.max_messages_per_second - self.config.reserve_messages_per_s)
        self._message_rate = rate
        lifetime = self.config.max_lifetime_s or limits.max_lifetime_s
        self._rollover_after_s: float | None = None
        if lifetime is not None:
            # Never plan a rollover so early that connections churn: at least half the lifetime.
            self._rollover_after_s = max(lifetime - self.config.rollover_margin_s, lifetime / 2)

    # ---- public control (called by the feed) ---------------------------------------------------------

    @property
    def live_connections(self) -> list[ConnInfo]:
        return [c.info for c in self._conns.values() if not c.done.is_set()]

    def request_rollover(self, reason: str) -> None:
        """Open a replacement connection now, overlapping the current one (serverShutdown, operator)."""
        if not self._rollover_reason:
            self._rollover_reason = reason
        self._wake.set()

    def handover_complete(self, conn_id: int) -> None:
        """The sink's word that connection ``conn_id`` caught up on every book: the old one may close."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.handed_over.set()
            self._wake.set()

    def send(self, text: str, *, conn_id: int | None = None) -> None:
        """Queue a text frame on one connection (default: every live one); sent within the message budget."""
        for conn in self._conns.values():
            if (conn_id is None or conn.info.conn_id == conn_id) and not conn.done.is_set():
                conn.outbox.put_nowait(text)

    def resubscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Unsubscribe and subscribe again (venues whose snapshot comes over the websocket).

        A connection whose hourly subscribe budget (``limits.max_subscribe_ops_per_hour``) these requests
        would pass is replaced instead: the new connection subscribes to everything, which rebuilds these
        books too, and starts a new hour.
        """
        texts = (*self.protocol.unsubscribe(subscriptions), *self.protocol.subscribe(subscriptions))
        limit = self.protocol.limits.max_subscribe_ops_per_hour
        now = time.monotonic_ns()
        for conn in self._conns.values():
            if conn.done.is_set():
                continue
            if limit is not None:
                if conn.retiring:
                    continue  # its replacement is on the way and subscribes to everything
                used = conn.subscribe_ops_last_hour(now)
                if used + len(texts) > limit:
                    conn.retiring = True
                    self.stats.subscribe_budget_rollovers += 1
                    self._log.warning("subscribe budget spent", conn_id=conn.info.conn_id, used=used, limit=limit)
                    self.request_rollover(f"subscribe budget: {used} of {limit} requests this hour")
                    continue
                conn.subscribe_ops.extend([now] * len(texts))
            for text in texts:
                conn.outbox.put_nowait(text)

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; a fatal error (bad URL, refused handshake, our bug) propagates."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._supervise()
        except BaseExceptionGroup as group:
            raise unwrap_feed_error(group) from None
        finally:
            self._tg = None

    async def _supervise(self) -> None:
        backoff = Backoff(self.config.backoff)
        current: _Conn | None = None
        while True:
            if current is None or current.done.is_set():
                if current is not None:
                    backoff.disconnected(time.monotonic_ns())
                    delay = backoff.next_delay()
                    self._note_delay(delay)
                    self._log.info("reconnecting", after_s=round(delay, 3), reason=current.reason)
                    await asyncio.sleep(delay)
                current = await self._open(backoff, replacing=None)
                continue
            reason = await self._wait_for_rollover(current)
            if reason is None:
                continue  # the connection ended: reconnect with backoff
            # Rollover: the replacement streams alongside the old connection until the books moved over.
            self.stats.rollovers += 1
            self._log.info("rollover", reason=reason, conn_id=current.info.conn_id)
            old = current
            current = await self._handover(old, await self._open(backoff, replacing=old.info.conn_id))
            if current is old:
                await self._retry_rollover_later(old, reason, backoff)

    async def _wait_for_rollover(self, conn: _Conn) -> str | None:
        """Wait until ``conn`` ends (None) or is due for replacement (the reason)."""
        while not conn.done.is_set():
            if self._rollover_reason:
                reason, self._rollover_reason = self._rollover_reason, ""
                return reason
            timeout = None
            if self._rollover_after_s is not None:
                age_s = (time.monotonic_ns() - conn.opened_ns) / 1e9
                timeout = self._rollover_after_s - age_s
                if timeout <= 0:
                    return "max lifetime"
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                continue
        return None

    async def _retry_rollover_later(self, old: _Conn, reason: str, backoff: Backoff) -> None:
        """The replacement died during the overlap: keep streaming on ``old``, try again after a backoff."""
        backoff.disconnected(time.monotonic_ns())  # the replacement's short life extends the failure streak
        backoff.connected(old.opened_ns)  # ``old`` is the connection whose health counts again
        delay = backoff.next_delay()
        self._note_delay(delay)
        self._log.warning("rollover failed, keeping the old connection", reason=reason, retry_in_s=round(delay, 3))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await old.done.wait()  # should the old one end meanwhile, the supervisor reconnects at once
        if not old.done.is_set() and not self._rollover_reason:
            self._rollover_reason = reason

    async def _handover(self, old: _Conn, new: _Conn) -> _Conn:
        """Keep both connections until the sink reports the new one caught up (or either ends, or time's up).

        Returns the connection that carries the books from now on: ``new``, unless ``new`` died during
        the overlap while ``old`` still streams; closing the healthy ``old`` then would reset every book.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.overlap_max_s
        while not (new.handed_over.is_set() or old.done.is_set() or new.done.is_set()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.stats.overlap_timeouts += 1
                self._log.warning("handover timed out", old=old.info.conn_id, new=new.info.conn_id)
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                continue
        if new.done.is_set() and not old.done.is_set():
            self.stats.failed_rollovers += 1
            return old
        if not old.done.is_set():
            await self._close(old, "replaced")
        return new

    async def _open(self, backoff: Backoff, *, replacing: int | None) -> _Conn:
        """Connect (retrying with backoff until success or a fatal error) and start serving."""
        cfg = self.config
        while True:
            await self.connect_budget.acquire(1, label=self.name)
            try:
                ws = await connect(
                    self.url,
                    open_timeout=cfg.open_timeout_s,
                    close_timeout=cfg.close_timeout_s,
                    ping_interval=None,  # our keepalive task pings, so pongs count as liveness
                    max_size=cfg.max_frame_bytes,
                    compression="deflate" if cfg.compression else None,
                    proxy=None,
                )
            except Exception as exc:  # classified: anything not known to be transient is re-raised
                decision = classify(exc)
                if not decision.retry and isinstance(exc, InvalidHandshake) and self.stats.connects:
                    # The venue accepted this URL before: a refusal now is its trouble, not our configuration,
                    # and must not end the feed (nor a rollover's healthy old connection). Retried with backoff.
                    decision = Decision(True, f"{decision.reason} (this URL was accepted before)")
                if not decision.retry:
                    self._log.error("connect failed (fatal)", reason=decision.reason)
                    if isinstance(exc, InvalidHandshake):  # the venue refused us: say so, in our terms
                        detail = f"{_redact(self.url)}: {decision.reason}"
                        raise VenueRejected(str(self.protocol.venue), detail) from exc
                    raise
                self.stats.connect_failures += 1
                if decision.min_delay_s > 0:
                    # The venue said when to come back (Retry-After, or a 418/429's floor): to this IP, so every
                    # runner sharing the connect budget waits too, not only this one.
                    self.connect_budget.pause_for(decision.min_delay_s)
                delay = backoff.next_delay(at_least_s=decision.min_delay_s)
                self._note_delay(delay)
                self._log.warning("connect failed", reason=decision.reason, retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            break
        info = ConnInfo(next(_conn_ids), self.name, _redact(self.url), replacing)
        messages = WindowBudget(f"{self.name}#{info.conn_id}:messages", limit=int(self._message_rate), window_s=1.0)
        conn = _Conn(info, ws, messages)
        self._conns[info.conn_id] = conn
        self.stats.connects += 1
        backoff.connected(conn.opened_ns)
        if not self._in_url:
            texts = self.protocol.subscribe(self.subscriptions)
            conn.subscribe_ops.extend([conn.opened_ns] * len(texts))
            for text in texts:
                conn.outbox.put_nowait(text)
        self._log.info("connected", conn_id=info.conn_id, replacing=replacing)
        self.sink.on_connection_up(self, info)
        assert self._tg is not None
        self._tg.create_task(self._serve(conn), name=f"ws {self.name}#{info.conn_id}")
        return conn

    async def _serve(self, conn: _Conn) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self._write_loop(conn))
                keepalive = tg.create_task(self._keepalive(conn))
                try:
                    await self._read_loop(conn)
                finally:
                    writer.cancel()
                    keepalive.cancel()
        finally:
            if conn.ws.close_code is None:  # cancelled (shutdown): leave politely, but do not linger
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.close(1000, "client shutdown")
            conn.done.set()
            self._conns.pop(conn.info.conn_id, None)
            self.stats.disconnects += 1
            self._log.info("disconnected", conn_id=conn.info.conn_id, reason=conn.reason)
            self._wake.set()
            self.sink.on_connection_down(self, conn.info, conn.reason)

    async def _read_loop(self, conn: _Conn) -> None:
        protocol, sink, info, tap, stats = self.protocol, self.sink, conn.info, self.tap, self.stats
        try:
            async for frame in conn.ws:
                recv_ns = time.monotonic_ns()
                conn.last_alive_ns = recv_ns
                stats.frames += 1
                try:
                    received = protocol.receive(frame, recv_ns)
                except MalformedFrame as exc:
                    stats.malformed += 1
                    if tap is not None:
                        tap(frame, recv_ns, None)
                    sink.on_malformed(self, info, exc)
                    continue
                if tap is not None:
                    tap(frame, recv_ns, received)
                if received.actions:
                    received.actions = self._connection_actions(conn, received.actions)
                sink.on_received(self, info, received)
            conn.reason = conn.reason or _closed_reason(conn.ws)
        except ConnectionClosed as exc:
            conn.reason = conn.reason or f"connection closed: {exc}"

    def _connection_actions(self, conn: _Conn, actions: list[Action]) -> list[Action]:
        """Perform SendText and Reconnect here; return the actions the sink performs."""
        rest: list[Action] = []
        for action in actions:
            if isinstance(action, SendText):
                conn.outbox.put_nowait(action.text)
            elif isinstance(action, Reconnect):
                self.request_rollover(action.reason)
            else:
                rest.append(action)
        return rest

    async def _write_loop(self, conn: _Conn) -> None:
        while True:
            text = await conn.outbox.get()
            await conn.messages.acquire(1, label="send")
            self.stats.sends.append(SentMessage(conn.info.conn_id, time.monotonic_ns(), "text"))
            try:
                await conn.ws.send(text)
            except ConnectionClosed:
                return  # the read loop reports why
            self.stats.sent += 1

    async def _keepalive(self, conn: _Conn) -> None:
        """Websocket pings, the protocol's application ping, and the idle watchdog."""
        limits, cfg = self.protocol.limits, self.config
        app_ping = self.protocol.app_ping() if limits.app_ping_interval_s else None
        intervals = [limits.idle_timeout_s / 4, cfg.ping_timeout_s / 2]
        if cfg.ping_interval_s is not None:
            intervals.append(cfg.ping_interval_s)
        if app_ping is not None and limits.app_ping_interval_s:
            intervals.append(limits.app_ping_interval_s)
        tick = min(intervals)
        next_ping = next_app = time.monotonic()
        pong: asyncio.Future[float] | None = None
        ping_sent = 0.0
        try:
            while True:
                await asyncio.sleep(tick)
                now = time.monotonic()
                if pong is not None and pong.done():
                    if not pong.cancelled() and pong.exception() is None:
                        conn.last_alive_ns = time.monotonic_ns()  # a pong proves the link is alive
                    pong = None
                if pong is not None and now - ping_sent > cfg.ping_timeout_s:
                    await self._close(conn, f"no pong within {cfg.ping_timeout_s}s")
                    return
                idle_s = (time.monotonic_ns() - conn.last_alive_ns) / 1e9
                if idle_s > limits.idle_timeout_s:
                    self.stats.idle_timeouts += 1
                    await self._close(conn, f"idle for {idle_s:.1f}s (limit {limits.idle_timeout_s}s)")
                    return
                if cfg.ping_interval_s is not None and pong is None and now >= next_ping:
                    next_ping = now + cfg.ping_interval_s
                    # Pings count against the venue's message rate: skip one rather than exceed it.
                    if conn.messages.try_acquire(1, label="ping"):
                        self.stats.sends.append(SentMessage(conn.info.conn_id, time.monotonic_ns(), "ping"))
                        try:
                            pong = asyncio.ensure_future(await conn.ws.ping())
                        except ConnectionClosed:
                            return
                        ping_sent = now
                if app_ping is not None and limits.app_ping_interval_s and now >= next_app:
                    next_app = now + limits.app_ping_interval_s
                    conn.outbox.put_nowait(app_ping)
        finally:
            if pong is not None:
                if pong.done():
                    _ = pong.cancelled() or pong.exception()  # retrieved: no "never retrieved" noise
                else:
                    pong.cancel()

    async def _close(self, conn: _Conn, reason: str) -> None:
        conn.reason = conn.reason or reason
        with contextlib.suppress(ConnectionClosed):  # already closing: nothing to do
            await conn.ws.close(1000, reason[:100])

    def _note_delay(self, delay: float) -> None:
        self.stats.last_delay_s = delay
        self.stats.delays.append(delay)
        del self.stats.delays[:-64]


def unwrap_feed_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first FeedError inside nested task-group errors when every leaf is one, else the group itself.

    Task groups wrap what their tasks raise; the CLI and the daemon map :class:`FeedError` to a message
    and an exit code, so a lone fatal feed error is handed on bare (programming errors stay grouped).
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    if leaves and all(isinstance(leaf, FeedError) for leaf in leaves):
        return leaves[0]
    return group


def _closed_reason(ws: ClientConnection) -> str:
    code, text = ws.close_code, ws.close_reason
    return f"closed by peer ({code} {text})" if code is not None else "connection ended"


def _redact(url: str) -> str:
    """The URL without its query (listen keys and tokens live there)."""
    return url.split("?", 1)[0]
