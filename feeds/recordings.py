"""Readers for recorded exchange traffic: files in, typed :class:`RecordedFrame` records out.

Two formats are built in (``data/SOURCES.md`` "Formats"); others are added with :func:`register_format`:

* ``hftbacktest``: gzip text, ``<receive ns> <frame>`` per line; a REST depth snapshot is written as the
  bare REST body (detected by ``lastUpdateId``). Files named ``<symbol>_<YYYYMMDD>.gz`` in one folder
  continue one stream across days and are read, in date order, as one :class:`Recording`.
* ``cryptofeed``: UTF-8 text written by cryptofeed's raw-data recorder. ``EXCH.ws.N.0`` is one websocket
  connection (one recording); ``EXCH.http.N.0`` (REST snapshots) and ``EXCH.0`` (configuration and REST
  metadata) of the same exchange in the same folder are merged into it by receive time.

A reader knows formats, not venues: which venue and market a recording is comes from
:mod:`feeds.venues` (detected from the frames, or forced). Unreadable input raises
:class:`feeds.errors.RecordingError` with the file and line; records are yielded lazily, so an error
surfaces at the line where it is.
"""

from __future__ import annotations

import calendar
import gzip
import heapq
import json
import re
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote

from feeds.book import OrderBook
from feeds.errors import RecordingError
from feeds.levels import levels_problem


class FrameKind(StrEnum):
    WS = "ws"  # a frame received on a websocket
    REST = "rest"  # a REST response body (depth snapshot or metadata)
    SENT = "sent"  # a frame we sent (subscribe)
    OPENED = "opened"  # a websocket connection was opened (``url`` says where)
    CONFIG = "config"  # the recorder's configuration (cryptofeed ``configuration:`` line)


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One record of a recording.

    ``recv_ns`` is the recorder's receive time (ns since the epoch, UTC). ``url`` is the websocket URL
    the frame arrived on, or the REST URL of a response, or "" where the format does not record it.
    ``symbol`` is the venue symbol when the format itself says which book a record belongs to (an
    hftbacktest file holds one symbol, so its bare snapshot line has no other way to say it).
    """

    recv_ns: int
    kind: FrameKind
    url: str
    payload: bytes
    source: str  # path of the file the record came from
    line: int  # 1-based line in that file
    symbol: str = ""
    header: bytes = b""  # cryptofeed REST: the response headers the recorder appended, if any


@dataclass(frozen=True)
class Recording:
    """One recorded stream: its files in read order, plus companion files merged in by time."""

    format: str
    paths: tuple[Path, ...]
    companions: tuple[Path, ...] = ()
    exchange: str = ""  # the recorder's name for the exchange (cryptofeed ``BINANCE_FUTURES``), if any
    symbol: str = ""  # the one venue symbol of the stream, where the format says so (hftbacktest)
    options: tuple[tuple[str, str], ...] = field(default=())  # format-specific hints

    @property
    def name(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1} files)"

    def frames(self) -> Iterator[RecordedFrame]:
        """Every record, in recorded order."""
        return get_format(self.format).read(self)

    def sample(self, n: int = 64) -> list[RecordedFrame]:
        """The first ``n`` websocket-side records (frames, opens, sends): what venue detection reads."""
        kinds = (FrameKind.WS, FrameKind.OPENED, FrameKind.SENT)
        return list(islice((f for f in self.frames() if f.kind in kinds), n))


class RecordingFormat(Protocol):
    """A recording file format. Register instances with :func:`register_format`."""

    name: str

    def claims(self, path: Path, head: bytes) -> bool:
        """True if ``path`` is in this format; ``head`` is its first bytes (gunzipped if gzip)."""
        ...

    def group(self, paths: Sequence[Path]) -> list[Recording]:
        """Arrange claimed files into recordings (streams)."""
        ...

    def read(self, recording: Recording) -> Iterator[RecordedFrame]:
        """Yield the recording's records in order; raise :class:`RecordingError` on corrupt input."""
        ...


_FORMATS: dict[str, RecordingFormat] = {}


def register_format(fmt: RecordingFormat) -> None:
    """Add a format; formats registered later are asked first (so a specific format can refine one)."""
    _FORMATS.pop(fmt.name, None)
    _FORMATS[fmt.name] = fmt


def get_format(name: str) -> RecordingFormat:
    try:
        return _FORMATS[name]
    except KeyError:
        raise RecordingError(name, f"unknown recording format {name!r} (known: {', '.join(_FORMATS)})") from None


# Files that sit beside recordings in a folder and are not recordings.
_NOT_RECORDINGS = re.compile(r"^(LICENSE|NOTICE|README|COPYING)(\..*)?$|.*\.(md|txt|rst)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class OpenedRecordings:
    recordings: list[Recording]
    skipped: list[Path]  # files inside given folders that no format claims


def open_recordings(paths: Iterable[str | Path]) -> OpenedRecordings:
    """Find the recordings in files and folders (folders recursively, in name order).

    A file named explicitly must be a recording in a known format; a file found inside a folder that
    no format claims is listed in ``skipped``. The same file reached twice is read once.
    """
    claimed: dict[str, list[Path]] = {name: [] for name in _FORMATS}
    skipped: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
            explicit = False
        elif path.is_file():
            candidates, explicit = [path], True
        else:
            raise RecordingError(str(path), "no such file or folder")
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            fmt = _claim(candidate)
            if fmt is not None:
                claimed[fmt].append(candidate)
            elif explicit:
                raise RecordingError(str(candidate), f"not a recording in a known format ({', '.join(_FORMATS)})")
            elif not _NOT_RECORDINGS.match(candidate.name):
                skipped.append(candidate)
    recordings: list[Recording] = []
    for name, files in claimed.items():
        if files:
            recordings.extend(_FORMATS[name].group(files))
    return OpenedRecordings(recordings, skipped)


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file, gunzipped when it is gzip. Unreadable → RecordingError."""
    try:
        with path.open("rb") as f:
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    return g.read(size)
            return f.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise RecordingError(str(path), f"cannot read: {exc}") from None


def _claim(path: Path) -> str | None:
    head = read_head(path)
    for name in reversed(_FORMATS):
        if _FORMATS[name].claims(path, head):
            return name
    return None


def _lines(path: Path, handle: BinaryIO | gzip.GzipFile) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end-of-line) with decompression errors mapped to RecordingError."""
    number = 0
    try:
        for number, line in enumerate(handle, 1):
            yield number, line.rstrip(b"\r\n")
    except EOFError as exc:  # the end of the file inside a gzip member: a writer killed before it closed it
        why = f"corrupt or truncated file: {exc} (a recorder killed before closing it: `arbscan repair-recording`"
        why += " keeps its whole lines)"
        raise RecordingError(str(path), why, line=number + 1) from None
    except (OSError, zlib.error) as exc:
        raise RecordingError(str(path), f"corrupt or truncated file: {exc}", line=number + 1) from None


def _epoch_ns(text: bytes, path: Path, line: int) -> int:
    """``1633998512.0633569`` (epoch seconds) → ns, exactly (no float rounding)."""
    whole, _, frac = text.strip().partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise RecordingError(str(path), f"bad timestamp {text[:40]!r}", line=line)
    return int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9])


# ---- hftbacktest ----------------------------------------------------------------------------------

_HFT_LINE = re.compile(rb"^\d{9,19} [\[{]")
_HFT_NAME = re.compile(r"^(?P<symbol>.+?)_(?P<date>\d{8})\.gz$")
_DAY_NS = 86_400 * 10**9
_YEAR_2000_NS = 946_684_800 * 10**9


class HftbacktestFormat:
    """``<receive ns> <raw frame>`` lines, gzip; bare REST snapshot lines carry ``lastUpdateId``."""

    name = "hftbacktest"

    def claims(self, path: Path, head: bytes) -> bool:
        return path.name.endswith(".gz") and _HFT_LINE.match(head) is not None

    def group(self, paths: Sequence[Path]) -> list[Recording]:
        streams: dict[tuple[Path, str], list[tuple[str, Path]]] = {}
        singles: list[Recording] = []
        for path in paths:
            m = _HFT_NAME.match(path.name)
            if m is None:
                singles.append(Recording(self.name, (path,)))
                continue
            streams.setdefault((path.parent, m["symbol"]), []).append((m["date"], path))
        grouped = [
            # The recorder percent-encodes symbols that are not file-name safe (Kraken ``XBT/USD``).
            Recording(self.name, tuple(p for _, p in sorted(days)), symbol=unquote(symbol).upper())
            for (_, symbol), days in sorted(streams.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        ]
        return grouped + singles

    def read(self, recording: Recording) -> Iterator[RecordedFrame]:
        for path in recording.paths:
            yield from self._read_file(path, recording.symbol)

    def _read_file(self, path: Path, symbol: str) -> Iterator[RecordedFrame]:
        source = str(path)
        # A file holds one UTC day (its name's): a receive time off that day by more than a day is no receive
        # time of this file (a paced replay would wait on it for years), refused with the line. A file named
        # otherwise: a time between 2000 and a day from now.
        named = _HFT_NAME.match(path.name)
        earliest, latest, bound = _YEAR_2000_NS, time.time_ns() + _DAY_NS, "between 2000 and a day from now"
        if named is not None:
            try:
                day_ns = calendar.timegm(time.strptime(named["date"], "%Y%m%d")) * 10**9
            except ValueError:
                raise RecordingError(source, f"the file name's date {named['date']} is no date") from None
            earliest, latest = day_ns - _DAY_NS, day_ns + 2 * _DAY_NS
            bound = f"on the file's day {named['date']} (UTC, ±1 day)"
        try:
            raw = path.open("rb")
        except OSError as exc:
            raise RecordingError(source, f"cannot open: {exc}") from None
        with raw, gzip.GzipFile(fileobj=raw) as handle:
            for number, line in _lines(path, handle):
                if not line:
                    continue
                ts, sep, frame = line.partition(b" ")
                if not sep or not ts.isdigit() or not frame:
                    raise RecordingError(source, "expected '<receive ns> <frame>'", line=number)
                recv_ns = int(ts[:40])
                if not earliest <= recv_ns < latest:
                    raise RecordingError(source, f"receive time {ts[:40].decode()} ns is not {bound}", line=number)
                # REST snapshots are written bare: Binance's carries a lastUpdateId and no stream envelope; OKX's
                # (GET /api/v5/market/books) opens with its REST envelope, "code", where a push opens with
                # "arg" or "event".
                is_rest = (not frame.startswith(b'{"stream"') and b'"lastUpdateId"' in frame[:64]) or frame.startswith(
                    b'{"code":'
                )
                kind = FrameKind.REST if is_rest else FrameKind.WS
                yield RecordedFrame(recv_ns, kind, "", frame, source, number, symbol)


def first_rest_snapshot(path: Path) -> tuple[int, dict[str, Any]]:
    """The first REST depth snapshot of one hftbacktest file: (local receive ns, the parsed body)."""
    with gzip.open(path, "rt") as lines:
        for line in lines:
            stamp, _, frame = line.partition(" ")
            if frame.startswith('{"lastUpdateId"'):
                return int(stamp), json.loads(frame)
    raise RecordingError(str(path), "no REST depth snapshot")


def rest_snapshot_book(path: Path, *, recv_ns: int) -> tuple[OrderBook, dict[str, Any]]:
    """A book (keyed by the file name) loaded through ``OrderBook.apply`` from the file's first REST snapshot."""
    _, snap = first_rest_snapshot(path)
    book = OrderBook(path.name)
    bids = [(float(p), float(q)) for p, q in snap["bids"]]
    asks = [(float(p), float(q)) for p, q in snap["asks"]]
    problem = levels_problem(bids, asks)
    if problem:
        raise RecordingError(str(path), f"REST depth snapshot: {problem}")
    book.apply(
        bids,
        asks,
        last_id=int(snap["lastUpdateId"]),
        venue_ms=0,
        recv_ns=recv_ns,
    )
    return book, snap


# ---- cryptofeed -----------------------------------------------------------------------------------

_CF_NAME = re.compile(r"^(?P<exchange>[A-Z][A-Z0-9_]*)\.(?:(?P<kind>ws|http)\.(?P<conn>\d+)\.\d+|0)$")
_CF_FIRST = re.compile(rb"^(configuration: |\d+(\.\d+)?: |\S+://\S+ (<->|<-|->) )")
_HEADER = b" header: "


class CryptofeedFormat:
    """cryptofeed's raw-data recorder (``EXCH.ws.N.0``, ``EXCH.http.N.0``, ``EXCH.0``)."""

    name = "cryptofeed"

    def claims(self, path: Path, head: bytes) -> bool:
        if _CF_NAME.match(path.name) is None:
            return False
        first = head.lstrip(b"\r\n")
        return _CF_FIRST.match(first) is not None

    def group(self, paths: Sequence[Path]) -> list[Recording]:
        by_exchange: dict[tuple[Path, str], dict[str, list[Path]]] = {}
        for path in paths:
            m = _CF_NAME.match(path.name)
            assert m is not None  # claims() checked the name
            slot = by_exchange.setdefault((path.parent, m["exchange"]), {"ws": [], "other": []})
            slot["ws" if m["kind"] == "ws" else "other"].append(path)
        recordings: list[Recording] = []
        for (folder, exchange), files in sorted(by_exchange.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            if not files["ws"]:
                continue  # REST-only files are companions of a websocket capture, not recordings
            # A capture's REST snapshots and metadata belong to it even when only the ws file was named.
            companions = sorted(
                set(files["other"])
                | {p for p in folder.glob(f"{exchange}.*") if p.is_file() and _is_companion(p.name, exchange)}
            )
            recordings.extend(
                Recording(self.name, (ws,), tuple(companions), exchange=exchange) for ws in sorted(files["ws"])
            )
        return recordings

    def read(self, recording: Recording) -> Iterator[RecordedFrame]:
        sources = [self._read_file(p) for p in (*recording.companions, *recording.paths)]
        # Each file is in time order; merging by receive time interleaves REST answers with the frames.
        # Ties keep file order (companions first), so metadata precedes frames stamped the same instant.
        return heapq.merge(*sources, key=lambda f: f.recv_ns)

    def _read_file(self, path: Path) -> Iterator[RecordedFrame]:
        source = str(path)
        url = ""
        last_ns = 0
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise RecordingError(source, f"cannot open: {exc}") from None
        with handle:
            for number, line in _lines(path, handle):
                if not line.strip():
                    continue
                record = self._parse(line, path, number, url, last_ns)
                if record.kind is FrameKind.OPENED:
                    url = record.url
                last_ns = record.recv_ns
                yield record

    @staticmethod
    def _parse(line: bytes, path: Path, number: int, url: str, last_ns: int) -> RecordedFrame:
        source = str(path)
        if line.startswith(b"configuration: "):  # no timestamp: keep the file's time order
            return RecordedFrame(last_ns, FrameKind.CONFIG, "", line[15:], source, number)
        if line[:1].isdigit():  # "<epoch>: <message>": a received frame
            stamp, sep, body = line.partition(b": ")
            if not sep:
                raise RecordingError(source, "expected '<epoch>: <message>'", line=number)
            return RecordedFrame(_epoch_ns(stamp, path, number), FrameKind.WS, url, body, source, number)
        target, sep, rest = line.partition(b" ")
        if not sep or b"://" not in target:
            raise RecordingError(
                source, "unrecognised line (expected a timestamp, a URL or 'configuration:')", line=number
            )
        text_url = target.decode("utf-8", "replace")
        if rest.startswith(b"<-> "):
            return RecordedFrame(_epoch_ns(rest[4:], path, number), FrameKind.OPENED, text_url, b"", source, number)
        arrow, _, rest = rest.partition(b" ")
        stamp, sep, body = rest.partition(b": ")
        if arrow not in (b"<-", b"->") or not sep:
            raise RecordingError(
                source, "expected '<url> -> <epoch>: <body>' or '<url> <- <epoch>: <body>'", line=number
            )
        recv_ns = _epoch_ns(stamp, path, number)
        if arrow == b"<-":
            return RecordedFrame(recv_ns, FrameKind.SENT, text_url, body, source, number)
        header = b""
        cut = body.rfind(_HEADER)
        if cut > 0 and body[cut + len(_HEADER) : cut + len(_HEADER) + 1] == b"{" and body[cut - 1 : cut] in b"}]":
            body, header = body[:cut], body[cut + len(_HEADER) :]
        return RecordedFrame(recv_ns, FrameKind.REST, text_url, body, source, number, header=header)


def _is_companion(name: str, exchange: str) -> bool:
    m = _CF_NAME.match(name)
    return m is not None and m["exchange"] == exchange and m["kind"] != "ws"


register_format(HftbacktestFormat())
register_format(CryptofeedFormat())
