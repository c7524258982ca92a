"""The in-process pipeline against its decode floor and the cryptofeed peer, measured in the same run.

    python -m bench.pipeline [--quick] [--records N] [--no-peer] [--json]

Every recorded record (see :mod:`bench.common`) goes, with no sockets, through the path the daemon runs:
``BinanceProtocol.receive`` (decode) → ``BookSync`` / ``OrderBook`` → ``Engine.touch`` + ``Engine.drain``
→ ``rules.evaluate`` → ``CandidateState`` → events, using :class:`scanner.pipeline.ReplayPipeline` with
the daemon's Prometheus metrics and the candidates of :func:`bench.common.bench_candidates`. The engine
drains after every record, so every book update gets its decisions before the next record is read (no
coalescing: the worst case, and the one whose latency is "update → decision").

Contestants, timed per record with ``perf_counter_ns`` around each call (the same overhead for all):

* ``floor``: ``orjson.loads`` of the record (the bare JSON decode; orjson is the fastest generic decoder
  in the runtime dependencies); the standard library's ``json.loads`` is shown beside it for scale;
* ``feeds``: ours without candidates (decode + book only), to show where the time goes;
* ``pipeline``: ours, the full path;
* ``cryptofeed count`` / ``cryptofeed bbo``: the peer (:mod:`bench.peer_cryptofeed`), on the depth and
  bookTicker frames only (it cannot parse ``@trade``).

The records are processed in blocks of :data:`BLOCK`; each contestant runs every block in turn (rotating
order), so all of them see the same machine conditions on a shared, noisy machine and the ratios hold.
Headline figures are on the frames the daemon subscribes (depth + bookTicker, plus the 4 REST snapshots:
:data:`bench.common.HEADLINE`); ``--all-frames`` figures include the ``@trade`` frames too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.common import (
    HEADLINE,
    QUICK_RECORDS,
    Timeline,
    Timing,
    bench_candidates,
    constraints,
    funding_assumptions,
    load_timeline,
    peak_rss_mb,
    publish,
    rss_mb,
    timer_overhead_ns,
)
from feeds.book import Side
from feeds.levels import LEVELS_LOOP
from rules.candidates import Candidate
from scanner.engine import CandidateEvent
from scanner.metrics import Metrics
from scanner.pipeline import ReplayPipeline

BLOCK = 2000


@dataclass
class Lane:
    """One contestant: its per-record durations (ns), and which records they were (class per record)."""

    name: str
    durations: array[int] = field(default_factory=lambda: array("q"))
    classes: list[str] = field(default_factory=list)
    evaluations: array[int] = field(default_factory=lambda: array("q"))
    cpu_ns: int = 0  # thread CPU time over this lane's blocks (excludes time other processes held the core)
    overhead_ns: int = 0  # the per-item timer's own share of each duration (common.timer_overhead_ns)

    def timing(self, classes: frozenset[str] | None = None) -> Timing:
        if classes is None:
            return Timing.of(self.durations, self.overhead_ns)
        chosen = [d for d, c in zip(self.durations, self.classes, strict=True) if c in classes]
        return Timing.of(chosen, self.overhead_ns)


def make_pipeline(
    timeline: Timeline, candidates: Sequence[Candidate], *, metrics: bool = True
) -> tuple[ReplayPipeline, list[CandidateEvent]]:
    """Our pipeline over the timeline's recordings, with the daemon's metrics and an event collector."""
    events: list[CandidateEvent] = []
    pipeline = ReplayPipeline(
        timeline.recordings,
        candidates,
        constraints(),
        assumptions=funding_assumptions(),
        metrics=Metrics() if metrics else None,
        sink=events.append,
    )
    pipeline.engine.drain()  # the start-up evaluation of every candidate (books not ready) is not timed
    return pipeline, events


def _run_ours(pipeline: ReplayPipeline, block: list[tuple[int, Any, str]], lane: Lane) -> None:
    feed, clock = pipeline.feed, time.perf_counter_ns
    out, evals, classes = lane.durations, lane.evaluations, lane.classes
    for index, frame, cls in block:
        t0 = clock()
        n = feed(index, frame)
        out.append(clock() - t0)
        evals.append(n)
        classes.append(cls)


def _run_floor(block: list[tuple[int, Any, str]], lane: Lane, loads: Callable[[bytes], Any] = orjson.loads) -> None:
    clock = time.perf_counter_ns
    out, classes = lane.durations, lane.classes
    for _index, frame, cls in block:
        payload = frame.payload
        t0 = clock()
        loads(payload)
        out.append(clock() - t0)
        classes.append(cls)


def _run_peer(peer: Any, block: list[tuple[int, Any, str]], lane: Lane) -> None:
    from bench.peer_cryptofeed import drive

    clock = time.perf_counter_ns
    out, classes = lane.durations, lane.classes
    for index, frame, cls in block:
        if cls not in ("depth", "ticker"):
            continue  # REST snapshots reach it through its snapshot fetch; it cannot parse @trade
        handler = peer.handler_for(index)
        payload, ts = frame.payload, frame.recv_ns / 1e9
        t0 = clock()
        drive(handler(payload, None, ts))
        out.append(clock() - t0)
        classes.append(cls)


@dataclass
class PipelineRun:
    timeline: Timeline
    lanes: dict[str, Lane]
    pipeline: ReplayPipeline
    events: list[CandidateEvent]
    peers: dict[str, Any]
    wall_s: float
    rss_loaded_mb: float
    timer_overhead_ns: int = 0


def run(timeline: Timeline, candidates: Sequence[Candidate], *, peer: bool = True, block: int = BLOCK) -> PipelineRun:
    rss_loaded = rss_mb()
    pipeline, events = make_pipeline(timeline, candidates)
    feeds_only, _ = make_pipeline(timeline, [])
    lanes = {name: Lane(name) for name in ("floor", "stdlib json", "feeds", "pipeline")}
    jobs: list[tuple[Lane, Callable[[list[tuple[int, Any, str]]], None]]] = [
        (lanes["floor"], lambda b: _run_floor(b, lanes["floor"])),
        (lanes["stdlib json"], lambda b: _run_floor(b, lanes["stdlib json"], json.loads)),
        (lanes["feeds"], lambda b: _run_ours(feeds_only, b, lanes["feeds"])),
        (lanes["pipeline"], lambda b: _run_ours(pipeline, b, lanes["pipeline"])),
    ]
    peers: dict[str, Any] = {}
    if peer:
        from bench.peer_cryptofeed import CryptofeedPeer

        for mode in ("count", "bbo"):
            name = f"cryptofeed {mode}"
            peers[mode] = CryptofeedPeer(timeline, mode)
            lanes[name] = Lane(name)
            jobs.append((lanes[name], lambda b, p=peers[mode], lane=lanes[name]: _run_peer(p, b, lane)))
    records = timeline.records
    overhead = timer_overhead_ns()
    start = time.perf_counter()
    for n, i in enumerate(range(0, len(records), block)):
        chunk = records[i : i + block]
        k = n % len(jobs)
        for lane, job in jobs[k:] + jobs[:k]:  # rotate who goes first
            t0 = time.thread_time_ns()
            job(chunk)
            lane.cpu_ns += time.thread_time_ns() - t0
    wall_s = time.perf_counter() - start
    overhead = min(overhead, timer_overhead_ns())  # the lower of before and after: never take off too much
    for lane in lanes.values():
        lane.overhead_ns = overhead
    return PipelineRun(timeline, lanes, pipeline, events, peers, wall_s, rss_loaded, overhead)


def latency(lane: Lane, classes: frozenset[str] = HEADLINE) -> Timing:
    """Update → decision: the records that woke candidates, from receipt to their last decision."""
    return Timing.of(
        [d for d, n, c in zip(lane.durations, lane.evaluations, lane.classes, strict=True) if n > 0 and c in classes],
        lane.overhead_ns,
    )


def books_agree(result: PipelineRun) -> dict[str, bool]:
    """Our final best bid/ask (book levels, no ticker overlay) against cryptofeed's, per book."""
    if "count" not in result.peers:
        return {}
    theirs = result.peers["count"].top_of_books()
    out = {}
    for sync in result.pipeline.books.values():
        book = sync.book
        ours = (book.levels(Side.BID, 1)[0][0], book.levels(Side.ASK, 1)[0][0])
        out[book.key] = theirs.get(book.key) == ours
    return out


def summarize(result: PipelineRun) -> dict[str, Any]:
    lanes = result.lanes
    floor_h = lanes["floor"].timing(HEADLINE)
    ours_h = lanes["pipeline"].timing(HEADLINE)
    feeds_h = lanes["feeds"].timing(HEADLINE)
    lat = latency(lanes["pipeline"])
    pipe_total = lanes["pipeline"].timing()
    evaluations = sum(lanes["pipeline"].evaluations)
    stats = result.pipeline.engine.stats
    out: dict[str, Any] = {
        "records": len(result.timeline.records),
        "headline_frames": floor_h.count,
        "market_seconds": result.timeline.market_seconds(),
        "candidates": len(result.pipeline.engine.candidates),
        "floor": floor_h.as_dict(),
        "floor_stdlib_json": lanes["stdlib json"].timing(HEADLINE).as_dict(),
        "feeds": feeds_h.as_dict(),
        "pipeline": ours_h.as_dict(),
        "update_to_decision": lat.as_dict(),
        "floor_all": lanes["floor"].timing().as_dict(),
        "pipeline_all": pipe_total.as_dict(),
        "evaluations": evaluations,
        "evaluations_per_s": evaluations / pipe_total.total_s,
        # rules.evaluate calls: the rest of "evaluations" are wake-ups a hold answered with the previous decision
        "full_evaluations_per_s": sum(t.full for t in stats.strategies.values()) / pipe_total.total_s,
        "timer_overhead_ns": result.timer_overhead_ns,
        "evaluations_per_update": evaluations / lat.count if lat.count else 0.0,
        "events": len(result.events),
        # evaluations answered with the previous decision (scanner.reuse), part of "evaluations"
        "evaluations_reused": sum(t.reused for t in stats.strategies.values()),
        "evaluations_full": sum(t.full for t in stats.strategies.values()),
        "reuse_declined": sum(t.reuse_declined for t in stats.strategies.values()),
        "engine_updates": stats.updates,
        "engine_coalesced": stats.coalesced,
        "floor_ratio": floor_h.per_s / ours_h.per_s,
        "cpu_floor_ratio": lanes["pipeline"].cpu_ns / lanes["floor"].cpu_ns,
        "feeds_floor_ratio": floor_h.per_s / feeds_h.per_s,
        "rss_loaded_mb": result.rss_loaded_mb,
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": result.wall_s,
        "book_top": {
            sync.book.key: [sync.book.levels(Side.BID, 1)[0][0], sync.book.levels(Side.ASK, 1)[0][0]]
            for sync in result.pipeline.books.values()
        },
    }
    if result.peers:
        both = frozenset({"depth", "ticker"})
        ours_both = lanes["pipeline"].timing(both)
        count = lanes["cryptofeed count"].timing(both)
        bbo = lanes["cryptofeed bbo"].timing(both)
        out |= {
            "pipeline_peer_frames": ours_both.as_dict(),
            "cryptofeed_count": count.as_dict(),
            "cryptofeed_bbo": bbo.as_dict(),
            "vs_cryptofeed": ours_both.per_s / count.per_s,
            "vs_cryptofeed_bbo": ours_both.per_s / bbo.per_s,
            "feeds_vs_cryptofeed": lanes["feeds"].timing(both).per_s / count.per_s,
            "peer_books_agree": books_agree(result),
            "peer_book_updates": result.peers["count"].book_updates,
            "peer_tickers": result.peers["count"].tickers,
        }
    return out


def report(summary: dict[str, Any], out: Any = sys.stdout) -> None:
    def t(key: str) -> Timing:
        return Timing(**summary[key])

    p = print
    p(
        f"in-process: {summary['records']} records ({summary['market_seconds']:.0f} s of market time), "
        f"{summary['headline_frames']} depth+bookTicker+REST frames, {summary['candidates']} candidates, "
        f"book levels loop: {LEVELS_LOOP}",
        file=out,
    )
    p(t("floor").line("floor: orjson.loads"), file=out)
    p(t("floor_stdlib_json").line("  (for scale: stdlib json.loads)"), file=out)
    p(t("feeds").line("ours: decode + book"), file=out)
    p(t("pipeline").line("ours: full pipeline"), file=out)
    p(t("update_to_decision").line("  update -> decision", "updates"), file=out)
    p(
        f"  evaluations: {summary['evaluations']} ({summary['evaluations_per_s']:,.0f}/s, "
        f"{summary['evaluations_per_update']:.2f} per update), events: {summary['events']}, "
        f"floor_ratio {summary['floor_ratio']:.2f} (decode+book alone: {summary['feeds_floor_ratio']:.2f})",
        file=out,
    )
    engine_total = summary["evaluations_reused"] + summary["evaluations_full"]
    p(
        f"  of the engine's {engine_total} evaluations: {summary['evaluations_reused']} reused the previous "
        f"decision ({summary['evaluations_reused'] / max(engine_total, 1):.1%}), {summary['evaluations_full']} "
        f"full (of which {summary['reuse_declined']} because a time-only check changed side)",
        file=out,
    )
    p(
        f"  {summary['full_evaluations_per_s']:,.0f} full evaluations/s (rules.evaluate; the other wake-ups were "
        f"answered by holds); every duration less the timer's own {summary['timer_overhead_ns']} ns",
        file=out,
    )
    p(
        f"  CPU-time cross-check (every record incl. @trade, and the loop around each): pipeline/floor "
        f"{summary['cpu_floor_ratio']:.2f}",
        file=out,
    )
    p(t("floor_all").line("  all frames (+@trade): floor"), file=out)
    p(t("pipeline_all").line("  all frames (+@trade): ours"), file=out)
    if "vs_cryptofeed" in summary:
        p(t("pipeline_peer_frames").line("ours on depth+bookTicker"), file=out)
        p(t("cryptofeed_count").line("cryptofeed 2.4.1: count only"), file=out)
        p(t("cryptofeed_bbo").line("cryptofeed 2.4.1: read best bid/ask"), file=out)
        agree = summary["peer_books_agree"]
        p(
            f"  vs_cryptofeed {summary['vs_cryptofeed']:.2f}x (count only), {summary['vs_cryptofeed_bbo']:.2f}x "
            f"(best bid/ask read); like for like (our decode + book, no candidates, vs its count-only): "
            f"{summary['feeds_vs_cryptofeed']:.2f}x; final tops agree with ours: "
            f"{sum(agree.values())}/{len(agree)} books",
            file=out,
        )
    p(
        f"  RSS after loading the records {summary['rss_loaded_mb']:.0f} MB, peak {summary['peak_rss_mb']:.0f} MB; "
        f"wall {summary['wall_s']:.1f} s",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_RECORDS} records")
    parser.add_argument("--records", type=int, default=None, help="only the first N records")
    parser.add_argument("--no-peer", action="store_true", help="skip cryptofeed")
    parser.add_argument("--json", action="store_true", help="end with the machine-readable result line")
    args = parser.parse_args(argv)
    limit = args.records or (QUICK_RECORDS if args.quick else None)
    timeline = load_timeline(limit)
    result = run(timeline, bench_candidates(), peer=not args.no_peer)
    return publish(summarize(result), report, emit=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
