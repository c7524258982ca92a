"""A feed that stays connected but goes silent: the engine's timer disqualifies what was qualified on it.

The daemon reads the LINK/USDT csv-replay series from the replay exchange (real websocket clients on
loopback) at 400x the recorded pace, under the demo constraints with every ``max_book_age_ms`` cut to
400 ms. When a candidate is qualified the exchange is paused: the connections stay open, no frame comes,
no book updates, so only ``Engine.recheck`` can see the books age. It must disqualify the candidate as
``stale_book`` within the age limit plus a few re-check periods, journal it and alert the webhook.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from feeds.replay import ReplayConfig, ReplayExchange
from scanner.candidate_state import Status
from scanner.config import load_config
from tests.daemon_fixtures import (
    ROOT,
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

AGE_LIMIT_MS = 400.0
RECHECK_MS = 50


def _constraints_with_age_limit(tmp_path: Path) -> Path:
    document = json.loads((ROOT / "config" / "demo_constraints.json").read_text())
    for rule in document["rules"]:
        if "max_book_age_ms" in rule:
            rule["max_book_age_ms"] = AGE_LIMIT_MS
    path = tmp_path / "constraints.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.slow  # ~10 s: plays the series until a candidate qualifies, then waits out the age limit
async def test_a_silent_feed_disqualifies_its_qualified_candidates(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    receiver = WebhookReceiver()
    await receiver.up()
    config_path = csv_config(
        tmp_path,
        webhook_url=receiver.url,
        constraints_file=_constraints_with_age_limit(tmp_path),
        engine_extra=f"recheck_ms = {RECHECK_MS}",
    )
    config = load_config(config_path)
    assert config.engine.recheck_ms == RECHECK_MS
    stale: list[dict] = []
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=400.0)) as exchange:
        daemon = csv_replay_daemon(config_path, exchange)
        pause_on_qualified(daemon, exchange)

        def delivered() -> bool:
            """Every frame the exchange sent was read and evaluated: from now on only the clock moves."""
            received = sum(r.stats.frames for f in daemon.feeds for r in f.feed.runners)
            return received >= exchange.stats.frames_sent and daemon.engine.pending() == 0

        def qualified() -> list[str]:
            return [c.id for c in daemon.candidates if daemon.engine.state_of(c.id)[0] is Status.QUALIFIED]

        async def until() -> None:
            for _attempt in range(20):
                # Silence: the engine's sink paused the clock when a candidate qualified; connections stay open.
                await wait_for(lambda: paused(exchange), 60, "a qualified candidate")
                await asyncio.sleep(0.3)  # a frame the clock was sending when paused still goes out
                await wait_for(delivered, 10, "the frames in flight")
                silent = qualified()
                if silent:
                    break
                exchange.faults.resume()  # it was disqualified by a frame in flight: try the next one
            assert silent, "no candidate stayed qualified when the feed went silent"
            await wait_for(
                lambda: not daemon.engine.qualified_now(), (AGE_LIMIT_MS + 20 * RECHECK_MS) / 1000 + 5, "the re-check"
            )
            assert daemon.dispatcher is not None
            assert await daemon.dispatcher.drain(timeout_s=30)
            stale.extend(
                line
                for line in journal_lines(tmp_path / "state")
                if line["event"] == "disqualified" and line["decision"]["primary_reason"] == "stale_book"
            )
            assert sorted(line["dedup_key"] for line in stale) == sorted(silent)
            exchange.faults.resume()

        code = await daemon.run(until=until())
    await receiver.down()
    assert code == 0
    assert daemon.engine.stats.rechecks >= len(stale) > 0
    for line in stale:
        ages = [leg["book_age_ms"] for leg in line["decision"]["legs"]]
        assert max(ages) > AGE_LIMIT_MS  # the clock aged them: no frame came
    delivered = {d.json["event_id"] for d in receiver.deliveries}
    assert {line["id"] for line in stale} <= delivered  # the disqualification reached the webhook
