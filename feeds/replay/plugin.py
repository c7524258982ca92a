"""What a venue must teach the replay exchange: its wire, nothing else.

The replay exchange (:mod:`feeds.replay.exchange`) is generic. It merges recordings into one timeline,
rebuilds every book exactly as ``verify-books`` does (:class:`feeds.verify.BookVerifier`), paces the
frames, injects faults, and serves websocket and HTTP on loopback. Per venue it needs a small
:class:`ReplayPlugin`, registered with :func:`register_plugin` at import:

* **topics.** A *topic* is the plugin's own name for "what a client subscribes to and a recorded frame
  belongs to" (Binance: ``btcusdt@depth``, any depth speed). :meth:`ReplayPlugin.topic_of` names the topic
  of a recorded frame; the :class:`WireSession` says which topics a client subscribed.
  :meth:`ReplayPlugin.book_key_of` maps a book topic to its book key (``binance:spot:BTCUSDT``).
* **connections.** :meth:`ReplayPlugin.open_session` accepts (or refuses: None → HTTP 404) a websocket path
  under the venue's mount, and returns a :class:`WireSession` that answers the client's text messages
  (subscribe, ping...) and turns a recorded payload into what this connection receives
  (:meth:`WireSession.wire`: wrap, unwrap, renumber channels...).
* **snapshots.** REST venues: :meth:`ReplayPlugin.snapshot_query` recognises the depth endpoint and
  :meth:`ReplayPlugin.render_snapshot` writes a rebuilt book in the venue's REST format (a recorded
  snapshot is served byte for byte instead when the timeline is at it). Websocket-snapshot venues
  (Bybit, OKX): :meth:`ReplayPlugin.subscribe_frames` writes the snapshot a fresh subscription receives.
  A stream that is not a book but also starts each subscription with a snapshot (Bybit's ``tickers``) keeps
  its state through :meth:`ReplayPlugin.fold` (every recorded frame of the topic, as the venue sent it) and
  :meth:`ReplayPlugin.state_frames` writes that snapshot.
* **facts.** Server ping cadence, the incoming message rate it enforces, a shutdown notice frame.

Fault injection that must understand the payload (corrupt a level, regress a sequence number) is a
plain ``bytes -> bytes`` function given to :meth:`feeds.replay.faults.Faults.mutate`; a venue module may
offer such functions next to its plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError
from feeds.instruments import Market, Venue
from feeds.venues import Endpoints


@dataclass(slots=True)
class SessionReply:
    """What a client's text message caused."""

    replies: list[bytes] = field(default_factory=list)  # frames sent back, in order
    subscribe: list[str] = field(default_factory=list)  # topics added to this connection
    unsubscribe: list[str] = field(default_factory=list)  # topics removed
    close: str = ""  # non-empty: close the connection with this reason (the venue would)


class WireSession(Protocol):
    """One client connection, as the venue sees it (stream mode, request ids, channel numbers)."""

    def initial_topics(self) -> list[str]:
        """Topics subscribed by the connection URL itself (Binance combined streams)."""
        ...

    def on_text(self, text: str) -> SessionReply:
        """A text message from the client."""
        ...

    def wire(self, topic: str, payload: bytes) -> bytes:
        """The bytes this connection receives for a recorded frame of ``topic``."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotQuery:
    """A recognised REST depth request."""

    key: str  # the book key
    limit: int | None = None  # levels asked for, if the venue has the parameter
    refused: str = ""  # why the venue refuses this request (an invalid parameter): answered 400 with it


@runtime_checkable
class ReportsRequestWeight(Protocol):
    """A venue that tells every REST answer how much request weight the caller's IP has used in the current
    minute (Binance: ``X-MBX-USED-WEIGHT-1M``). The exchange counts it per mount and calendar minute."""

    weight_header: str

    def request_weight(self, market: Market, path: str, query: Mapping[str, str]) -> int: ...


class ReplayPlugin(Protocol):
    venue: Venue
    markets: frozenset[Market]

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        """Loopback endpoints for a client of this market (``*_base`` already include the mount path)."""
        ...

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> WireSession | None:
        """A websocket request for ``path`` (relative to the mount); None if the venue has no such path."""
        ...

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        """The topic of a recorded websocket frame; None for frames no client receives (replies)."""
        ...

    def book_key_of(self, market: Market, topic: str) -> str | None:
        """The book key a topic's frames update, or None (trades, tickers of other kinds)."""
        ...

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        """A REST depth request (path relative to the mount), or None if ``path`` is not one."""
        ...

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        """A rebuilt book as the venue's REST depth body (``lastUpdateId`` = ``book.last_id``)."""
        ...

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        """An error reply body in the venue's format."""
        ...

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        """Frames a new subscription to ``topic`` receives first (websocket-snapshot venues); else []."""
        ...

    def fold(self, market: Market, topic: str, state: object | None, payload: bytes) -> object | None:
        """A non-book topic's state after one of its recorded frames (``state``: before it, None at first),
        or None where the venue starts no subscription with a snapshot of it."""
        ...

    def state_frames(self, market: Market, topic: str, state: object) -> list[bytes]:
        """Frames a new subscription to a non-book ``topic`` receives first, from its folded state."""
        ...

    def shutdown_notice(self, market: Market) -> bytes | None:
        """The venue's "about to disconnect you" frame, or None if it has none."""
        ...

    def server_ping_interval_s(self, market: Market) -> float | None:
        """How often the venue pings clients with websocket ping frames (None: it does not)."""
        ...

    def max_incoming_per_s(self, market: Market) -> float | None:
        """Text messages per second a client may send before the venue disconnects it (None: no limit)."""
        ...


_PLUGINS: dict[Venue, ReplayPlugin] = {}


class NoTopicState:
    """:meth:`ReplayPlugin.fold` and :meth:`ReplayPlugin.state_frames` for a venue none of whose non-book
    streams starts a subscription with a snapshot: no state kept, nothing sent."""

    def fold(self, market: Market, topic: str, state: object | None, payload: bytes) -> object | None:
        return None

    def state_frames(self, market: Market, topic: str, state: object) -> list[bytes]:
        return []


def register_plugin(plugin: ReplayPlugin) -> None:
    _PLUGINS[plugin.venue] = plugin


def get_plugin(venue: Venue) -> ReplayPlugin:
    try:
        return _PLUGINS[venue]
    except KeyError:
        known = ", ".join(sorted(_PLUGINS)) or "none"
        raise LocalProtocolError(f"the replay exchange has no plugin for {venue} (known: {known})") from None
