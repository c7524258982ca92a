"""What every benchmark shares: the bundled recordings, the candidate sets, timing statistics, memory.

The data is the real Binance capture of ``data/hftbacktest`` (spot and USD-M, BTCUSDT and ETHUSDT,
recorded simultaneously on 2024-08-08; ``data/SOURCES.md``). Records of the four streams are merged by
receive time, as :meth:`scanner.pipeline.ReplayPipeline.merged` does, and held in memory so that
reading and gunzipping the files is never timed.

Frame classes (from the stream name, never by decoding): ``depth`` (``@depth`` diffs), ``ticker``
(``@bookTicker``), ``trade`` (``@trade``), ``rest`` (the recorded REST depth snapshots). The daemon
subscribes to depth and bookTicker only (``scanner.feedplan``), so those (plus the four REST snapshots
that start the books) are the headline frame set: :data:`HEADLINE`.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import resource
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.recordings import FrameKind, RecordedFrame, Recording, open_recordings
from rules.candidates import BasisDirection, Candidate, CexCexCandidate, PerpSpotBasisCandidate
from rules.constraints import Constraints
from rules.validation import load_constraints
from scanner.market import FundingAssumptionSpec

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "hftbacktest"
SPOT_DIR = DATA / "spot"
USDM_DIR = DATA / "usdm"
CONSTRAINTS_FILE = ROOT / "config" / "execution_constraints.json"

HOUR_MS = 3_600_000
BASES = ("BTC", "ETH")  # the recorded pairs (USDT quoted)
HEADLINE = frozenset({"depth", "ticker", "rest"})  # what the daemon subscribes (plus the start snapshots)
QUICK_RECORDS = 30_000  # --quick: the first records of the merged timeline (~40 s of market time)


# ---- data ------------------------------------------------------------------------------------------


def recordings() -> list[Recording]:
    """The four bundled Binance streams (spot BTC/ETH over two files each, USD-M BTC/ETH)."""
    found = open_recordings([SPOT_DIR, USDM_DIR]).recordings
    if len(found) != 4:
        raise SystemExit(f"bench: expected 4 recordings under {DATA}, found {[r.name for r in found]}")
    return found


def frame_class(frame: RecordedFrame) -> str:
    if frame.kind is FrameKind.REST:
        return "rest"
    if frame.kind is not FrameKind.WS:
        return "other"
    head = frame.payload[:48]
    if b"@depth" in head:
        return "depth"
    if b"@bookTicker" in head:
        return "ticker"
    if b"@trade" in head or b"@aggTrade" in head:
        return "trade"
    return "other"


@dataclass(frozen=True, slots=True)
class Timeline:
    """The merged records: ``(recording index, frame, class)`` in receive-time order."""

    recordings: list[Recording]
    records: list[tuple[int, RecordedFrame, str]]

    def count(self, classes: frozenset[str] | None = None) -> int:
        return sum(1 for r in self.records if classes is None or r[2] in classes)

    def market_seconds(self) -> float:
        return (self.records[-1][1].recv_ns - self.records[0][1].recv_ns) / 1e9 if self.records else 0.0


def load_timeline(limit: int | None = None, *, freeze: bool = True) -> Timeline:
    """Read and merge the recordings (``limit``: only the first N merged records), then freeze the GC.

    ``gc.freeze()`` moves the preloaded records (~350k objects) out of the collector's way: the daemon
    never holds a recording in memory, so its full collections never scan one either. Tests pass
    ``freeze=False`` (no process-wide side effect).
    """
    recs = recordings()

    def tagged(index: int, recording: Recording) -> Iterator[tuple[int, int, RecordedFrame]]:
        for frame in recording.frames():
            yield frame.recv_ns, index, frame

    merged = heapq.merge(*(tagged(i, r) for i, r in enumerate(recs)), key=lambda item: (item[0], item[1]))
    records = []
    for _ns, index, frame in merged:
        records.append((index, frame, frame_class(frame)))
        if limit is not None and len(records) >= limit:
            break
    if freeze:
        gc.collect()
        gc.freeze()
    return Timeline(recs, records)


# ---- instruments, candidates, constraints ------------------------------------------------------------


def spot(base: str) -> InstrumentId:
    return InstrumentId(Venue.BINANCE, Market.SPOT, base, "USDT", Kind.SPOT)


def perp(base: str) -> InstrumentId:
    return InstrumentId(Venue.BINANCE, Market.USDM, base, "USDT", Kind.PERP)


def constraints() -> Constraints:
    """The project's shipped execution constraints (``config/execution_constraints.json``)."""
    return load_constraints(CONSTRAINTS_FILE.read_bytes(), str(CONSTRAINTS_FILE))


def funding_assumptions(bases: Sequence[str] = BASES) -> dict[InstrumentId, FundingAssumptionSpec]:
    """The recordings carry no funding stream: a stated 0.01 %/8 h for each perp (as the example config)."""
    return {
        perp(b): FundingAssumptionSpec(perp(b), 0.0001, 8 * HOUR_MS, "bench: Binance base rate, no funding stream")
        for b in bases
    }


def bench_candidates(sizes: Sequence[float] = (10_000.0,)) -> list[Candidate]:
    """The benchmark's candidate set over the recorded instruments, per pair (BTC, ETH) and size:

    * ``perp_spot_basis`` spot↔USD-M, both directions (cash-and-carry and reverse, held 8 h);
    * ``cex_cex``-style spot↔USD-M, both directions (buy one market, sell the other at once).

    Every book update touches the 4 candidates of its pair (per size); 8 candidates in all by default.
    """
    out: list[Candidate] = []
    for base in BASES:
        s, p = spot(base), perp(base)
        for size in sizes:
            tag = f"{base}:{size:g}"
            out.append(
                PerpSpotBasisCandidate(id=f"basis:fwd:{tag}", spot=s, perp=p, size_usd=size, horizon_ms=8 * HOUR_MS)
            )
            out.append(
                PerpSpotBasisCandidate(
                    id=f"basis:rev:{tag}",
                    spot=s,
                    perp=p,
                    size_usd=size,
                    horizon_ms=8 * HOUR_MS,
                    direction=BasisDirection.SHORT_SPOT_LONG_PERP,
                )
            )
            out.append(CexCexCandidate(id=f"cexcex:spot>perp:{tag}", buy=s, sell=p, size_usd=size))
            out.append(CexCexCandidate(id=f"cexcex:perp>spot:{tag}", buy=p, sell=s, size_usd=size))
    return out


# ---- statistics ----------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100); nan when empty."""
    if not sorted_values:
        return math.nan
    # Exact: 99.9 / 100 is 0.9990000000000001 in floats, one rank too high when the count is a multiple of 1000.
    rank = max(1, math.ceil(Fraction(str(q)) / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True, slots=True)
class Timing:
    """Per-item durations summarised: rate from the summed durations, percentiles in µs."""

    count: int
    total_s: float
    per_s: float
    mean_us: float
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float

    @classmethod
    def of(cls, durations_ns: Sequence[int], overhead_ns: int = 0) -> Timing:
        """``overhead_ns``: what the per-item timer itself adds to each duration (:func:`timer_overhead_ns`),
        taken off every one: ~56 ns is 5-8 % of a 1 µs decode but under 1 % of a pipeline frame, and left in
        it would pull every ratio towards 1."""
        values = sorted(d - overhead_ns if d > overhead_ns else 0 for d in durations_ns)
        total = sum(values)
        n = len(values)
        return cls(
            count=n,
            total_s=total / 1e9,
            per_s=n / (total / 1e9) if total else math.nan,
            mean_us=total / n / 1e3 if n else math.nan,
            p50_us=percentile(values, 50) / 1e3,
            p99_us=percentile(values, 99) / 1e3,
            p999_us=percentile(values, 99.9) / 1e3,
            max_us=(values[-1] / 1e3) if values else math.nan,
        )

    def line(self, label: str, unit: str = "frames") -> str:
        return (
            f"{label:<34} {self.count:>8} {unit:<7} {self.per_s:>11,.0f}/s   mean {self.mean_us:7.2f} us"
            f"   p50 {self.p50_us:7.2f}   p99 {self.p99_us:8.2f}   p99.9 {self.p999_us:8.2f} us"
        )

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}


def timer_overhead_ns(samples: int = 50_000) -> int:
    """The median duration the benchmarks' per-item timer measures around nothing (``t0 = clock()`` ...
    ``out.append(clock() - t0)``, as every lane times an item): the part of each duration that is the timer's."""
    clock, out = time.perf_counter_ns, array("q")
    for _ in range(samples):
        t0 = clock()
        out.append(clock() - t0)
    return sorted(out)[samples // 2]


# ---- memory ------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


# ---- output ------------------------------------------------------------------------------------------

RESULT_PREFIX = "BENCH_RESULT "


def emit_result(result: dict[str, object]) -> None:
    """The one JSON line a sub-benchmark hands to ``python -m bench`` (parsed from its stdout)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, allow_nan=True) + "\n")
    sys.stdout.flush()


def publish(result: dict[str, Any], report: Callable[[dict[str, Any]], None], *, emit: bool) -> int:
    """A sub-benchmark's ending: its human report, then (``--json``) the result line; the exit status."""
    report(result)
    if emit:
        emit_result(result)
    return 0


def parse_result(stdout: str) -> dict[str, object]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, object] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    raise ValueError("no result line in the benchmark's output")
