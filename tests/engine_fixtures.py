"""Shared helpers of the engine, daemon and demo tests (not a conftest: imported explicitly)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from feeds.instruments import InstrumentId
from feeds.recordings import Recording, open_recordings
from feeds.replay import csvbook
from scanner.config import Config, load_config
from scanner.runtime import engine_settings, funding_assumptions, load_effective_constraints
from tests.conftest import DATA, ROOT

DEMO_CONFIG = ROOT / "config" / "demo.toml"
DEMO_CONSTRAINTS = ROOT / "config" / "demo_constraints.json"
BTC_SPOT = InstrumentId.parse("binance:spot:BTC-USDT")
BTC_PERP = InstrumentId.parse("binance:usdm:BTC-USDT-PERP")
ETH_SPOT = InstrumentId.parse("binance:spot:ETH-USDT")
ETH_PERP = InstrumentId.parse("binance:usdm:ETH-USDT-PERP")
LINK_BINANCE = InstrumentId.parse("binance:spot:LINK-USDT")
LINK_HUOBI = InstrumentId.parse("huobi:spot:LINK-USDT")
# 2024-08-09 00:00:00 UTC: the Binance 8-hourly settlement after the recording's 23:54-23:59 window.
SETTLEMENT_MS = 1_723_161_600_000
CSV_FILES = (DATA / "defi-arbitrage" / "orderbook_bnc.csv", DATA / "defi-arbitrage" / "orderbook_hb.csv")


def demo_config() -> Config:
    return load_config(DEMO_CONFIG)


def demo_runtime() -> tuple[Config, object, object, object]:
    config = demo_config()
    return config, load_effective_constraints(config), funding_assumptions(config), engine_settings(config)


def btc_recordings() -> list[Recording]:
    """Binance spot and USD-M BTCUSDT of 2024-08-08 (recorded simultaneously)."""
    paths = [DATA / "hftbacktest" / m / "btcusdt_20240808.gz" for m in ("spot", "usdm")]
    return open_recordings(paths).recordings


def csv_recordings() -> list[Recording]:
    return csvbook.recordings(CSV_FILES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def arbscan_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "scanner", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def journal_lines(state_dir: Path) -> Iterator[dict[str, object]]:
    import orjson

    for path in sorted((state_dir / "journal").glob("journal-*.jsonl")):
        for line in path.read_bytes().splitlines():
            yield orjson.loads(line)
