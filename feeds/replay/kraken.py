"""Kraken spot websocket v1 on the replay exchange (what the bundled recordings speak).

The mount root is the v1 endpoint (a client pointed at it speaks v1; ``/v2`` is refused: the recordings
are v1). Client messages: ``{"event":"ping","reqid":n}`` → ``pong``; ``{"event":"subscribe"|"unsubscribe",
"pair":[...],"subscription":{"name":"book","depth":n}}`` → one ``subscriptionStatus`` per pair. Topics are
``book:<pair>``; channel ids are the recorded ones (learned from the frames), so recorded frames are sent
unchanged. A subscription to a book the exchange already rebuilt starts with a snapshot of that rebuild:
the exact strings (the checksum of the next update verifies against them), truncated to the channel depth.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from feeds.book import OrderBook, Side
from feeds.instruments import Market, Venue
from feeds.replay.plugin import NoTopicState, SessionReply, SnapshotQuery, register_plugin
from feeds.updates import book_key
from feeds.venues import Endpoints


class _Channels:
    """What the recording says about each pair's channel: its id and name (``book-1000``)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[str, str] = {}

    def learn(self, channel_id: Any, name: str, pair: str) -> None:
        if pair not in self.ids and isinstance(channel_id, int):
            self.ids[pair], self.names[pair] = channel_id, name

    def id_of(self, pair: str) -> int:
        # Before the recording showed the pair's channel: a stable id of our own.
        return self.ids.get(pair, zlib.crc32(pair.encode()) & 0xFFFF)

    def name_of(self, pair: str, depth: int) -> str:
        return self.names.get(pair, f"book-{depth}")


_DEPTHS = frozenset({10, 25, 100, 500, 1000})  # the book depths Kraken's v1 websocket takes


class KrakenSession:
    """One client connection to the v1 endpoint."""

    def __init__(self, channels: _Channels) -> None:
        self.channels = channels

    def initial_topics(self) -> list[str]:
        return []

    def on_text(self, text: str) -> SessionReply:
        try:
            request = orjson.loads(text)
            event = request["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return SessionReply(replies=[orjson.dumps({"event": "error", "errorMessage": f"Malformed request: {exc}"})])
        reqid = request.get("reqid")
        if event == "ping":
            return SessionReply(replies=[orjson.dumps({"event": "pong", "reqid": reqid})])
        if event not in ("subscribe", "unsubscribe"):
            return SessionReply(replies=[orjson.dumps({"event": "error", "errorMessage": f"Unknown event {event}"})])
        subscription = request.get("subscription") or {}
        pairs = request.get("pair") or []
        if not isinstance(subscription, dict) or subscription.get("name") != "book" or not isinstance(pairs, list):
            named = isinstance(subscription, dict) and subscription.get("name") == "book"
            message = "Pair(s) not found" if named else "Subscription name invalid"
            return SessionReply(replies=[orjson.dumps({"event": "error", "errorMessage": message, "reqid": reqid})])
        depth = subscription.get("depth", 10)
        if type(depth) is not int or depth not in _DEPTHS:  # as Kraken: anything else is refused, never served
            body = {
                "errorMessage": "Subscription depth not supported",
                "event": "subscriptionStatus",
                "pair": pairs,
                "reqid": reqid,
                "status": "error",
                "subscription": subscription,
            }
            return SessionReply(replies=[orjson.dumps(body)])
        status = "subscribed" if event == "subscribe" else "unsubscribed"
        reply = SessionReply()
        for pair in map(str, pairs):
            body = {
                "channelID": self.channels.id_of(pair),
                "channelName": self.channels.name_of(pair, depth),
                "event": "subscriptionStatus",
                "pair": pair,
                "status": status,
                "subscription": {"depth": depth, "name": "book"},
            }
            reply.replies.append(orjson.dumps(body))
            (reply.subscribe if event == "subscribe" else reply.unsubscribe).append(f"book:{pair}")
        return reply

    def wire(self, topic: str, payload: bytes) -> bytes:
        return payload


class KrakenReplay(NoTopicState):
    """:class:`feeds.replay.plugin.ReplayPlugin` for Kraken spot (websocket v1)."""

    venue = Venue.KRAKEN
    markets = frozenset({Market.SPOT})

    def __init__(self) -> None:
        self.channels = _Channels()

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        return Endpoints(ws_base, http_base)

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> KrakenSession | None:
        return KrakenSession(self.channels) if path in ("", "/") else None

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        if not payload.startswith(b"["):
            return None  # events (heartbeat, status) are not book data
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(frame, list) or len(frame) < 4 or not isinstance(frame[-1], str):
            return None
        name, pair = str(frame[-2]), frame[-1]
        kind = name.split("-", 1)[0]
        if kind == "book":
            self.channels.learn(frame[0], name, pair)
        return f"{kind}:{pair}"

    def book_key_of(self, market: Market, topic: str) -> str | None:
        kind, _, pair = topic.partition(":")
        return book_key(Venue.KRAKEN, Market.SPOT, pair) if kind == "book" else None

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        return None

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        raise NotImplementedError("kraken books have no REST snapshot")

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        return orjson.dumps({"error": [f"EGeneral:{message}"]})

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        kind, _, pair = topic.partition(":")
        if kind != "book" or book is None:
            return []
        stamp = f"{book.venue_ms / 1000:.6f}"
        bids, asks = book.depth()
        levels = {
            "as": [[p, q, stamp] for p, q in book.raw_levels(Side.ASK, asks)],
            "bs": [[p, q, stamp] for p, q in book.raw_levels(Side.BID, bids)],
        }
        name = self.channels.name_of(pair, max(bids, asks))
        return [orjson.dumps([self.channels.id_of(pair), levels, name, pair])]

    def shutdown_notice(self, market: Market) -> bytes | None:
        return None

    def server_ping_interval_s(self, market: Market) -> float | None:
        return None

    def max_incoming_per_s(self, market: Market) -> float | None:
        return None


register_plugin(KrakenReplay())
