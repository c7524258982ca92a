"""Bybit/OKX/Kraken feeds (the daemon's code path) pointed at the replay exchange, the offline rebuild of
the same recordings, and fault payload helpers. Waits use scaled deadlines, never timing assertions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from feeds.book import OrderBook, Side
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription, VenueProtocol
from feeds.replay import ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent, SyncState
from feeds.verify import verify_paths
from tests.replay_fixtures import FAST_BACKOFF, FAST_RUNNER, wait_until


def venue_feed(
    exchange: ReplayExchange,
    mount: tuple[Venue, Market],
    protocol: VenueProtocol,
    symbols: Sequence[str],
    rest: RestClient,
    *,
    channels: Sequence[Channel] = (Channel.BOOK,),
    recovery_deadline_s: float = 15.0,
    **kwargs: object,
) -> VenueFeed:
    """A real feed whose URLs are the replay exchange's endpoints for the recording's mount."""
    endpoints = exchange.endpoints(*mount)
    subs = [Subscription(symbol, channel) for symbol in symbols for channel in channels]
    config = FeedConfig(
        ws_url=endpoints.ws,
        rest_url=endpoints.rest,
        runner=FAST_RUNNER,
        snapshot_backoff=FAST_BACKOFF,
        recovery_deadline_s=recovery_deadline_s,
    )
    return VenueFeed(protocol, subs, rest=rest, config=config, **kwargs)  # type: ignore[arg-type]


def offline_books(paths: Sequence[Path]) -> dict[str, OrderBook]:
    """verify-books' rebuild of the recordings: the book every client must end with."""
    return {result.key: result.book for result in verify_paths(paths).books}


def same_levels(a: OrderBook, b: OrderBook) -> bool:
    """Equal levels on both sides (update ids are not compared: Kraken numbers frames per receiver)."""
    return a.levels(Side.BID) == b.levels(Side.BID) and a.levels(Side.ASK) == b.levels(Side.ASK)


async def books_match(
    exchange: ReplayExchange, feeds: Sequence[VenueFeed], offline: dict[str, OrderBook], *, seconds: float = 30.0
) -> None:
    """Wait for the end of the timeline and for every feed book to be live and equal to the offline one."""

    def done() -> bool:
        return exchange.finished.is_set() and all(
            sync.state is SyncState.LIVE and same_levels(sync.book, offline[key])
            for feed in feeds
            for key, sync in feed.syncs.items()
        )

    await wait_until(done, what="feed books equal to the offline rebuild", seconds=seconds, feeds=feeds)
    await exchange.wait_finished()


@dataclass
class Recorder:
    """Sync transitions per book, with the checksums verified at each (the feed's on_transition hook)."""

    feeds: list[VenueFeed] = field(default_factory=list)
    seen: dict[str, list[tuple[SyncEvent, int]]] = field(default_factory=dict)

    def __call__(self, key: str, old: SyncState, new: SyncState, event: SyncEvent) -> None:
        ok = next((f.syncs[key].stats.checksum_ok for f in self.feeds if key in f.syncs), 0)
        self.seen.setdefault(key, []).append((event, ok))

    def events(self, key: str) -> list[SyncEvent]:
        return [event for event, _ in self.seen.get(key, [])]


# ---- fault payloads (what a misbehaving venue would send instead of the recorded frame) -------------


def okx_corrupt_first_level(payload: bytes) -> bytes:
    """Add 1 to the size of the first level of an OKX books push (its checksum no longer matches)."""
    msg = orjson.loads(payload)
    data = msg["data"][0]
    level = (data["bids"] or data["asks"])[0]
    level[1] = str(float(level[1]) + 1)
    return orjson.dumps(msg)


def kraken_corrupt_first_level(payload: bytes) -> bytes:
    """Change the first level's volume of a Kraken v1 book update (keeping its string format)."""
    msg = orjson.loads(payload)
    update = msg[1]
    level = (update.get("a") or update.get("b"))[0]
    whole, _, frac = level[1].partition(".")
    level[1] = f"{int(whole) + 1}.{frac}"
    return orjson.dumps(msg)


def bybit_regress_seq(payload: bytes) -> bytes:
    """Move a Bybit orderbook push's ``seq`` 10,000 back (the defensive rule's trigger)."""
    msg = orjson.loads(payload)
    msg["data"]["seq"] -= 10_000
    return orjson.dumps(msg)
