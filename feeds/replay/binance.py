"""Binance on the replay exchange: spot, USD-M and COIN-M market streams and REST depth.

Websocket paths under the mount (``/binance/<market>``), as Binance has them below its hosts:

* combined streams ``/stream?streams=a/b`` (frames wrapped ``{"stream":..,"data":..}``, as recorded);
* raw streams ``/ws`` and ``/ws/a/b`` (the ``data`` object alone);
* USD-M's 2026 routes: ``/public/...`` carries depth and bookTicker, ``/market/...`` everything else; a
  path without a route (``/stream``) carries only public data, as Binance announced (exchange-protocols
  §2.1). A subscription on the wrong route is acknowledged and never delivers, like the venue.

Requests ``{"method":"SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS","params":[..],"id":n}`` get Binance's
replies. Topics are ``<symbol>@<channel>`` with every diff-depth speed folded into ``@depth``: a
recording holds one speed, and a client configured for another still gets the recorded one. REST serves
``/api/v3/depth`` (spot), ``/fapi/v1/depth`` (USD-M), ``/dapi/v1/depth`` (COIN-M).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from feeds.binance.instruments import PATHS as EXCHANGE_INFO_PATHS
from feeds.binance.instruments import WEIGHTS as EXCHANGE_INFO_WEIGHTS
from feeds.binance.protocol import depth_weight
from feeds.book import OrderBook, Side
from feeds.errors import LocalProtocolError
from feeds.instruments import Market, Venue
from feeds.replay.plugin import NoTopicState, SessionReply, SnapshotQuery, register_plugin
from feeds.updates import book_key
from feeds.venues import Endpoints

_SNAPSHOT_PATHS = {Market.SPOT: "/api/v3/depth", Market.USDM: "/fapi/v1/depth", Market.COINM: "/dapi/v1/depth"}
_PUBLIC_CHANNELS = frozenset({"depth", "bookTicker"})  # USD-M /public; the rest is on /market
_PREFIX = b'{"stream":"'


def topic_of_stream(stream: str) -> str:
    """``btcusdt@depth@100ms`` → ``btcusdt@depth``; other stream names are their own topic.

    The case is kept: Binance's stream names are lower case, and ``BTCUSDT@depth`` is acknowledged and then
    never delivers, live and here (a client that upper-cases its streams must fail here too)."""
    symbol, _, channel = stream.partition("@")
    if channel == "depth" or channel.startswith("depth@"):
        return f"{symbol}@depth"
    if channel.startswith("markPrice"):
        return f"{symbol}@markPrice"
    return f"{symbol}@{channel}" if channel else stream


def _channel(topic: str) -> str:
    return topic.partition("@")[2].split("@", 1)[0].split("_", 1)[0]


class BinanceSession:
    """One client connection: combined or raw mode, route (USD-M), subscriptions by request."""

    def __init__(self, market: Market, *, combined: bool, route: str, streams: list[str]) -> None:
        self.market = market
        self.combined = combined
        self.route = route
        self._names: dict[str, str] = {}  # topic -> the stream name the client asked for
        self._initial = self._accept(streams)

    def _routable(self, topic: str) -> bool:
        if self.market is not Market.USDM:
            return True
        public = _channel(topic) in _PUBLIC_CHANNELS
        return public if self.route in ("public", "") else not public

    def _accept(self, streams: list[str]) -> list[str]:
        topics = []
        for name in streams:
            topic = topic_of_stream(name)
            self._names[topic] = name
            if self._routable(topic):
                topics.append(topic)
        return topics

    def initial_topics(self) -> list[str]:
        return list(self._initial)

    def on_text(self, text: str) -> SessionReply:
        try:
            request = orjson.loads(text)
            method, request_id = request["method"], request.get("id")
            params = request.get("params", [])
            if not isinstance(method, str) or not isinstance(params, list):
                raise TypeError("method must be a string and params a list")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            error = {"error": {"code": 2, "msg": f"Invalid request: {exc}"}, "id": None}
            return SessionReply(replies=[orjson.dumps(error)])
        reply = SessionReply()
        if method == "SUBSCRIBE":
            reply.subscribe = self._accept([str(p) for p in params])
            result: object = None
        elif method == "UNSUBSCRIBE":
            reply.unsubscribe = [topic_of_stream(str(p)) for p in params]
            for topic in reply.unsubscribe:
                self._names.pop(topic, None)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(self._names.values())
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            result = None if method == "SET_PROPERTY" else False
        else:
            error = {"error": {"code": 1, "msg": f"Unknown method {method!r}"}, "id": request_id}
            return SessionReply(replies=[orjson.dumps(error)])
        reply.replies.append(orjson.dumps({"result": result, "id": request_id}))
        return reply

    def wire(self, topic: str, payload: bytes) -> bytes:
        if self.combined:
            return payload
        # Raw mode: the event alone. Recorded envelopes are {"stream":"..","data":{..}}.
        cut = payload.find(b',"data":')
        return payload[cut + 8 : -1] if payload.startswith(_PREFIX) and cut > 0 else payload


class BinanceReplay(NoTopicState):
    """:class:`feeds.replay.plugin.ReplayPlugin` for Binance."""

    venue = Venue.BINANCE
    markets = frozenset({Market.SPOT, Market.USDM, Market.COINM})

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        if market is Market.USDM:
            return Endpoints(f"{ws_base}/public", http_base, {"market": f"{ws_base}/market"})
        return Endpoints(ws_base, http_base)

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> BinanceSession | None:
        route = ""
        if market is Market.USDM and path.split("/")[1:2] in (["public"], ["market"]):
            route = path.split("/")[1]
            path = path[len(route) + 1 :]
        streams = [s for s in query.get("streams", "").split("/") if s]
        if path == "/stream":
            return BinanceSession(market, combined=True, route=route, streams=streams)
        if path == "/ws" or path.startswith("/ws/"):
            named = [s for s in path[4:].split("/") if s]
            return BinanceSession(market, combined=False, route=route, streams=named)
        return None

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        if not payload.startswith(_PREFIX):
            return None  # replies and bare events are not replayed
        end = payload.find(b'"', len(_PREFIX))
        return topic_of_stream(payload[len(_PREFIX) : end].decode()) if end > 0 else None

    def book_key_of(self, market: Market, topic: str) -> str | None:
        symbol, _, channel = topic.partition("@")
        if channel != "depth" or symbol.startswith("!"):
            return None
        return book_key(Venue.BINANCE, market, symbol)

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        if path != _SNAPSHOT_PATHS.get(market) or not query.get("symbol"):
            return None
        key = book_key(Venue.BINANCE, market, query["symbol"])
        limit = query.get("limit")
        if limit is None:
            return SnapshotQuery(key)
        # As the venue: a limit it does not take is refused (-1100), never served as if valid.
        try:
            depth_weight(market, int(limit))
        except (ValueError, LocalProtocolError) as exc:
            why = str(exc) if isinstance(exc, LocalProtocolError) else f"limit {limit!r} is not an integer"
            return SnapshotQuery(key, refused=f"Illegal parameter 'limit': {why}")
        return SnapshotQuery(key, int(limit))

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        # Floats written back with repr() parse to the very same floats: the client's levels key exactly.
        bids = [[repr(p), repr(q)] for p, q in book.levels(Side.BID, query.limit)]
        asks = [[repr(p), repr(q)] for p, q in book.levels(Side.ASK, query.limit)]
        body: dict[str, object] = {"lastUpdateId": book.last_id}
        if market is not Market.SPOT:
            body["E"] = body["T"] = book.venue_ms
        body["bids"], body["asks"] = bids, asks
        return orjson.dumps(body)

    weight_header = "X-MBX-USED-WEIGHT-1M"

    def request_weight(self, market: Market, path: str, query: Mapping[str, str]) -> int:
        """The documented weight of a request (depth by its limit, exchangeInfo), else 1."""
        if path == _SNAPSHOT_PATHS.get(market):
            limit = query.get("limit", "")
            try:
                return depth_weight(market, int(limit) if limit.isdigit() else 100 if market is Market.SPOT else 500)
            except LocalProtocolError:
                return 1  # refused anyway (an invalid limit)
        if path == EXCHANGE_INFO_PATHS.get(market):
            return EXCHANGE_INFO_WEIGHTS[market]
        return 1

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        code = {429: -1003, 418: -1003, 404: -1121, 400: -1100}.get(status, -1000)
        return orjson.dumps({"code": code, "msg": message})

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        return []  # Binance books start from a REST snapshot

    def shutdown_notice(self, market: Market) -> bytes | None:
        return b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":0}}'

    def server_ping_interval_s(self, market: Market) -> float | None:
        return 20.0 if market is Market.SPOT else 180.0

    def max_incoming_per_s(self, market: Market) -> float | None:
        return 5.0 if market is Market.SPOT else 10.0


register_plugin(BinanceReplay())
