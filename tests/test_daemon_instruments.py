"""The daemon's instrument metadata: loaded over REST at start from a replay exchange serving the REAL
recorded metadata answers, contract terms reaching the books (OKX swaps quoted in contracts of ``ctVal``),
a configured contract instrument the metadata does not list refused at start (exit 2), Binance USD-M
``fundingInfo`` intervals applied to funding, and the periodic refresh (a failed one keeps the old)."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from feeds.book import Side
from feeds.instruments import ContractType, InstrumentId, Market, Venue
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.venues import Endpoints
from scanner.config import load_config
from scanner.daemon import Daemon, DaemonOptions
from scanner.errors import InstrumentsUnavailable
from tests.conftest import DATA, ROOT, timeout
from tests.daemon_fixtures import wait_for
from tests.engine_fixtures import arbscan_command, subprocess_env
from tests.instruments_fixtures import FUNDING_INFO_KEY, recorded_metadata
from tests.venue_fixtures import BINANCE_MARK_PRICE, CRYPTOFEED

HOUR_MS = 3_600_000
UNI_SWAP = InstrumentId.parse("okx:swap:UNI-USD-PERP")
BTC_FILES = [DATA / "hftbacktest" / m / "btcusdt_20240808.gz" for m in ("spot", "usdm")]


def okx_config(tmp_path: Path, swaps: str = '["BTC-USDT-PERP", "UNI-USD-PERP"]', urls: str = "") -> Path:
    """OKX spot + swaps (the recording's UNI-USD-SWAP book, inverse, ctVal 10 USD)."""
    path = tmp_path / "okx.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
shutdown_timeout_s = 2.0

[metrics]
listen = "127.0.0.1:0"

[logging]
level = "warning"

[[feeds]]
venue = "okx"
market = "spot"
symbols = ["BTC-USDT"]
{urls}

[[feeds]]
venue = "okx"
market = "swap"
symbols = {swaps}
{urls}

[constraints]
file = "{ROOT / "config" / "execution_constraints.json"}"

[[strategies]]
strategy = "perp_spot_basis"
pairs = [["okx:spot:BTC-USDT", "okx:swap:BTC-USDT-PERP"]]
sizes_usd = [1000.0]
horizon_hours = 8.0
"""
    )
    return path


def usdm_config(tmp_path: Path) -> Path:
    path = tmp_path / "usdm.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
shutdown_timeout_s = 2.0

[metrics]
listen = "127.0.0.1:0"

[logging]
level = "warning"

[[feeds]]
venue = "binance"
market = "spot"
symbols = ["BTC-USDT"]

[[feeds]]
venue = "binance"
market = "usdm"
symbols = ["BTC-USDT-PERP"]

[constraints]
file = "{ROOT / "config" / "execution_constraints.json"}"

[[strategies]]
strategy = "perp_spot_basis"
pairs = [["binance:spot:BTC-USDT", "binance:usdm:BTC-USDT-PERP"]]
sizes_usd = [1000.0]
horizon_hours = 8.0
"""
    )
    return path


def to(exchange: ReplayExchange, venue: Venue):
    """Endpoints hook: every market of ``venue`` to the exchange's mount of that venue."""
    (mount,) = [m for m in exchange.mounts() if m[0] is venue]

    def hook(v: Venue, m: Market) -> Endpoints | None:
        return exchange.endpoints(*mount) if v is venue else None

    return hook


def options(config: Path, **kw: object) -> DaemonOptions:
    return DaemonOptions(config_path=config, handle_signals=False, final_summary=False, **kw)  # type: ignore[arg-type]


async def test_okx_swap_book_walks_in_base_units_with_the_listed_contract_size(tmp_path: Path) -> None:
    """The UNI-USD-SWAP book the daemon builds counts contracts of ctVal 10 USD (OKX.0); the depth walk
    turns them into base units: one ask level of q contracts at p is q*10/p UNI, not q UNI."""
    config = okx_config(tmp_path)
    replay = ReplayConfig(start_grace_s=0.5)
    async with ReplayExchange([CRYPTOFEED / "OKX.ws.1.0"], config=replay, rest_bodies=recorded_metadata()) as exchange:
        daemon = Daemon(load_config(config), options(config, endpoints_hook=to(exchange, Venue.OKX)))

        walked: list[tuple[object, ...]] = []

        async def until() -> None:
            await exchange.wait_finished()
            await wait_for(lambda: daemon.market.book(UNI_SWAP) is not None, 10, "the UNI-USD-SWAP book live")
            book = daemon.market.book(UNI_SWAP)
            assert book is not None and book.best_ask() is not None
            price, contracts = book.best_ask()  # type: ignore[misc]
            level_base = contracts * 10 / price  # ctVal 10 USD per contract
            fill = book.walk(Side.ASK, base=level_base / 2)
            walked.append((book.contract_type, book.contract_size, price, contracts, level_base, fill))

        assert await asyncio.wait_for(daemon.run(until=until()), timeout(60)) == 0

    meta = daemon.catalog.by_symbol(Venue.OKX, Market.SWAP, "UNI-USD-SWAP")
    assert meta is not None and (meta.spec.contract_type, meta.contract_size) == (ContractType.INVERSE, Decimal(10))
    (swap_plan,) = [p for p in daemon.plans if p.market is Market.SWAP]
    linear = swap_plan.protocol.specs["BTC-USDT-SWAP"]  # type: ignore[attr-defined]
    assert (linear.contract_type, linear.contract_size) == (ContractType.LINEAR, 0.01)  # ctVal 0.01 BTC
    ((kind, size, price, contracts, level_base, fill),) = walked
    assert (kind, size) == (ContractType.INVERSE, 10.0)
    assert fill.complete and fill.levels == 1 and fill.top_price == price
    assert fill.base == pytest.approx(level_base / 2)
    assert fill.quote == pytest.approx(contracts * 10 / 2)  # notional: half the level's USD face value
    # UNI was near 5.1 USD: a contract (10 USD) is ~1.9 UNI, so the contracts-as-base-units walk would say
    # half the level is contracts/2 UNI; the listed ctVal makes it about twice that.
    assert 5 < price < 5.3 and fill.base == pytest.approx(contracts * 5 / price) and fill.base > contracts * 0.9


def test_a_contract_instrument_without_metadata_refuses_to_start(tmp_path: Path) -> None:
    """OKX lists no XYZ-USDT-SWAP: `arbscan run` exits 2 naming feed, venue/market, symbol and why."""

    async def main() -> tuple[int | None, str]:
        async with ReplayExchange([CRYPTOFEED / "OKX.ws.1.0"], rest_bodies=recorded_metadata()) as exchange:
            (mount,) = exchange.mounts()
            ends = exchange.endpoints(*mount)
            urls = f'ws_url = "{ends.ws}"\nrest_url = "{ends.rest}"'
            config = okx_config(tmp_path, swaps='["BTC-USDT-PERP", "XYZ-USDT-PERP"]', urls=urls)
            proc = await asyncio.create_subprocess_exec(
                *arbscan_command("run", "--config", str(config)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=subprocess_env(),
                cwd=tmp_path,
            )
            _, err = await asyncio.wait_for(proc.communicate(), timeout(60))
            return proc.returncode, err.decode()

    code, stderr = asyncio.run(main())
    assert code == 2, stderr
    assert (
        "feeds[1].symbols: okx/swap XYZ-USDT-PERP (venue symbol XYZ-USDT-SWAP): the venue's instrument metadata "
        "does not list it, so its contract size is unknown" in stderr
    )
    assert "BTC-USDT-PERP" not in stderr.split("invalid configuration", 1)[-1]  # listed: not a problem
    assert "Traceback" not in stderr


async def test_binance_usdm_funding_interval_from_funding_info_and_refresh(tmp_path: Path) -> None:
    """USD-M loads exchangeInfo + fundingInfo from rest_url: BLZUSDT listed at 4 h, BTCUSDT unlisted → 8 h,
    in the catalog and in the /market feed's funding updates. The owned refresh task reloads; a failed
    reload (fundingInfo gone) is counted and keeps the previous metadata."""
    config = usdm_config(tmp_path)
    bodies = recorded_metadata()
    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=1.0), rest_bodies=bodies) as exchange:
        opts = options(
            config,
            endpoints_hook=to_binance(exchange),
            instrument_refresh_s=0.1,
            instrument_retry_s=0.1,
        )
        daemon = Daemon(load_config(config), opts)
        stats = daemon.metadata_stats
        seen: dict[str, int] = {}
        exported: dict[str, object] = {}

        async def until() -> None:
            await daemon.started.wait()
            usdm = stats[(Venue.BINANCE, Market.USDM)]
            await wait_for(lambda: usdm.loads >= 2, 10, "a successful refresh")
            market = next(p for p in daemon.plans if p.name == "binance:usdm/market")
            for symbol in ("BTCUSDT", "BLZUSDT"):
                frame = BINANCE_MARK_PRICE.replace(b"btcusdt@", f"{symbol.lower()}@".encode())
                frame = frame.replace(b'"s":"BTCUSDT"', f'"s":"{symbol}"'.encode())
                (update,) = market.protocol.receive(frame, 1).updates
                seen[symbol] = update.interval_ms  # type: ignore[union-attr]
            del bodies[FUNDING_INFO_KEY]  # the venue stops answering fundingInfo: 404
            await wait_for(lambda: usdm.failures >= 1, 10, "a failed refresh")
            daemon.refresh_metrics()
            loads = daemon.metrics.instrument_metadata_loads
            exported["ok"] = loads.labels("binance", "usdm", "ok")._value.get()
            exported["failed"] = loads.labels("binance", "usdm", "failed")._value.get()
            exported["stats"] = (usdm.loads, usdm.failures)

        assert await asyncio.wait_for(daemon.run(until=until()), timeout(60)) == 0

    assert seen == {"BTCUSDT": 8 * HOUR_MS, "BLZUSDT": 4 * HOUR_MS}
    kept = daemon.catalog.by_symbol(Venue.BINANCE, Market.USDM, "BLZUSDT")
    assert kept is not None and kept.funding_interval_ms == 4 * HOUR_MS  # the failed reload kept it
    usdm = stats[(Venue.BINANCE, Market.USDM)]
    assert "fundingInfo" in usdm.last_error or "404" in usdm.last_error
    # The same counts reach /metrics (arbscan_instrument_metadata_loads_total{result}).
    assert (exported["ok"], exported["failed"]) == exported["stats"]
    assert exported["failed"] >= 1 and exported["ok"] >= 2
    spot = daemon.catalog.by_symbol(Venue.BINANCE, Market.SPOT, "BTCUSDT")
    assert spot is not None and (spot.tick_size, spot.spec.contract_type) == (Decimal("0.01"), ContractType.BASE)


def to_binance(exchange: ReplayExchange):
    def hook(venue: Venue, market: Market) -> Endpoints | None:
        return exchange.endpoints(venue, market) if (venue, market) in exchange.mounts() else None

    return hook


def test_which_markets_need_metadata_to_start() -> None:
    """Contract-quoted markets (OKX swaps/futures, Binance COIN-M) cannot start without metadata; base-unit
    markets and Bybit inverse (1 USD per contract, documented) can."""
    from feeds.venues import entries

    quoted = sorted(f"{e.venue}/{e.market}" for e in entries() if e.contract_quoted)
    assert quoted == ["binance/coinm", "okx/futures", "okx/option", "okx/swap"]


async def test_a_venue_rest_outage_at_start_is_waited_out_and_a_refusal_is_not(tmp_path: Path) -> None:
    """The first metadata requests answered 503 (an outage): the start retries them and goes on (it exited 1,
    and under systemd five such starts leave the unit failed); the retries are counted as failed loads.
    A 404 (a wrong URL, not an outage) still ends the start at once, naming the venue market and the URL."""
    config = usdm_config(tmp_path)
    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=1.0), rest_bodies=recorded_metadata()) as exchange:
        exchange.faults.fail_rest(503, count=2)
        daemon = Daemon(load_config(config), options(config, endpoints_hook=to_binance(exchange)))

        async def until() -> None:
            await daemon.started.wait()

        assert await asyncio.wait_for(daemon.run(until=until()), timeout(60)) == 0
    stats = daemon.metadata_stats
    assert sorted((str(v), str(m), s.loads) for (v, m), s in stats.items()) == [
        ("binance", "spot", 1),
        ("binance", "usdm", 1),
    ]
    assert sum(s.failures for s in stats.values()) == 2

    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=1.0), rest_bodies=recorded_metadata()) as exchange:
        exchange.faults.fail_rest(404, count=1)
        daemon = Daemon(load_config(config), options(config, endpoints_hook=to_binance(exchange)))
        with pytest.raises(InstrumentsUnavailable, match=r"binance/spot: instrument metadata could not be loaded"):
            await asyncio.wait_for(daemon.run(until=asyncio.sleep(30)), timeout(60))


async def test_sigterm_while_the_start_waits_out_an_outage_stops_cleanly(tmp_path: Path) -> None:
    """The start retries a venue's metadata for minutes; SIGTERM meanwhile is a clean stop (exit 0, logged),
    not the default action (killed by the signal, journal and outbox not closed), and SIGHUP (systemctl
    reload) is deferred until the daemon serves (it killed the process)."""
    config = usdm_config(tmp_path)
    text = config.read_text().replace(
        'symbols = ["BTC-USDT"]', 'symbols = ["BTC-USDT"]\nrest_url = "http://127.0.0.1:9"'
    )
    config.write_text(text.replace('level = "warning"', 'level = "info"'))
    proc = await asyncio.create_subprocess_exec(
        *arbscan_command("run", "--config", str(config)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
        cwd=ROOT,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while not any("instruments_unavailable_retrying" in line for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout(30))
            assert raw, "".join(lines)
            lines.append(raw.decode())
        proc.send_signal(signal.SIGHUP)  # a reload asked during the start: deferred, not the default action
        while not any("reload_deferred" in line for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout(30))
            assert raw, "".join(lines)
            lines.append(raw.decode())
        assert proc.returncode is None
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), timeout(30))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines.append((rest or b"").decode())
    assert proc.returncode == 0, "".join(lines)
    assert "stopped_before_start" in "".join(lines) and "SIGTERM" in "".join(lines)


async def test_a_reload_asked_during_the_start_is_applied_once_the_daemon_serves(tmp_path: Path) -> None:
    """SIGHUP while the start waits out an outage: deferred (a reload says READY to systemd, which must not hear
    it before the start is done), then applied once the daemon serves; one while it stops is ignored."""
    config = usdm_config(tmp_path)
    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=1.0), rest_bodies=recorded_metadata()) as exchange:
        exchange.faults.fail_rest(503, count=2)
        daemon = Daemon(load_config(config), options(config, endpoints_hook=to_binance(exchange)))
        seen: dict[str, object] = {}

        async def hup_during_the_start() -> None:
            await wait_for(lambda: any(s.failures for s in daemon.metadata_stats.values()), 10, "a failed load")
            daemon._on_sighup()  # what the SIGHUP handler calls
            seen["pending"], seen["reloads"] = daemon._reload_pending, list(daemon.reloads)

        async def until() -> None:
            await daemon.started.wait()
            seen["after"] = list(daemon.reloads)
            daemon.request_stop("test")
            daemon._on_sighup()  # while stopping: ignored (a reload would swap the config under the shutdown)
            seen["stopping"] = list(daemon.reloads)

        hup = asyncio.create_task(hup_during_the_start())
        assert await asyncio.wait_for(daemon.run(until=until()), timeout(60)) == 0
        await hup
    assert seen == {"pending": True, "reloads": [], "after": [True], "stopping": [True]}


async def test_a_sighup_while_a_failed_daemon_shuts_down_is_ignored(tmp_path: Path) -> None:
    """A task failure ends the daemon without a requested stop: a SIGHUP in that teardown reloaded the config
    and told systemd READY from a process about to exit 1. Every way out marks the daemon closing."""
    config = usdm_config(tmp_path)
    async with ReplayExchange(BTC_FILES, config=ReplayConfig(speed=1.0), rest_bodies=recorded_metadata()) as exchange:
        daemon = Daemon(load_config(config), options(config, endpoints_hook=to_binance(exchange)))

        async def until() -> None:
            await daemon.started.wait()
            raise RuntimeError("a task failed")

        with pytest.raises(RuntimeError, match="a task failed"):
            await asyncio.wait_for(daemon.run(until=until()), timeout(60))
    daemon._on_sighup()  # what the handler does if the signal lands in the teardown
    assert daemon.reloads == []
