"""Binance market-data protocol (spot, USD-M, COIN-M), pure: frames in, normalized updates and actions out.

One instance speaks one websocket endpoint of one market, in combined-stream mode
(``<base>/stream?streams=a/b``; frames ``{"stream":"btcusdt@depth@100ms","data":{...}}``).

Hot path: the stream name is read from the frame's first bytes (Binance always writes ``stream`` first)
and looked up in a per-name route cache, so trades, aggTrades and klines are skipped without decoding
their body; depth and bookTicker bodies are decoded by typed msgspec decoders straight into floats.
Frames that do not start with the envelope (request replies, raw ``/ws/`` events, reordered keys) take a
slower generic path. Anything undecodable raises :class:`MalformedFrame`; nothing is half-applied,
because a frame is decoded completely before any update is built.

Book sync rules (``feeds.sequencing``): spot uses ``U``/``u`` (2025-11 procedure), USD-M and COIN-M the
``pu`` chain. REST snapshots come from ``/api/v3/depth``, ``/fapi/v1/depth``, ``/dapi/v1/depth``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import msgspec

from feeds.binance.schemas import AnyFrame, BookTicker, BookTickerFrame, DepthFrame, DepthSnapshot, DepthUpdate
from feeds.book import OrderBook
from feeds.errors import LocalProtocolError, MalformedFrame, VenueRejected
from feeds.instruments import ContractType, Market, Venue
from feeds.levels import check_levels
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import BinanceFuturesRules, BinanceSpotRules, SequenceRules
from feeds.sync import BookSync
from feeds.updates import (
    BookDelta,
    BookSnapshot,
    Control,
    ControlKind,
    FundingUpdate,
    Received,
    Reconnect,
    TopOfBook,
    Update,
    book_key,
)

# ---- real defaults (all overridable: the protocol takes base URLs as arguments) ----------------------

SPOT_WS_URL = "wss://stream.binance.com:9443"
SPOT_REST_URL = "https://api.binance.com"
# USD-M traffic is split by route since 2026 (exchange-protocols.md §2.1): depth and bookTicker on
# /public, markPrice and the rest on /market. A bare root only carries /public data.
USDM_WS_URL = "wss://fstream.binance.com/public"
USDM_MARKET_WS_URL = "wss://fstream.binance.com/market"
USDM_REST_URL = "https://fapi.binance.com"
COINM_WS_URL = "wss://dstream.binance.com"
COINM_REST_URL = "https://dapi.binance.com"

_DAY_S = 24 * 3600.0

SPOT_LIMITS = ConnectionLimits(
    max_streams_per_connection=1024,  # BN-SPOT-WS: max 1024 streams per connection
    max_args_per_subscribe=200,  # no documented per-message cap; keeps one SUBSCRIBE frame small
    max_messages_per_second=5.0,  # BN-SPOT-WS: 5 incoming messages/s (pings, pongs and JSON count)
    max_lifetime_s=_DAY_S,  # disconnected at 24 h
    app_ping_interval_s=None,  # the server pings every 20 s; websocket pongs suffice
    idle_timeout_s=60.0,  # server pings every 20 s: 60 s of silence means the link is dead
)
FUTURES_LIMITS = ConnectionLimits(
    max_streams_per_connection=200,  # docs say 1024, a stored copy and nautilus say 200: design for 200
    max_args_per_subscribe=200,
    max_messages_per_second=10.0,  # 10 incoming messages/s per connection
    max_lifetime_s=_DAY_S,
    app_ping_interval_s=None,  # the server pings every 3 min and waits 10 min for the pong
    idle_timeout_s=200.0,  # longer than the 3-minute server ping interval
)

_SNAPSHOT_PATH = {Market.SPOT: "/api/v3/depth", Market.USDM: "/fapi/v1/depth", Market.COINM: "/dapi/v1/depth"}
_FUTURES_LIMIT_WEIGHT = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}  # fapi/dapi depth weights


def depth_weight(market: Market, limit: int) -> int:
    """REST depth request weight for ``limit`` levels, per the venue docs (§1.2 spot, §2.2 futures)."""
    if market is Market.SPOT:
        if not 1 <= limit <= 5000:
            raise LocalProtocolError(f"binance spot depth limit must be 1..5000, got {limit}")
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if limit not in _FUTURES_LIMIT_WEIGHT:
        raise LocalProtocolError(f"binance {market} depth limit must be one of {sorted(_FUTURES_LIMIT_WEIGHT)}")
    return _FUTURES_LIMIT_WEIGHT[limit]


class _Route(Enum):
    DEPTH = "depth"
    TOP = "top"
    FUNDING = "funding"
    SHUTDOWN = "shutdown"
    IGNORED = "ignored"


# The hot routes as module globals: reading an enum member through its class costs ~5x a global here.
_TOP = _Route.TOP
_DEPTH = _Route.DEPTH
_IGNORED = _Route.IGNORED

# Streams we recognise and skip on purpose (the body is never decoded).
_IGNORED_STREAMS = frozenset(
    {
        "trade",
        "aggTrade",
        "kline",
        "continuousKline",
        "indexPriceKline",
        "markPriceKline",
        "miniTicker",
        "ticker",
        "avgPrice",
        "forceOrder",
        "indexPrice",
        "compositeIndex",
        "contractInfo",
        "assetIndex",
        "depth5",  # partial-depth streams: complete small books, not used for sync
        "depth10",
        "depth20",
    }
)

_STREAM_PREFIX = b'{"stream":"'
_PREFIX_LEN = len(_STREAM_PREFIX)

FundingParser = Callable[[bytes, int], list[FundingUpdate | Control]]


@dataclass(frozen=True, slots=True)
class _RouteEntry:
    route: _Route
    key: str  # "" for all-market streams: the key comes from the event's symbol
    symbol: str  # upper-case venue symbol, "" for all-market streams
    ignored: Control | None = None


class BinanceProtocol:
    """:class:`feeds.protocol.VenueProtocol` for one Binance market (spot, USD-M or COIN-M).

    ``ws_url``/``rest_url`` are the bases this instance was configured with (real defaults per market);
    the runner passes the websocket base to :meth:`url` and joins :meth:`snapshot_request` paths to the
    REST base. ``contract_sizes`` (COIN-M: USD per contract, from ``/dapi/v1/exchangeInfo``) is required
    for every COIN-M symbol a book is made for. ``funding_parser`` handles ``markPrice`` frames on
    futures (``feeds.binance.funding``); without it those frames are skipped as ignored.
    """

    venue: Venue = Venue.BINANCE

    def __init__(
        self,
        market: Market,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        depth_speed: str = "100ms",
        snapshot_limit: int = 1000,
        contract_sizes: Mapping[str, float] | None = None,
        funding_parser: FundingParser | None = None,
    ) -> None:
        if market not in _SNAPSHOT_PATH:
            raise LocalProtocolError(f"binance has no {market} market (spot, usdm, coinm)")
        if depth_speed not in ("", "100ms", "250ms", "500ms", "0ms"):
            raise LocalProtocolError(f"binance depth speed {depth_speed!r}: expected '', 100ms, 250ms, 500ms")
        self.market = market
        self.futures = market is not Market.SPOT
        self.limits = FUTURES_LIMITS if self.futures else SPOT_LIMITS
        default_ws, default_rest = {
            Market.SPOT: (SPOT_WS_URL, SPOT_REST_URL),
            Market.USDM: (USDM_WS_URL, USDM_REST_URL),
            Market.COINM: (COINM_WS_URL, COINM_REST_URL),
        }[market]
        self.ws_url = ws_url or default_ws
        self.rest_url = rest_url or default_rest
        self.depth_speed = depth_speed
        self.snapshot_limit = snapshot_limit
        self.snapshot_weight = depth_weight(market, snapshot_limit)
        self.contract_sizes = dict(contract_sizes or {})
        self.funding_parser = funding_parser
        self._prefix = f"{Venue.BINANCE}:{market}:"
        self._routes: dict[str, _RouteEntry] = {}
        # The same entries keyed by the name's raw bytes, as cut from the frame (no decode per frame).
        self._routes_raw: dict[bytes, _RouteEntry] = {}
        self._depth_frame = msgspec.json.Decoder(DepthFrame, strict=False)
        self._top_frame = msgspec.json.Decoder(BookTickerFrame, strict=False)
        self._depth = msgspec.json.Decoder(DepthUpdate, strict=False)
        self._top = msgspec.json.Decoder(BookTicker, strict=False)
        self._any = msgspec.json.Decoder(AnyFrame)
        self._snapshot = msgspec.json.Decoder(DepthSnapshot, strict=False)
        self._next_id = 1
        self._pending: dict[int, str] = {}  # request id -> method, until acknowledged

    # ---- what to send ------------------------------------------------------------------------------

    def stream_name(self, sub: Subscription) -> str:
        symbol = sub.venue_symbol.lower()
        if sub.channel is Channel.BOOK:
            return f"{symbol}@depth@{self.depth_speed}" if self.depth_speed else f"{symbol}@depth"
        if sub.channel is Channel.TOP:
            return f"{symbol}@bookTicker"
        if not self.futures:
            raise LocalProtocolError(f"binance spot has no funding stream ({sub.venue_symbol})")
        return f"{symbol}@markPrice@1s"

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        if len(subscriptions) > self.limits.max_streams_per_connection:
            raise LocalProtocolError(
                f"{len(subscriptions)} streams exceed binance {self.market}'s "
                f"{self.limits.max_streams_per_connection} per connection"
            )
        streams = "/".join(self.stream_name(s) for s in subscriptions)
        return f"{base_url.rstrip('/')}/stream?streams={streams}" if streams else f"{base_url.rstrip('/')}/stream"

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._requests("SUBSCRIBE", subscriptions)

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._requests("UNSUBSCRIBE", subscriptions)

    def _requests(self, method: str, subscriptions: Sequence[Subscription]) -> list[str]:
        names = [self.stream_name(s) for s in subscriptions]
        step = self.limits.max_args_per_subscribe
        frames = []
        for i in range(0, len(names), step):
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = method
            body = {"method": method, "params": names[i : i + step], "id": request_id}
            frames.append(msgspec.json.encode(body).decode())
        return frames

    def app_ping(self) -> str | None:
        return None  # Binance pings with websocket ping frames; the client library answers them

    # ---- what arrives ------------------------------------------------------------------------------

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        # websockets hands text frames over as str; the prefix scan and msgspec both want bytes.
        raw = frame.encode() if isinstance(frame, str) else frame
        if raw.startswith(_STREAM_PREFIX):
            end = raw.find(b'"', _PREFIX_LEN)
            if end > 0:
                name = raw[_PREFIX_LEN:end]
                entry = self._routes_raw.get(name) or self._route_raw(name, raw)
                # The two hot routes are built inline (this runs for every frame): module-level aliases
                # instead of enum attributes, positional constructor arguments, no helper calls.
                route = entry.route
                if route is _TOP:
                    try:
                        t = self._top_frame.decode(raw).data
                    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
                        raise MalformedFrame(f"top frame: {exc}", venue=Venue.BINANCE, sample=raw) from None
                    symbol = entry.symbol
                    if not symbol:  # an all-market stream (!bookTicker): the key comes from the event
                        return Received([self._ticker(entry, t, recv_ns, raw)])
                    if t.s != symbol:
                        raise MalformedFrame(
                            f"bookTicker for {t.s} on stream of {symbol}", venue=Venue.BINANCE, sample=raw
                        )
                    return Received([TopOfBook(entry.key, t.u, t.b, t.B, t.a, t.A, t.E, recv_ns)])
                if route is _DEPTH:
                    try:
                        d = self._depth_frame.decode(raw).data
                    except msgspec.DecodeError as exc:
                        raise MalformedFrame(
                            f"depth frame: {exc}", venue=Venue.BINANCE, sample=raw, key=entry.key
                        ) from None
                    return Received([self._delta(entry, d, recv_ns, raw)])
                return self._other(entry, raw, recv_ns)
        return self._slow_path(raw, recv_ns)

    def _other(self, entry: _RouteEntry, raw: bytes, recv_ns: int) -> Received:
        if entry.route is _IGNORED:  # trades, klines: one in five recorded frames
            assert entry.ignored is not None
            return Received([entry.ignored])
        if entry.route is _Route.SHUTDOWN:
            return Received(
                [Control(ControlKind.SERVER_SHUTDOWN, "serverShutdown")], [Reconnect("binance serverShutdown")]
            )
        # FUNDING: the funding parser owns these frames (feeds.binance.funding).
        if self.funding_parser is None:
            return Received([Control(ControlKind.IGNORED, "markPrice", entry.key)])
        updates: list[Update] = list(self.funding_parser(raw, recv_ns))
        if entry.symbol:  # one symbol's stream: an event naming another must not become that symbol's funding
            for update in updates:
                if update.key != entry.key:
                    raise MalformedFrame(
                        f"markPrice for {update.key} on stream of {entry.symbol}", venue=Venue.BINANCE, sample=raw
                    )
        return Received(updates)

    def _route_raw(self, name: bytes, raw: bytes) -> _RouteEntry:
        """:meth:`_route` for a name as cut from a frame; cached by those bytes."""
        text = name.decode("utf-8", "replace")
        entry = self._routes.get(text) or self._route(text, raw)
        self._routes_raw[name] = entry
        return entry

    def _route(self, name: str, raw: bytes) -> _RouteEntry:
        """Classify a stream name once; the result is cached per name."""
        if name.startswith("!"):  # all-market streams: !bookTicker, !markPrice@arr, !serverShutdown
            symbol, channel = "", name[1:].split("@", 1)[0]
        elif "@" in name:
            symbol, rest = name.split("@", 1)
            symbol = symbol.upper()
            channel = rest.split("@", 1)[0].split("_", 1)[0]
        else:
            raise MalformedFrame(f"unknown stream {name!r}", venue=Venue.BINANCE, sample=raw)
        key = book_key(Venue.BINANCE, self.market, symbol) if symbol else ""
        if channel == "depth":
            route = _Route.DEPTH
        elif channel == "bookTicker":
            route = _Route.TOP
        elif channel == "serverShutdown":
            route = _Route.SHUTDOWN
        elif channel == "markPrice" and self.futures:
            route = _Route.FUNDING
        elif channel in _IGNORED_STREAMS or channel == "markPrice":
            entry = _RouteEntry(_Route.IGNORED, key, symbol, Control(ControlKind.IGNORED, channel, key))
            self._routes[name] = entry
            return entry
        else:
            raise MalformedFrame(f"unknown stream {name!r}", venue=Venue.BINANCE, sample=raw)
        entry = _RouteEntry(route, key, symbol)
        self._routes[name] = entry
        return entry

    def _delta(self, entry: _RouteEntry, d: DepthUpdate, recv_ns: int, raw: bytes) -> BookDelta:
        if entry.symbol and d.s != entry.symbol:
            raise MalformedFrame(f"depth event for {d.s} on stream of {entry.symbol}", venue=Venue.BINANCE, sample=raw)
        if self.futures and d.pu is None:
            raise MalformedFrame("futures depthUpdate without pu", venue=Venue.BINANCE, sample=raw)
        if d.u < d.U:
            raise MalformedFrame(f"depthUpdate with U {d.U} > u {d.u}", venue=Venue.BINANCE, sample=raw)
        key = entry.key or book_key(Venue.BINANCE, self.market, d.s)
        check_levels(d.b, d.a, key=key, venue=Venue.BINANCE, sample=raw)
        return BookDelta(key, d.U, d.u, d.pu if self.futures else None, d.b, d.a, d.E, recv_ns)  # positional: cheaper

    def _ticker(self, entry: _RouteEntry, t: BookTicker, recv_ns: int, raw: bytes) -> TopOfBook:
        if entry.symbol and t.s != entry.symbol:
            raise MalformedFrame(f"bookTicker for {t.s} on stream of {entry.symbol}", venue=Venue.BINANCE, sample=raw)
        key = entry.key or book_key(Venue.BINANCE, self.market, t.s)
        return TopOfBook(key, t.u, t.b, t.B, t.a, t.A, t.E, recv_ns)

    def _slow_path(self, raw: bytes, recv_ns: int) -> Received:
        """Frames without the leading envelope: replies, errors, raw events, reordered keys."""
        try:
            f = self._any.decode(raw)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(f"not a Binance frame: {exc}", venue=Venue.BINANCE, sample=raw) from None
        try:
            if f.stream is not None:
                if not f.data:
                    raise MalformedFrame("combined frame without data", venue=Venue.BINANCE, sample=raw)
                entry = self._routes.get(f.stream) or self._route(f.stream, raw)
                if entry.route is _Route.DEPTH:
                    return Received([self._delta(entry, self._depth.decode(f.data), recv_ns, raw)])
                if entry.route is _Route.TOP:
                    return Received([self._ticker(entry, self._top.decode(f.data), recv_ns, raw)])
                return self._other(entry, raw, recv_ns)
            if f.e is not None:  # a raw event (``/ws/<stream>`` mode)
                any_symbol = _RouteEntry(_Route.DEPTH, "", "")
                if f.e == "depthUpdate":
                    return Received([self._delta(any_symbol, self._depth.decode(raw), recv_ns, raw)])
                if f.e == "bookTicker":
                    return Received([self._ticker(any_symbol, self._top.decode(raw), recv_ns, raw)])
                if f.e == "serverShutdown":
                    return self._other(_RouteEntry(_Route.SHUTDOWN, "", ""), raw, recv_ns)
                if f.e == "markPriceUpdate" and self.futures:
                    return self._other(_RouteEntry(_Route.FUNDING, "", ""), raw, recv_ns)
                if f.e in _IGNORED_STREAMS or f.e in ("24hrTicker", "24hrMiniTicker", "markPriceUpdate"):
                    return Received([Control(ControlKind.IGNORED, f.e)])
                raise MalformedFrame(f"unknown event {f.e!r}", venue=Venue.BINANCE, sample=raw)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(f"event body: {exc}", venue=Venue.BINANCE, sample=raw) from None
        return self._reply(f, raw)

    def _reply(self, f: AnyFrame, raw: bytes) -> Received:
        if f.error is not None or f.code is not None:
            code, msg = (f.error.code, f.error.msg) if f.error is not None else (f.code, f.msg or "")
            if isinstance(f.id, int):
                self._pending.pop(f.id, None)
            return Received([Control(ControlKind.ERROR, f"binance error {code}: {msg} (request id {f.id})")])
        if f.id is not None:  # {"result":null,"id":1}: an acknowledged request
            method = self._pending.pop(f.id, "") if isinstance(f.id, int) else ""
            kind = ControlKind.UNSUBSCRIBED if method == "UNSUBSCRIBE" else ControlKind.SUBSCRIBED
            if not method:
                return Received([Control(ControlKind.IGNORED, f"reply to unknown request id {f.id}")])
            return Received([Control(kind, f"request id {f.id}")])
        raise MalformedFrame("unrecognised frame", venue=Venue.BINANCE, sample=raw)

    # ---- REST snapshots ----------------------------------------------------------------------------

    def snapshot_request(self, key: str) -> RestRequest:
        symbol = self._symbol_of(key)
        return RestRequest(
            "GET",
            _SNAPSHOT_PATH[self.market],
            {"symbol": symbol, "limit": str(self.snapshot_limit)},
            weight=self.snapshot_weight,
        )

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        try:
            snap = self._snapshot.decode(body)
        except msgspec.DecodeError as exc:
            rejected = _rest_error(body)
            if rejected is not None:
                raise VenueRejected(Venue.BINANCE, f"depth snapshot for {key}: {rejected}") from None
            raise MalformedFrame(f"depth snapshot for {key}: {exc}", venue=Venue.BINANCE, sample=body) from None
        check_levels(snap.bids, snap.asks, key=key, venue=Venue.BINANCE, sample=body)
        return BookSnapshot(
            key, snap.lastUpdateId, snap.bids, snap.asks, venue_ms=snap.E, recv_ns=recv_ns, from_rest=True
        )

    # ---- books -------------------------------------------------------------------------------------

    def new_sync(self, key: str) -> BookSync:
        symbol = self._symbol_of(key)
        rules: SequenceRules = BinanceFuturesRules() if self.futures else BinanceSpotRules()
        if self.market is Market.COINM:
            size = self.contract_sizes.get(symbol)
            if size is None:
                raise LocalProtocolError(f"{key}: COIN-M contract size unknown (pass contract_sizes from exchangeInfo)")
            book = OrderBook(key, contract_type=ContractType.INVERSE, contract_size=size)
        else:
            book = OrderBook(key)
        # No checksum: a crossed book (never a market state; none in the recordings) is the only sign of a
        # corrupt level that still chains, so it resyncs.
        return BookSync(book, rules, resync_on_crossed=True)

    def _symbol_of(self, key: str) -> str:
        if not key.startswith(self._prefix) or len(key) == len(self._prefix):
            raise LocalProtocolError(f"book key {key!r} is not a binance {self.market} key")
        return key[len(self._prefix) :]


def symbol_from_key(key: str) -> str:
    """The venue symbol part of a book key (``binance:spot:BTCUSDT`` → ``BTCUSDT``)."""
    return key.rsplit(":", 1)[-1]


class _RestError(msgspec.Struct):
    code: int
    msg: str


def _rest_error(body: bytes) -> str | None:
    """``{"code":-1121,"msg":"Invalid symbol."}`` → its text; None if the body is not an error reply."""
    try:
        err = msgspec.json.decode(body, type=_RestError)
    except msgspec.DecodeError:
        return None
    return f"code {err.code}: {err.msg}"


__all__ = [
    "COINM_REST_URL",
    "COINM_WS_URL",
    "FUTURES_LIMITS",
    "SPOT_LIMITS",
    "SPOT_REST_URL",
    "SPOT_WS_URL",
    "USDM_MARKET_WS_URL",
    "USDM_REST_URL",
    "USDM_WS_URL",
    "BinanceProtocol",
    "depth_weight",
    "symbol_from_key",
]
