"""End to end: daemon + replay exchange + a real webhook receiver + /metrics scraped over HTTP.

The daemon runs in the test's event loop with the config a user would write (csv-replay feeds of the
LINK/USDT series, the demo constraints, one signed generic webhook); the replay exchange serves the
series on loopback and the real feed clients read it. Then: the journal, every webhook body and
signature, and the metric values must agree with each other and with the engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feeds.replay import ReplayConfig, ReplayExchange
from scanner.alerts import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from scanner.daemon import Daemon
from scanner.outbox import alert_id
from tests.daemon_fixtures import (
    WEBHOOK_KEY,
    WEBHOOK_KEY_ENV,
    WebhookReceiver,
    csv_config,
    csv_replay_daemon,
    scrape,
    value,
    wait_for,
)
from tests.engine_fixtures import csv_recordings, journal_lines


async def finish(daemon: Daemon, exchange: ReplayExchange, sent_before: int = 0) -> None:
    """Until the series is over, every frame was read and evaluated, and the outbox is empty.

    ``sent_before``: frames the exchange had sent before this daemon connected (to an earlier one).
    """
    await exchange.wait_finished()
    sent = exchange.stats.frames_sent - sent_before
    await wait_for(
        lambda: (
            sum(r.stats.frames for f in daemon.feeds for r in f.feed.runners) >= sent and daemon.engine.pending() == 0
        ),
        30,
        "the daemon to read every frame",
    )
    assert daemon.dispatcher is not None
    assert await daemon.dispatcher.drain(timeout_s=30)


@pytest.fixture
def webhook_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    return WEBHOOK_KEY.encode()


async def test_daemon_end_to_end(tmp_path: Path, webhook_key: bytes) -> None:
    """Journal, signed webhook bodies and scraped metrics all tell the same story of one replay."""
    receiver = WebhookReceiver()
    await receiver.up()
    config_path = csv_config(tmp_path, webhook_url=receiver.url)
    samples: dict = {}
    at_scrape: dict[str, dict[str, int]] = {}
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=None)) as exchange:
        daemon = csv_replay_daemon(config_path, exchange)

        async def until() -> None:
            nonlocal samples
            await finish(daemon, exchange)
            assert daemon.metrics_server is not None
            samples = await scrape(daemon.metrics_server.url)
            tally = daemon.engine.stats.strategies["cex_cex"]
            at_scrape.update(outcomes=dict(tally.outcomes), primary=dict(tally.primary))

        code = await daemon.run(until=until())
    await receiver.down()
    assert code == 0

    # ---- the journal ----
    lines = list(journal_lines(tmp_path / "state"))
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    by_kind: dict[str, list[dict]] = {}
    for line in lines:
        by_kind.setdefault(line["event"], []).append(line)
    qualified, disqualified = by_kind.get("qualified", []), by_kind.get("disqualified", [])
    assert qualified and len(by_kind["rejected"]) > len(qualified)
    for line in qualified:
        d = line["decision"]
        assert d["strategy"] == "cex_cex" and d["outcome"] == "qualified"
        assert d["net_bps"] >= d["min_net_edge_bps"] == 1.0
        assert line["dedup_key"] == d["candidate_id"] == line["context"]["candidate_id"]
        assert line["venue_ts_ms"] - line["context"]["episode_ms"] >= 1000  # the dwell, in market time
        assert 1_629_417_600_000 <= line["venue_ts_ms"] < 1_629_424_800_000  # 2021-08-20 00:00-02:00 UTC
        assert [leg["fee_table"]["tier"] for leg in d["legs"]] == ["demo-mm", "demo-mm"]
    for line in by_kind["rejected"]:
        assert line["decision"]["outcome"] == "rejected" and line["decision"]["primary_reason"]

    # ---- the webhooks: every qualified/disqualified event exactly once, signed ----
    expected = {alert_id(line["id"], "ops"): line for line in qualified + disqualified}
    keys = [d.json["idempotency_key"] for d in receiver.deliveries]
    assert sorted(keys) == sorted(expected)  # exactly once each
    for delivery in receiver.deliveries:
        body = delivery.json
        line = expected[body["idempotency_key"]]
        assert delivery.headers[IDEMPOTENCY_HEADER] == body["idempotency_key"]
        timestamp = delivery.headers[TIMESTAMP_HEADER]
        assert verify(webhook_key, timestamp, delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert not verify(b"another key", timestamp, delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert (body["event"], body["event_id"], body["seq"], body["dedup_key"]) == (
            line["event"],
            line["id"],
            line["seq"],
            line["dedup_key"],
        )
        assert body["decision"] == line["decision"]
        assert WEBHOOK_KEY not in delivery.body.decode()

    # ---- the metrics, scraped over HTTP before the daemon stopped ----
    outcomes = at_scrape["outcomes"]
    for outcome in ("qualified", "rejected"):
        assert value(samples, "arbscan_evaluations_total", strategy="cex_cex", outcome=outcome) == outcomes[outcome]
    assert 0 < outcomes["qualified"] < outcomes["rejected"]
    # The daemon stopped evaluating before it stopped its feeds: nothing was decided after the scrape.
    assert daemon.engine.stats.strategies["cex_cex"].outcomes == outcomes
    for reason, n in at_scrape["primary"].items():
        assert value(samples, "arbscan_primary_rejections_total", strategy="cex_cex", reason=reason) == n
    assert value(samples, "arbscan_candidate_events_total", strategy="cex_cex", event="qualified") == len(qualified)
    assert value(samples, "arbscan_journal_events_total", event="qualified") == len(qualified)
    assert value(samples, "arbscan_journal_events_total", event="rejected") == len(by_kind["rejected"])
    assert value(samples, "arbscan_webhook_sent_total", webhook="ops") == len(expected)
    assert value(samples, "arbscan_webhook_outbox_depth", webhook="ops") == 0
    assert value(samples, "arbscan_book_live", venue="huobi", market="spot", symbol="LINKUSDT") == 1
    assert value(samples, "arbscan_feed_connected", venue="huobi", market="spot", feed="huobi:spot") == 1
    # 7,200 rows per venue, plus the subscription ack.
    assert value(samples, "arbscan_feed_messages_total", venue="huobi", market="spot") == 7201
    assert value(samples, "arbscan_book_gaps_total", venue="binance", market="spot") == 0
    # Recovery health: no book needed its resubscribe asked again, none was abandoned (series exist at 0).
    assert value(samples, "arbscan_book_recovery_retries_total", venue="huobi", market="spot") == 0
    assert value(samples, "arbscan_books_abandoned_total", venue="binance", market="spot") == 0
    assert value(samples, "arbscan_config_reloads_total", result="rejected") == 0
    # evaluation time is sampled: one full evaluation in 8 (scanner.engine.EVAL_SAMPLE); reuses are not timed
    reused = value(samples, "arbscan_evaluations_reused_total", strategy="cex_cex")
    full = sum(outcomes.values()) - reused
    assert value(samples, "arbscan_evaluation_seconds_count", strategy="cex_cex") == (full + 7) // 8
    # Pre-initialized label sets: strategies that have no candidate still have their series.
    assert value(samples, "arbscan_evaluations_total", strategy="funding_carry_cex_cex", outcome="qualified") == 0
    assert value(samples, "arbscan_qualified_candidates", strategy="cex_cex") == sum(
        daemon.engine.qualified_now().values()
    )


async def test_every_alert_arrives_once_across_receiver_outage_and_restart(tmp_path: Path, webhook_key: bytes) -> None:
    """Receiver down while alerts pile up; daemon restarted; receiver up: each alert delivered exactly once."""
    receiver = WebhookReceiver()
    await receiver.up()  # learn a free port, then take it down: connection refused until it is back
    port = receiver.port
    await receiver.down()
    config_path = csv_config(tmp_path, webhook_url=f"http://127.0.0.1:{port}/hook", sizes="[500.0]")
    state = tmp_path / "state"
    speed = 2000.0  # the 2-hour series in 3.6 s, paused around the restart
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=speed)) as exchange:
        first = csv_replay_daemon(config_path, exchange)

        async def until_alert_pending() -> None:
            await first.started.wait()
            assert first.dispatcher is not None
            outbox = first.dispatcher.outbox
            await wait_for(lambda: outbox.depth("ops") >= 1, 30, "an alert waiting for the receiver")
            await wait_for(lambda: outbox.attempts(outbox.head("ops").alert_id) >= 2, 30, "failed delivery attempts")
            exchange.faults.pause()  # the market waits while the daemon restarts

        assert await first.run(until=until_alert_pending()) == 0
        pending_at_stop = {e.alert_id for e in first.dispatcher.outbox.pending("ops")}
        assert pending_at_stop and receiver.deliveries == []

        receiver.port = port
        await receiver.up()
        second = csv_replay_daemon(config_path, exchange)

        async def until_done() -> None:
            await second.started.wait()
            await wait_for(lambda: all(r.feed.is_live(k) for r in second.feeds for k in r.feed.syncs), 30, "books")
            sent_before = exchange.stats.frames_sent
            exchange.faults.resume()
            await finish(second, exchange, sent_before)

        assert await second.run(until=until_done()) == 0
    await receiver.down()

    lines = list(journal_lines(state))
    alerts = {alert_id(line["id"], "ops") for line in lines if line["event"] in ("qualified", "disqualified")}
    received = [d.json["idempotency_key"] for d in receiver.deliveries]
    assert len(received) == len(set(received)), "an alert was delivered twice"
    assert set(received) == alerts
    assert pending_at_stop <= alerts  # the ones queued during the outage came through after the restart
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # the second run continued the journal
    await asyncio.sleep(0)
