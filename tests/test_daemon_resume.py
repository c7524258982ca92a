"""A daemon restarted in the middle of a qualified episode resumes it from the journal.

The daemon reads the LINK/USDT csv-replay series from the replay exchange (real websocket clients on
loopback) at 400x. When a candidate is qualified the exchange is paused and the daemon stopped; a new
daemon on the same state directory starts against the same, still paused, exchange, so it sees the market
exactly where the first one left it. It must start those candidates qualified (no new ``qualified`` event,
no alert), and when the market moves on, close each episode with the ``disqualified`` event that pairs with
the first daemon's ``qualified`` one (same episode), delivered to the webhook.

An episode the new daemon will not continue (it was down too long, or its candidate is gone from the
config) is closed at start, before any frame: the ``disqualified`` event of that episode, reason
``not_watched``, carrying the latest decision the first daemon made (its clean stop saved the open episodes).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from feeds.replay import ReplayConfig, ReplayExchange
from scanner.candidate_state import EventKind, Status, event_id
from scanner.config import load_config
from scanner.daemon import Daemon
from scanner.resume import ALIVE_NAME, load_open_episodes
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


def _qualified(daemon: Daemon) -> list[str]:
    return [c.id for c in daemon.candidates if daemon.engine.state_of(c.id)[0] is Status.QUALIFIED]


@dataclass
class FirstRun:
    """The first daemon's run, stopped with candidates qualified and the exchange paused."""

    open_at_stop: list[str] = field(default_factory=list)
    opened: dict[str, dict[str, Any]] = field(default_factory=dict)  # their ``qualified`` journal lines
    last_seq: int = 0
    last_event_id: str = ""
    alerts: int = 0  # webhook deliveries by then


async def _run_until_qualified(config_path: Path, exchange: ReplayExchange, receiver: WebhookReceiver) -> FirstRun:
    run = FirstRun()
    first = csv_replay_daemon(config_path, exchange)
    pause_on_qualified(first, exchange)

    def delivered() -> bool:
        """Every frame the exchange sent was read and evaluated: from now on nothing moves."""
        received = sum(r.stats.frames for f in first.feeds for r in f.feed.runners)
        return received >= exchange.stats.frames_sent and first.engine.pending() == 0

    async def until_qualified_and_paused() -> None:
        for _attempt in range(20):
            await wait_for(lambda: paused(exchange), 60, "a qualified candidate")  # paused by the sink
            await asyncio.sleep(0.3)  # a frame the clock was sending when paused still goes out
            await wait_for(delivered, 10, "the frames in flight")
            run.open_at_stop.extend(_qualified(first))
            if run.open_at_stop:
                break
            exchange.faults.resume()  # disqualified by a frame in flight: try the next one
        assert run.open_at_stop, "no candidate stayed qualified when the exchange paused"
        assert first.dispatcher is not None
        assert await first.dispatcher.drain(timeout_s=30)

    assert await first.run(until=until_qualified_and_paused()) == 0
    lines = list(journal_lines(config_path.parent / "state"))
    run.last_seq = int(lines[-1]["seq"])
    run.last_event_id = str(lines[-1]["id"])
    run.opened = {
        str(line["dedup_key"]): line
        for line in lines
        if line["event"] == "qualified" and line["dedup_key"] in run.open_at_stop
    }
    assert sorted(run.opened) == sorted(run.open_at_stop)
    run.alerts = len(receiver.deliveries)
    return run


@pytest.mark.slow  # ~10 s: plays the series until a candidate qualifies, restarts, plays until it is not
async def test_a_restart_resumes_qualified_candidates_and_closes_their_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    receiver = WebhookReceiver()
    await receiver.up()
    config_path = csv_config(tmp_path, webhook_url=receiver.url)
    closed_after: list[str] = []
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=400.0)) as exchange:
        first = await _run_until_qualified(config_path, exchange, receiver)
        open_at_stop = first.open_at_stop
        second = csv_replay_daemon(config_path, exchange)

        async def until_closed() -> None:
            await wait_for(second.started.is_set, 30, "the restarted daemon")
            assert sorted(_qualified(second)) == sorted(open_at_stop)  # resumed, before any frame
            assert second.engine.qualified_now() == {"cex_cex": len(open_at_stop)}
            exchange.faults.resume()
            await wait_for(lambda: len(_qualified(second)) < len(open_at_stop), 60, "an episode to close")
            await asyncio.sleep(0.2)
            closed_after.extend(c for c in open_at_stop if c not in _qualified(second))
            assert second.dispatcher is not None
            assert await second.dispatcher.drain(timeout_s=30)

        assert await second.run(until=until_closed()) == 0
    await receiver.down()

    after = [line for line in journal_lines(tmp_path / "state") if line["seq"] > first.last_seq]
    for candidate in open_at_stop:
        kinds = [line["event"] for line in after if line["dedup_key"] == candidate and line["event"] != "rejected"]
        assert kinds[:1] != ["qualified"], f"{candidate}: alerted again after the restart"
    for candidate in closed_after:
        closing = next(line for line in after if line["dedup_key"] == candidate and line["event"] == "disqualified")
        assert closing["context"]["episode_ms"] == first.opened[candidate]["context"]["episode_ms"]
        assert closing["decision"]["primary_reason"] not in ("book_not_ready", "not_watched")  # the market's
        assert closing["id"] in {d.json["event_id"] for d in receiver.deliveries[first.alerts :]}
    assert closed_after


@pytest.mark.slow  # ~8 s: plays the series until a candidate qualifies, restarts
@pytest.mark.parametrize("unwatched_by", ["long_downtime", "candidate_removed"])
async def test_an_episode_the_restarted_daemon_will_not_watch_is_closed_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unwatched_by: str
) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    receiver = WebhookReceiver()
    await receiver.up()
    config_path = csv_config(tmp_path, webhook_url=receiver.url)
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=400.0)) as exchange:
        first = await _run_until_qualified(config_path, exchange, receiver)
        saved = load_open_episodes(tmp_path / "state" / "journal", first.last_seq, first.last_event_id)  # saved at stop
        assert saved is not None and sorted(saved) == sorted(first.open_at_stop)
        if unwatched_by == "long_downtime":
            alive = tmp_path / "state" / "journal" / ALIVE_NAME
            long_ago = alive.stat().st_mtime - load_config(config_path).engine.resume_max_downtime_s - 60.0
            os.utime(alive, (long_ago, long_ago))
        else:  # the restart's config has other sizes: none of the open episodes' candidates is configured
            csv_config(tmp_path, webhook_url=receiver.url, sizes="[1000.0]")
        second = csv_replay_daemon(config_path, exchange)
        assert not set(first.open_at_stop) & {c.id for c in second.candidates} or unwatched_by == "long_downtime"

        async def until_started() -> None:  # the exchange stays paused: no frame reaches the new daemon
            await wait_for(second.started.is_set, 30, "the restarted daemon")
            assert second.dispatcher is not None
            assert await second.dispatcher.drain(timeout_s=30)
            assert _qualified(second) == [] and second.engine.qualified_now() == {}

        with capture_logs() as logs:
            assert await second.run(until=until_started()) == 0
    await receiver.down()
    started = [e for e in logs if e["event"] in ("candidates_resumed", "candidates_not_resumed")]
    assert [e["source"] for e in started] == ["journal and the last clean stop"]  # the saved file was read
    assert [e["journal_last_event"] for e in started] == [first.last_event_id]  # matched by seq and id
    assert started[0]["episodes_closed"] == len(first.open_at_stop)

    after = [line for line in journal_lines(tmp_path / "state") if line["seq"] > first.last_seq]
    closing = {str(line["dedup_key"]): line for line in after if line["event"] == "disqualified"}
    assert sorted(closing) == sorted(first.open_at_stop)
    delivered = {d.json["event_id"]: d.json for d in receiver.deliveries[first.alerts :]}
    for candidate, opened in first.opened.items():
        line = closing[candidate]
        episode = opened["context"]["episode_ms"]
        assert line["context"]["episode_ms"] == episode
        assert line["id"] == event_id(candidate, EventKind.DISQUALIFIED, episode, "not_watched")
        assert line["decision"]["outcome"] == "rejected"
        assert line["decision"]["primary_reason"] == "not_watched"
        assert line["decision"]["reasons"] == ["not_watched"]
        # The numbers are the last the daemon saw of this episode: saved at its stop.
        assert line["decision"]["net_bps"] == saved[candidate].decision.net_bps > 0
        assert line["venue_ts_ms"] == saved[candidate].decision.now_ms >= opened["decision"]["now_ms"]
        assert line["id"] in delivered and delivered[line["id"]]["event"] == "disqualified"
