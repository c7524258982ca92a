"""OKX v5 on the replay exchange: the public websocket (books of every instrument type, funding-rate).

Websocket path ``/ws/v5/public`` under the mount. Client messages: the text ``ping`` (answered ``pong``),
``{"op":"subscribe"|"unsubscribe","args":[{"channel","instId"}]}`` (one ``{"event":...,"arg":...}`` reply per
arg, as OKX does). Topics: ``book:<instId>`` for every depth channel (``books``, ``books-l2-tbt``,
``books50-l2-tbt``: a recording holds one, a client asking for another gets it), ``<channel>:<instId>``
otherwise (``funding-rate:BTC-USD-SWAP``).

A subscription to a book the exchange already rebuilt starts with a snapshot of that rebuild, exactly as
OKX sends one on subscribe: the exact strings, the top-25 checksum, ``seqId`` when the recording has them.
REST ``GET /api/v5/market/books`` answers from the rebuild too. ``{"event":"notice","code":"64008"}`` is the
shutdown notice.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import msgspec
import orjson

from feeds.book import OrderBook, Side
from feeds.errors import MalformedFrame
from feeds.instruments import Market, Venue
from feeds.okx.checksum import book_checksum
from feeds.okx.protocol import BOOK_CHANNELS
from feeds.okx.symbols import market_of
from feeds.replay.plugin import NoTopicState, SessionReply, SnapshotQuery, register_plugin
from feeds.updates import RawLevel, book_key
from feeds.venues import Endpoints

WS_PATH = "/ws/v5/public"
REST_BOOKS = "/api/v5/market/books"
NOTICE = b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade."}'
_conn_ids = itertools.count(1)


class _Arg(msgspec.Struct):
    channel: str
    instId: str = ""


class _Push(msgspec.Struct):
    arg: _Arg | None = None
    event: str = ""


class _Request(msgspec.Struct):
    op: str
    args: list[_Arg] = msgspec.field(default_factory=list)
    id: str = ""


_push = msgspec.json.Decoder(_Push)
_request = msgspec.json.Decoder(_Request)


def topic(channel: str, inst_id: str) -> str:
    return f"book:{inst_id}" if channel in BOOK_CHANNELS else f"{channel}:{inst_id}"


def _raw(book: OrderBook, side: Side, depth: int | None) -> list[RawLevel] | None:
    """The exact strings of a side (books rebuilt with checksums keep them), or None."""
    bids, asks = book.depth()
    count = bids if side is Side.BID else asks
    try:
        return book.raw_levels(side, min(depth, count) if depth else count)
    except ValueError:
        return None


def _levels(book: OrderBook, side: Side, depth: int | None) -> list[list[str]]:
    raw = _raw(book, side, depth)
    if raw is not None:
        return [[p, q, "0", "0"] for p, q in raw]
    return [[repr(p), repr(q), "0", "0"] for p, q in book.levels(side, depth)]


def _book_data(book: OrderBook, depth: int | None, *, sequenced: bool) -> dict[str, object]:
    exact = _raw(book, Side.BID, 1) is not None
    data: dict[str, object] = {
        "asks": _levels(book, Side.ASK, depth),
        "bids": _levels(book, Side.BID, depth),
        "ts": str(book.venue_ms),
        "checksum": book_checksum(book) if exact else 0,
    }
    if sequenced:  # the recording carries seqId (2022 captures do not: their book ids are arrival numbers)
        data["seqId"], data["prevSeqId"] = book.last_id, -1
    return data


class OkxSession:
    """One client connection to ``/ws/v5/public``."""

    def __init__(self) -> None:
        self.conn_id = f"replay{next(_conn_ids)}"

    def initial_topics(self) -> list[str]:
        return []

    def on_text(self, text: str) -> SessionReply:
        if text == "ping":
            return SessionReply(replies=[b"pong"])
        try:
            request = _request.decode(text)
        except msgspec.DecodeError as exc:
            error = {"event": "error", "code": "60012", "msg": f"Invalid request: {exc}", "connId": self.conn_id}
            return SessionReply(replies=[orjson.dumps(error)])
        if request.op not in ("subscribe", "unsubscribe") or not request.args:
            error = {"event": "error", "code": "60012", "msg": f"Invalid request: op {request.op!r}"}
            return SessionReply(replies=[orjson.dumps({**error, "connId": self.conn_id})])
        reply = SessionReply()
        for arg in request.args:
            body: dict[str, object] = {"event": request.op, "arg": {"channel": arg.channel, "instId": arg.instId}}
            if request.id:
                body["id"] = request.id
            reply.replies.append(orjson.dumps({**body, "connId": self.conn_id}))
            (reply.subscribe if request.op == "subscribe" else reply.unsubscribe).append(topic(arg.channel, arg.instId))
        return reply

    def wire(self, topic: str, payload: bytes) -> bytes:
        return payload


class OkxReplay(NoTopicState):
    """:class:`feeds.replay.plugin.ReplayPlugin` for OKX (one mount serves every instrument type)."""

    venue = Venue.OKX
    markets = frozenset({Market.SPOT, Market.MARGIN, Market.SWAP, Market.FUTURES, Market.OPTION})

    def __init__(self) -> None:
        self.sequenced: set[str] = set()  # instIds whose recorded pushes carry seqId

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        return Endpoints(f"{ws_base}{WS_PATH}", http_base)

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> OkxSession | None:
        return OkxSession() if path.rstrip("/") == WS_PATH else None

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        if not payload.startswith(b'{"arg":'):
            return None  # event replies; a push always starts with its arg
        try:
            push = _push.decode(payload)
        except msgspec.DecodeError:
            return None
        if push.event or push.arg is None:
            return None
        if push.arg.channel in BOOK_CHANNELS and b'"seqId":' in payload:
            self.sequenced.add(push.arg.instId)
        return topic(push.arg.channel, push.arg.instId)

    def book_key_of(self, market: Market, topic: str) -> str | None:
        kind, _, inst_id = topic.partition(":")
        if kind != "book":
            return None
        try:
            return book_key(Venue.OKX, market_of(inst_id), inst_id)
        except MalformedFrame:
            return None

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        inst_id = query.get("instId", "")
        if path != REST_BOOKS or not inst_id:
            return None
        try:
            key = book_key(Venue.OKX, market_of(inst_id), inst_id)
        except MalformedFrame:
            return None
        size = query.get("sz", "1")  # OKX's default depth is 1 level
        return SnapshotQuery(key, int(size) if size.isdigit() else None)

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        inst_id = key.split(":", 2)[2]
        data = _book_data(book, query.limit, sequenced=inst_id in self.sequenced)
        return orjson.dumps({"code": "0", "msg": "", "data": [data]})

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        code = {429: "50011", 404: "51001"}.get(status, "50000")
        return orjson.dumps({"code": code, "msg": message, "data": []})

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        kind, _, inst_id = topic.partition(":")
        if kind != "book" or book is None:
            return []  # not rebuilt yet: the recorded snapshot will come on the timeline
        data = _book_data(book, None, sequenced=inst_id in self.sequenced)
        frame = {"arg": {"channel": "books", "instId": inst_id}, "action": "snapshot", "data": [data]}
        return [orjson.dumps(frame)]

    def shutdown_notice(self, market: Market) -> bytes | None:
        return NOTICE

    def server_ping_interval_s(self, market: Market) -> float | None:
        return None  # OKX expects the client's text ping

    def max_incoming_per_s(self, market: Market) -> float | None:
        return None  # OKX counts subscribe operations per hour, not messages per second


register_plugin(OkxReplay())
