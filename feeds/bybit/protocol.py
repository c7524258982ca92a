"""Bybit v5 public websocket, pure: ``orderbook.{depth}.{symbol}`` books and ``tickers.{symbol}`` funding.

One protocol instance speaks one endpoint (``/v5/public/spot``, ``/v5/public/linear``, ...).

* Books: a ``snapshot`` replaces the book at any time (Bybit re-sends one when its side had trouble;
  ``u == 1`` after a service restart), then ``delta`` messages (size 0 deletes). No prev-id rule is
  documented, so trouble is detected defensively (:class:`feeds.sequencing.BybitRules`): ``seq`` going
  backwards, a crossed book, or a silent symbol each resubscribe that symbol only.
* Funding: linear/inverse ``tickers`` snapshot + delta merge (:class:`feeds.bybit.funding.TickerMerge`).
  A refused delta drops its symbol's merged fields; as Bybit sends a ticker snapshot on subscribe (its
  documentation says no more than "snapshot, then deltas"; what it sends later is deltas only), the next
  delta of that symbol asks for one: a ``Resubscribe`` of its ``tickers`` topic, again at most every
  :data:`TICKER_ASK_AGAIN_NS` until a snapshot merges.
* Limits: at most 10 args per spot subscribe request; an application ``{"op":"ping"}`` every 20 s.

Silence is judged from the receive times the runner passes in (no clock here): when any frame arrives,
at most once a second, books not heard of for ``silence_s`` are resubscribed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import orjson

from feeds.book import OrderBook
from feeds.bybit.funding import TickerMerge
from feeds.bybit.schemas import BookData, Envelope, TickerFields
from feeds.errors import LocalProtocolError, MalformedFrame
from feeds.instruments import ContractType, InstrumentSpec, Market, Venue
from feeds.levels import check_levels
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import BybitRules
from feeds.sync import BookSync
from feeds.updates import (
    BookDelta,
    BookSnapshot,
    Control,
    ControlKind,
    Received,
    Resubscribe,
    Update,
    book_key,
)

TICKER_ASK_AGAIN_NS = 15 * 1_000_000_000  # a ticker snapshot asked for and not merged: asked again after this

URLS = {
    Market.SPOT: "wss://stream.bybit.com/v5/public/spot",
    Market.LINEAR: "wss://stream.bybit.com/v5/public/linear",
    Market.INVERSE: "wss://stream.bybit.com/v5/public/inverse",
}
DEPTHS = {Market.SPOT: (1, 50, 200, 1000), Market.LINEAR: (1, 50, 200, 1000), Market.INVERSE: (1, 50, 200, 1000)}

# exchange-protocols.md §3.1: spot ≤ 10 args per subscribe; a public connection's args total at most
# 21,000 characters; heartbeat recommended every 20 s, cut after 10 min without one.
SPOT_LIMITS = ConnectionLimits(
    max_streams_per_connection=200,
    max_args_per_subscribe=10,
    max_messages_per_second=5.0,
    app_ping_interval_s=20.0,
    idle_timeout_s=60.0,
)
DERIVATIVES_LIMITS = ConnectionLimits(
    max_streams_per_connection=200,
    max_args_per_subscribe=50,
    max_messages_per_second=5.0,
    app_ping_interval_s=20.0,
    idle_timeout_s=60.0,
)
_SILENCE_CHECK_NS = 1_000_000_000

_envelope = msgspec.json.Decoder(Envelope)
_book = msgspec.json.Decoder(BookData)
_ticker = msgspec.json.Decoder(TickerFields)


class BybitProtocol:
    """Bybit v5 public books (and linear/inverse funding) for one connection.

    ``intervals_ms`` gives funding intervals from instrument metadata for tickers that do not state
    ``fundingIntervalHour``; ``specs`` may override contract terms (spot and linear quantities are base
    units, inverse contracts are 1 USD each). ``silence_s`` is how long a subscribed book may stay silent
    before it is resubscribed (level 1 re-sends its snapshot every 3 s even when unchanged).
    """

    venue = Venue.BYBIT

    def __init__(
        self,
        market: Market = Market.LINEAR,
        *,
        depth: int = 50,
        intervals_ms: Mapping[str, int] | None = None,
        specs: Mapping[str, InstrumentSpec] | None = None,
        silence_s: float = 60.0,
        limits: ConnectionLimits | None = None,
    ) -> None:
        if market not in DEPTHS:
            raise LocalProtocolError(f"bybit: market {market} is not spot, linear or inverse")
        if depth not in DEPTHS[market]:
            raise LocalProtocolError(f"bybit {market}: book depth {depth} is not one of {DEPTHS[market]}")
        self.market = market
        self.depth = depth
        self.specs: Mapping[str, InstrumentSpec] = specs or {}
        self.limits = limits or (SPOT_LIMITS if market is Market.SPOT else DERIVATIVES_LIMITS)
        self.tickers = TickerMerge(market, intervals_ms)
        self.silence_ns = int(silence_s * 1e9)
        self._heard: dict[str, int] = {}  # book key -> last receive ns
        self._last_silence_check = 0
        self._reported_missing: set[str] = set()
        # symbol -> receive ns of the delta that asked for its ticker snapshot (a resubscribe), until one merges
        self._snapshot_asked: dict[str, int] = {}

    # ---- what we send ----------------------------------------------------------------------------

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        return base_url

    def topic(self, sub: Subscription) -> str:
        if sub.channel is Channel.BOOK:
            return f"orderbook.{self.depth}.{sub.venue_symbol}"
        if sub.channel is Channel.FUNDING and self.market is not Market.SPOT:
            return f"tickers.{sub.venue_symbol}"
        raise LocalProtocolError(f"bybit {self.market}: no {sub.channel} channel")

    def _ops(self, op: str, subscriptions: Sequence[Subscription]) -> list[str]:
        topics = [self.topic(sub) for sub in subscriptions]
        size = self.limits.max_args_per_subscribe
        return [orjson.dumps({"op": op, "args": topics[i : i + size]}).decode() for i in range(0, len(topics), size)]

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._ops("subscribe", subscriptions)

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._ops("unsubscribe", subscriptions)

    def app_ping(self) -> str | None:
        return '{"op":"ping"}'

    # ---- what we receive -------------------------------------------------------------------------

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        try:
            env = _envelope.decode(frame)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(str(exc), venue="bybit", sample=frame) from exc
        topic = env.topic
        if not topic:
            received = self._reply(env)
        elif not env.data:
            raise MalformedFrame(f"{topic}: push without data", venue="bybit", sample=frame)
        else:
            book = topic.startswith("orderbook.")
            try:
                if book:
                    received = Received([self._book_update(env, recv_ns)])
                elif topic.startswith("tickers."):
                    received = self._ticker(env, recv_ns)
                else:
                    received = Received([Control(ControlKind.IGNORED, topic)])
            except MalformedFrame as exc:  # a level no book can hold
                raise exc.in_frame(frame) from None
            except (msgspec.DecodeError, ValueError) as exc:
                # A book push refused for any reason loses its changes: name the book (from the topic,
                # orderbook.<depth>.<symbol>), so that the feed resyncs it.
                key = book_key(Venue.BYBIT, self.market, topic.rsplit(".", 1)[1]) if book else ""
                raise MalformedFrame(f"{topic}: {exc}", venue="bybit", sample=frame, key=key) from exc
        if recv_ns - self._last_silence_check >= _SILENCE_CHECK_NS:
            self._last_silence_check = recv_ns
            received.actions.extend(self._silent(recv_ns))
        return received

    def _reply(self, env: Envelope) -> Received:
        if env.op == "pong" or env.ret_msg == "pong":
            return Received([Control(ControlKind.PONG)])
        if env.success is False:
            return Received([Control(ControlKind.ERROR, f"{env.op}: {env.ret_msg}")])
        if env.op == "subscribe":
            return Received([Control(ControlKind.SUBSCRIBED, env.ret_msg)])
        if env.op == "unsubscribe":
            return Received([Control(ControlKind.UNSUBSCRIBED, env.ret_msg)])
        return Received([Control(ControlKind.IGNORED, env.op)])

    def _book_update(self, env: Envelope, recv_ns: int) -> BookSnapshot | BookDelta:
        data = _book.decode(env.data)
        _check_symbol(env.topic, data.s)  # a push naming another book must not replace that book
        key = book_key(Venue.BYBIT, self.market, data.s)
        bids = [(float(p), float(q)) for p, q in data.b]
        asks = [(float(p), float(q)) for p, q in data.a]
        check_levels(bids, asks, key=key, venue=Venue.BYBIT)
        self._heard[key] = recv_ns  # a refused push is not news: the silence check still counts
        if env.type == "snapshot":
            return BookSnapshot(key, data.u, bids, asks, env.ts, recv_ns, seq=data.seq)
        if env.type == "delta":
            return BookDelta(key, data.u, data.u, None, bids, asks, env.ts, recv_ns, seq=data.seq)
        raise ValueError(f"unknown type {env.type!r}")

    def _ticker(self, env: Envelope, recv_ns: int) -> Received:
        data = _ticker.decode(env.data)
        symbol = data.get("symbol")
        subscribed = env.topic.rsplit(".", 1)[1]
        if isinstance(symbol, str) and symbol != subscribed:
            # The push this topic carried is lost, and it may have changed the symbol's funding (a new
            # nextFundingTime): forget its fields, as for any refused delta, so that a snapshot is asked for.
            self.tickers.forget(subscribed)
            _check_symbol(env.topic, symbol)
        if isinstance(symbol, str) and env.type == "delta" and not self.tickers.fields(symbol):
            # Nothing to merge the delta into: the symbol's fields were dropped with a refused delta (or its
            # snapshot never came). Bybit sends a ticker snapshot on subscribe: ask for one, and again only
            # after a while (a lost request, or a snapshot refused too: never a resubscribe per delta).
            asked = self._snapshot_asked.get(symbol)
            if asked is not None and recv_ns - asked < TICKER_ASK_AGAIN_NS:
                return Received([Control(ControlKind.IGNORED, env.topic)])
            self._snapshot_asked[symbol] = recv_ns
            key = book_key(Venue.BYBIT, self.market, symbol)
            again = Resubscribe(key, f"{env.topic}: a delta with no snapshot to merge into", channel="funding")
            return Received([Control(ControlKind.IGNORED, env.topic)], [again])
        funding = self.tickers.apply(env.type, data, env.ts, recv_ns)  # raises for a refused one
        if env.type == "snapshot" and isinstance(symbol, str):
            self._snapshot_asked.pop(symbol, None)  # merged: the next drop asks at once
        updates: list[Update] = [funding] if funding is not None else []
        for symbol in self.tickers.missing_interval - self._reported_missing:
            self._reported_missing.add(symbol)
            updates.append(
                Control(
                    ControlKind.ERROR,
                    f"tickers.{symbol}: no fundingIntervalHour and no instrument funding interval: funding not used",
                    book_key(Venue.BYBIT, self.market, symbol),
                )
            )
        return Received(updates or [Control(ControlKind.IGNORED, env.topic)])

    def _silent(self, now_ns: int) -> list[Resubscribe]:
        actions = []
        for key, heard in self._heard.items():
            if now_ns - heard >= self.silence_ns:
                self._heard[key] = now_ns  # once per silence period, not on every frame
                actions.append(Resubscribe(key, f"silent for {self.silence_ns / 1e9:.0f} s"))
        return actions

    # ---- books -----------------------------------------------------------------------------------

    def snapshot_request(self, key: str) -> RestRequest | None:
        return None  # snapshots come over the websocket (on subscribe, and whenever Bybit re-sends one)

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        raise LocalProtocolError("bybit: books are bootstrapped from the websocket snapshot")

    def forget(self, key: str) -> None:
        """Stop watching a book for silence (it was unsubscribed)."""
        self._heard.pop(key, None)

    def new_sync(self, key: str) -> BookSync:
        symbol = key.split(":", 2)[2]
        spec = self.specs.get(symbol)
        if spec is not None:
            contract_type, contract_size = spec.contract_type, spec.contract_size
        elif self.market is Market.INVERSE:
            contract_type, contract_size = ContractType.INVERSE, 1.0  # every Bybit inverse contract is 1 USD
        else:
            contract_type, contract_size = ContractType.BASE, 1.0  # spot and linear quantities are base units
        book = OrderBook(key, contract_type=contract_type, contract_size=contract_size)
        return BookSync(book, BybitRules(), resync_on_crossed=True)


def _check_symbol(topic: str, symbol: str) -> None:
    """A push's symbol must be its topic's (``orderbook.50.BTCUSDT``, ``tickers.BTCUSDT``): raises ValueError."""
    subscribed = topic.rsplit(".", 1)[1]
    if symbol != subscribed:
        raise ValueError(f"data for {symbol!r} on the topic of {subscribed!r}")
