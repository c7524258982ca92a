"""Normalized updates that venue protocols produce, and actions they ask the runner to perform.

A venue protocol is pure: ``protocol.receive(frame, recv_ns)`` returns a list of these values. The book
sync applies book updates; the runner performs actions (REST snapshot, resubscribe, send, reconnect).
Prices and quantities are floats parsed from the venue's strings (the same string always parses to the
same float, so levels key exactly); venues with checksums also carry the exact strings.

``key`` identifies one book stream: ``"<venue>:<market>:<VENUE_SYMBOL>"`` (see :func:`book_key`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

Level = tuple[float, float]  # (price, quantity); quantity 0 removes the level
RawLevel = tuple[str, str]  # exact venue strings, kept only where a checksum needs them


def book_key(venue: str, market: str, venue_symbol: str) -> str:
    """The stream key used between protocol, sync and runner (venue symbol upper-cased)."""
    return f"{venue}:{market}:{venue_symbol.upper()}"


@dataclass(slots=True)
class BookSnapshot:
    """A full book (REST depth or a websocket snapshot). ``last_id`` is the venue's update id."""

    key: str
    last_id: int
    bids: list[Level]
    asks: list[Level]
    venue_ms: int = 0
    recv_ns: int = 0
    checksum: int | None = None
    raw_bids: list[RawLevel] | None = None
    raw_asks: list[RawLevel] | None = None
    from_rest: bool = False
    seq: int | None = None  # Bybit cross sequence of a websocket snapshot; must never go backwards


@dataclass(slots=True)
class BookDelta:
    """An incremental book update.

    ``first_id``/``last_id`` are the update-id range it covers (Binance ``U``/``u``, OKX ``seqId`` in both);
    ``prev_id`` is the venue's pointer to the previous message (Binance USD-M ``pu``, OKX ``prevSeqId``), or
    ``None`` where the venue has none (Binance spot, Bybit, Kraken).
    """

    key: str
    first_id: int
    last_id: int
    prev_id: int | None
    bids: list[Level]
    asks: list[Level]
    venue_ms: int = 0
    recv_ns: int = 0
    checksum: int | None = None
    raw_bids: list[RawLevel] | None = None
    raw_asks: list[RawLevel] | None = None
    seq: int | None = None  # Bybit cross sequence; must never go backwards


@dataclass(slots=True)
class TopOfBook:
    """Best bid/ask from a ticker stream (Binance ``bookTicker``). ``update_id`` orders it against diffs."""

    key: str
    update_id: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    venue_ms: int = 0
    recv_ns: int = 0


class FundingSource(StrEnum):
    LIVE = "live"  # from the venue's stream
    REST = "rest"  # from a REST poll
    ASSUMED = "assumed"  # stated in configuration (e.g. the demo); never pretends to be live


@dataclass(slots=True)
class FundingUpdate:
    """Normalized funding state of one perpetual.

    ``rate`` is the decimal rate for one interval (0.0001 = 1 bp per interval); ``interval_ms`` the
    venue's interval for this symbol; ``next_funding_ms`` the next settlement (venue epoch ms).
    """

    key: str
    rate: float
    interval_ms: int
    next_funding_ms: int
    mark_price: float | None = None
    index_price: float | None = None
    venue_ms: int = 0
    recv_ns: int = 0
    source: FundingSource = FundingSource.LIVE

    @property
    def rate_per_hour(self) -> float:
        return self.rate * 3_600_000 / self.interval_ms


class ControlKind(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PONG = "pong"
    HEARTBEAT = "heartbeat"
    SERVER_SHUTDOWN = "server_shutdown"  # venue announced a disconnect: reconnect proactively
    ERROR = "error"
    IGNORED = "ignored"  # recognised and skipped on purpose (trades, klines...)


@dataclass(slots=True)
class Control:
    """A non-data frame: acks, pongs, heartbeats, venue notices and errors."""

    kind: ControlKind
    detail: str = ""
    key: str = ""


# ---- actions the runner performs on the protocol's behalf -------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Fetch a REST depth snapshot for ``key`` and feed it back as a :class:`BookSnapshot`."""

    key: str


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """Unsubscribe and subscribe ``key`` again (venues whose snapshot comes over the websocket)."""

    key: str
    reason: str = ""
    # Which of the key's subscriptions (a feeds.protocol.Channel value): the book's, or "funding" where a
    # ticker stream's snapshot, too, comes only on subscribe (Bybit's tickers).
    channel: str = "book"


@dataclass(frozen=True, slots=True)
class SendText:
    """Send a text frame (application-level ping, subscribe)."""

    text: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a new connection (venue notice, rollover); the runner overlaps it with the old one."""

    reason: str


BookUpdate = BookSnapshot | BookDelta | TopOfBook
Update = BookSnapshot | BookDelta | TopOfBook | FundingUpdate | Control
Action = FetchSnapshot | Resubscribe | SendText | Reconnect


@dataclass(slots=True)
class Received:
    """What one frame yielded: normalized updates plus actions for the runner."""

    updates: list[Update] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
