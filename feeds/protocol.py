"""The contract between a venue protocol (pure) and the generic connection runner (I/O).

A venue protocol turns raw frames into normalized updates and builds what must be sent; it never awaits,
reads a clock or touches a socket (the websockets library's sans-I/O split). One protocol instance speaks
one websocket endpoint of one market (Binance USD-M depth on ``/public`` and mark price on ``/market``
are two instances). The runner (``feeds/connection.py``) knows no venue: it asks the protocol for the
URL, subscribe frames, pings and limits, pumps frames through :meth:`VenueProtocol.receive`, and
performs the returned actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from feeds.instruments import Market, Venue
from feeds.sync import BookSync
from feeds.updates import BookSnapshot, Received


class Channel(StrEnum):
    BOOK = "book"  # incremental depth (plus snapshots)
    TOP = "top"  # best bid/ask ticker (Binance bookTicker)
    FUNDING = "funding"  # funding/mark price stream of a perpetual


@dataclass(frozen=True, slots=True)
class Subscription:
    """One venue symbol on one channel, as the venue names the symbol."""

    venue_symbol: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """A venue's documented per-connection limits; the runner enforces them."""

    max_streams_per_connection: int
    max_args_per_subscribe: int
    max_messages_per_second: float
    max_lifetime_s: float | None = None  # the venue disconnects after this (Binance: 24 h)
    app_ping_interval_s: float | None = None  # application-level ping cadence (Bybit 20 s, OKX < 30 s)
    idle_timeout_s: float = 60.0  # no frame at all for this long: the connection is dead
    # Subscribe/unsubscribe requests a connection may send per rolling hour (OKX: 480); past it the runner
    # replaces the connection (a new one subscribes afresh, and starts a new hour) instead of sending.
    max_subscribe_ops_per_hour: int | None = None


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST call the runner performs through the shared session and the venue's weight budget."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    weight: int = 1


class VenueProtocol(Protocol):
    venue: Venue
    market: Market
    limits: ConnectionLimits

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        """The websocket URL to open for these subscriptions (combined-stream venues put them in it)."""
        ...

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """Text frames that subscribe, each within the venue's per-message limit."""
        ...

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]: ...

    def app_ping(self) -> str | None:
        """The application-level ping frame, or None where websocket ping frames suffice."""
        ...

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        """Decode one frame. Malformed input raises :class:`feeds.errors.MalformedFrame`."""
        ...

    def snapshot_request(self, key: str) -> RestRequest | None:
        """The REST depth request for a book key, or None where snapshots come over the websocket."""
        ...

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        """Decode a REST depth response into a snapshot (``from_rest=True``)."""
        ...

    def new_sync(self, key: str) -> BookSync:
        """A book and its sync state machine for a book key, with this venue's rules and checksum."""
        ...
