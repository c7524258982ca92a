"""A daemon restarted in the middle of a qualified episode resumes it from the journal.

The daemon reads the LINK/USDT csv-replay series from the replay exchange (real websocket clients on
loopback) at 400x. When a candidate is qualified the exchange is paused and the daemon stopped; a new
daemon on the same state directory starts against the same, still paused, exchange, so it sees the market
exactly where the first one left it. It must start those candidates qualified (no new ``qualified`` event,
no alert), and when the market moves on, close each episode with the ``disqualified`` event that pairs with
the first daemon's ``qualified`` one (same episode), delivered to the webhook.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feeds.replay import ReplayConfig, ReplayExchange
from scanner.candidate_state import Status
from tests.daemon_fixtures import (
    WEBHOOK_KEY,
    WEBHOOK_KEY_ENV,
    WebhookReceiver,
    csv_config,
    csv_replay_daemon,
    pause_on_qualified,
    paused,
    wait_for,
)
from tests.engine_fixtures import csv_recordings, journal_lines


@pytest.mark.slow  # ~10 s: plays the series until a candidate qualifies, restarts, plays until it is not
async def test_a_restart_resumes_qualified_candidates_and_closes_their_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    receiver = WebhookReceiver()
    await receiver.up()
    config_path = csv_config(tmp_path, webhook_url=receiver.url)
    open_at_stop: list[str] = []
    closed_after: list[str] = []
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=400.0)) as exchange:
        first = csv_replay_daemon(config_path, exchange)
        pause_on_qualified(first, exchange)

        def delivered(daemon) -> bool:  # type: ignore[no-untyped-def]
            """Every frame the exchange sent was read and evaluated: from now on nothing moves."""
            received = sum(r.stats.frames for f in daemon.feeds for r in f.feed.runners)
            return received >= exchange.stats.frames_sent and daemon.engine.pending() == 0

        def qualified(daemon) -> list[str]:  # type: ignore[no-untyped-def]
            return [c.id for c in daemon.candidates if daemon.engine.state_of(c.id)[0] is Status.QUALIFIED]

        async def until_qualified_and_paused() -> None:
            for _attempt in range(20):
                await wait_for(lambda: paused(exchange), 60, "a qualified candidate")  # paused by the sink
                await asyncio.sleep(0.3)  # a frame the clock was sending when paused still goes out
                await wait_for(lambda: delivered(first), 10, "the frames in flight")
                open_at_stop.extend(qualified(first))
                if open_at_stop:
                    break
                exchange.faults.resume()  # disqualified by a frame in flight: try the next one
            assert open_at_stop, "no candidate stayed qualified when the exchange paused"
            assert first.dispatcher is not None
            assert await first.dispatcher.drain(timeout_s=30)

        assert await first.run(until=until_qualified_and_paused()) == 0
        first_lines = list(journal_lines(tmp_path / "state"))
        last_seq = first_lines[-1]["seq"]
        opened = {
            line["dedup_key"]: line
            for line in first_lines
            if line["event"] == "qualified" and line["dedup_key"] in open_at_stop
        }
        assert sorted(opened) == sorted(open_at_stop)
        alerts_before = len(receiver.deliveries)

        second = csv_replay_daemon(config_path, exchange)

        async def until_closed() -> None:
            await wait_for(second.started.is_set, 30, "the restarted daemon")
            assert sorted(qualified(second)) == sorted(open_at_stop)  # resumed, before any frame
            assert second.engine.qualified_now() == {"cex_cex": len(open_at_stop)}
            exchange.faults.resume()
            await wait_for(lambda: len(qualified(second)) < len(open_at_stop), 60, "an episode to close")
            await asyncio.sleep(0.2)
            closed_after.extend(c for c in open_at_stop if c not in qualified(second))
            assert second.dispatcher is not None
            assert await second.dispatcher.drain(timeout_s=30)

        assert await second.run(until=until_closed()) == 0
    await receiver.down()

    after = [line for line in journal_lines(tmp_path / "state") if line["seq"] > last_seq]
    for candidate in open_at_stop:
        kinds = [line["event"] for line in after if line["dedup_key"] == candidate and line["event"] != "rejected"]
        assert kinds[:1] != ["qualified"], f"{candidate}: alerted again after the restart"
    for candidate in closed_after:
        closing = next(line for line in after if line["dedup_key"] == candidate and line["event"] == "disqualified")
        assert closing["context"]["episode_ms"] == opened[candidate]["context"]["episode_ms"]
        assert closing["decision"]["primary_reason"] != "book_not_ready"  # closed by the market, not the start
        assert closing["id"] in {d.json["event_id"] for d in receiver.deliveries[alerts_before:]}
    assert closed_after
