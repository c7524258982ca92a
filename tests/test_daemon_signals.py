"""``arbscan run`` as a real process: SIGHUP with a broken config keeps the old one, a good one applies,
SIGTERM stops it gracefully (exit 0, journal flushed). The feeds are the real Binance clients, pointed by
the config's ``ws_url``/``rest_url`` at a replay exchange of the BTCUSDT spot and USD-M recordings."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import orjson

from feeds.instruments import Market, Venue
from feeds.replay import ReplayConfig, ReplayExchange
from scanner.journal import JournalReader
from tests.conftest import DATA, ROOT, timeout
from tests.daemon_fixtures import scrape, value, wait_for
from tests.engine_fixtures import arbscan_command, free_port, subprocess_env
from tests.instruments_fixtures import recorded_metadata

BTC_FILES = [DATA / "hftbacktest" / m / "btcusdt_20240808.gz" for m in ("spot", "usdm")]
BASIS = "binance:spot:BTC-USDT|binance:usdm:BTC-USDT-PERP"


def run_config(tmp_path: Path, exchange: ReplayExchange, port: int, *, sizes: str, extra: str = "") -> str:
    spot, usdm = exchange.endpoints(Venue.BINANCE, Market.SPOT), exchange.endpoints(Venue.BINANCE, Market.USDM)
    return f"""
[daemon]
state_dir = "{tmp_path / "state"}"
shutdown_timeout_s = 5.0

[metrics]
listen = "127.0.0.1:{port}"

[logging]
level = "info"
json = true

[[feeds]]
venue = "binance"
market = "spot"
symbols = ["BTC-USDT"]
ws_url = "{spot.ws}"
rest_url = "{spot.rest}"

[[feeds]]
venue = "binance"
market = "usdm"
symbols = ["BTC-USDT-PERP"]
ws_url = "{usdm.ws}"
rest_url = "{usdm.rest}"

[constraints]
file = "{ROOT / "config" / "execution_constraints.json"}"

[[strategies]]
strategy = "perp_spot_basis"
pairs = [["binance:spot:BTC-USDT", "binance:usdm:BTC-USDT-PERP"]]
sizes_usd = {sizes}
horizon_hours = 8.0

[[funding_assumptions]]
instrument = "binance:usdm:BTC-USDT-PERP"
rate = 0.0001
reason = "test: the recording has no funding stream"
{extra}
"""


async def evaluations(url: str) -> float:
    samples = await scrape(url)
    return sum(
        value(samples, "arbscan_evaluations_total", strategy="perp_spot_basis", outcome=o)
        for o in ("qualified", "rejected")
    )


async def test_sighup_reload_and_sigterm(tmp_path: Path) -> None:
    """Broken config on SIGHUP: rejected, counted, logged, old kept; good config: applied; SIGTERM: exit 0."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    config = tmp_path / "arbscan.toml"
    stderr_path = tmp_path / "stderr.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # plays systemd's NOTIFY_SOCKET
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = subprocess_env(NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="200000")
    # `arbscan run` loads instrument metadata (and USD-M fundingInfo) from rest_url at start: served here.
    metadata = recorded_metadata()
    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=5.0), rest_bodies=metadata) as exchange:
        config.write_text(run_config(tmp_path, exchange, port, sizes="[5000.0]"))
        messages: list[str] = []
        collector = asyncio.create_task(_collect(notify, messages))
        with stderr_path.open("wb") as stderr, notify:
            proc = await asyncio.create_subprocess_exec(
                *arbscan_command("run", "--config", str(config)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=tmp_path,
            )
            try:
                await _exercise(proc, config, tmp_path, exchange, port=port, url=url)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                await asyncio.sleep(0.05)
                collector.cancel()
                await asyncio.gather(collector, return_exceptions=True)
    # systemd's notify protocol: READY once up, WATCHDOG pings from the loop, RELOADING around each SIGHUP,
    # STATUS lines, STOPPING at SIGTERM.
    assert "READY=1" in messages[0]
    assert sum("WATCHDOG=1" in m for m in messages) >= 2
    assert sum("RELOADING=1" in m for m in messages) == 2
    assert any(m.startswith("STATUS=qualified ") for m in messages)
    assert "STOPPING=1" in messages[-1]
    logs = [orjson.loads(line) for line in stderr_path.read_bytes().splitlines() if line.startswith(b"{")]
    rejected = [entry for entry in logs if entry.get("event") == "config_reload_rejected"]
    assert len(rejected) == 1
    assert any("engine.hysteresis_bnd_bps" in p and "unknown key" in p for p in rejected[0]["problems"])
    assert rejected[0]["kept"] == "old config"
    assert [entry["candidates"] for entry in logs if entry.get("event") == "config_reloaded"] == [4]


async def _exercise(
    proc: asyncio.subprocess.Process, config: Path, tmp_path: Path, exchange: ReplayExchange, *, port: int, url: str
) -> None:
    async def serving() -> bool:
        assert proc.returncode is None, "the daemon exited"
        try:
            return await evaluations(url) > 10
        except aiohttp.ClientError:
            return False

    await wait_for(serving, 60, "the daemon to evaluate")

    # ---- a broken config: rejected, the daemon keeps running on the old one ----
    broken = run_config(
        tmp_path, exchange, port, sizes="[5000.0, 1000.0]", extra="[engine]\nhysteresis_bnd_bps = 1.0\n"
    )
    await asyncio.to_thread(config.write_text, broken)
    proc.send_signal(signal.SIGHUP)

    async def rejected() -> bool:
        return value(await scrape(url), "arbscan_config_reloads_total", result="rejected") == 1

    await wait_for(rejected, 30, "the reload to be rejected")
    before = await evaluations(url)
    await wait_for(lambda: _more(url, before), 30, "evaluations to continue after the rejected reload")
    samples = await scrape(url)
    assert value(samples, "arbscan_config_reloads_total", result="applied") == 0
    assert proc.returncode is None
    new_candidate = f"perp_spot_basis:forward:{BASIS}:1000"
    assert not _journaled(tmp_path, new_candidate), "the broken config's new size must not have been applied"

    # ---- a good config: applied (a second size: two more candidates, one per direction) ----
    await asyncio.to_thread(config.write_text, run_config(tmp_path, exchange, port, sizes="[5000.0, 1000.0]"))
    proc.send_signal(signal.SIGHUP)

    async def applied() -> bool:
        return value(await scrape(url), "arbscan_config_reloads_total", result="applied") == 1

    await wait_for(applied, 30, "the reload to be applied")
    await wait_for(lambda: _journaled(tmp_path, new_candidate), 30, "the new candidate's first event in the journal")

    # ---- SIGTERM: graceful, exit 0, journal whole ----
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(timeout(30)):
        code = await proc.wait()
    assert code == 0
    reader = JournalReader(tmp_path / "state" / "journal")
    events = list(reader.events())
    assert reader.problems == []
    assert {e.dedup_key for e in events} >= {new_candidate, f"perp_spot_basis:forward:{BASIS}:5000"}
    for path in (tmp_path / "state" / "journal").glob("*.jsonl"):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n")  # flushed whole, no torn last line


async def _collect(sock: socket.socket, out: list[str]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        out.append((await loop.sock_recv(sock, 4096)).decode())


def _journaled(tmp_path: Path, candidate_id: str) -> bool:
    return any(candidate_id in p.read_text() for p in (tmp_path / "state" / "journal").glob("*.jsonl"))


async def _more(url: str, before: float) -> bool:
    return await evaluations(url) > before
