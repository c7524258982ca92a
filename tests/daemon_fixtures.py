"""Real peers for the daemon tests: a webhook receiver (aiohttp), configs, a /metrics scraper."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from feeds.replay import ReplayExchange
from scanner.candidate_state import EventKind
from scanner.commands.demo import csv_protocol_hook
from scanner.config import load_config
from scanner.daemon import Daemon, DaemonOptions
from scanner.engine import CandidateEvent
from tests.conftest import ROOT, timeout

WEBHOOK_KEY_ENV = "ARBSCAN_TEST_WEBHOOK_KEY"
WEBHOOK_KEY = "test-hmac-key-0123456789"


@dataclass(slots=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = orjson.loads(self.body)
        return parsed


@dataclass
class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers 200. ``up()``/``down()``."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(dict(request.headers), await request.read()))
        return web.Response(status=200, text="ok")


def csv_config(
    tmp_path: Path,
    *,
    webhook_url: str,
    state_dir: Path | None = None,
    sizes: str = "[500.0, 2000.0]",
    constraints_file: Path | None = None,
    engine_extra: str = "",
    binance_extra: str = "",
) -> Path:
    """A daemon config for the LINK/USDT csv-replay series with the demo constraints and one webhook.
    ``binance_extra``: more keys of the Binance [[feeds]] entry."""
    state = state_dir or tmp_path / "state"
    text = f"""
[daemon]
state_dir = "{state}"
shutdown_timeout_s = 5.0

[daemon.journal]
fsync_every = 1

[metrics]
listen = "127.0.0.1:0"

[logging]
level = "warning"

[[feeds]]
venue = "binance"
market = "spot"
symbols = ["LINK-USDT"]
{binance_extra}

[[feeds]]
venue = "huobi"
market = "spot"
symbols = ["LINK-USDT"]

[constraints]
file = "{constraints_file or ROOT / "config" / "demo_constraints.json"}"
fee_profile = "maker_inventory"
vip_tier = {{ binance = "demo-mm", huobi = "demo-mm" }}

[engine]
hysteresis_band_bps = 0.5
min_qualified_dwell_ms = 1000
{engine_extra}

[[strategies]]
strategy = "cex_cex"
pairs = [["binance:spot:LINK-USDT", "huobi:spot:LINK-USDT"]]
sizes_usd = {sizes}

[[webhooks]]
name = "ops"
url = "{webhook_url}"
secret_env = "{WEBHOOK_KEY_ENV}"
cooldown_s = 0
on = ["qualified", "disqualified"]
retry_initial_s = 0.05
retry_max_s = 0.2
rate_limit_per_min = 6000
timeout_s = 2.0
"""
    path = tmp_path / "arbscan.toml"
    path.write_text(text)
    return path


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it: (sample name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll until ``condition`` holds; the deadline scales with ARBSCAN_TESTS_TIMEOUT_FACTOR."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def csv_replay_daemon(config_path: Path, exchange: ReplayExchange) -> Daemon:
    """The daemon of ``config_path`` reading the csv-replay series from ``exchange`` (no signals, no summary)."""
    options = DaemonOptions(
        config_path=config_path,
        protocol_hook=csv_protocol_hook(exchange),
        label="replay",
        handle_signals=False,
        final_summary=False,
    )
    return Daemon(load_config(config_path), options)


def pause_on_qualified(daemon: Daemon, exchange: ReplayExchange) -> None:
    """Pause the replay exchange's clock the moment the engine emits a ``qualified`` event.

    At 400x a qualified episode can last a few wall milliseconds: a test polling ``qualified_now()``
    can miss every one of them on a loaded machine (a CI run did). Pausing from the engine's own sink, in
    the same tick as the event, leaves at most the frames already in flight to change it.
    """
    emit = daemon.engine.sink
    assert emit is not None

    def sink(event: CandidateEvent) -> None:
        emit(event)
        if event.event is EventKind.QUALIFIED:
            exchange.faults.pause()

    daemon.engine.sink = sink


def paused(exchange: ReplayExchange) -> bool:
    return not exchange.faults.paused.is_set()
