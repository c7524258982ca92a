"""Real recorded Binance frames for the Binance, recordings and verify-books tests (no hand-made frames)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from feeds.book import Side
from feeds.sync import BookSync

DATA = Path(__file__).resolve().parent.parent / "data"
HFT = DATA / "hftbacktest"
CRYPTOFEED = DATA / "cryptofeed"
SPOT_BTC_0808 = HFT / "spot" / "btcusdt_20240808.gz"
SPOT_BTC_0809 = HFT / "spot" / "btcusdt_20240809.gz"
USDM_BTC = HFT / "usdm" / "btcusdt_20240808.gz"
CF_SPOT_WS = CRYPTOFEED / "BINANCE.ws.1.0"
CF_USDM_WS = CRYPTOFEED / "BINANCE_FUTURES.ws.1.0"
CF_SPOT_HTTP = CRYPTOFEED / "BINANCE.http.0.0"
CF_USDM_HTTP = CRYPTOFEED / "BINANCE_FUTURES.http.0.0"


@cache
def hft_lines(path: Path) -> tuple[tuple[int, bytes], ...]:
    """(receive ns, frame) of every line of an hftbacktest file."""
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            ns, _, frame = line.rstrip(b"\n").partition(b" ")
            out.append((int(ns), frame))
    return tuple(out)


def hft_frame(path: Path, needle: bytes, nth: int = 0) -> tuple[int, bytes]:
    """The ``nth`` line of an hftbacktest file whose frame contains ``needle`` in its first 64 bytes."""
    hits = (item for item in hft_lines(path) if needle in item[1][:64])
    for _ in range(nth):
        next(hits)
    return next(hits)


def cryptofeed_messages(path: Path) -> Iterator[bytes]:
    """The received messages (``<epoch>: <message>`` lines) of a cryptofeed websocket capture."""
    with path.open("rb") as f:
        for line in f:
            if line[:1].isdigit():
                yield line.rstrip(b"\n").partition(b": ")[2]


def cryptofeed_message(path: Path, needle: bytes) -> bytes:
    return next(m for m in cryptofeed_messages(path) if needle in m[:80])


def cryptofeed_rest_body(path: Path, symbol: str) -> bytes:
    """The recorded REST depth body for ``symbol`` in a cryptofeed ``.http`` file."""
    with path.open("rb") as f:
        for line in f:
            if f"symbol={symbol}&".encode() in line:
                return line.rstrip(b"\n").partition(b": ")[2]
    raise LookupError(symbol)


def book_state(sync: BookSync) -> tuple[int, list[tuple[float, float]], list[tuple[float, float]]]:
    """Everything that makes two rebuilt books equal: update id and every level of both sides."""
    return sync.book.last_id, sync.book.levels(Side.BID), sync.book.levels(Side.ASK)
