"""OKX through the replay exchange: a corrupted level and a skipped push are detected, only that book is
resubscribed, and every book ends equal to verify-books' rebuild; funding pushes are served too.

The bundled 2022 capture has no ``seqId`` (OKX added it later), so a skipped push shows up the way it did
for OKX clients then: the next push's top-25 checksum disagrees with the book. The ``prevSeqId`` chain is
tested on the documented sequence in test_okx_protocol.py.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

from feeds.instruments import Market, Venue
from feeds.okx.protocol import LIMITS, OkxProtocol
from feeds.protocol import Channel
from feeds.recordings import Recording
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.sync import SyncEvent
from feeds.updates import FundingUpdate
from tests.replay_fixtures import wait_until
from tests.venue_fixtures import OKX_WS, okx_funding_push
from tests.venue_replay_fixtures import Recorder, books_match, offline_books, okx_corrupt_first_level, venue_feed

MOUNT = (Venue.OKX, Market.FUTURES)  # the capture's first book is a future; the mount serves every type
BOOKS = {Market.SPOT: "BTC-USDT", Market.FUTURES: "BTC-USD-220527", Market.SWAP: "UNI-USD-SWAP"}
SPOT, FUT, SWAP = "okx:spot:BTC-USDT", "okx:futures:BTC-USD-220527", "okx:swap:UNI-USD-SWAP"
CLEAN = [SyncEvent.SNAPSHOT_APPLIED]
RESYNCED = [*CLEAN, SyncEvent.GAP_DETECTED, SyncEvent.RESYNC_STARTED, SyncEvent.SNAPSHOT_APPLIED]
SPEED = 15.0  # the ~30 s capture in ~2 s: the resubscribe lands mid-stream, later pushes verify on top


def capture_exchange() -> ReplayExchange:
    """The replay exchange serving the OKX websocket capture alone (OKX.0's metadata calls start minutes
    earlier and would only add idle time), at SPEED."""
    capture = Recording("cryptofeed", (OKX_WS,), exchange="OKX")
    return ReplayExchange(recordings=[capture], config=ReplayConfig(speed=SPEED, start_grace_s=0.3))


async def run_with_fault(fault: str, topic: str, index: int) -> tuple[Recorder, dict[str, object]]:
    recorder = Recorder()
    offline = offline_books([OKX_WS])
    async with capture_exchange() as exchange, RestClient() as rest:
        if fault == "corrupt":
            handle = exchange.faults.mutate(okx_corrupt_first_level, topic=topic, index=index)
        else:
            handle = exchange.faults.withhold(topic=topic, index=index)
        feeds = [
            venue_feed(exchange, MOUNT, OkxProtocol(market), [symbol], rest, on_transition=recorder)
            for market, symbol in BOOKS.items()
        ]
        recorder.feeds.extend(feeds)
        for feed in feeds:
            await feed.__aenter__()
        try:
            await books_match(exchange, feeds, offline)
            stats = {key: sync.stats for feed in feeds for key, sync in feed.syncs.items()}
            seen = {key: list(events) for key, events in recorder.seen.items()}
            assert handle.fired == 1
            assert sum(feed.stats.resubscribes for feed in feeds) == 1
            assert all(feed.stats.malformed == 0 for feed in feeds)
        finally:
            for feed in feeds:
                await feed.__aexit__(None, None, None)
    recorder.seen = seen  # what happened while streaming (closing the feeds resets their books)
    return recorder, stats


async def test_corrupted_level_fails_the_checksum_and_resyncs_that_book_only() -> None:
    """A size changed in BTC-USDT's 30th push: checksum failure, resubscribe, rebuilt snapshot, then clean."""
    recorder, stats = await run_with_fault("corrupt", "book:BTC-USDT", 30)
    assert recorder.events(SPOT) == RESYNCED
    spot = stats[SPOT]
    assert (spot.gaps, spot.resyncs, spot.checksum_failed, spot.snapshots) == (1, 1, 1, 2)  # type: ignore[attr-defined]
    after_resync = recorder.seen[SPOT][-1][1]
    assert spot.checksum_ok > after_resync  # type: ignore[attr-defined]  # pushes after the resync verified
    for key in (FUT, SWAP):
        assert recorder.events(key) == CLEAN
        assert (stats[key].gaps, stats[key].checksum_failed) == (0, 0)  # type: ignore[attr-defined]


async def test_skipped_push_is_detected_and_resynced() -> None:
    """UNI-USD-SWAP's 40th push withheld: the next push's checksum fails; only that book resyncs."""
    recorder, stats = await run_with_fault("withhold", "book:UNI-USD-SWAP", 40)
    assert recorder.events(SWAP) == RESYNCED
    swap = stats[SWAP]
    assert (swap.gaps, swap.checksum_failed) == (1, 1)  # type: ignore[attr-defined]
    assert recorder.events(SPOT) == CLEAN and recorder.events(FUT) == CLEAN


async def test_a_lost_resubscribe_is_asked_again_until_the_book_is_live() -> None:
    """BTC-USDT fails its checksum and resubscribes, but the venue loses that subscribe (the connection stays
    healthy, no answer, no data): past the recovery deadline the feed asks again, and the book is rebuilt."""
    recorder = Recorder()
    offline = offline_books([OKX_WS])
    async with capture_exchange() as exchange, RestClient() as rest:
        corrupt = exchange.faults.mutate(okx_corrupt_first_level, topic="book:BTC-USDT", index=30)
        lost = exchange.faults.lose_subscribes("book:BTC-USDT", after=1)  # the first subscribe is served
        feed = venue_feed(
            exchange,
            MOUNT,
            OkxProtocol(Market.SPOT),
            ["BTC-USDT"],
            rest,
            on_transition=recorder,
            recovery_deadline_s=1.0,
        )
        recorder.feeds.append(feed)
        async with feed:
            await books_match(exchange, [feed], offline)
            assert (corrupt.fired, lost.fired) == (1, 1)
            # Asked again at least once (more if the paced resubscribe was slower than the deadline).
            retries = feed.stats.recovery_retries
            assert retries >= 1 and feed.stats.resubscribes == 1 + retries
            sync = feed.syncs[SPOT]
            assert (sync.stats.gaps, sync.stats.resyncs) == (1, 1)  # asking again is not another gap
            assert 2 <= sync.stats.snapshots <= 1 + retries
            assert recorder.events(SPOT)[: len(RESYNCED)] == RESYNCED


async def test_a_resubscribe_past_the_hourly_subscribe_budget_replaces_the_connection() -> None:
    """OKX counts subscribe/unsubscribe requests per connection and hour (480). With a budget of 2, the
    initial subscribe uses 1; the resubscribe a checksum failure needs (unsubscribe + subscribe) would pass
    it, so the runner opens a new connection instead, which subscribes afresh and rebuilds the book."""
    recorder = Recorder()
    offline = offline_books([OKX_WS])
    async with capture_exchange() as exchange, RestClient() as rest:
        corrupt = exchange.faults.mutate(okx_corrupt_first_level, topic="book:BTC-USDT", index=30)
        protocol = OkxProtocol(Market.SPOT, limits=dataclasses.replace(LIMITS, max_subscribe_ops_per_hour=2))
        feed = venue_feed(exchange, MOUNT, protocol, ["BTC-USDT"], rest, on_transition=recorder)
        recorder.feeds.append(feed)
        async with feed:
            await books_match(exchange, [feed], offline)
            runner = feed.runners[0]
            assert corrupt.fired == 1 and feed.stats.resubscribes == 1
            assert (runner.stats.subscribe_budget_rollovers, runner.stats.rollovers) == (1, 1)
            first, second = sorted({s.conn_id for s in runner.stats.sends if s.kind == "text"})
            texts = [s.conn_id for s in runner.stats.sends if s.kind == "text"]
            assert (texts.count(first), texts.count(second)) == (1, 1)  # one subscribe each, no resubscribe
            assert recorder.events(SPOT)[: len(RESYNCED)] == RESYNCED
            # Two resubscribes before the replacement is up (the recovery watchdog asking again): one
            # replacement, not a second one right after it (found by review).
            subs = feed._subs_by_key[SPOT]
            runner.resubscribe(subs)
            runner.resubscribe(subs)
            assert runner.stats.subscribe_budget_rollovers == 2
            await wait_until(lambda: runner.stats.rollovers == 2 and len(runner.live_connections) == 1,
                             what="the second replacement", feeds=[feed])
            assert runner._rollover_reason == ""  # nothing left to replace the new connection with
    assert LIMITS.max_subscribe_ops_per_hour == 480


async def test_funding_stream_file_is_served(tmp_path: Path) -> None:
    """A funding stream file (our recorder's format) replayed: the client's funding state follows it."""
    pushes = [
        okx_funding_push("BTC-USD-SWAP", rate, 1_700_006_400_000, 1_700_006_400_000 + hours * 3_600_000, ts)
        for rate, hours, ts in (
            ("0.0001", 8, 1_700_000_000_000),
            ("0.00012", 8, 1_700_000_060_000),
            ("-0.0002", 4, 1_700_000_120_000),
        )
    ]
    path = tmp_path / "okx_funding_20231114.gz"
    with gzip.open(path, "wb") as f:
        for i, push in enumerate(pushes):
            f.write(b"%d %s\n" % (1_700_000_000_000_000_000 + i * 60_000_000_000, push))
    async with ReplayExchange([path], config=ReplayConfig(start_grace_s=0.3)) as exchange, RestClient() as rest:
        assert exchange.mounts() == [(Venue.OKX, Market.SWAP)]
        feed = venue_feed(
            exchange,
            (Venue.OKX, Market.SWAP),
            OkxProtocol(Market.SWAP),
            ["BTC-USD-SWAP"],
            rest,
            channels=[Channel.FUNDING],
        )
        async with feed:
            await wait_until(
                lambda: (u := feed.funding.get("okx:swap:BTC-USD-SWAP")) is not None and u.rate == -0.0002,
                what="the last funding push",
                feeds=[feed],
            )
            update = feed.funding.get("okx:swap:BTC-USD-SWAP")
            assert isinstance(update, FundingUpdate)
            assert (update.interval_ms, update.next_funding_ms, update.venue_ms) == (
                4 * 3_600_000,
                1_700_006_400_000,
                1_700_000_120_000,
            )
            assert exchange.stats.frames_sent == 3
