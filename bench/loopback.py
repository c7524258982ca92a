"""Loopback: the replay exchange → the real websocket clients → the engine, over real sockets.

    python -m bench.loopback [--quick] [--speeds 10,30,100,max] [--json]

The replay exchange (:mod:`feeds.replay`) runs in a child process (``--serve``), serving the bundled
Binance spot and USD-M recordings on 127.0.0.1 at a given pace (N × the recorded pace, or ``max``: as fast
as the client reads). This process is the daemon's hot path and nothing else: one
:class:`feeds.feed.VenueFeed` per market (the real websocket runner, ``BinanceProtocol``, book syncs, REST
snapshots through :class:`feeds.rest.RestClient`), whose ``on_update`` is :meth:`scanner.engine.Engine.touch`,
and the engine's own evaluator task (:meth:`~scanner.engine.Engine.run`) with the benchmark candidates and
the daemon's metrics. Two processes on the 2-core machine: the exchange's cost is not charged to ours.

Per pace it reports the frames the client received per second of wall time while frames flowed, the
client's CPU use over that time (≈100 % = the client is the bottleneck; less = the exchange or the
socket is), the engine's coalescing: updates that found their key already dirty and were folded into
a later evaluation (``arbscan_coalesced_updates``), and the **evaluator lag**: per drain, from the receipt
of the earliest update it decides on to the drain's start. Coalescing is how the daemon keeps its books
current when updates arrive faster than evaluations. Even at the recorded pace some updates are folded
(frames the recorder received in one read arrive in one read here too, and wait microseconds), so the
folded share alone does not say the daemon fell behind; "starts coalescing" is the lowest pace whose
evaluator lag p99 exceeds :data:`ONSET_LAG_MS`: updates wait behind a backlog, not beside a burst. Every
pace replays the same first records (the onset compares like with like); one more run at max pace over
every record gives the sustained rate. Peak RSS of this process is the daemon-like footprint with the
benchmark candidates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.common import (
    QUICK_RECORDS,
    SPOT_DIR,
    USDM_DIR,
    bench_candidates,
    constraints,
    emit_result,
    funding_assumptions,
    peak_rss_mb,
    percentile,
)

ONSET_LAG_MS = 1.0  # evaluator lag p99 that marks the onset: an update waits behind a backlog
LINE = "LOOPBACK "  # prefix of the exchange child's lines (its logs share stdout)
SYMBOLS = ("BTCUSDT", "ETHUSDT")


# ---- the exchange (child process) -------------------------------------------------------------------


async def serve(speed: float | None, max_frames: int | None) -> None:
    """Run the replay exchange; print its endpoints, then (when the timeline ends) its final books."""
    from feeds.instruments import Market, Venue
    from feeds.replay import ReplayConfig, ReplayExchange

    config = ReplayConfig(speed=speed, max_frames=max_frames, start_grace_s=0.3, snapshot_wait_s=5.0)
    async with ReplayExchange([SPOT_DIR, USDM_DIR], config=config) as exchange:
        endpoints = {
            str(m): {"ws": e.ws, "rest": e.rest}
            for m in (Market.SPOT, Market.USDM)
            for e in [exchange.endpoints(Venue.BINANCE, m)]
        }
        print(LINE + json.dumps({"endpoints": endpoints}), flush=True)
        cpu0 = time.process_time()
        await exchange.wait_finished()
        finals = {}
        for verifier in exchange.verifiers():
            for key, sync in verifier.syncs.items():
                finals[key] = sync.book.last_id
        done = {
            "finished": True,
            "records": exchange.position,
            "frames_sent": exchange.stats.frames_sent,
            "final_ids": finals,
            "cpu_s": time.process_time() - cpu0,
        }
        print(LINE + json.dumps(done), flush=True)
        # Stay up until the client has read everything and closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def quiet_logs() -> None:
    """Warnings and errors only: the runners' and the exchange's info lines would flood the report."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def _line(stream: asyncio.StreamReader) -> dict[str, Any]:
    """The exchange child's next own line (its log lines are skipped)."""
    while True:
        raw = await stream.readline()
        if not raw:
            raise RuntimeError("the replay exchange child exited")
        text = raw.decode()
        if text.startswith(LINE):
            parsed: dict[str, Any] = json.loads(text[len(LINE) :])
            return parsed


# ---- the client (this process) --------------------------------------------------------------------------


@dataclass
class PaceResult:
    pace: str
    offered_records: int
    frames: int
    flowing_s: float
    frames_per_s: float
    client_cpu: float  # CPU seconds / wall seconds while frames flowed
    exchange_cpu: float
    updates: int
    coalesced: int
    evaluations: int
    drains: int
    caught_up: bool
    lag_p50_us: float  # evaluator lag (module docstring) per drain
    lag_p99_us: float

    @property
    def coalesced_share(self) -> float:
        return self.coalesced / self.updates if self.updates else 0.0

    def line(self) -> str:
        return (
            f"pace {self.pace:>6}: {self.frames:>7} frames in {self.flowing_s:6.1f} s = {self.frames_per_s:>8,.0f}/s"
            f"   client CPU {self.client_cpu:4.0%}  exchange CPU {self.exchange_cpu:4.0%}"
            f"   coalesced {self.coalesced_share:6.1%} of {self.updates} updates,"
            f" {self.evaluations} evaluations in {self.drains} drains,"
            f" evaluator lag p50 {self.lag_p50_us:,.0f} us p99 {self.lag_p99_us:,.0f} us"
            f"{'' if self.caught_up else '   (books did NOT catch up)'}"
        )


async def run_pace(speed: float | None, max_frames: int | None, label: str = "") -> PaceResult:
    from feeds.feed import FeedConfig, VenueFeed
    from feeds.instruments import Market, Venue
    from feeds.protocol import Channel, Subscription
    from feeds.rest import RestClient
    from feeds.sync import BookSync
    from feeds.venues import Endpoints, feed_key, get_entry
    from scanner.engine import Engine
    from scanner.market import LiveMarket, MarketClock
    from scanner.metrics import Metrics

    args = [sys.executable, "-m", "bench.loopback", "--serve", "--speed", "max" if speed is None else str(speed)]
    if max_frames is not None:
        args += ["--max-frames", str(max_frames)]
    child = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    try:
        hello = await asyncio.wait_for(_line(child.stdout), 60)
        candidates = bench_candidates()
        instruments = {i for c in candidates for i in c.instruments}
        keys = {i: feed_key(i) for i in instruments}
        books: dict[Any, BookSync] = {}
        market = LiveMarket(books, lambda _i: None, funding_assumptions(), MarketClock())
        engine = Engine(market, constraints(), keys=keys, candidates=candidates, metrics=Metrics())
        lags: list[int] = []  # evaluator lag per drain, ns
        earliest = [0]  # receipt of the earliest update not drained yet (monotonic ns; 0: none)
        measuring = [False]  # from when every book is live: the start-up's snapshot waits are not lag
        touch, drain = engine.touch, engine.drain

        def on_update(key: str, recv_ns: int) -> None:
            if measuring[0] and (not earliest[0] or recv_ns < earliest[0]):
                earliest[0] = recv_ns
            touch(key, recv_ns)

        def timed_drain() -> int:
            if earliest[0]:
                lags.append(time.monotonic_ns() - earliest[0])
                earliest[0] = 0
            return drain()

        engine.drain = timed_drain  # type: ignore[method-assign]  # Engine.run calls self.drain
        feeds = []
        async with RestClient() as rest:
            for market_name in (Market.SPOT, Market.USDM):
                ep = hello["endpoints"][str(market_name)]
                protocol = get_entry(Venue.BINANCE, market_name).protocol(Endpoints(ep["ws"], ep["rest"]))
                subs = [Subscription(s, ch) for s in SYMBOLS for ch in (Channel.BOOK, Channel.TOP)]
                feed = VenueFeed(
                    protocol,
                    subs,
                    rest=rest,
                    config=FeedConfig(ws_url=ep["ws"], rest_url=ep["rest"]),
                    on_update=on_update,
                    name=f"binance:{market_name}",
                )
                feeds.append(feed)
                for inst, key in keys.items():
                    if key in feed.syncs:
                        books[inst] = feed.syncs[key]

            def frames() -> int:
                return sum(r.stats.frames for f in feeds for r in f.runners)

            async with asyncio.TaskGroup() as tg:
                evaluator = tg.create_task(engine.run(), name="engine")
                running = [tg.create_task(f.run(), name=f.name) for f in feeds]
                first_t = last_t = 0.0
                cpu_first = cpu_last = 0.0
                seen = polls_flowing = 0
                finished: dict[str, Any] | None = None
                done_line = asyncio.ensure_future(_line(child.stdout))
                try:
                    while True:
                        await asyncio.sleep(0.05)
                        if not measuring[0]:
                            measuring[0] = all(f.is_live(k) for f in feeds for k in f.syncs)
                        n = frames()
                        now, cpu = time.perf_counter(), time.process_time()
                        if n > seen:
                            if seen == 0:
                                first_t, cpu_first = now, cpu
                            last_t, cpu_last, seen = now, cpu, n
                            polls_flowing += 1
                        if finished is None and done_line.done():
                            finished = done_line.result()
                        if finished is not None:
                            finals = finished["final_ids"]
                            caught = all(
                                f.syncs[k].book.last_id == finals[k] for f in feeds for k in f.syncs if k in finals
                            )
                            if caught or now - last_t > 3.0:
                                break
                finally:
                    if not done_line.done():
                        done_line.cancel()
                    for task in (*running, evaluator):
                        task.cancel()
        engine.drain()
        # Frames that all arrived within one poll (a short slice at a high pace) cannot be timed: nan, not a rate.
        flowing = last_t - first_t if polls_flowing > 1 else math.nan
        ordered = sorted(lags)
        return PaceResult(
            pace=label or ("max" if speed is None else f"{speed:g}x"),
            offered_records=int(finished["records"]) if finished else 0,
            frames=seen,
            flowing_s=flowing,
            frames_per_s=seen / flowing,
            client_cpu=(cpu_last - cpu_first) / flowing,
            exchange_cpu=(float(finished["cpu_s"]) / flowing) if finished else float("nan"),
            updates=engine.stats.updates,
            coalesced=engine.stats.coalesced,
            evaluations=engine.stats.evaluations,
            drains=engine.stats.drains,
            caught_up=bool(finished) and caught,
            lag_p50_us=percentile(ordered, 50) / 1e3,
            lag_p99_us=percentile(ordered, 99) / 1e3,
        )
    finally:
        if child.returncode is None:
            child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()


def parse_speeds(text: str) -> list[float | None]:
    return [None if s == "max" else float(s) for s in text.split(",") if s]


async def run_all(paces: list[tuple[float | None, int | None, str]]) -> list[PaceResult]:
    results = []
    for speed, max_frames, label in paces:
        results.append(await run_pace(speed, max_frames, label))
        print(results[-1].line(), flush=True)
    return results


def onset(results: list[PaceResult]) -> tuple[str | None, str]:
    """The lowest pace at which updates wait behind a backlog (evaluator lag p99 > ONSET_LAG_MS), and the rule.

    At the recorded pace some updates are already folded: frames the recorder received together arrive
    together, and the evaluator runs once after them, microseconds later. That is a burst, not the daemon
    falling behind; the lag says which it is.
    """
    rule = f"evaluator lag p99 > {ONSET_LAG_MS:g} ms, same {results[0].offered_records} records at every pace"
    paced = [r for r in results if r.pace != "max (all records)"]
    return next((r.pace for r in paced if r.lag_p99_us > ONSET_LAG_MS * 1e3), None), rule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loopback", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~2 s per pace)")
    parser.add_argument("--speeds", default="1,3,10,30,max", help="paces: multiples of the recorded pace, or max")
    parser.add_argument("--records", type=int, default=None, help="records every pace replays (default 4,000)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed", default="max", help=argparse.SUPPRESS)
    parser.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        quiet_logs()
        asyncio.run(serve(None if args.speed == "max" else float(args.speed), args.max_frames))
        return 0
    quiet_logs()
    speeds = parse_speeds(args.speeds)
    # Every pace replays the same first records: ~5 s of wall time at the recorded pace (~2 s with --quick),
    # at the recorded average of ~800 records/s. Then max pace over every record, for the sustained rate.
    slice_records = args.records or (1_600 if args.quick else 4_000)
    paces: list[tuple[float | None, int | None, str]] = [(s, slice_records, "") for s in speeds]
    paces.append((None, QUICK_RECORDS if args.quick else None, "max (all records)"))
    print(
        "loopback: replay exchange (child process) -> websocket clients -> engine, "
        f"{len(bench_candidates())} candidates"
    )
    results = asyncio.run(run_all(paces))
    first, rule = onset(results)
    best = results[-1]  # max pace over every record
    print(
        f"  sustained {best.frames_per_s:,.0f} frames/s (pace {best.pace}); coalescing starts at "
        f"{'pace ' + first if first else 'none of these paces'} ({rule}); "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    if args.json:
        emit_result(
            {
                "paces": [r.__dict__ | {"coalesced_share": r.coalesced_share} for r in results],
                "sustained_frames_per_s": best.frames_per_s,
                "sustained_pace": best.pace,
                "coalescing_onset": first,
                "coalescing_rule": rule,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
