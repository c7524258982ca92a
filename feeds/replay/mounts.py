"""The replay exchange's per-venue state: mounts (one per venue and market), client sessions, sources.

Internal to :mod:`feeds.replay.exchange`, split out to keep each module readable in one sitting.
A :class:`Mount` holds a venue's plugin, its connected :class:`Session` s and their topics, which
recording's rebuild owns each book (:class:`Source`), and the REST requests waiting for a recorded
snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from feeds.budget import WindowBudget
from feeds.instruments import Market, Venue
from feeds.protocol import VenueProtocol
from feeds.recordings import RecordedFrame, Recording
from feeds.replay.plugin import ReplayPlugin, WireSession
from feeds.sync import BookSync
from feeds.venues import VenueEntry
from feeds.verify import BookVerifier


def incoming_limit(rate: float) -> int:
    """Text messages a client may send within one second, as the replay counts them, before it is cut off.

    A venue counts a client's messages as they leave the client; the replay can only count them when its
    handler reads them, on the same loaded event loop. One scheduling stall can hold back a compliant
    client's messages of one 1-second window until the next window's arrive, so two windows' worth land
    in one. The replay therefore tolerates one extra window (twice the venue's rate) on arrival: a pacing
    client is never cut off by loopback jitter, while a real burst (Binance spot: 5/s, so 11 or more at
    once) still is. The client's own pacing is checked exactly, on its send times
    (:attr:`feeds.connection.RunnerStats.sends`), not here.
    """
    return 2 * int(rate)


@dataclass(slots=True)
class Source:
    recording: Recording
    entry: VenueEntry
    verifier: BookVerifier


@dataclass(slots=True)
class Hold:
    payload: bytes
    taken: asyncio.Event = field(default_factory=asyncio.Event)


_serials = itertools.count(1)


class Session:
    """One client websocket."""

    __slots__ = ("incoming", "mount", "serial", "topics", "transport", "wire", "ws")

    def __init__(self, mount: Mount, ws: web.WebSocketResponse, wire: WireSession, request: web.Request) -> None:
        self.serial = next(_serials)  # connection order: a fault may drop only the newest
        self.mount = mount
        self.ws = ws
        self.wire = wire
        self.transport = request.transport
        self.topics: set[str] = set()
        rate = mount.plugin.max_incoming_per_s(mount.market)
        self.incoming = WindowBudget("replay incoming", limit=incoming_limit(rate), window_s=1.0) if rate else None

    async def send(self, data: bytes, timeout_s: float) -> bool:
        if self.ws.closed:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self.ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, TimeoutError):  # the client is gone or stopped reading
            self.abort()
            return False
        return True

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, as a failing network would."""
        if self.transport is not None:
            self.transport.abort()


class Mount:
    """One venue and market of the exchange: its plugin, clients, and the books' owners."""

    def __init__(self, venue: Venue, market: Market, plugin: ReplayPlugin, entry: VenueEntry) -> None:
        self.venue, self.market, self.plugin, self.entry = venue, market, plugin, entry
        self.decoder: VenueProtocol = entry.protocol()  # decodes frames for faults that match by update id
        self.sessions: set[Session] = set()
        self.subscribers: dict[str, set[Session]] = {}
        self.owner: dict[str, Source] = {}  # book key -> the recording whose rebuild holds it
        self.waiters: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self.holds: dict[str, Hold] = {}
        self.delivered: set[str] = set()  # books whose deltas reached a client
        self.topic_index: dict[str, int] = {}
        self.topic_keys: dict[str, str | None] = {}
        self.topic_state: dict[str, object] = {}  # non-book topic -> its state (ReplayPlugin.fold)
        self.weight_minute = -1  # the calendar minute (epoch // 60) weight_used counts
        self.weight_used = 0  # request weight spent this minute (venues that report it)

    def spend_weight(self, weight: int, now_s: float) -> int:
        """Count ``weight`` in the current calendar minute (Binance resets at each minute); returns the total."""
        minute = int(now_s // 60)
        if minute != self.weight_minute:
            self.weight_minute, self.weight_used = minute, 0
        self.weight_used += weight
        return self.weight_used

    def key_of(self, topic: str) -> str | None:
        try:
            return self.topic_keys[topic]
        except KeyError:
            key = self.topic_keys[topic] = self.plugin.book_key_of(self.market, topic)
            return key

    def sync(self, key: str) -> BookSync | None:
        source = self.owner.get(key)
        return source.verifier.syncs.get(key) if source is not None else None


def tagged(source: Source) -> Iterator[tuple[RecordedFrame, Source]]:
    for frame in source.recording.frames():
        yield frame, source
