"""Helpers for the connection, replay and recorder tests: a replay exchange, Binance feeds pointed at it,
an offline rebuild of the same records, and polling with scaled deadlines (never timing assertions)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from feeds.backoff import BackoffPolicy
from feeds.book import OrderBook, Side
from feeds.connection import RunnerConfig
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription, VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, open_recordings
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent, SyncState
from feeds.venues import detect, get_entry
from feeds.verify import BookVerifier
from tests.conftest import DATA, timeout

SPOT = DATA / "hftbacktest" / "spot"
USDM = DATA / "hftbacktest" / "usdm"
CF_SPOT = DATA / "cryptofeed" / "BINANCE.ws.1.0"
CF_USDM = DATA / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"

FAST_BACKOFF = BackoffPolicy(initial_s=0.05, min_s=0.05, max_s=0.2, jitter=0.1, healthy_after_s=60.0)
FAST_RUNNER = RunnerConfig(backoff=FAST_BACKOFF, open_timeout_s=timeout(5), close_timeout_s=timeout(1))


async def wait_until(
    predicate: Callable[[], bool], *, what: str, seconds: float = 10.0, feeds: Sequence[VenueFeed] = ()
) -> None:
    """Poll ``predicate`` until true; a feed that died raises its error instead of a timeout."""
    deadline = asyncio.get_running_loop().time() + timeout(seconds)
    while not predicate():
        for feed in feeds:
            feed.check()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout(seconds):.1f}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Transitions:
    """Every sync state change per book, in order (the feed's on_transition hook)."""

    seen: dict[str, list[tuple[SyncState, SyncState, SyncEvent]]] = field(default_factory=dict)

    def __call__(self, key: str, old: SyncState, new: SyncState, event: SyncEvent) -> None:
        self.seen.setdefault(key, []).append((old, new, event))

    def events(self, key: str) -> list[SyncEvent]:
        return [event for _, _, event in self.seen.get(key, [])]


def binance_feed(
    exchange: ReplayExchange,
    market: Market,
    symbols: Sequence[str],
    rest: RestClient,
    *,
    channels: Sequence[Channel] = (Channel.BOOK, Channel.TOP),
    runner: RunnerConfig = FAST_RUNNER,
    protocol: VenueProtocol | None = None,
    **kwargs: object,
) -> VenueFeed:
    """A real Binance feed (the daemon's code path) whose URLs point at the replay exchange."""
    endpoints = exchange.endpoints(Venue.BINANCE, market)
    protocol = protocol or get_entry(Venue.BINANCE, market).protocol(endpoints)
    subs = [Subscription(symbol, channel) for symbol in symbols for channel in channels]
    config = FeedConfig(ws_url=endpoints.ws, rest_url=endpoints.rest, runner=runner, snapshot_backoff=FAST_BACKOFF)
    return VenueFeed(protocol, subs, rest=rest, config=config, **kwargs)  # type: ignore[arg-type]


def timeline(paths: Sequence[Path], limit: int | None = None) -> Iterator[tuple[RecordedFrame, BookVerifier]]:
    """The replay exchange's timeline, rebuilt independently: records merged by receive time."""
    recordings = open_recordings(paths).recordings
    verifiers = [BookVerifier(detect(r)) for r in recordings]

    def tagged(i: int) -> Iterator[tuple[RecordedFrame, BookVerifier]]:
        for frame in recordings[i].frames():
            yield frame, verifiers[i]

    merged = heapq.merge(*(tagged(i) for i in range(len(recordings))), key=lambda item: item[0].recv_ns)
    played = (item for item in merged if item[0].kind in (FrameKind.WS, FrameKind.REST))
    return islice(played, limit)


def offline_books(paths: Sequence[Path], limit: int | None = None) -> dict[str, OrderBook]:
    """verify-books' rebuild of the first ``limit`` records of the merged timeline, book by key."""
    verifiers: dict[int, BookVerifier] = {}
    for frame, verifier in timeline(paths, limit):
        verifiers[id(verifier)] = verifier
        verifier.feed(frame)
    return {key: sync.book for v in verifiers.values() for key, sync in v.syncs.items()}


def same_book(a: OrderBook, b: OrderBook) -> bool:
    return (a.last_id, a.levels(Side.BID), a.levels(Side.ASK)) == (b.last_id, b.levels(Side.BID), b.levels(Side.ASK))


@contextlib.asynccontextmanager
async def live_spot_feed(
    transitions: Callable[..., None], frames: int
) -> AsyncIterator[tuple[ReplayExchange, VenueFeed]]:
    """The replay exchange on the spot recording and a running BTC+ETH spot feed, once both books are live."""
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=frames)) as exchange, RestClient() as rest:
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, on_transition=transitions)
        async with feed:
            await wait_until(lambda: all(map(feed.is_live, feed.syncs)), what="books live", feeds=[feed])
            yield exchange, feed


async def caught_up(exchange: ReplayExchange, feeds: Sequence[VenueFeed], *, seconds: float = 10.0) -> None:
    """Wait for the end of the timeline and for every feed book to reach the exchange's final update id."""
    await asyncio.wait_for(exchange.wait_finished(), timeout(seconds))

    def done() -> bool:
        for feed in feeds:
            for key, sync in feed.syncs.items():
                final = exchange.sync(key)
                if final is None or sync.state is not SyncState.LIVE or sync.book.last_id != final.book.last_id:
                    return False
        return True

    await wait_until(done, what="feed books to catch up with the replay", seconds=seconds, feeds=feeds)
