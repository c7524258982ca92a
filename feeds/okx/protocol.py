"""OKX v5 public websocket, pure: order books of every instrument type, and funding rates.

One connection to ``/ws/v5/public`` carries books of spot, swaps, futures and options alike, so book keys
take their market from the ``instId`` (``okx:swap:BTC-USDT-SWAP``), not from the protocol instance; the one
exception is a margin protocol, which keys spot-shaped ids (the shared spot book) under ``margin``.

* Books (``books``, ``books-l2-tbt``, ``books50-l2-tbt``; the same wire format): a snapshot
  (``prevSeqId = -1``) then updates chained by ``prevSeqId == last seqId`` (:class:`OkxRules`). The
  signed top-25 CRC32 checksum is verified whenever a push carries a non-zero one (captures before
  2026-06-23); the exact price/size strings are kept for it. If updates arrive with no websocket
  snapshot, the sync asks for ``GET /api/v5/market/books`` instead.
* Funding (``funding-rate``): normalized to :class:`FundingUpdate`; the interval is
  ``nextFundingTime - fundingTime`` (8 h by default, but OKX moves volatile contracts to 4/2/1 h).
* Keepalive: the text ``ping`` (answered by the text ``pong``) when nothing was received for < 30 s.
  ``{"event":"notice","code":"64008"}`` announces a disconnect in 60 s: reconnect now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import orjson

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError, MalformedFrame, VenueRejected
from feeds.instruments import ContractType, InstrumentSpec, Market, Venue
from feeds.levels import check_levels
from feeds.okx import checksum as okx_checksum
from feeds.okx.funding import funding_update
from feeds.okx.schemas import BookData, Envelope, FundingData, RestBooks
from feeds.okx.symbols import market_of
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import OkxRestRules, OkxRules
from feeds.sync import BookSync
from feeds.updates import (
    BookDelta,
    BookSnapshot,
    Control,
    ControlKind,
    Level,
    RawLevel,
    Received,
    Reconnect,
    book_key,
)

PUBLIC_URL = "wss://ws.okx.com:8443/ws/v5/public"
REST_URL = "https://www.okx.com"
BOOK_CHANNELS = ("books", "books-l2-tbt", "books50-l2-tbt")
FUNDING_CHANNEL = "funding-rate"
NOTICE_RECONNECT = "64008"  # "the service will be upgraded in 60 s": reconnect proactively
_CONTRACT_MARKETS = (Market.SWAP, Market.FUTURES, Market.OPTION)

#: OKX (exchange-protocols.md §4.1): fewer than 30 deep-book channels per connection recommended;
#: 480 subscribe/unsubscribe/login operations per hour per connection; text ping within 30 s.
LIMITS = ConnectionLimits(
    max_streams_per_connection=30,
    max_args_per_subscribe=30,
    # OKX counts 480 subscribe/unsubscribe/login requests per hour per connection, not messages in
    # general (OKX:overview-websocket): the hourly count is its own budget; 3/s is the connection-request
    # rate per IP, a safe pace for the rest (pings).
    max_messages_per_second=3.0,
    max_subscribe_ops_per_hour=480,
    app_ping_interval_s=20.0,
    idle_timeout_s=30.0,
)

_envelope = msgspec.json.Decoder(Envelope)
_book_data = msgspec.json.Decoder(list[BookData])
_funding_data = msgspec.json.Decoder(list[FundingData])
_rest_books = msgspec.json.Decoder(RestBooks)


def _levels(rows: list[list[str]], keep_raw: bool) -> tuple[list[Level], list[RawLevel] | None]:
    levels = [(float(row[0]), float(row[1])) for row in rows]
    return levels, ([(row[0], row[1]) for row in rows] if keep_raw else None)


class OkxProtocol:
    """OKX v5 public channels for one connection (see the module docstring).

    ``book_channel`` picks the depth channel for :attr:`Channel.BOOK` subscriptions. ``specs`` maps
    ``instId`` to metadata so that books of contracts know their contract size; with
    ``strict_specs=True`` (the daemon) a contract book without metadata is an error, while verify-books
    rebuilds books in the venue's own units. ``checksum=False`` skips keeping exact strings (the 2026
    production feed sends 0 anyway). ``rest_recovery=True`` rebuilds a gapped book from the REST snapshot
    instead of resubscribing (:class:`feeds.sequencing.OkxRestRules`; for feeds without a websocket
    snapshot, and it spends none of the 480 subscribe operations per hour).
    """

    venue = Venue.OKX

    def __init__(
        self,
        market: Market = Market.SWAP,
        *,
        book_channel: str = "books",
        specs: Mapping[str, InstrumentSpec] | None = None,
        strict_specs: bool = False,
        checksum: bool = True,
        rest_recovery: bool = False,
        limits: ConnectionLimits = LIMITS,
        rest_depth: int = 400,
    ) -> None:
        if book_channel not in BOOK_CHANNELS:
            raise LocalProtocolError(f"okx: unknown book channel {book_channel!r}, expected one of {BOOK_CHANNELS}")
        self.market = market
        self.book_channel = book_channel
        self.specs: Mapping[str, InstrumentSpec] = specs or {}
        self.strict_specs = strict_specs
        self.keep_raw = checksum
        self.rest_recovery = rest_recovery
        self.limits = limits
        self.rest_depth = rest_depth
        self._arrival: dict[str, int] = {}  # per book: pushes without seqId, numbered as they arrive

    # ---- what we send ----------------------------------------------------------------------------

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        return base_url

    def _args(self, subscriptions: Sequence[Subscription]) -> list[dict[str, str]]:
        args = []
        for sub in subscriptions:
            if sub.channel is Channel.BOOK:
                channel = self.book_channel
            elif sub.channel is Channel.FUNDING:
                channel = FUNDING_CHANNEL
            else:
                raise LocalProtocolError(f"okx: no {sub.channel} channel (books and funding only)")
            args.append({"channel": channel, "instId": sub.venue_symbol})
        return args

    def _ops(self, op: str, subscriptions: Sequence[Subscription]) -> list[str]:
        args = self._args(subscriptions)
        size = self.limits.max_args_per_subscribe
        return [orjson.dumps({"op": op, "args": args[i : i + size]}).decode() for i in range(0, len(args), size)]

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._ops("subscribe", subscriptions)

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._ops("unsubscribe", subscriptions)

    def app_ping(self) -> str | None:
        return "ping"

    # ---- what we receive -------------------------------------------------------------------------

    def key(self, inst_id: str) -> str:
        market = market_of(inst_id)
        if market is Market.SPOT and self.market is Market.MARGIN:
            # Margin trades on the spot book (same instId): a margin feed keys it under its own market,
            # as the feed built its book keys from ``protocol.market``.
            market = Market.MARGIN
        return book_key(Venue.OKX, market, inst_id)

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        if frame in ("pong", b"pong"):
            return Received([Control(ControlKind.PONG)])
        try:
            env = _envelope.decode(frame)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(str(exc), venue="okx", sample=frame) from exc
        if env.event:
            return self._event(env)
        arg = env.arg
        if arg is None or not env.data:
            raise MalformedFrame("neither an event nor a push with arg and data", venue="okx", sample=frame)
        channel = arg.channel
        try:
            if channel in BOOK_CHANNELS:
                return self._book(arg.instId, env.action, env.data, recv_ns, frame, channel)
            if channel == FUNDING_CHANNEL:
                return Received([funding_update(row, recv_ns) for row in _funding_data.decode(env.data)])
        except (msgspec.DecodeError, IndexError, ValueError) as exc:
            raise MalformedFrame(f"{channel} {arg.instId}: {exc}", venue="okx", sample=frame) from exc
        return Received([Control(ControlKind.IGNORED, channel)])

    def _event(self, env: Envelope) -> Received:
        event = env.event
        key = self.key(env.arg.instId) if env.arg is not None and env.arg.instId else ""
        if event == "subscribe":
            return Received([Control(ControlKind.SUBSCRIBED, env.arg.channel if env.arg else "", key)])
        if event == "unsubscribe":
            return Received([Control(ControlKind.UNSUBSCRIBED, env.arg.channel if env.arg else "", key)])
        if event == "error":
            return Received([Control(ControlKind.ERROR, f"{env.code}: {env.msg}", key)])
        if event == "notice":
            detail = f"{env.code}: {env.msg}"
            if env.code == NOTICE_RECONNECT:
                return Received([Control(ControlKind.SERVER_SHUTDOWN, detail)], [Reconnect(f"okx notice {detail}")])
            return Received([Control(ControlKind.ERROR, detail)])
        return Received([Control(ControlKind.IGNORED, event)])

    def _book(  # noqa: PLR0917 (the push's parts, as receive has them)
        self, inst_id: str, action: str, data: msgspec.Raw, recv_ns: int, frame: str | bytes, channel: str
    ) -> Received:
        key = self.key(inst_id)
        try:
            return self._book_items(key, action, data, recv_ns)
        except MalformedFrame as exc:  # a level no book can hold
            raise exc.in_frame(frame) from None
        except (msgspec.DecodeError, IndexError, ValueError) as exc:
            # Refused for any reason, the push's changes are lost: the feed resyncs the book it names.
            raise MalformedFrame(f"{channel} {inst_id}: {exc}", venue="okx", sample=frame, key=key) from exc

    def _book_items(self, key: str, action: str, data: msgspec.Raw, recv_ns: int) -> Received:
        keep_raw = self.keep_raw
        updates: list[BookSnapshot | BookDelta] = []
        for item in _book_data.decode(data):
            bids, raw_bids = _levels(item.bids, keep_raw)
            asks, raw_asks = _levels(item.asks, keep_raw)
            check_levels(bids, asks, key=key, venue=Venue.OKX)
            if item.seqId is not None:
                if item.prevSeqId is None:
                    # Every push with a seqId names its predecessor (exchange-protocols.md §4.2); without it the
                    # update would be taken unchecked (as a 2022 capture's) and a gap before it missed.
                    raise ValueError(f"{action} with seqId {item.seqId} but no prevSeqId")
                seq = item.seqId
            else:  # 2022 captures (neither seqId nor prevSeqId): number pushes in arrival order (see OkxRules)
                seq = self._arrival[key] = self._arrival.get(key, 0) + 1
            venue_ms = int(item.ts)
            if action == "snapshot":
                updates.append(BookSnapshot(key, seq, bids, asks, venue_ms, recv_ns, item.checksum, raw_bids, raw_asks))
            elif action == "update":
                updates.append(
                    BookDelta(
                        key, seq, seq, item.prevSeqId, bids, asks, venue_ms, recv_ns, item.checksum, raw_bids, raw_asks
                    )
                )
            else:
                raise ValueError(f"unknown book action {action!r}")
        return Received(list(updates))

    # ---- REST bootstrap --------------------------------------------------------------------------

    def snapshot_request(self, key: str) -> RestRequest | None:
        inst_id = key.split(":", 2)[2]
        return RestRequest("GET", "/api/v5/market/books", {"instId": inst_id, "sz": str(self.rest_depth)})

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        try:
            reply = _rest_books.decode(body)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(f"{key}: REST books: {exc}", venue="okx", sample=body) from exc
        if reply.code != "0":
            raise VenueRejected("okx", f"{key}: books: {reply.code} {reply.msg}")
        if len(reply.data) != 1:
            raise MalformedFrame(f"{key}: REST books: expected one book, got {len(reply.data)}", venue="okx")
        item = reply.data[0]
        if item.seqId is None:
            raise MalformedFrame(f"{key}: REST books without seqId cannot be sequenced", venue="okx", sample=body)
        try:
            bids, raw_bids = _levels(item.bids, self.keep_raw)
            asks, raw_asks = _levels(item.asks, self.keep_raw)
            check_levels(bids, asks, key=key, venue=Venue.OKX, sample=body)
            venue_ms = int(item.ts)
        except (IndexError, ValueError) as exc:
            raise MalformedFrame(f"{key}: REST books: {exc}", venue="okx", sample=body) from exc
        return BookSnapshot(
            key, item.seqId, bids, asks, venue_ms, recv_ns, item.checksum, raw_bids, raw_asks, from_rest=True
        )

    # ---- books -----------------------------------------------------------------------------------

    def new_sync(self, key: str) -> BookSync:
        inst_id = key.split(":", 2)[2]
        contract_type, contract_size = ContractType.BASE, 1.0
        spec = self.specs.get(inst_id)
        if spec is not None:
            contract_type, contract_size = spec.contract_type, spec.contract_size
        elif self.strict_specs and market_of(inst_id) in _CONTRACT_MARKETS:
            raise LocalProtocolError(f"okx {inst_id}: no instrument metadata, its contract size is unknown")
        book = OrderBook(key, contract_type=contract_type, contract_size=contract_size, keep_raw=self.keep_raw)
        rules = OkxRestRules() if self.rest_recovery else OkxRules()
        # OKX sends checksum 0 since 2026-06-23: a crossed book is then the only sign of a corrupt level.
        checksum = okx_checksum.book_checksum if self.keep_raw else None
        return BookSync(book, rules, checksum=checksum, resync_on_crossed=True)
