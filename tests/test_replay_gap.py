"""The replay exchange withholds, drops and corrupts; the Binance feed detects, resyncs only what broke,
and ends with the books verify-books rebuilds offline from the same records."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from feeds.book import Side
from feeds.feed import VenueFeed
from feeds.instruments import Market
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import BookSync, SyncEvent, SyncState
from tests.replay_fixtures import (
    SPOT,
    Transitions,
    binance_feed,
    caught_up,
    offline_books,
    same_book,
    wait_until,
)

FRAMES = 6000  # ~40 s of the recording: a few hundred diffs per symbol
BTC, ETH = "binance:spot:BTCUSDT", "binance:spot:ETHUSDT"
LIVE_ONLY = [SyncEvent.REQUEST_SNAPSHOT, SyncEvent.SNAPSHOT_APPLIED]


async def test_withheld_diff_resyncs_that_symbol_only() -> None:
    """A diff withheld mid-stream: gap on BTC only, fresh REST snapshot, both books equal the offline rebuild."""
    transitions = Transitions()
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
        withheld = exchange.faults.withhold(topic="btcusdt@depth", index=150)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, on_transition=transitions)
        async with feed:
            await caught_up(exchange, [feed])
            btc, eth = feed.syncs[BTC], feed.syncs[ETH]

            assert withheld.fired == 1 and exchange.stats.withheld == 1
            assert transitions.events(BTC) == [
                *LIVE_ONLY,
                SyncEvent.GAP_DETECTED,
                SyncEvent.RESYNC_STARTED,
                SyncEvent.SNAPSHOT_APPLIED,
            ]
            assert (btc.stats.gaps, btc.stats.resyncs, btc.stats.snapshots) == (1, 1, 2)
            assert transitions.events(ETH) == LIVE_ONLY  # never left LIVE
            assert (eth.stats.gaps, eth.stats.snapshots) == (0, 1)
            # The first snapshot of each book is the recorded one; BTC's second is the exchange's rebuild,
            # taken after the withheld diff (its lastUpdateId is past the gap).
            kinds = [(s.key, s.kind) for s in exchange.served]
            assert sorted(kinds[:2]) == [(BTC, "recorded"), (ETH, "recorded")]
            assert kinds[2:] == [(BTC, "rebuilt")]
            assert exchange.served[2].last_id > exchange.served[0 if kinds[0][0] == BTC else 1].last_id

            offline = offline_books([SPOT], FRAMES)
            assert same_book(btc.book, offline[BTC])
            assert same_book(eth.book, offline[ETH])
            assert btc.book.best_bid() == offline[BTC].best_bid() and btc.book.best_bid() is not None


async def test_dropped_connection_reconnects_with_backoff_and_resyncs() -> None:
    """The venue drops the socket: the runner backs off, reconnects, and both books resync cleanly."""
    transitions = Transitions()
    config = ReplayConfig(max_frames=FRAMES)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        dropped = exchange.faults.drop(topic="btcusdt@depth", index=200)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, on_transition=transitions)
        async with feed:
            await dropped.wait()
            exchange.faults.pause()  # hold the market still while the client is away
            runner = feed.runners[0]
            await wait_until(lambda: runner.stats.connects == 2, what="the reconnect", feeds=[feed])
            exchange.faults.resume()
            await caught_up(exchange, [feed])

            assert exchange.stats.drops == 1
            assert (runner.stats.connects, runner.stats.disconnects) == (2, 1)
            # One backoff delay was taken, within the first step of the policy: uniform(0, initial_s).
            policy = runner.config.backoff
            assert len(runner.stats.delays) == 1 and 0 <= runner.stats.delays[0] <= policy.initial_s
            assert feed.stats.resets == 2  # both books carried by the lost connection
            for key in (BTC, ETH):
                assert transitions.events(key) == [
                    *LIVE_ONLY,
                    SyncEvent.RESET,
                    *LIVE_ONLY,
                ], key
                assert feed.syncs[key].stats.gaps == 0 and feed.syncs[key].stats.snapshots == 2
            rebuilt = [s.key for s in exchange.served if s.kind == "rebuilt"]
            assert sorted(rebuilt) == [BTC, ETH]
            offline = offline_books([SPOT], FRAMES)
            assert same_book(feed.book(BTC), offline[BTC]) and same_book(feed.book(ETH), offline[ETH])


async def test_malformed_frames_are_counted_and_never_touch_a_book() -> None:
    """Truncated JSON, a wrong type and an unknown stream: counted, logged, no gap, books still exact."""

    def truncate(payload: bytes) -> bytes:
        return payload[: len(payload) // 2]

    def wrong_type(payload: bytes) -> bytes:
        return payload.replace(b'"b":"', b'"b":["', 1).replace(b'","B"', b'"],"B"', 1)

    def unknown_stream(payload: bytes) -> bytes:
        return payload.replace(b"@bookTicker", b"@bookTickerV9", 1)

    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
        for index, mutation in ((300, truncate), (301, wrong_type), (302, unknown_stream)):
            exchange.faults.mutate(mutation, topic="btcusdt@bookTicker", index=index)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest)
        async with feed:
            await caught_up(exchange, [feed])
            assert exchange.stats.mutated == 3
            assert feed.stats.malformed == 3 and feed.runners[0].stats.malformed == 3
            assert "unknown stream" in feed.stats.last_malformed
            assert all(sync.stats.gaps == 0 for sync in feed.syncs.values())
            assert all(sync.state is SyncState.LIVE for sync in feed.syncs.values())
            offline = offline_books([SPOT], FRAMES)
            assert same_book(feed.book(BTC), offline[BTC]) and same_book(feed.book(ETH), offline[ETH])


def substitute(pattern: bytes, replacement: bytes, changed: list[bytes]) -> Callable[[bytes], bytes]:
    """A fault's mutation: the first match of ``pattern`` replaced; what it sent is kept in ``changed``."""

    def mutate(payload: bytes) -> bytes:
        bad = re.sub(pattern, replacement, payload, count=1)
        changed.append(bad)
        return bad

    return mutate


def only_btc_resynced(feed: VenueFeed, transitions: Transitions) -> tuple[BookSync, BookSync]:
    """The refused diff was lost: a gap on BTC alone and one resync, ETH never left LIVE; both books end
    equal to the offline rebuild. Returns the two syncs."""
    btc, eth = feed.syncs[BTC], feed.syncs[ETH]
    assert transitions.events(BTC) == [
        *LIVE_ONLY,
        SyncEvent.GAP_DETECTED,
        SyncEvent.RESYNC_STARTED,
        SyncEvent.SNAPSHOT_APPLIED,
    ]
    assert (btc.stats.gaps, btc.stats.resyncs) == (1, 1)
    assert transitions.events(ETH) == LIVE_ONLY and eth.stats.gaps == 0
    offline = offline_books([SPOT], FRAMES)
    assert same_book(btc.book, offline[BTC]) and same_book(eth.book, offline[ETH])
    return btc, eth


async def test_a_diff_with_a_level_no_book_can_hold_is_refused_and_its_book_resyncs() -> None:
    """A NaN price in a depth diff and an infinite ask in a bookTicker parse as floats: both frames are
    refused whole and counted; the lost diff is a gap on BTC alone, which resyncs; a refused ticker
    costs nothing. The books end equal to the offline rebuild, with no NaN in them."""
    changed: list[bytes] = []

    nan_price = substitute(rb'\[\["[0-9.]+"', b'[["nan"', changed)
    infinite_ask = substitute(rb'"a":"[0-9.]+"', b'"a":"inf"', changed)
    transitions = Transitions()
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
        exchange.faults.mutate(nan_price, topic="btcusdt@depth", index=150)
        exchange.faults.mutate(infinite_ask, topic="ethusdt@bookTicker", index=40)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, on_transition=transitions)
        async with feed:
            await caught_up(exchange, [feed])
            depth, ticker = sorted(changed, key=lambda frame: b"@depth" not in frame)
            assert b'[["nan"' in depth and b'"a":"inf"' in ticker and len(changed) == 2
            assert feed.stats.malformed == 2
            assert feed.stats.last_malformed in {  # the later of the two, which depends on arrival order
                "top frame: Expected `float` <= 1.7976931348623157e+308 - at `$.data.a`",
                "binance:spot:BTCUSDT: ask level 0 (nan, 0.32335): the price must be a finite number above 0",
            }
            btc, eth = only_btc_resynced(feed, transitions)
            for book in (btc.book, eth.book):
                assert not any(math.isnan(price) for price, _ in book.levels(Side.BID) + book.levels(Side.ASK))


async def test_a_diff_stamped_in_the_future_is_refused_and_its_book_resyncs() -> None:
    """A depth diff whose event time is in the year 2286 would move the market clock (funding settlements,
    dwell) for good: refused as malformed and counted; the lost diff is a gap on BTC alone, which resyncs."""
    changed: list[bytes] = []

    far_future = substitute(rb'"E":[0-9]+', b'"E":9999999999999', changed)
    transitions = Transitions()
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
        exchange.faults.mutate(far_future, topic="btcusdt@depth", index=150)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, on_transition=transitions)
        async with feed:
            await caught_up(exchange, [feed])
            assert len(changed) == 1 and b'"E":9999999999999' in changed[0]
            assert feed.stats.malformed == 1
            assert feed.stats.last_malformed.startswith(f"{BTC}: venue time 9999999999999 ms is ")
            assert feed.stats.last_malformed.endswith(" s ahead of the local clock")
            btc, _eth = only_btc_resynced(feed, transitions)
            assert btc.book.venue_ms < 9999999999999
