"""Kraken spot websocket v1 ``book``, pure: what the 2021 recordings and the loopback replay speak.

Frames (docs.kraken.com spot-ws-book-v1):

* ``[channelID, {"as": [...], "bs": [...]}, "book-1000", "XMR/USD"]``: snapshot of the subscribed depth;
* ``[channelID, {"a": [...]}, ({"b": [...], "c": "2583817756"},) "book-1000", "XMR/USD"]``: updates, one
  or two dicts, the checksum ``c`` (unsigned CRC32 of the top 10, as a string) in the last one;
* levels ``[price, volume, timestamp(, "r" republish)]``, all strings; volume 0 removes the level;
* events ``{"event": "heartbeat" | "systemStatus" | "subscriptionStatus" | "pong"}``.

The book is truncated to the subscribed depth after every message (the depth is read from the channel
name ``book-<depth>``), then the checksum is verified. There are no sequence numbers: each book's frames
are numbered in arrival order (:class:`feeds.sequencing.KrakenRules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from feeds.book import OrderBook
from feeds.errors import LocalProtocolError, MalformedFrame
from feeds.instruments import Market, Venue
from feeds.kraken.checksum import book_checksum
from feeds.levels import check_levels
from feeds.protocol import Channel, ConnectionLimits, RestRequest, Subscription
from feeds.sequencing import KrakenRules
from feeds.sync import BookSync
from feeds.updates import BookDelta, BookSnapshot, Control, ControlKind, Level, RawLevel, Received, book_key

URL = "wss://ws.kraken.com"
DEPTHS = (10, 25, 100, 500, 1000)

# [?] Kraken documents no per-connection stream cap for public v1/v2 books; these are conservative.
LIMITS = ConnectionLimits(
    max_streams_per_connection=100,
    max_args_per_subscribe=50,
    max_messages_per_second=1.0,
    app_ping_interval_s=30.0,
    idle_timeout_s=30.0,  # a heartbeat comes every second while subscribed
)


_LATEST_STAMP_S = 1e11  # seconds: year 5138, far past any real stamp and far from float overflow


def _levels(rows: Any, *, where: str) -> tuple[list[Level], list[RawLevel], int]:
    """Levels, their exact strings, and the latest level timestamp in ms (the venue time we have)."""
    if not isinstance(rows, list):
        raise ValueError(f"{where}: levels are not a list")
    levels: list[Level] = []
    raw: list[RawLevel] = []
    latest = 0.0
    for row in rows:
        if not isinstance(row, list) or len(row) < 3:
            raise ValueError(f"{where}: level {row!r} is not [price, volume, timestamp, ...]")
        price, volume, stamp = row[0], row[1], row[2]
        if not isinstance(price, str) or not isinstance(volume, str) or not isinstance(stamp, str):
            raise ValueError(f"{where}: level {row!r} is not [price, volume, timestamp, ...] strings")
        levels.append((float(price), float(volume)))
        raw.append((price, volume))
        seconds = float(stamp)
        if not 0.0 <= seconds < _LATEST_STAMP_S:
            raise ValueError(f"{where}: level {row!r}: timestamp {stamp!r} is no time")
        latest = max(latest, seconds)
    return levels, raw, round(latest * 1000)


def _decimals(text: str) -> int:
    return len(text) - text.index(".") - 1 if "." in text else 0


def _precision(raw: list[RawLevel]) -> tuple[int, int] | None:
    """The decimals every price and every volume of a snapshot is written with (a pair's price decimals, 8 for
    volumes on the recordings), or None where they vary (then nothing is checked)."""
    prices = {_decimals(price) for price, _ in raw}
    volumes = {_decimals(volume) for _, volume in raw}
    return (prices.pop(), volumes.pop()) if len(prices) == 1 and len(volumes) == 1 else None


def _check_precision(raw: list[RawLevel], precision: tuple[int, int]) -> None:
    """An update's levels are written as the snapshot's were. The CRC32 covers digits only (the point and
    leading zeros stripped): a volume whose point moved ("6.88271768" to "68.8271768", 10x the size) passes
    it, and so would sit at the top of the book until Kraken replaced the level."""
    prices, volumes = precision
    for price, volume in raw:
        if _decimals(price) != prices or _decimals(volume) != volumes:
            raise ValueError(
                f"level [{price!r}, {volume!r}] is not written with the book's {prices} price and {volumes} volume "
                "decimals (its checksum cannot tell a moved decimal point)"
            )


class KrakenV1Protocol:
    """Kraken spot v1 ``book`` channel for one connection."""

    venue = Venue.KRAKEN
    market = Market.SPOT

    def __init__(self, *, depth: int = 1000, limits: ConnectionLimits = LIMITS) -> None:
        if depth not in DEPTHS:
            raise LocalProtocolError(f"kraken: book depth {depth} is not one of {DEPTHS}")
        self.depth = depth
        self.limits = limits
        self._depth_of: dict[str, int] = {}  # from the channel name, which is what the venue truncates to
        self._frame_no: dict[str, int] = {}
        self._precision: dict[str, tuple[int, int] | None] = {}  # per book: its snapshot's decimals (price, volume)

    # ---- what we send ----------------------------------------------------------------------------

    def url(self, base_url: str, subscriptions: Sequence[Subscription]) -> str:
        return base_url

    def _event(self, event: str, subscriptions: Sequence[Subscription]) -> list[str]:
        pairs = []
        for sub in subscriptions:
            if sub.channel is not Channel.BOOK:
                raise LocalProtocolError(f"kraken: no {sub.channel} channel (spot books only)")
            pairs.append(sub.venue_symbol)
        size = self.limits.max_args_per_subscribe
        return [
            orjson.dumps(
                {"event": event, "pair": pairs[i : i + size], "subscription": {"name": "book", "depth": self.depth}}
            ).decode()
            for i in range(0, len(pairs), size)
        ]

    def subscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._event("subscribe", subscriptions)

    def unsubscribe(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return self._event("unsubscribe", subscriptions)

    def app_ping(self) -> str | None:
        return '{"event":"ping"}'

    # ---- what we receive -------------------------------------------------------------------------

    def receive(self, frame: str | bytes, recv_ns: int) -> Received:
        try:
            msg = msgspec.json.decode(frame)
        except msgspec.DecodeError as exc:
            raise MalformedFrame(str(exc), venue="kraken", sample=frame) from exc
        if isinstance(msg, dict):
            return self._status(msg)
        if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-1], str) or not isinstance(msg[-2], str):
            raise MalformedFrame("expected [channelID, {...}, channelName, pair]", venue="kraken", sample=frame)
        channel, pair = msg[-2], msg[-1]
        if not channel.startswith("book-"):
            return Received([Control(ControlKind.IGNORED, channel)])
        key = book_key(Venue.KRAKEN, Market.SPOT, pair)
        try:
            return Received([self._book(key, channel, msg[1:-2], recv_ns)])
        except MalformedFrame as exc:  # a level no book can hold: the book's update is lost
            raise exc.in_frame(frame) from None
        except (ValueError, IndexError, TypeError, KeyError, OverflowError) as exc:  # its changes are lost too
            raise MalformedFrame(f"{channel} {pair}: {exc}", venue="kraken", sample=frame, key=key) from exc

    def _status(self, msg: dict[str, Any]) -> Received:
        event = msg.get("event")
        if event == "heartbeat":
            return Received([Control(ControlKind.HEARTBEAT)])
        if event == "pong":
            return Received([Control(ControlKind.PONG)])
        if event == "subscriptionStatus":
            pair = msg.get("pair")
            key = book_key(Venue.KRAKEN, Market.SPOT, pair) if isinstance(pair, str) else ""
            status = msg.get("status")
            if status == "subscribed":
                return Received([Control(ControlKind.SUBSCRIBED, str(msg.get("channelName", "")), key)])
            if status == "unsubscribed":
                return Received([Control(ControlKind.UNSUBSCRIBED, str(msg.get("channelName", "")), key)])
            return Received([Control(ControlKind.ERROR, str(msg.get("errorMessage", status)), key)])
        if event == "systemStatus":
            status = msg.get("status")
            if status == "online":
                return Received([Control(ControlKind.IGNORED, "systemStatus online")])
            return Received([Control(ControlKind.ERROR, f"systemStatus {status}")])
        if event == "error":
            return Received([Control(ControlKind.ERROR, str(msg.get("errorMessage", "")))])
        return Received([Control(ControlKind.IGNORED, str(event))])

    def _book(self, key: str, channel: str, parts: list[Any], recv_ns: int) -> BookSnapshot | BookDelta:
        if key not in self._depth_of:
            self._depth_of[key] = int(channel[5:])
        number = self._frame_no[key] = self._frame_no.get(key, 0) + 1
        first = parts[0]
        if not isinstance(first, dict):
            raise ValueError("book payload is not an object")
        if "as" in first or "bs" in first:
            asks, raw_asks, ask_ms = _levels(first.get("as", []), where="as")
            bids, raw_bids, bid_ms = _levels(first.get("bs", []), where="bs")
            check_levels(bids, asks, key=key, venue=Venue.KRAKEN)
            if raw_bids or raw_asks:
                self._precision[key] = _precision(raw_bids + raw_asks)
            else:  # an empty book (a new listing, a halted pair): the first update with levels says
                self._precision.pop(key, None)
            return BookSnapshot(key, number, bids, asks, max(ask_ms, bid_ms), recv_ns, None, raw_bids, raw_asks)
        bids, raw_bids, asks, raw_asks = [], [], [], []
        checksum: int | None = None
        venue_ms = 0
        for part in parts:
            if not isinstance(part, dict):
                raise ValueError("book payload is not an object")
            if "a" in part:
                levels, raw, stamp_ms = _levels(part["a"], where="a")
                asks += levels
                raw_asks += raw
                venue_ms = max(venue_ms, stamp_ms)
            if "b" in part:
                levels, raw, stamp_ms = _levels(part["b"], where="b")
                bids += levels
                raw_bids += raw
                venue_ms = max(venue_ms, stamp_ms)
            if "c" in part:
                checksum = int(part["c"])
        if checksum is None:  # every recorded update has one: with no sequence numbers, it is the only check
            raise ValueError("book update without a checksum (c)")
        check_levels(bids, asks, key=key, venue=Venue.KRAKEN)
        written = raw_bids + raw_asks
        if key not in self._precision and written:
            self._precision[key] = _precision(written)  # learnt from the first levels after an empty snapshot
        precision = self._precision.get(key)
        if precision is not None:
            _check_precision(written, precision)
        return BookDelta(key, number, number, None, bids, asks, venue_ms, recv_ns, checksum, raw_bids, raw_asks)

    # ---- books -----------------------------------------------------------------------------------

    def snapshot_request(self, key: str) -> RestRequest | None:
        return None  # the snapshot comes over the websocket on (re)subscribe

    def parse_snapshot(self, key: str, body: bytes, recv_ns: int) -> BookSnapshot:
        raise LocalProtocolError("kraken: books have no REST snapshot")

    def saw(self, key: str) -> bool:
        """True once a v1 book frame for ``key`` arrived (its depth is then known from the channel name)."""
        return key in self._depth_of

    def new_sync(self, key: str) -> BookSync:
        depth = self._depth_of.get(key, self.depth)
        return BookSync(OrderBook(key, keep_raw=True), KrakenRules(), checksum=book_checksum, truncate_depth=depth)
