"""Bybit's public order-book history files as a recording format (``feeds.recordings``).

Bybit's history-data page publishes one file per symbol and day, ``2025-06-13_BTCUSDT_ob200.data``
(usually zipped, ``.data.zip``): NDJSON, one v5 ``orderbook`` push per line, exactly as the websocket sends
it (``{"topic":"orderbook.200.BTCUSDT","type":"snapshot"|"delta","ts":...,"data":{...,"u":..,"seq":..},
"cts":...}``). Days of one symbol and depth in one folder are read in date order as one stream.

The files carry no local receive time: each record's ``recv_ns`` is the push's venue ``ts`` (ms → ns).
The market (spot or linear) is not in the lines either; it comes from the path (a folder or file name
containing ``spot``, ``linear``, ``contract`` or ``inverse``), from a depth only one market has (500:
derivatives), or from ``--market``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from feeds.errors import RecordingError
from feeds.recordings import FrameKind, RecordedFrame, Recording

NAME = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})_(?P<symbol>[A-Z0-9]+)_ob(?P<depth>\d+)\.data(?:\.zip)?$")
_TS = re.compile(rb'"ts":(\d{10,16})')
_MARKET_WORDS = {"spot": "spot", "linear": "linear", "contract": "linear", "inverse": "inverse"}


def _looks_like_orderbook(head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0]
    return first.startswith(b"{") and b'"topic":"orderbook.' in first


def market_hint(path: Path, depth: str) -> str:
    """spot/linear/inverse from the path, or from a depth only derivatives have; "" when unknown."""
    for part in reversed([p.lower() for p in path.parts]):
        for word, market in _MARKET_WORDS.items():
            if word in part:
                return market
    return "linear" if depth == "500" else ""


class BybitHistoryFormat:
    """NDJSON of Bybit v5 ``orderbook`` pushes, plain or zipped (one member)."""

    name = "bybit-history"

    def claims(self, path: Path, head: bytes) -> bool:
        if path.name.endswith(".zip"):
            if NAME.match(path.name) is None:
                return False
            try:
                return _looks_like_orderbook(_zip_head(path))
            except RecordingError:
                return True  # named like one: reading it will report what is wrong, with the file
        return _looks_like_orderbook(head)

    def group(self, paths: Sequence[Path]) -> list[Recording]:
        streams: dict[tuple[Path, str, str], list[tuple[str, Path]]] = {}
        singles: list[Recording] = []
        for path in paths:
            m = NAME.match(path.name)
            if m is None:
                singles.append(Recording(self.name, (path,), options=(("market", market_hint(path, "")),)))
                continue
            streams.setdefault((path.parent, m["symbol"], m["depth"]), []).append((m["date"], path))
        grouped = [
            Recording(
                self.name,
                tuple(p for _, p in sorted(days)),
                symbol=symbol,
                options=(("market", market_hint(days[0][1], depth)), ("depth", depth)),
            )
            for (_, symbol, depth), days in sorted(streams.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:]))
        ]
        return grouped + singles

    def read(self, recording: Recording) -> Iterator[RecordedFrame]:
        for path in recording.paths:
            yield from self._read_file(path, recording.symbol)

    def _read_file(self, path: Path, symbol: str) -> Iterator[RecordedFrame]:
        source = str(path)
        number = 0
        try:
            with _open(path) as handle:
                for number, raw in enumerate(handle, 1):
                    line = raw.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    m = _TS.search(line)
                    if m is None:
                        raise RecordingError(source, 'expected an orderbook push with a "ts" field', line=number)
                    yield RecordedFrame(int(m[1]) * 1_000_000, FrameKind.WS, "", line, source, number, symbol)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise RecordingError(source, f"corrupt or unreadable file: {exc}", line=number + 1) from None


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes: the plain file, or the one member of a zip."""
    if not path.name.endswith(".zip"):
        with path.open("rb") as handle:
            yield handle
        return
    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) != 1:
            raise RecordingError(str(path), f"expected one file in the zip, found {len(members)}")
        with archive.open(members[0]) as member:
            yield member


def _zip_head(path: Path, size: int = 4096) -> bytes:
    try:
        with _open(path) as handle:
            return handle.read(size)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise RecordingError(str(path), f"cannot read the zip: {exc}") from None
