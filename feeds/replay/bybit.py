"""Bybit v5 on the replay exchange: ``/v5/public/{spot,linear,inverse}`` books and tickers.

Client messages: ``{"op":"ping"}``, ``{"op":"subscribe"|"unsubscribe","args":[topic...]}`` with Bybit's
replies (spot: ``ret_msg:"subscribe"``, derivatives: ``ret_msg:""``; more than 10 args on spot is refused,
as Bybit does). Topics are Bybit's own (``orderbook.1.BTCUSDT``, ``tickers.BTCUSDT``); recorded frames
are sent as they are. A subscription to a book the exchange already rebuilt starts with a ``snapshot`` of
that rebuild (Bybit sends one on every subscribe); so does a subscription to ``tickers``, with the fields
its recorded snapshot and deltas merged so far (deltas carry only the fields that changed).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import msgspec
import orjson

from feeds.book import OrderBook, Side
from feeds.instruments import Market, Venue
from feeds.replay.plugin import SessionReply, SnapshotQuery, register_plugin
from feeds.updates import book_key
from feeds.venues import Endpoints

PATHS = {Market.SPOT: "/v5/public/spot", Market.LINEAR: "/v5/public/linear", Market.INVERSE: "/v5/public/inverse"}
SPOT_MAX_ARGS = 10
_conn_ids = itertools.count(1)


class _Request(msgspec.Struct):
    op: str
    args: list[str] = msgspec.field(default_factory=list)
    req_id: str = ""


_request = msgspec.json.Decoder(_Request)


class BybitSession:
    """One client connection to one Bybit public endpoint."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.conn_id = f"replay-{next(_conn_ids)}"

    def initial_topics(self) -> list[str]:
        return []

    def _reply(self, op: str, req_id: str, *, success: bool = True, ret_msg: str = "") -> bytes:
        return orjson.dumps(
            {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id, "req_id": req_id, "op": op}
        )

    def on_text(self, text: str) -> SessionReply:
        try:
            request = _request.decode(text)
        except msgspec.DecodeError as exc:
            return SessionReply(replies=[self._reply("", "", success=False, ret_msg=f"error:{exc}")])
        op, req_id = request.op, request.req_id
        if op == "ping":
            if self.market is Market.SPOT:
                return SessionReply(replies=[self._reply("ping", req_id, ret_msg="pong")])
            pong = {"req_id": req_id, "op": "pong", "args": ["0"], "conn_id": self.conn_id}
            return SessionReply(replies=[orjson.dumps(pong)])
        if op not in ("subscribe", "unsubscribe"):
            return SessionReply(replies=[self._reply(op, req_id, success=False, ret_msg=f"error:unknown op {op}")])
        if self.market is Market.SPOT and len(request.args) > SPOT_MAX_ARGS:
            message = f"error:args size >{SPOT_MAX_ARGS}"
            return SessionReply(replies=[self._reply(op, req_id, success=False, ret_msg=message)])
        ret_msg = op if self.market is Market.SPOT else ""
        reply = SessionReply(replies=[self._reply(op, req_id, ret_msg=ret_msg)])
        if op == "subscribe":
            reply.subscribe = list(request.args)
        else:
            reply.unsubscribe = list(request.args)
        return reply

    def wire(self, topic: str, payload: bytes) -> bytes:
        return payload


class BybitReplay:
    """:class:`feeds.replay.plugin.ReplayPlugin` for Bybit v5 public streams."""

    venue = Venue.BYBIT
    markets = frozenset(PATHS)

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        return Endpoints(f"{ws_base}{PATHS[market]}", http_base)

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> BybitSession | None:
        return BybitSession(market) if path.rstrip("/") == PATHS.get(market) else None

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        start = payload.find(b'"topic":"')
        if start < 0 or start > 2:
            return None  # command replies have no topic; a push starts with it
        end = payload.find(b'"', start + 9)
        return payload[start + 9 : end].decode() if end > 0 else None

    def book_key_of(self, market: Market, topic: str) -> str | None:
        parts = topic.split(".")
        if len(parts) != 3 or parts[0] != "orderbook":
            return None
        return book_key(Venue.BYBIT, market, parts[2])

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        return None  # books start from the websocket snapshot

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        raise NotImplementedError("bybit books have no REST snapshot on the replay exchange")

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        return orjson.dumps({"retCode": 10000 + status, "retMsg": message, "result": {}})

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        if book is None or self.book_key_of(market, topic) is None:
            return []
        symbol = topic.split(".")[2]
        # Floats written with repr() parse back to the very same floats; the seq of a rebuild is not
        # kept by the book, so none is sent (the client then has nothing to compare it with).
        data = {
            "s": symbol,
            "b": [[repr(p), repr(q)] for p, q in book.levels(Side.BID)],
            "a": [[repr(p), repr(q)] for p, q in book.levels(Side.ASK)],
            "u": book.last_id,
        }
        return [orjson.dumps({"topic": topic, "type": "snapshot", "ts": book.venue_ms, "data": data})]

    def fold(self, market: Market, topic: str, state: object | None, payload: bytes) -> object | None:
        """``tickers``: (ts, merged fields) after a recorded snapshot or delta."""
        if not topic.startswith("tickers."):
            return None
        try:
            push = orjson.loads(payload)
            kind, data, ts = push["type"], push["data"], push["ts"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return state  # a garbled recording: the venue's state is what it was
        if kind == "snapshot" and isinstance(data, dict):
            return ts, dict(data)
        if kind == "delta" and isinstance(data, dict) and isinstance(state, tuple):
            return ts, {**state[1], **data}
        return state

    def state_frames(self, market: Market, topic: str, state: object) -> list[bytes]:
        if not topic.startswith("tickers.") or not isinstance(state, tuple):
            return []
        ts, fields = state
        return [orjson.dumps({"topic": topic, "type": "snapshot", "data": fields, "cs": 0, "ts": ts})]

    def shutdown_notice(self, market: Market) -> bytes | None:
        return None  # Bybit announces nothing before a disconnect

    def server_ping_interval_s(self, market: Market) -> float | None:
        return None  # the client pings ({"op":"ping"} every 20 s)

    def max_incoming_per_s(self, market: Market) -> float | None:
        return None


register_plugin(BybitReplay())
