"""Kraken spot websocket v2 ``book``, pure: the live protocol (docs.kraken.com spot-ws-book-v2).

* Subscribe ``{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}``,
  acknowledged by ``{"method":"subscribe","result":{...},"success":true}``.
* ``{"channel":"book","type":"snapshot"|"update","data":[{"symbol","bids":[{"price","qty"}],"asks",
  "checksum","timestamp"}]}``. Snapshots and updates both carry the checksum (unsigned CRC32 of the top
  10). Prices and quantities are JSON *numbers*: they are decoded as exact decimals so that the strings the
  checksum needs keep their trailing zeros (``0.00100000``), and as floats for the book.
* ``{"channel":"heartbeat"}`` every second while subscribed; ``{"channel":"status"}``; ``{"method":"pong"}``.

Truncation to the subscribed depth, checksum and recovery (resubscribe) are as in v1.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import msgspec
import orjson

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError, MalformedFrame
from feeds.instruments import Market, Venue
from feeds.kraken.checksum import book_checksum
from feeds.kraken.v1 import LIMITS
from feeds.levels import check_levels
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import KrakenRules
from feeds.sync import BookSync
from feeds.updates import BookDelta, BookSnapshot, Control, ControlKind, Level, RawLevel, Received, Update, book_key

URL = "wss://ws.kraken.com/v2"
DEPTHS = (10, 25, 100, 500, 1000)


class Level2(msgspec.Struct):
    price: Decimal
    qty: Decimal


class BookData(msgspec.Struct, kw_only=True):
    symbol: str
    bids: list[Level2] = msgspec.field(default_factory=list)
    asks: list[Level2] = msgspec.field(default_factory=list)
    checksum: int  # required: with no sequence numbers, the CRC32 is the only check a Kraken book has
    timestamp: str = ""  # RFC 3339, updates only


class Message(msgspec.Struct):
    channel: str = ""
    type: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")
    method: str = ""  # replies: subscribe | unsubscribe | pong
    success: bool = True
    error: str = ""


_message = msgspec.json.Decoder(Message)
_book_data = msgspec.json.Decoder(list[BookData])


def _levels(rows: list[Level2]) -> tuple[list[Level], list[RawLevel]]:
    return [(float(r.price), float(r.qty)) for r in rows], [(format(r.price, "f"), format(r.qty, "f")) for r in rows]


def _ms(stamp: str) -> int:
    return round(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else 0


class KrakenV2Protocol:
    """Kraken spot v2 ``book`` channel for one connection."""

    venue = Venue.KRAKEN
    market = Market.SPOT

    def __init__(self, *, depth: int = 10, limits: ConnectionLimits = LIMITS) -> None:
        if depth not in DEPTHS:
            raise LocalProtocolError(f"kraken: book depth {depth} is not one of {DEPTHS}")
        self.depth = depth
        self.limits = limits
        self._frame_no: dict[str, int] = {}

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        return base_url

    def _method(self, method: str, subscriptions: Sequence[Subscription]) -> list[str]:
        symbols = []
        for sub in subscriptions:
            if sub.channel is not Channel.BOOK:
                raise LocalProtocolError(f"kraken: no {sub.channel} channel (spot books only)")
            symbols.append(sub.venue_symbol)
        size = self.limits.max_args_per_subscribe
        return [
            orjson.dumps(
                {"method": method, "params": {"channel": "book", "symbol": symbols[i : i + size], "depth": self.depth}}
            ).decode()
            for i in range(0, len(symbols), size)
        ]

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._method("subscribe", subscriptions)

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._method("unsubscribe", subscriptions)

    def app_ping(self) -> str | None:
        return '{"method":"ping"}'

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        try:
            msg = _message.decode(frame)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(str(exc), venue="kraken", sample=frame) from exc
        if msg.method:
            if not msg.success:
                return Received([Control(ControlKind.ERROR, f"{msg.method}: {msg.error}")])
            kind = {"subscribe": ControlKind.SUBSCRIBED, "unsubscribe": ControlKind.UNSUBSCRIBED}.get(
                msg.method, ControlKind.PONG if msg.method == "pong" else ControlKind.IGNORED
            )
            return Received([Control(kind, msg.method)])
        if msg.channel == "heartbeat":
            return Received([Control(ControlKind.HEARTBEAT)])
        if msg.channel != "book":
            return Received([Control(ControlKind.IGNORED, msg.channel)])
        if msg.type not in ("snapshot", "update") or not msg.data:
            raise MalformedFrame(f"book push with type {msg.type!r}", venue="kraken", sample=frame)
        try:
            rows = _book_data.decode(msg.data)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(f"book: {exc}", venue="kraken", sample=frame) from exc
        updates: list[Update] = []
        for row in rows:
            key = book_key(Venue.KRAKEN, Market.SPOT, row.symbol)
            try:
                updates.append(self._book(key, row, msg.type == "snapshot", recv_ns))
            except MalformedFrame as exc:  # a level no book can hold
                raise exc.in_frame(frame) from None
            except ValueError as exc:  # refused for any reason, the row's changes are lost: resync its book
                raise MalformedFrame(f"book {row.symbol}: {exc}", venue="kraken", sample=frame, key=key) from exc
        return Received(updates)

    def _book(self, key: str, row: BookData, snapshot: bool, recv_ns: int) -> BookSnapshot | BookDelta:
        number = self._frame_no[key] = self._frame_no.get(key, 0) + 1
        bids, raw_bids = _levels(row.bids)
        asks, raw_asks = _levels(row.asks)
        check_levels(bids, asks, key=key, venue=Venue.KRAKEN)
        venue_ms = _ms(row.timestamp)
        if snapshot:
            return BookSnapshot(key, number, bids, asks, venue_ms, recv_ns, row.checksum, raw_bids, raw_asks)
        return BookDelta(key, number, number, None, bids, asks, venue_ms, recv_ns, row.checksum, raw_bids, raw_asks)

    def snapshot_request(self, key: str) -> RestRequest | None:
        return None

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        raise LocalProtocolError("kraken: books have no REST snapshot")

    def new_sync(self, key: str) -> BookSync:
        return BookSync(OrderBook(key, keep_raw=True), KrakenRules(), checksum=book_checksum, truncate_depth=self.depth)
