"""Scaling: 10, 100 and 1,000 candidates over the same stream; the cost of an update must not grow with
candidates that do not touch the updated instrument (and grows with those that do).

    python -m bench.scaling [--quick] [--records N] [--json]

Each configuration holds the 8 benchmark candidates over the recorded instruments
(:func:`bench.common.bench_candidates`: every book update touches 4 of them) plus synthetic candidates
on instruments that never update in this stream: other pairs on Binance spot/USD-M, Bybit linear and OKX
spot/swap, as ``perp_spot_basis``, ``cex_cex`` and ``funding_carry_cex_cex`` at several sizes. They are
indexed by the engine like any other candidate (evaluated once at start-up, as ``book_not_ready``), but
no update wakes them.

A second series varies what *does* grow the cost: 1, 2, 4 and 8 candidates woken per update (the
``perp_spot_basis`` forward candidates alone; both directions; the 8 benchmark candidates; those at two
sizes). All configurations replay the same records in interleaved blocks (same machine conditions); the
engine drains after every record.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from typing import Any

from bench.common import (
    QUICK_RECORDS,
    Timing,
    bench_candidates,
    load_timeline,
    publish,
)
from bench.pipeline import Lane, _run_ours, make_pipeline
from feeds.instruments import InstrumentId, Kind, Market, Venue
from rules.candidates import (
    BasisDirection,
    Candidate,
    CexCexCandidate,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
)

SIZES = (10, 100, 1000)
DEFAULT_RECORDS = 30_000
BLOCK = 1000
# Pairs that are not in the recordings (their books never update here).
OTHER_BASES = ("SOL", "XRP", "ADA", "DOGE", "LINK", "DOT", "LTC", "BCH", "AVAX", "TRX", "UNI", "ATOM", "FIL")
HOUR_MS = 3_600_000


def idle_candidates() -> Iterator[Candidate]:
    """An endless supply of distinct candidates on instruments the stream never updates."""
    sizes = (1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0)
    for size, base in itertools.product(sizes, OTHER_BASES):
        b_spot = InstrumentId(Venue.BINANCE, Market.SPOT, base, "USDT", Kind.SPOT)
        b_perp = InstrumentId(Venue.BINANCE, Market.USDM, base, "USDT", Kind.PERP)
        y_perp = InstrumentId(Venue.BYBIT, Market.LINEAR, base, "USDT", Kind.PERP)
        o_spot = InstrumentId(Venue.OKX, Market.SPOT, base, "USDT", Kind.SPOT)
        o_perp = InstrumentId(Venue.OKX, Market.SWAP, base, "USDT", Kind.PERP)
        tag = f"{base}:{size:g}"
        for direction in BasisDirection:
            for s, p in ((b_spot, b_perp), (o_spot, o_perp), (b_spot, y_perp), (o_spot, b_perp)):
                yield PerpSpotBasisCandidate(
                    id=f"idle:basis:{direction.value}:{s}|{p}:{tag}",
                    spot=s,
                    perp=p,
                    size_usd=size,
                    horizon_ms=8 * HOUR_MS,
                    direction=direction,
                )
        for a, b in ((b_spot, o_spot), (o_spot, b_spot)):
            yield CexCexCandidate(id=f"idle:cexcex:{a}|{b}:{tag}", buy=a, sell=b, size_usd=size)
        for a, b in itertools.permutations((b_perp, y_perp, o_perp), 2):
            yield FundingCarryCandidate(
                id=f"idle:carry:{a}|{b}:{tag}", long_perp=a, short_perp=b, size_usd=size, horizon_ms=24 * HOUR_MS
            )


def candidate_set(total: int) -> list[Candidate]:
    base = bench_candidates()
    return base + list(itertools.islice(idle_candidates(), total - len(base)))


def touching_sets() -> dict[str, list[Candidate]]:
    """Candidate sets that wake 1, 2, 4 and 8 candidates per book update."""
    eight = bench_candidates()
    basis_fwd = [c for c in eight if c.id.startswith("basis:fwd:")]
    basis = [c for c in eight if c.id.startswith("basis:")]
    return {
        "1/update": basis_fwd,
        "2/update": basis,
        "4/update": eight,
        "8/update": bench_candidates(sizes=(10_000.0, 50_000.0)),
    }


def run(records: int | None, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    timeline = load_timeline(records)
    configs: dict[str, list[Candidate]] = {f"{n}": candidate_set(n) for n in sizes} | touching_sets()
    pipelines = {name: make_pipeline(timeline, cands)[0] for name, cands in configs.items()}
    lanes = {name: Lane(name) for name in configs}
    cpu = dict.fromkeys(configs, 0)
    names = list(configs)
    recs = timeline.records
    for k, i in enumerate(range(0, len(recs), BLOCK)):
        chunk = recs[i : i + BLOCK]
        for name in names[k % len(names) :] + names[: k % len(names)]:
            t0 = time.thread_time_ns()
            _run_ours(pipelines[name], chunk, lanes[name])
            cpu[name] += time.thread_time_ns() - t0
    rows = []
    for name in names:
        lane = lanes[name]
        updates = [d for d, e in zip(lane.durations, lane.evaluations, strict=True) if e > 0]
        evaluations = sum(lane.evaluations)
        rows.append(
            {
                "config": name,
                "candidates": len(configs[name]),
                "indexed_keys": len(pipelines[name].engine._index),
                "records": len(lane.durations),
                "updates": len(updates),
                "evaluations": evaluations,
                "evaluations_per_update": evaluations / len(updates) if updates else 0.0,
                "per_update": Timing.of(updates).as_dict(),
                "per_record_cpu_us": cpu[name] / len(lane.durations) / 1e3,
            }
        )
    idle = [r for r in rows if r["config"] in {str(n) for n in sizes}]
    base = idle[0]["per_update"]["mean_us"]
    return {
        "rows": idle,
        "touching": [r for r in rows if r not in idle],
        "growth_1000_over_10": idle[-1]["per_update"]["mean_us"] / base if base else float("nan"),
    }


def report(result: dict[str, Any]) -> None:
    print("scaling: per-update cost as candidates that do not touch the updated books grow")
    for row in result["rows"]:
        t = Timing(**row["per_update"])
        print(
            f"  {row['candidates']:>5} candidates ({row['indexed_keys']:>3} keys indexed): "
            f"{row['evaluations_per_update']:.2f} evaluations/update, per update mean {t.mean_us:7.2f} us"
            f"  p50 {t.p50_us:7.2f}  p99 {t.p99_us:8.2f} us; per record (CPU) {row['per_record_cpu_us']:7.2f} us"
        )
    print(f"  per-update cost 1000 vs 10 candidates: {result['growth_1000_over_10']:.2f}x")
    print("scaling: per-update cost as the candidates woken per update grow")
    for row in result["touching"]:
        t = Timing(**row["per_update"])
        print(
            f"  {row['config']:>9} ({row['candidates']:>2} candidates): per update mean {t.mean_us:7.2f} us"
            f"  p50 {t.p50_us:7.2f}  p99 {t.p99_us:8.2f}  p99.9 {t.p999_us:8.2f} us"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_RECORDS} records")
    parser.add_argument("--records", type=int, default=None, help=f"records to replay (default {DEFAULT_RECORDS})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return publish(run(args.records or (QUICK_RECORDS if args.quick else DEFAULT_RECORDS)), report, emit=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
