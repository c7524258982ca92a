"""``arbscan demo``: the daemon on the bundled recordings, served by the loopback replay exchange.

Two replay exchanges run on 127.0.0.1 (:mod:`feeds.replay`), and the daemon connects its real feed
clients to them with ``config/demo.toml``:

* the Binance capture (``data/hftbacktest``: spot and USD-M BTCUSDT/ETHUSDT, recorded simultaneously),
  in Binance's own wire protocol: depth diffs, bookTickers, REST snapshots and the client's sync;
* the defi-arbitrage series (``data/defi-arbitrage``: Binance and Huobi LINK/USDT books every second), a
  normalized CSV replayed as ``csv-replay`` snapshot frames (:mod:`feeds.replay.csvbook`), labelled so.

Instrument metadata: ``arbscan run`` loads it over REST at start; the Binance capture recorded none, so
the demo hands the daemon a catalog decoded from the real ``exchangeInfo`` answers cryptofeed recorded
(``data/cryptofeed/BINANCE.0``, ``BINANCE_FUTURES.0``) by the same parsers (:mod:`feeds.recorded_metadata`).
Spot and USD-M books count base units, so nothing in them depends on contract sizes; the catalog gives
the daemon's strict start-up check (and tick and lot sizes) real data rather than an empty catalog.

``--speed N`` plays the Binance capture N times faster than recorded and compresses the 2-hour CSV series
so that both end together; ``max`` plays as fast as the clients read. The demo ends by itself when both
recordings are over (``--linger S`` keeps ``/metrics`` up S seconds longer, for a scraper), prints the
summary and what the journal says, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec
import orjson
from aiohttp import web

from feeds.csvbook import LABEL as CSV_LABEL
from feeds.csvbook import CsvBookProtocol
from feeds.instruments import InstrumentId, Market, Venue
from feeds.metadata import InstrumentCatalog
from feeds.protocol import VenueProtocol
from feeds.recorded_metadata import catalog_from_bodies, read_rest_bodies
from feeds.replay import ReplayConfig, ReplayExchange, csvbook
from feeds.venues import Endpoints
from rules.candidates import Strategy
from rules.overrides import parse_overrides
from scanner.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from scanner.commands.run import add_override_argument
from scanner.config import Config, FeedConfig, MetricsConfig, WebhookConfig, load_config
from scanner.daemon import Daemon, DaemonOptions
from scanner.feedplan import ProtocolHook
from scanner.journal import JournalReader
from scanner.logging import configure_logging

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.toml"
# The simultaneous window: the USD-M capture ends at 23:59:59; the spot files of 2024-08-09 continue the
# spot stream alone (verify-books covers them), so the demo plays the 2024-08-08 files of both markets.
BINANCE_DATA = tuple(
    ROOT / "data" / "hftbacktest" / market / f"{symbol}_20240808.gz"
    for market in ("spot", "usdm")
    for symbol in ("btcusdt", "ethusdt")
)
CSV_DATA = (
    ROOT / "data" / "defi-arbitrage" / "orderbook_bnc.csv",
    ROOT / "data" / "defi-arbitrage" / "orderbook_hb.csv",
)
BINANCE_METADATA = tuple(ROOT / "data" / "cryptofeed" / name for name in ("BINANCE.0", "BINANCE_FUTURES.0"))
CSV_INSTRUMENTS = frozenset(InstrumentId.parse(f"{v}:spot:LINK-USDT") for v in ("binance", "huobi"))
# Spans of the recordings (data/SOURCES.md): 2024-08-08 23:54:13 → 23:59:59 for the Binance files played;
# the CSV series 2021-08-20 00:00:00 → 01:59:59. The CSV is compressed by their ratio so both end together.
BINANCE_SPAN_S = 346.0
CSV_SPAN_S = 7199.0
# 20x plays the 6-minute Binance window in about 17 s; on a busy 2-core machine the clients fall behind
# that pace, and the demo then simply takes longer (measured: see the README).
DEFAULT_SPEED = 20.0
SUMMARY_INTERVAL_S = 5.0
WEBHOOK_KEY_ENV = "ARBSCAN_DEMO_WEBHOOK_KEY"
SETTLE_TIMEOUT_S = 30.0


def csv_protocol_hook(exchange: ReplayExchange) -> ProtocolHook:
    """Feeds of the CSV series' instruments speak csv-replay to ``exchange`` (labelled so)."""

    def hook(feed: FeedConfig, endpoints: Endpoints) -> tuple[VenueProtocol, str, Endpoints] | None:
        if not set(feed.instruments()) <= CSV_INSTRUMENTS:
            return None
        return CsvBookProtocol(feed.venue, feed.market), CSV_LABEL, exchange.endpoints(*csvbook.MOUNT)

    return hook


def demo_instruments() -> InstrumentCatalog:
    """The metadata of the demo's Binance markets, from the recorded exchangeInfo answers."""
    bodies = read_rest_bodies(BINANCE_METADATA)
    return catalog_from_bodies(bodies, [(Venue.BINANCE, Market.SPOT), (Venue.BINANCE, Market.USDM)])


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'max', got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'max', got {text!r}")
    return value


def _linger(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None
    if not 0 <= value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo", help="run the daemon on the bundled recordings through the loopback replay exchange"
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=DEFAULT_SPEED,
        metavar="N|max",
        help=f"replay speed: N times the recorded pace, or max (default {DEFAULT_SPEED:g})",
    )
    parser.add_argument(
        "--metrics-listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where /metrics listens (default 127.0.0.1:0: any free port, printed at start)",
    )
    parser.add_argument(
        "--linger", type=_linger, default=0.0, metavar="SECONDS", help="keep /metrics up this long after the end"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, metavar="DIR", help="journal and outbox here (default: a new temp dir)"
    )
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, metavar="FILE", help=argparse.SUPPRESS)
    add_override_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.strategy_leverage_override)
    listen = args.metrics_listen
    try:
        MetricsConfig(listen=listen).port  # noqa: B018  (validates host:port)
    except ValueError as exc:
        print(f"arbscan demo: --metrics-listen {listen!r}: {exc}", file=sys.stderr)
        return 2
    if args.state_dir is not None:
        try:
            Path(args.state_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file there (or on its way): said now, not as a failure to open the outbox
            why = "exists and is not a directory" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
            print(f"arbscan demo: --state-dir {str(args.state_dir)!r}: {why}", file=sys.stderr)
            return 2
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="arbscan-demo-"))
    return asyncio.run(_demo(args, overrides, Path(state_dir)))


async def _demo(args: argparse.Namespace, overrides: dict[Strategy, float], state_dir: Path) -> int:
    receiver = DemoReceiver()
    await receiver.start()
    try:
        return await _run_demo(args, overrides, state_dir, receiver)
    finally:
        await receiver.stop()


async def _run_demo(
    args: argparse.Namespace, overrides: dict[Strategy, float], state_dir: Path, receiver: DemoReceiver
) -> int:
    # The demo's webhook: a receiver of our own; its key travels in the environment, never in the config.
    os.environ[WEBHOOK_KEY_ENV] = receiver.key.decode()
    webhook = WebhookConfig(
        name="demo",
        url=receiver.url,
        secret_env=WEBHOOK_KEY_ENV,
        on=("qualified", "disqualified"),
        cooldown_s=60.0,
        retry_initial_s=0.2,
        retry_max_s=5.0,
    )
    listen = args.metrics_listen

    def adjust(loaded: Config) -> Config:
        metrics = msgspec.structs.replace(loaded.metrics, listen=listen)
        daemon = msgspec.structs.replace(loaded.daemon, state_dir=str(state_dir.resolve()))
        webhooks = (*(w for w in loaded.webhooks if w.name != webhook.name), webhook)
        return msgspec.structs.replace(loaded, metrics=metrics, daemon=daemon, webhooks=webhooks)

    config = adjust(load_config(args.config))
    configure_logging(level=config.logging.level, json=config.logging.json)
    speed: float | None = args.speed
    csv_speed = None if speed is None else speed * CSV_SPAN_S / BINANCE_SPAN_S
    binance = ReplayExchange(BINANCE_DATA, config=ReplayConfig(speed=speed))
    csv = ReplayExchange(recordings=csvbook.recordings(CSV_DATA), config=ReplayConfig(speed=csv_speed))
    started = time.monotonic()
    async with binance, csv:

        def endpoints_hook(venue: Venue, market: Market) -> Endpoints | None:
            return binance.endpoints(venue, market) if (venue, market) in binance.mounts() else None

        options = DaemonOptions(
            config_path=args.config,
            cli_overrides=overrides,
            adjust=adjust,
            endpoints_hook=endpoints_hook,
            protocol_hook=csv_protocol_hook(csv),
            label="replay",
            summary_interval_s=SUMMARY_INTERVAL_S,
            instruments=demo_instruments(),
            resume_candidates=False,  # the recording starts over: its clock would go back past a resumed state
        )
        daemon = Daemon(config, options)
        pace = "max" if speed is None else f"{speed:g}x (CSV series {csv_speed:.0f}x)"
        print(f"arbscan demo: replaying the bundled recordings at {pace}", flush=True)
        print(f"  journal and outbox: {state_dir}", flush=True)

        basis = BasisSampler(daemon)

        async def until_done() -> None:
            await daemon.started.wait()
            assert daemon.metrics_server is not None
            print(f"  metrics: {daemon.metrics_server.url}", flush=True)
            sampler = asyncio.create_task(basis.run(), name="basis sampler")
            try:
                await binance.wait_finished()
                await csv.wait_finished()
                await _settle(daemon, binance.stats.frames_sent + csv.stats.frames_sent)
                if daemon.dispatcher is not None:
                    await daemon.dispatcher.drain(timeout_s=SETTLE_TIMEOUT_S)
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            if args.linger:
                daemon.print_summary()
                print(f"arbscan demo: recordings finished; /metrics stays up {args.linger:g} s", flush=True)
                await asyncio.sleep(args.linger)

        code = await daemon.run(until=until_done())
    print(f"arbscan demo: done in {time.monotonic() - started:.1f} s", flush=True)
    print(basis.report(), flush=True)
    print(receiver.report(), flush=True)
    print(journal_report(config.daemon.journal_dir), flush=True)
    return code


class DemoReceiver:
    """The demo's alert webhook: a loopback HTTP endpoint that checks each alert's HMAC signature."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(16).encode()
        self.port = 0
        self.verified = 0
        self.bad_signatures = 0
        self.events: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._alert)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def _alert(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not verify(self.key, timestamp, body, request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        self.verified += 1
        self.events[str(orjson.loads(body).get("event"))] += 1
        return web.Response(status=204)

    def report(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.events.items())) or "none"
        return (
            f"alerts: {self.verified} delivered to the demo webhook receiver, HMAC signatures verified ({kinds}); "
            f"{self.bad_signatures} refused"
        )


class BasisSampler:
    """Samples the USD-M mid against the spot mid of each base while both books are live (the demo's
    own check of the recording's economics: the perp traded a few bps below spot, basis, not free money)."""

    PAIRS = (
        ("BTC", "binance:spot:BTC-USDT", "binance:usdm:BTC-USDT-PERP"),
        ("ETH", "binance:spot:ETH-USDT", "binance:usdm:ETH-USDT-PERP"),
    )

    def __init__(self, daemon: Daemon, interval_s: float = 0.02) -> None:
        self.daemon = daemon
        self.interval_s = interval_s
        self.samples: dict[str, list[float]] = {base: [] for base, _, _ in self.PAIRS}
        self._last: dict[str, tuple[int, int]] = {}

    def sample(self) -> None:
        market = self.daemon.market
        for base, spot_id, perp_id in self.PAIRS:
            spot, perp = market.book(InstrumentId.parse(spot_id)), market.book(InstrumentId.parse(perp_id))
            if spot is None or perp is None:
                continue
            versions = (spot.version, perp.version)
            if self._last.get(base) == versions:
                continue  # nothing moved since the last sample
            self._last[base] = versions
            spot_mid = (spot.best_bid_price() + spot.best_ask_price()) / 2
            perp_mid = (perp.best_bid_price() + perp.best_ask_price()) / 2
            if math.isfinite(spot_mid) and math.isfinite(perp_mid):
                self.samples[base].append((perp_mid - spot_mid) / spot_mid * 1e4)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def report(self) -> str:
        lines = []
        for base, values in self.samples.items():
            if not values:
                continue
            ordered = sorted(values)
            lines.append(
                f"basis {base}: USD-M mid - spot mid = {ordered[len(ordered) // 2]:+.2f} bps median, "
                f"{ordered[len(ordered) // 20]:+.2f} .. {ordered[-1 - len(ordered) // 20]:+.2f} (5-95%), "
                f"{len(values)} samples of the live books"
            )
        return "\n".join(lines) or "basis: no sample (books never both live)"


async def _settle(daemon: Daemon, frames_sent: int) -> None:
    """Wait until the daemon has read every frame the exchanges sent and evaluated what they changed."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        received = sum(r.stats.frames for f in daemon.feeds for r in f.feed.runners)
        if received >= frames_sent and daemon.engine.pending() == 0:
            return
        await asyncio.sleep(0.05)


def journal_report(journal_dir: Path | str, *, examples: int = 3) -> str:
    """What the journal recorded: events per strategy, and the economics of a few of them."""
    reader = JournalReader(journal_dir)
    events = list(reader.events())
    counts: Counter[tuple[str, str]] = Counter()
    qualified: list[dict[str, object]] = []
    reasons: dict[str, Counter[str]] = {}
    assumed = 0
    for event in events:
        decision = event.decision if isinstance(event.decision, dict) else {}
        strategy = str(decision.get("strategy", "?"))
        counts[(strategy, event.kind.value)] += 1
        if event.kind.value == "qualified":
            qualified.append(decision)
        # A not_watched close is the daemon's, not the market's (scanner.reports leaves it out the same way).
        if event.kind.value != "qualified" and decision.get("primary_reason") not in (None, "", "not_watched"):
            reasons.setdefault(strategy, Counter())[str(decision["primary_reason"])] += 1
        assumed += decision.get("funding_source") == "assumed"
    lines = [f"journal: {len(events)} events in {journal_dir}"]
    for (strategy, kind), n in sorted(counts.items()):
        lines.append(f"  {strategy} {kind}: {n}")
    for strategy, counter in sorted(reasons.items()):
        every = ", ".join(f"{reason} {n}" for reason, n in counter.most_common())
        lines.append(f"  {strategy} moved to: {every} (primary reasons of rejected/disqualified events)")
    if assumed:
        lines.append(f"  {assumed} journaled decisions used a stated (assumed) funding rate, and say so")
    lines.extend(
        f"  qualified {d.get('candidate_id')}: gross {_bps(d.get('gross_bps'))}, fees {_bps(d.get('fees_bps'))}, "
        f"funding {_bps(d.get('funding_bps'))}, net {_bps(d.get('net_bps'))} "
        f"(min {_bps(d.get('min_net_edge_bps'))})"
        for d in qualified[:examples]
    )
    lines.extend(f"  journal problem: {problem}" for problem in reader.problems)
    return "\n".join(lines)


def _bps(value: object) -> str:
    return f"{value:+.2f} bps" if isinstance(value, int | float) else "n/a"
