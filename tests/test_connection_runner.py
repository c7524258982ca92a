"""The generic connection runner against the replay exchange: rollover by overlap, serverShutdown, idle
detection, pings as liveness, the venue's message rate, and fatal errors that are never retried."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from feeds.connection import RunnerConfig
from feeds.errors import VenueRejected
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent
from feeds.venues import get_entry
from tests.replay_fixtures import (
    FAST_BACKOFF,
    FAST_RUNNER,
    SPOT,
    Transitions,
    binance_feed,
    caught_up,
    live_spot_feed,
    offline_books,
    same_book,
    wait_until,
)

FRAMES = 6000
BTC, ETH = "binance:spot:BTCUSDT", "binance:spot:ETHUSDT"
LIVE_ONLY = [SyncEvent.REQUEST_SNAPSHOT, SyncEvent.SNAPSHOT_APPLIED]


def assert_never_dropped(feed: VenueFeed, transitions: Transitions) -> None:
    """Every book went live once and stayed live: no reset, no gap, one snapshot."""
    assert feed.stats.resets == 0
    for key, sync in feed.syncs.items():
        assert transitions.events(key) == LIVE_ONLY, key
        assert (sync.stats.gaps, sync.stats.snapshots) == (0, 1), key


async def test_lifetime_rollover_overlaps_connections_and_keeps_books_live() -> None:
    """Connections replaced before their lifetime: old and new overlap, the books never drop or gap."""
    transitions = Transitions()
    runner_config = dataclasses.replace(FAST_RUNNER, max_lifetime_s=0.6, rollover_margin_s=0.0)
    # 20x the recorded pace: ~2 s of replay, several connection lifetimes.
    config = ReplayConfig(max_frames=FRAMES, speed=20.0)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        feed = binance_feed(
            exchange, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest, runner=runner_config, on_transition=transitions
        )
        async with feed:
            await caught_up(exchange, [feed], seconds=30)
            runner = feed.runners[0]
            assert runner.stats.rollovers >= 1
            assert runner.stats.overlap_timeouts == 0  # every handover completed because the books moved over
            assert runner.stats.connects == runner.stats.rollovers + 1
            assert_never_dropped(feed, transitions)
            offline = offline_books([SPOT], FRAMES)
            assert same_book(feed.book(BTC), offline[BTC]) and same_book(feed.book(ETH), offline[ETH])


async def test_server_shutdown_notice_triggers_an_overlapping_reconnect() -> None:
    """Binance's serverShutdown: a replacement connection first, then the old one closes; no gap."""
    transitions = Transitions()
    async with live_spot_feed(transitions, FRAMES) as (exchange, feed):
        runner = feed.runners[0]
        exchange.faults.pause()
        assert await exchange.faults.shutdown_notice() == 1
        await wait_until(lambda: runner.stats.connects == 2, what="the replacement connection", feeds=[feed])
        assert len(runner.live_connections) == 2  # overlapping: the old one is still streaming
        exchange.faults.resume()
        await wait_until(lambda: runner.stats.disconnects == 1, what="the old connection to close", feeds=[feed])
        await caught_up(exchange, [feed])
        assert runner.stats.rollovers == 1 and runner.stats.overlap_timeouts == 0
        (survivor,) = runner.live_connections
        assert survivor.replacing is not None and survivor.replacing < survivor.conn_id
        assert_never_dropped(feed, transitions)
        offline = offline_books([SPOT], FRAMES)
        assert same_book(feed.book(BTC), offline[BTC]) and same_book(feed.book(ETH), offline[ETH])


async def test_a_rollover_whose_replacement_is_refused_keeps_the_old_connection_and_retries() -> None:
    """The replacement's handshake refused (403, 522, then 401, which a first connect takes as a bad URL or
    key): the venue accepted this URL before, so it is not a configuration error. The old connection keeps
    streaming and the books stay live (the refusal used to end the feed, and with it the daemon); the
    replacement is retried and takes over."""
    transitions = Transitions()
    async with live_spot_feed(transitions, FRAMES) as (exchange, feed):
        runner = feed.runners[0]
        for status in (403, 522, 401):
            exchange.faults.refuse_handshakes(status)
        assert await exchange.faults.shutdown_notice() == 1
        await wait_until(lambda: runner.stats.connect_failures == 3, what="three refusals", feeds=[feed])
        assert len(runner.live_connections) == 1 and all(map(feed.is_live, feed.syncs))
        await wait_until(lambda: runner.stats.connects == 2, what="the replacement", feeds=[feed])
        await caught_up(exchange, [feed])
        assert runner.stats.rollovers == 1
        assert_never_dropped(feed, transitions)


async def test_a_handshake_rate_limited_with_retry_after_pauses_the_shared_connect_budget() -> None:
    """A 429 with Retry-After is the venue speaking to this IP: every runner sharing the venue's connect
    budget waits, not only the refused one (which retries after it and connects)."""
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
        exchange.faults.refuse_handshakes(429, retry_after=1.0)
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT"], rest)
        async with feed:
            runner = feed.runners[0]
            await wait_until(lambda: runner.stats.connect_failures == 1, what="the refusal", feeds=[feed])
            granted = runner.connect_budget.granted_total
            assert not runner.connect_budget.try_acquire(label="another runner of the venue")
            assert runner.connect_budget.granted_total == granted
            await wait_until(lambda: runner.stats.connects == 1, what="the retried connect", feeds=[feed])
            assert runner.connect_budget.granted_total == granted + 1


async def test_silent_connection_is_detected_idle_and_replaced() -> None:
    """No frame and no pong for the venue's idle timeout: the runner closes, reconnects, and resyncs."""
    runner_config = dataclasses.replace(FAST_RUNNER, ping_interval_s=None)
    config = ReplayConfig(max_frames=FRAMES, start_grace_s=0.0)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        endpoints = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        protocol = get_entry(Venue.BINANCE, Market.SPOT).protocol(endpoints)
        protocol.limits = dataclasses.replace(protocol.limits, idle_timeout_s=0.3)  # type: ignore[misc]
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT"], rest, runner=runner_config, protocol=protocol)
        async with feed:
            runner = feed.runners[0]
            await wait_until(lambda: feed.is_live(BTC), what="book live", feeds=[feed])
            exchange.faults.pause()
            idle, connects = runner.stats.idle_timeouts, runner.stats.connects
            await wait_until(lambda: runner.stats.idle_timeouts > idle, what="the idle timeout", feeds=[feed])
            await wait_until(lambda: runner.stats.connects > connects, what="a new connection", feeds=[feed])
            assert not feed.is_live(BTC)  # reset when its connection died; the market is still paused
            exchange.faults.resume()
            await caught_up(exchange, [feed])
            assert feed.stats.resets >= 1 and feed.syncs[BTC].stats.gaps == 0
            assert same_book(feed.book(BTC), offline_books([SPOT], FRAMES)[BTC])


async def test_pongs_keep_a_quiet_connection_alive() -> None:
    """A market with no frames is not a dead link while websocket pings are answered."""
    # Pings are paid from the 4 messages/s left for us (Binance spot counts them): 0.3 s apart fits.
    runner_config = dataclasses.replace(FAST_RUNNER, ping_interval_s=0.3, ping_timeout_s=5.0)
    config = ReplayConfig(max_frames=FRAMES, start_grace_s=0.0)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        endpoints = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        protocol = get_entry(Venue.BINANCE, Market.SPOT).protocol(endpoints)
        protocol.limits = dataclasses.replace(protocol.limits, idle_timeout_s=0.6)  # type: ignore[misc]
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT"], rest, runner=runner_config, protocol=protocol)
        async with feed:
            runner = feed.runners[0]
            await wait_until(lambda: feed.is_live(BTC), what="book live", feeds=[feed])
            exchange.faults.pause()
            sent = runner.stats.sent
            await asyncio.sleep(1.5)  # more than two idle timeouts without a single frame
            assert runner.stats.idle_timeouts == 0 and runner.stats.connects == 1
            assert feed.is_live(BTC)
            assert runner.stats.sent == sent  # pings are control frames, not text messages
            exchange.faults.resume()


def busiest_second(times_ns: list[int]) -> int:
    """The most messages inside any window of one second (the venue counts a sliding window)."""
    times = sorted(times_ns)
    busiest, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1_000_000_000:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def test_busiest_second_counts_a_sliding_window() -> None:
    second = 1_000_000_000
    assert busiest_second([]) == 0
    assert busiest_second([0, 1, 2, second, second + 1]) == 3  # 0..2 then the window moves past 0
    assert busiest_second([0, second - 1, second, 2 * second - 1]) == 2  # exactly 1 s apart: not together
    assert busiest_second([0] * 4 + [second] * 4) == 4


async def test_requests_stay_within_the_venue_message_rate() -> None:
    """Eight requests queued at once go out paced under Binance's 5 messages/s, by the client's own clock."""
    config = ReplayConfig(max_frames=10, autostart=False)
    async with ReplayExchange([SPOT], config=config) as exchange, RestClient() as rest:
        feed = binance_feed(exchange, Market.SPOT, ["BTCUSDT"], rest)
        async with feed:
            runner = feed.runners[0]
            venue_limit = runner.protocol.limits.max_messages_per_second
            await wait_until(lambda: runner.stats.connects == 1, what="connected", feeds=[feed])
            (conn,) = runner.live_connections
            for i in range(8):
                runner.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{100 + i}}}')
            await wait_until(lambda: runner.stats.sent == 8, what="all requests sent", seconds=15, feeds=[feed])
            sends = list(runner.stats.sends)
            assert runner.stats.disconnects == 0 and runner.stats.connects == 1
        assert venue_limit == 5.0
        assert {s.conn_id for s in sends} == {conn.conn_id}
        texts = [s for s in sends if s.kind == "text"]
        assert len(texts) == 8  # the combined-stream URL subscribes: no subscribe frames, only our requests
        # Every write, pings included, counts against the venue's rate: never more than 5 in any second
        # (the runner paces at 4/s; the fifth is the reserve, which also absorbs microseconds between the
        # budget's grant and the timestamp). Eight unpaced requests would put 8 in one second.
        assert busiest_second([s.at_ns for s in sends]) <= venue_limit


async def test_refused_handshake_is_fatal_and_not_retried() -> None:
    """A websocket path the venue does not have (HTTP 404): VenueRejected at once, no retry loop."""
    async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=10)) as exchange, RestClient() as rest:
        endpoints = exchange.endpoints(Venue.BINANCE, Market.SPOT)
        protocol = get_entry(Venue.BINANCE, Market.SPOT).protocol(endpoints)
        config = FeedConfig(
            ws_url=endpoints.ws + "/nowhere",
            rest_url=endpoints.rest,
            runner=RunnerConfig(backoff=FAST_BACKOFF),
        )
        feed = VenueFeed(protocol, [Subscription("BTCUSDT", Channel.BOOK)], rest=rest, config=config)
        with pytest.raises(VenueRejected, match="HTTP 404"):
            await asyncio.wait_for(feed.run(), 10)
        assert feed.runners[0].stats.connect_failures == 0
