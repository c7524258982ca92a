"""A rollover of a running daemon's connection reaches /metrics: the reconnect and what its handover did.

The daemon reads the LINK/USDT csv-replay series from the replay exchange (real websocket clients on
loopback). Mid-stream one feed's connection is rolled over; the scrape then shows one ``rollover``
reconnect and the feed's handover counters (``arbscan_feed_handover_events_total{event}``) as the feed
counted them, and a later count reaches the scrape as its increase.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from feeds.replay import ReplayConfig, ReplayExchange
from scanner.metrics import HANDOVER_EVENTS
from tests.daemon_fixtures import WEBHOOK_KEY, WEBHOOK_KEY_ENV, csv_config, csv_replay_daemon, wait_for
from tests.engine_fixtures import csv_recordings


def _scraped(daemon, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    """The value of one series in the daemon's exposition, parsed as Prometheus reads it."""
    text = generate_latest(daemon.metrics.registry).decode()
    [value] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == labels
    ]
    return float(value)


@pytest.mark.slow  # ~5 s
async def test_a_rollover_and_its_handover_are_exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
    config_path = csv_config(tmp_path, webhook_url="http://127.0.0.1:9/hook", binance_extra="max_venue_ahead_s = 42.5")
    seen: dict[str, float] = {}
    async with ReplayExchange(recordings=csv_recordings(), config=ReplayConfig(speed=50.0)) as exchange:
        daemon = csv_replay_daemon(config_path, exchange)

        async def until() -> None:
            await wait_for(daemon.started.is_set, 30, "the daemon")
            runtime = daemon.feeds[0]
            # The configured skew reaches the feed that refuses updates from the future; the other keeps 300 s.
            seen["max_ahead"] = tuple(f.feed.config.max_venue_ahead_s for f in daemon.feeds)
            runner = runtime.feed.runners[0]
            await wait_for(lambda: runner.stats.frames > 20, 30, "frames")
            runner.request_rollover("test")
            await wait_for(lambda: runner.stats.rollovers == 1, 30, "the rollover")
            await wait_for(lambda: len(runner.live_connections) == 1, 30, "the old connection to close")
            daemon.refresh_metrics()
            feed = {"venue": runtime.plan.venue.value, "market": runtime.plan.market.value}
            seen["rollover"] = _scraped(daemon, "arbscan_feed_reconnects_total", **feed, reason="rollover")
            stats = runtime.feed.stats
            handovers = (stats.held, stats.handover_flushes, stats.stale_snapshots)
            counted = dict(zip(HANDOVER_EVENTS, handovers, strict=True))
            for event in HANDOVER_EVENTS:
                exported = _scraped(daemon, "arbscan_feed_handover_events_total", **feed, event=event)
                seen[event] = exported - counted[event]
            stats.stale_snapshots += 2  # a later count: the scrape shows its increase, once
            daemon.refresh_metrics()
            daemon.refresh_metrics()
            exported = _scraped(daemon, "arbscan_feed_handover_events_total", **feed, event="stale_snapshot")
            seen["later"] = exported - counted["stale_snapshot"]
            seen["future_before"] = _scraped(daemon, "arbscan_feed_future_stamped_updates_total", **feed)
            stats.future_stamped += 3  # as the feed counts updates from the future (tests/test_connection_handover)
            daemon.refresh_metrics()
            seen["future_after"] = _scraped(daemon, "arbscan_feed_future_stamped_updates_total", **feed)
            # One series per feed, each its own connections (not the last feed's of a shared venue market).
            seen["connected"] = {
                f.plan.name: _scraped(
                    daemon,
                    "arbscan_feed_connected",
                    venue=f.plan.venue.value,
                    market=f.plan.market.value,
                    feed=f.plan.name,
                )
                for f in daemon.feeds
            }

        assert await daemon.run(until=until()) == 0
    assert seen == {
        "max_ahead": (42.5, 300.0),
        "rollover": 1.0,
        "held": 0.0,
        "flushed": 0.0,
        "stale_snapshot": 0.0,
        "later": 2.0,
        "future_before": 0.0,
        "future_after": 3.0,
        "connected": {"binance:spot": 1.0, "huobi:spot": 1.0},
    }
