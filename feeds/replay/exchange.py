"""The replay exchange: recorded venue traffic served on loopback, in each venue's own wire protocol.

One aiohttp server on ``127.0.0.1`` serves every venue and market found in the recordings, each under its
own mount ``/<venue>/<market>`` (websocket paths and REST paths as the venue has them below it, e.g.
``/binance/usdm/public/stream?streams=...`` and ``/binance/usdm/fapi/v1/depth``).
:meth:`ReplayExchange.endpoints` gives a client the base URLs to use instead of the real ones.

**The clock.** All recordings are merged by receive time into one timeline, shared by every client like a
real venue's present: a client receives the frames of its topics from the moment it subscribes. The
clock paces the timeline at ``speed`` (1.0 = as recorded, N = N times faster, None = as fast as the
clients read: each send awaits the socket, so the slowest client sets the pace). With ``autostart`` it
starts ``start_grace_s`` after the first subscription; else on :meth:`ReplayExchange.start`.

**The venue's state.** Every record also feeds the exchange's own rebuild of the books, exactly as
``verify-books`` rebuilds them (:class:`feeds.verify.BookVerifier`). A REST depth request is answered

* with the recorded snapshot, byte for byte, when the timeline is at it: the clock pauses at a recorded
  snapshot of a book whose deltas a client is buffering until that client asks (``snapshot_wait_s`` at
  most), so the client's sync meets the snapshot the recording had; a request that arrives before the
  recorded snapshot waits for it;
* later (after a gap, a reconnect), from the rebuild at the current point, with its ``lastUpdateId``,
  and every level the recording revealed (``snapshot_depth`` cuts it like a venue's ``limit``).

Other REST requests (instrument metadata: ``exchangeInfo``, ``instruments``...) are answered from
``rest_bodies``, recorded answers by resource (:mod:`feeds.recorded_metadata`), else 404.

**Faults** on command: :attr:`ReplayExchange.faults` (:mod:`feeds.replay.faults`).
**The end.** When the timeline is exhausted :attr:`finished` is set (``await exchange.wait_finished()``);
``GET /replay/status`` says so over HTTP; ``close_on_finish`` also closes the websockets (code 1000,
reason ``replay finished``).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog
from aiohttp import WSMsgType, web

from feeds.book import OrderBook
from feeds.errors import FeedError, ListenError, LocalProtocolError, MalformedFrame, RemoteProtocolError
from feeds.instruments import Market, Venue
from feeds.recorded_metadata import RestKey, rest_key
from feeds.recordings import FrameKind, RecordedFrame, Recording, open_recordings
from feeds.replay.faults import FaultHandle, FaultKind, Faults
from feeds.replay.mounts import Hold, Mount, Session, Source, tagged
from feeds.replay.plugin import ReportsRequestWeight, SnapshotQuery, get_plugin
from feeds.sync import BookSync, SyncState
from feeds.updates import BookDelta
from feeds.venues import Endpoints, detect
from feeds.verify import BookVerifier

log = structlog.get_logger("feeds.replay")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (read ReplayExchange.port)
    speed: float | None = None  # None: as fast as clients read; 1.0: recorded pace; N: N times faster
    autostart: bool = True  # start the clock start_grace_s after the first subscription
    start_grace_s: float = 0.5  # lets the other connections of a client subscribe too
    snapshot_wait_s: float = 5.0  # the clock waits this long at a recorded snapshot for the client's request
    rest_wait_s: float = 30.0  # a depth request waits this long for a recorded snapshot still to come
    snapshot_depth: int | None = None  # levels per side in rebuilt snapshots (None: all known)
    max_frames: int | None = None  # play only the first N records of the timeline
    close_on_finish: bool = False
    send_timeout_s: float = 10.0  # a client that does not read for this long is disconnected
    venue: Venue | None = None  # force the venue of the recordings (else detected)
    market: Market | None = None
    # The wall clock of the venue's per-minute request-weight count (tests freeze it inside one minute).
    wall_clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.speed is not None and not 0 < self.speed < math.inf:  # nan too
            raise ValueError(f"replay speed must be a finite number > 0 (or None for max), got {self.speed}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.snapshot_depth is not None and self.snapshot_depth < 1:
            raise ValueError(f"snapshot_depth must be >= 1, got {self.snapshot_depth}")
        for name in ("start_grace_s", "snapshot_wait_s", "rest_wait_s", "send_timeout_s"):
            if not 0 <= getattr(self, name) < math.inf:  # nan too
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")


@dataclass(slots=True)
class ReplayStats:
    records: int = 0  # timeline records played
    frames_sent: int = 0  # frames written to client sockets
    withheld: int = 0
    mutated: int = 0
    drops: int = 0  # connections aborted by faults
    connections: int = 0  # websocket connections accepted
    rest_requests: int = 0
    holds: int = 0  # times the clock waited at a recorded snapshot for a client
    hold_timeouts: int = 0
    malformed_records: int = 0  # recorded frames the venue's protocol could not decode (still sent)


@dataclass(frozen=True, slots=True)
class ServedSnapshot:
    """One REST depth answer: ``kind`` is recorded, rebuilt or error; ``last_id`` the book id in it."""

    key: str
    kind: str
    last_id: int
    position: int  # timeline position when answered


class ReplayExchange:
    """Serve recordings on loopback. ``async with ReplayExchange(paths, config=...) as exchange:``."""

    def __init__(
        self,
        paths: Sequence[str | Path] = (),
        *,
        recordings: Sequence[Recording] = (),
        config: ReplayConfig | None = None,
        rest_bodies: Mapping[RestKey, bytes] | None = None,
    ) -> None:
        self.config = config or ReplayConfig()
        # Recorded answers to non-depth REST requests (instrument metadata), served as they are.
        self._rest_bodies: Mapping[RestKey, bytes] = rest_bodies or {}
        self._paths = list(paths)
        self._given = list(recordings)
        self.stats = ReplayStats()
        self.served: list[ServedSnapshot] = []
        self.faults = Faults(self._drop_connections, self._send_shutdown_notice, self._spend_weight)
        self.finished = asyncio.Event()
        self.started = asyncio.Event()
        self.error: FeedError | None = None
        self.position = 0
        self.port = 0
        self._sources: list[Source] = []
        self._mounts: dict[tuple[str, str], Mount] = {}
        self._runner: web.AppRunner | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._autostart: asyncio.TimerHandle | None = None
        self._pace_offset = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> ReplayExchange:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Read the recordings' headers, mount their venues, and listen."""
        if self._runner is not None:
            raise LocalProtocolError("replay exchange opened twice")
        cfg = self.config
        recordings = list(self._given)
        if self._paths:
            recordings.extend(open_recordings(self._paths).recordings)
        if not recordings:
            raise LocalProtocolError("the replay exchange needs at least one recording")
        for recording in recordings:
            entry = detect(recording, venue=cfg.venue, market=cfg.market)
            plugin = get_plugin(entry.venue)
            mount_key = (str(entry.venue), str(entry.market))
            if mount_key not in self._mounts:
                self._mounts[mount_key] = Mount(entry.venue, entry.market, plugin, entry)
            self._sources.append(Source(recording, entry, BookVerifier(entry)))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, the host is no address of this machine
            runner, self._runner = self._runner, None
            await runner.cleanup()
            raise ListenError(f"{cfg.host}:{cfg.port}", exc.strerror or str(exc)) from None
        self.port = int(self._runner.addresses[0][1])
        self._clock_task = asyncio.create_task(self._clock(), name="replay clock")
        names = ", ".join(f"{v}/{m}" for v, m in self._mounts)
        log.info("replay exchange listening", url=self.http_url, venues=names, recordings=len(self._sources))

    async def close(self) -> None:
        if self._autostart is not None:
            self._autostart.cancel()
        task, self._clock_task = self._clock_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        for mount in self._mounts.values():
            for session in list(mount.sessions):
                session.abort()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def start(self) -> None:
        """Start the clock (when not autostarting, or to skip the grace period)."""
        self.started.set()

    async def wait_finished(self) -> None:
        """Return when the timeline is exhausted; raise the error that stopped it, if any."""
        await self.finished.wait()
        if self.error is not None:
            raise self.error

    # ---- what clients and tests read ---------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def endpoints(self, venue: Venue, market: Market) -> Endpoints:
        mount = self._mount(venue, market)
        path = f"{self.config.host}:{self.port}/{venue}/{market}"
        return mount.plugin.endpoints(market, f"http://{path}", f"ws://{path}")

    def mounts(self) -> list[tuple[Venue, Market]]:
        return [(m.venue, m.market) for m in self._mounts.values()]

    def sync(self, key: str) -> BookSync | None:
        """The exchange's own rebuild of a book at the current point (what verify-books has there)."""
        venue, market, _ = key.split(":", 2)
        mount = self._mounts.get((venue, market))
        return mount.sync(key) if mount is not None else None

    def book(self, key: str) -> OrderBook | None:
        sync = self.sync(key)
        return sync.book if sync is not None else None

    def verifiers(self) -> list[BookVerifier]:
        return [s.verifier for s in self._sources]

    def subscriber_count(self, venue: Venue | None = None, market: Market | None = None) -> int:
        return sum(len(m.sessions) for m in self._matching(venue, market))

    def status(self) -> dict[str, object]:
        return {
            "started": self.started.is_set(),
            "finished": self.finished.is_set(),
            "error": str(self.error) if self.error else None,
            "position": self.position,
            "frames_sent": self.stats.frames_sent,
            "connections": self.subscriber_count(),
        }

    def _mount(self, venue: Venue | str, market: Market | str) -> Mount:
        mount = self._mounts.get((str(venue), str(market)))
        if mount is None:
            raise LocalProtocolError(f"the replay has no {venue}/{market} recordings (has {list(self._mounts)})")
        return mount

    def _matching(self, venue: Venue | None, market: Market | None) -> list[Mount]:
        return [
            m
            for m in self._mounts.values()
            if (venue is None or m.venue is venue) and (market is None or m.market is market)
        ]

    # ---- the clock ---------------------------------------------------------------------------------------

    def _timeline(self) -> Iterator[tuple[RecordedFrame, Source]]:
        return heapq.merge(*(tagged(source) for source in self._sources), key=lambda item: item[0].recv_ns)

    async def _clock(self) -> None:
        try:
            await self.started.wait()
            await self._play()
        except FeedError as exc:  # a corrupt recording: stop, and say why to whoever waits
            self.error = exc
            log.error("replay stopped", error=str(exc))
        finally:
            await self._finish()

    async def _play(self) -> None:
        cfg = self.config
        faults = self.faults
        start = time.monotonic()
        first_ns: int | None = None
        for frame, source in self._timeline():
            if cfg.max_frames is not None and self.position >= cfg.max_frames:
                break
            if frame.kind is not FrameKind.WS and frame.kind is not FrameKind.REST:
                continue
            # Only websocket frames are paced, from the first one: a capture's companion metadata (REST bodies of
            # an earlier run, years before its first frame) would otherwise hold the replay back that long, and a
            # REST body is served when asked for, not pushed at its time.
            if cfg.speed is not None and frame.kind is FrameKind.WS:
                first_ns = frame.recv_ns if first_ns is None else first_ns
                due = start + self._pace_offset + (frame.recv_ns - first_ns) / 1e9 / cfg.speed
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if faults.delay_s or not faults.paused.is_set():
                await self._stall()
            self.position += 1
            self.stats.records += 1
            mount = self._mount(source.entry.venue, source.entry.market)
            if frame.kind is FrameKind.WS:
                await self._play_ws(mount, source, frame)
            else:
                await self._play_rest(mount, source, frame)

    async def _stall(self) -> None:
        began = time.monotonic()
        delay, self.faults.delay_s = self.faults.delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)
        await self.faults.paused.wait()
        self._pace_offset += time.monotonic() - began

    async def _play_ws(self, mount: Mount, source: Source, frame: RecordedFrame) -> None:
        payload = frame.payload
        topic = mount.plugin.topic_of(mount.market, payload)
        bad_before = source.verifier.bad_count
        source.verifier.feed(frame)  # the venue's own state advances whatever the client gets
        self.stats.malformed_records += source.verifier.bad_count - bad_before
        if topic is None:
            return
        index = mount.topic_index.get(topic, 0)
        mount.topic_index[topic] = index + 1
        key = mount.key_of(topic)
        if key is not None and key not in mount.owner:
            mount.owner[key] = source
        if key is None:  # the venue's state of a non-book stream advances whatever the client gets, too
            state = mount.plugin.fold(mount.market, topic, mount.topic_state.get(topic), payload)
            if state is not None:
                mount.topic_state[topic] = state
        if self.faults.frame_faults:
            outcome = await self._apply_faults(mount, topic, index, key, payload)
            if outcome is None:
                return
            payload = outcome
        subscribers = mount.subscribers.get(topic)
        if not subscribers:
            await asyncio.sleep(0)  # at max speed, still let clients and the server breathe
            return
        if key is not None:
            mount.delivered.add(key)
        timeout_s = self.config.send_timeout_s
        for session in list(subscribers):
            if await session.send(session.wire.wire(topic, payload), timeout_s):
                self.stats.frames_sent += 1
        await asyncio.sleep(0)

    async def _apply_faults(
        self, mount: Mount, topic: str, index: int, key: str | None, payload: bytes
    ) -> bytes | None:
        """The payload to deliver after the faults that match this frame, or None to withhold it."""
        first_id = last_id = -1
        if self.faults.needs_decode:
            try:
                received = mount.decoder.receive(payload, 0)
            except MalformedFrame:
                received = None
            for update in received.updates if received is not None else ():
                if isinstance(update, BookDelta):
                    key, first_id, last_id = update.key, update.first_id, update.last_id
        fired: list[FaultHandle] = self.faults.take(topic, index, key, first_id, last_id)
        for handle in fired:
            if handle.kind is FaultKind.WITHHOLD:
                self.stats.withheld += 1
                log.info("fault: withheld a frame", topic=topic, index=index, key=key)
                return None
            if handle.kind is FaultKind.MUTATE and handle.mutation is not None:
                self.stats.mutated += 1
                payload = handle.mutation(payload)
            elif handle.kind is FaultKind.DROP:
                self._drop_connections(mount.venue, mount.market)
            elif handle.kind is FaultKind.PAUSE:
                self.faults.delay(handle.seconds)
                await self._stall()
        return payload

    async def _play_rest(self, mount: Mount, source: Source, frame: RecordedFrame) -> None:
        key = source.entry.snapshot_key(frame)
        if key is None:
            source.verifier.feed(frame)
            return
        mount.owner[key] = source
        before = source.verifier.syncs.get(key)
        was_live = before is not None and before.state is SyncState.LIVE
        source.verifier.feed(frame)
        waiters = mount.waiters.pop(key, [])
        answered = False
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(frame.payload)
                answered = True
        if answered or was_live or key not in mount.delivered:
            return
        # A client is buffering this book's deltas and will ask for a snapshot: meet it here, as recorded.
        hold = mount.holds[key] = Hold(frame.payload)
        self.stats.holds += 1
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.config.snapshot_wait_s):
                await hold.taken.wait()
        except TimeoutError:
            self.stats.hold_timeouts += 1
            log.info("no client asked for the recorded snapshot", key=key)
        finally:
            del mount.holds[key]
            self._pace_offset += time.monotonic() - began

    async def _finish(self) -> None:
        self.finished.set()
        for mount in self._mounts.values():
            for waiters in mount.waiters.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            mount.waiters.clear()
        log.info("replay finished", position=self.position, frames_sent=self.stats.frames_sent)
        if self.config.close_on_finish:
            for mount in self._mounts.values():
                for session in list(mount.sessions):
                    await session.ws.close(code=1000, message=b"replay finished")

    # ---- HTTP ------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/replay/status":
            return web.json_response(self.status())
        parts = path.split("/", 3)
        mount = self._mounts.get((parts[1], parts[2])) if len(parts) >= 3 else None
        if mount is None:
            return web.Response(status=404, text=f"no venue mounted at {path} (mounts: {list(self._mounts)})")
        sub = "/" + parts[3] if len(parts) > 3 else ""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, mount, sub)
        return await self._rest(request, mount, sub)

    async def _rest(self, request: web.Request, mount: Mount, path: str) -> web.Response:
        plugin, market = mount.plugin, mount.market
        self.stats.rest_requests += 1
        headers: dict[str, str] = {}
        if isinstance(plugin, ReportsRequestWeight):  # every answer says the minute's weight, errors too
            used = mount.spend_weight(plugin.request_weight(market, path, request.query), self.config.wall_clock())
            headers[plugin.weight_header] = str(used)
        fault = self.faults.take_rest()
        if fault is not None:
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            body = plugin.error_body(market, fault.status, "replay fault injection")
            return web.Response(status=fault.status, body=body, headers=headers, content_type="application/json")
        recorded = self._rest_bodies.get(rest_key(mount.venue, path, request.query.items()))
        if recorded is not None:
            return web.Response(body=recorded, headers=headers, content_type="application/json")
        query = plugin.snapshot_query(market, path, dict(request.query))
        if query is None:
            body = plugin.error_body(market, 404, f"the replay exchange does not serve {path}")
            return web.Response(status=404, body=body, headers=headers, content_type="application/json")
        if query.refused:
            body = plugin.error_body(market, 400, query.refused)
            return web.Response(status=400, body=body, headers=headers, content_type="application/json")
        snapshot = await self._snapshot_body(mount, query)
        if snapshot is None:
            body = plugin.error_body(market, 503, f"replay: no snapshot of {query.key} in the recording")
            self.served.append(ServedSnapshot(query.key, "error", -1, self.position))
            return web.Response(status=503, body=body, headers=headers, content_type="application/json")
        return web.Response(body=snapshot, headers=headers, content_type="application/json")

    def _spend_weight(self, venue: Venue, market: Market, weight: int) -> int:
        mount = self._mounts.get((venue.value, market.value))
        if mount is None or not isinstance(mount.plugin, ReportsRequestWeight):
            raise LocalProtocolError(f"replay: {venue.value}/{market.value} is not mounted or reports no weight")
        return mount.spend_weight(weight, self.config.wall_clock())

    async def _snapshot_body(self, mount: Mount, query: SnapshotQuery) -> bytes | None:
        key = query.key
        hold = mount.holds.get(key)
        if hold is not None:
            hold.taken.set()
            return self._recorded(mount, key, hold.payload)
        sync = mount.sync(key)
        if sync is not None and sync.state is SyncState.LIVE:
            depth = self.config.snapshot_depth
            if depth is not None:
                query = SnapshotQuery(key, min(depth, query.limit or depth))
            else:
                query = SnapshotQuery(key, None)
            self.served.append(ServedSnapshot(key, "rebuilt", sync.book.last_id, self.position))
            return mount.plugin.render_snapshot(mount.market, key, sync.book, query)
        if self.finished.is_set():
            return None
        waiter: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        mount.waiters.setdefault(key, []).append(waiter)
        try:
            async with asyncio.timeout(self.config.rest_wait_s):
                payload = await waiter
        except TimeoutError:
            return None
        finally:
            waiters = mount.waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
        return self._recorded(mount, key, payload) if payload is not None else None

    def _recorded(self, mount: Mount, key: str, payload: bytes) -> bytes:
        try:
            last_id = mount.decoder.parse_snapshot(key, payload, 0).last_id
        except RemoteProtocolError:
            last_id = -1
        self.served.append(ServedSnapshot(key, "recorded", last_id, self.position))
        return payload

    # ---- websockets --------------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request, mount: Mount, path: str) -> web.StreamResponse:
        refused = self.faults.handshake_refusal()
        if refused is not None:
            status, retry_after = refused
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return web.Response(status=status, text="refused (replay fault)", headers=headers)
        wire = mount.plugin.open_session(mount.market, path, dict(request.query))
        if wire is None:
            return web.Response(status=404, text=f"{mount.venue}/{mount.market} has no websocket at {path}")
        ping = mount.plugin.server_ping_interval_s(mount.market)
        ws = web.WebSocketResponse(heartbeat=ping, autoping=True, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = Session(mount, ws, wire, request)
        mount.sessions.add(session)
        self.stats.connections += 1
        try:
            await self._subscribe(session, wire.initial_topics())
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                if session.incoming is not None and not session.incoming.try_acquire(1):
                    # What the venue does to a client over its message rate (counted on arrival, with an
                    # allowance for loopback scheduling jitter: mounts.incoming_limit).
                    await ws.close(code=1008, message=b"too many messages")
                    break
                reply = wire.on_text(message.data)
                if reply.subscribe and self.faults.loses_subscribe(reply.subscribe):
                    for topic in reply.unsubscribe:  # an unsubscribe sent with it still counts
                        session.topics.discard(topic)
                        mount.subscribers.get(topic, set()).discard(session)
                    continue
                for frame in reply.replies:
                    await session.send(frame, self.config.send_timeout_s)
                if reply.subscribe:
                    await self._subscribe(session, reply.subscribe)
                for topic in reply.unsubscribe:
                    session.topics.discard(topic)
                    mount.subscribers.get(topic, set()).discard(session)
                if reply.close:
                    await ws.close(code=1008, message=reply.close.encode()[:120])
                    break
        finally:
            mount.sessions.discard(session)
            for topic in session.topics:
                mount.subscribers.get(topic, set()).discard(session)
        return ws

    async def _subscribe(self, session: Session, topics: list[str]) -> None:
        mount = session.mount
        for topic in topics:
            session.topics.add(topic)
            mount.subscribers.setdefault(topic, set()).add(session)
            key = mount.key_of(topic)
            sync = mount.sync(key) if key is not None else None
            book = sync.book if sync is not None and sync.state is SyncState.LIVE else None
            frames = mount.plugin.subscribe_frames(mount.market, topic, book)
            state = mount.topic_state.get(topic) if key is None else None
            if state is not None:
                frames = [*frames, *mount.plugin.state_frames(mount.market, topic, state)]
            for frame in frames:
                await session.send(frame, self.config.send_timeout_s)
        if topics and self.config.autostart and not self.started.is_set() and self._autostart is None:
            loop = asyncio.get_running_loop()
            self._autostart = loop.call_later(self.config.start_grace_s, self.started.set)

    def _drop_connections(self, venue: Venue | None, market: Market | None, newest: bool = False) -> int:
        dropped = 0
        for mount in self._matching(venue, market):
            sessions = list(mount.sessions)
            if newest and sessions:
                sessions = [max(sessions, key=lambda session: session.serial)]
            for session in sessions:
                session.abort()
                mount.sessions.discard(session)
                for topic in session.topics:
                    mount.subscribers.get(topic, set()).discard(session)
                dropped += 1
        self.stats.drops += dropped
        log.info("fault: dropped connections", count=dropped)
        return dropped

    async def _send_shutdown_notice(self, venue: Venue | None, market: Market | None) -> int:
        sent = 0
        for mount in self._matching(venue, market):
            notice = mount.plugin.shutdown_notice(mount.market)
            if notice is None:
                continue
            for session in list(mount.sessions):
                sent += await session.send(notice, self.config.send_timeout_s)
        return sent
