"""Measure the Binance depth decoder choice on real frames: msgspec typed structs vs orjson + float().

Run ``python -m bench.decoders``. Both paths turn the same recorded ``depthUpdate`` frames (hftbacktest
USD-M BTCUSDT ``@depth@0ms`` and spot ``@depth@100ms``) into the same :class:`feeds.updates.BookDelta`;
the script checks that they agree before timing them. Prints µs per frame for each and the ratio.
"""

from __future__ import annotations

import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import orjson

from feeds.binance.schemas import DepthFrame
from feeds.updates import BookDelta

DATA = Path(__file__).resolve().parent.parent / "data" / "hftbacktest"
FILES = {
    "usdm @depth@0ms": DATA / "usdm" / "btcusdt_20240808.gz",
    "spot @depth@100ms": DATA / "spot" / "btcusdt_20240808.gz",
}
REPEATS = 7


def depth_frames(path: Path, limit: int = 3000) -> list[bytes]:
    frames = []
    with gzip.open(path, "rb") as f:
        for line in f:
            frame = line.rstrip(b"\n").partition(b" ")[2]
            if b"@depth" in frame[:48]:
                frames.append(frame)
                if len(frames) == limit:
                    break
    return frames


_typed = msgspec.json.Decoder(DepthFrame, strict=False)


def decode_msgspec(frame: bytes) -> BookDelta:
    d = _typed.decode(frame).data
    return BookDelta("k", d.U, d.u, d.pu, d.b, d.a, venue_ms=d.E)


def decode_orjson(frame: bytes) -> BookDelta:
    d = orjson.loads(frame)["data"]
    bids = [(float(p), float(q)) for p, q in d["b"]]
    asks = [(float(p), float(q)) for p, q in d["a"]]
    return BookDelta("k", d["U"], d["u"], d.get("pu"), bids, asks, venue_ms=d["E"])


def per_frame_us(decode: Callable[[bytes], BookDelta], frames: list[bytes]) -> float:
    """Median over REPEATS runs of the mean time per frame, in µs."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for frame in frames:
            decode(frame)
        runs.append((time.perf_counter_ns() - start) / len(frames) / 1000)
    return statistics.median(runs)


def main() -> int:
    for label, path in FILES.items():
        frames = depth_frames(path)
        for frame in frames:  # the two decoders must produce the same delta
            a, b = decode_msgspec(frame), decode_orjson(frame)
            if (a.first_id, a.last_id, a.prev_id, a.bids, a.asks) != (b.first_id, b.last_id, b.prev_id, b.bids, b.asks):
                print(f"decoders disagree on {frame[:120]!r}", file=sys.stderr)
                return 1
        levels = statistics.mean(len(orjson.loads(f)["data"]["b"]) + len(orjson.loads(f)["data"]["a"]) for f in frames)
        fast = per_frame_us(decode_msgspec, frames)
        slow = per_frame_us(decode_orjson, frames)
        print(f"{label}: {len(frames)} real frames, {levels:.1f} levels/frame on average")
        print(f"  msgspec typed (strict=False): {fast:7.2f} us/frame")
        print(f"  orjson + float():             {slow:7.2f} us/frame")
        print(f"  ratio orjson/msgspec:         {slow / fast:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
