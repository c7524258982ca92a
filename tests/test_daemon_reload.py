"""SIGHUP reload in process (``Daemon.reload``): a config that fails anywhere changes nothing and is counted;
a good one reports every kept key it changed as ``restart_required``."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from scanner.config import load_config
from scanner.daemon import Daemon, DaemonOptions
from tests.daemon_fixtures import WEBHOOK_KEY, WEBHOOK_KEY_ENV, csv_config

PAIR = 'pairs = [["binance:spot:LINK-USDT", "huobi:spot:LINK-USDT"]]'


def make_daemon(path: Path) -> Daemon:
    options = DaemonOptions(config_path=path, handle_signals=False, final_summary=False)
    return Daemon(load_config(path), options)


def reloads(daemon: Daemon, result: str) -> float:
    value = daemon.metrics.registry.get_sample_value("arbscan_config_reloads_total", {"result": result})
    return value or 0.0


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_KEY_ENV, WEBHOOK_KEY)


def test_reload_with_duplicate_candidates_is_rejected_counted_and_changes_nothing(tmp_path: Path) -> None:
    path = csv_config(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    daemon = make_daemon(path)
    before_ids = [c.id for c in daemon.engine.candidates]
    assert daemon.engine.settings.hysteresis_band_bps == 0.5
    text = path.read_text()
    duplicate = f'\n[[strategies]]\nstrategy = "cex_cex"\n{PAIR}\nsizes_usd = [500.0]\n'
    path.write_text(text.replace("hysteresis_band_bps = 0.5", "hysteresis_band_bps = 3.0") + duplicate)
    with capture_logs() as logs:
        assert daemon.reload() is False
    assert reloads(daemon, "rejected") == 1
    assert reloads(daemon, "applied") == 0
    assert daemon.reloads == [False]
    assert daemon.engine.settings.hysteresis_band_bps == 0.5
    assert daemon.config.engine.hysteresis_band_bps == 0.5
    assert [c.id for c in daemon.engine.candidates] == before_ids
    [rejected] = [e for e in logs if e["event"] == "config_reload_rejected"]
    assert any(p.startswith("strategies[1].pairs[0]: duplicate of candidate cex_cex:") for p in rejected["problems"])


def test_reload_reports_kept_daemon_and_metrics_keys_as_restart_required(tmp_path: Path) -> None:
    path = csv_config(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    daemon = make_daemon(path)
    text = path.read_text()
    changed = text.replace("fsync_every = 1", "fsync_every = 5").replace(
        "hysteresis_band_bps = 0.5", "hysteresis_band_bps = 3.0"
    )
    path.write_text(changed)
    with capture_logs() as logs:
        assert daemon.reload() is True
    assert reloads(daemon, "applied") == 1
    [applied] = [e for e in logs if e["event"] == "config_reloaded"]
    assert applied["restart_required"] == ["daemon.journal.fsync_every"]
    assert daemon.engine.settings.hysteresis_band_bps == 3.0  # applied in place
    assert daemon.config.daemon.journal.fsync_every == 1  # kept until a restart, and said so
