"""``csv-replay``: a tiny protocol for order-book *snapshots* replayed from normalized CSV series, pure.

Not a venue's wire protocol. The defi-arbitrage series (``data/defi-arbitrage``: Binance and Huobi
LINK/USDT, 10-level books every second) is a normalized CSV, not a capture of frames, so it cannot be
served in the venues' own protocols. The replay exchange's ``csvbook`` plugin streams each CSV row as
one JSON snapshot frame, and this protocol decodes them; every book it builds is labelled ``csv-replay``
(:data:`LABEL`) in logs and summaries, so nobody mistakes it for a live Binance or Huobi feed.

Frames (one per CSV row and symbol)::

    {"type":"snapshot","venue":"huobi","symbol":"LINKUSDT","seq":17,"ts":1629417601000,
     "bids":[[27.092,22.0],...],"asks":[[27.0947,2.99],...]}

    {"type":"subscribed","symbols":["LINKUSDT"]}          ack of our subscribe
    {"type":"end"}                                          the series is over (nothing follows)

Subscribe: ``{"op":"subscribe","symbols":["LINKUSDT"]}``. Each snapshot replaces the book (there are
no deltas), ``seq`` is the row number (the book's update id), ``ts`` the row's time in epoch ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import msgspec

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError, MalformedFrame
from feeds.instruments import Market, Venue
from feeds.levels import check_levels
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import Verdict
from feeds.sync import BookSync
from feeds.updates import BookDelta, BookSnapshot, Control, ControlKind, FetchSnapshot, Received, Resubscribe, book_key

LABEL = "csv-replay"
PATH = "/csvbook"

LIMITS = ConnectionLimits(
    max_streams_per_connection=64,
    max_args_per_subscribe=64,
    max_messages_per_second=10.0,
    idle_timeout_s=60.0,
)


class _Snapshot(msgspec.Struct, frozen=True, tag_field="type", tag="snapshot"):
    venue: str
    symbol: str
    seq: int
    ts: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class _Subscribed(msgspec.Struct, frozen=True, tag_field="type", tag="subscribed"):
    symbols: list[str]


class _End(msgspec.Struct, frozen=True, tag_field="type", tag="end"):
    pass


_Frame = _Snapshot | _Subscribed | _End


class SnapshotOnlyRules:
    """Sequence rules of a snapshot-only stream: every snapshot replaces the book; a delta is a bug upstream."""

    name: ClassVar[str] = "snapshot_only"
    bootstrap_from_rest: ClassVar[bool] = False
    chained: ClassVar[bool] = True  # every frame is a whole book: a lost one is replaced by the next
    ids_follow_time: ClassVar[bool] = False
    recovery: ClassVar[type[FetchSnapshot] | type[Resubscribe]] = Resubscribe

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        return True

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        return Verdict.GAP


class CsvBookProtocol:
    """One venue's CSV-replayed books (``venue``/``market`` are the labels of the series).

    ``accept`` lists the venue labels whose frames this instance turns into books (default: its own);
    the replay exchange's own rebuild accepts every label it serves.
    """

    limits = LIMITS

    def __init__(self, venue: Venue, market: Market = Market.SPOT, *, accept: tuple[Venue, ...] = ()) -> None:
        self.venue = venue
        self.market = market
        self._accept = frozenset(v.value for v in accept or (venue,))
        self._decoder = msgspec.json.Decoder(_Frame)

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        return base_url.rstrip("/") + PATH

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return [self._request("subscribe", subscriptions)]

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return [self._request("unsubscribe", subscriptions)]

    def _request(self, op: Literal["subscribe", "unsubscribe"], subscriptions: Sequence[Subscription]) -> str:
        for sub in subscriptions:
            if sub.channel is not Channel.BOOK:
                raise LocalProtocolError(f"{LABEL}: only book snapshots are replayed, not {sub.channel}")
        symbols = sorted({s.venue_symbol.upper() for s in subscriptions})
        return msgspec.json.encode({"op": op, "venue": self.venue.value, "symbols": symbols}).decode()

    def app_ping(self) -> str | None:
        return None

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        try:
            msg = self._decoder.decode(frame)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(str(exc), venue=LABEL, sample=frame) from None
        if isinstance(msg, _Snapshot):
            if msg.venue not in self._accept:
                raise MalformedFrame(f"snapshot for venue {msg.venue!r} on the {self.venue} stream", venue=LABEL)
            key = book_key(msg.venue, self.market, msg.symbol)
            # A refused snapshot loses nothing the next one does not replace (SnapshotOnlyRules.chained).
            check_levels(msg.bids, msg.asks, key=key, venue=LABEL, sample=frame)
            snapshot = BookSnapshot(
                key=key,
                last_id=msg.seq,
                bids=msg.bids,
                asks=msg.asks,
                venue_ms=msg.ts,
                recv_ns=recv_ns,
            )
            return Received(updates=[snapshot])
        if isinstance(msg, _Subscribed):
            return Received(updates=[Control(ControlKind.SUBSCRIBED, ",".join(msg.symbols))])
        return Received(updates=[Control(ControlKind.HEARTBEAT, "end of series")])

    def snapshot_request(self, key: str) -> RestRequest | None:
        return None  # every frame is a snapshot

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        raise LocalProtocolError(f"{LABEL}: there is no REST snapshot ({key})")

    def new_sync(self, key: str) -> BookSync:
        return BookSync(OrderBook(key), SnapshotOnlyRules())
