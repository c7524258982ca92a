"""``csv-replay``: normalized CSV book series served by the replay exchange as :mod:`feeds.csvbook` frames.

The defi-arbitrage series (``data/defi-arbitrage/orderbook_*.csv``: one 10-level book per second,
``timestamp,symbol,b1..b10,bv1..bv10,a1..a10,av1..av10``, symbol ``LINKUSDT.BNC`` / ``LINKUSDT.HB``) is
not wire format. This module makes it replayable through the same path as real captures, and says so:

* a recording format ``csvbook`` (each row becomes one JSON snapshot frame, its receive time the row's
  timestamp; the numbers are copied verbatim from the CSV, so books are exactly the CSV's);
* a venue entry and detector: every ``csvbook`` recording is served under the ``huobi/spot`` mount of
  the replay exchange (Huobi exists in this project only as this series); each frame names the venue it
  is labelled with (``binance`` or ``huobi``), and the client's :class:`~feeds.csvbook.CsvBookProtocol`
  builds ``binance:spot:LINKUSDT`` or ``huobi:spot:LINKUSDT`` books from it;
* a :class:`~feeds.replay.plugin.ReplayPlugin` speaking the csvbook protocol.

Everything built from it is labelled ``csv-replay`` (:data:`feeds.csvbook.LABEL`). Import this module to
register the format, the venue entry and the plugin.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import msgspec

from feeds.book import OrderBook, Side
from feeds.csvbook import LABEL, PATH, CsvBookProtocol
from feeds.errors import RecordingError
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.protocol import VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, Recording, register_format
from feeds.replay.plugin import NoTopicState, SessionReply, SnapshotQuery, register_plugin
from feeds.updates import book_key
from feeds.venues import Endpoints, InstrumentTerms, VenueEntry, register_detector, register_venue

FORMAT = "csvbook"
HEADER = b"timestamp,symbol,b1,"
LEVELS = 10
#: CSV symbol suffix -> the venue the series is labelled with.
SUFFIX_VENUES: Mapping[str, Venue] = {"BNC": Venue.BINANCE, "HB": Venue.HUOBI}
#: Where csv-replay books are mounted on the replay exchange (see the module docstring).
MOUNT = (Venue.HUOBI, Market.SPOT)
_COLUMNS = 2 + 4 * LEVELS


def _epoch_ms(text: str, source: str, line: int) -> int:
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")) * 1000
    except ValueError:
        raise RecordingError(source, f"timestamp {text!r}: expected YYYY-MM-DD HH:MM:SS", line=line) from None


# A JSON number without a sign, as the value is copied into the frame verbatim: float() would also take
# "inf", "1_000", " 1", "27." or "027".
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _levels(prices: list[str], sizes: list[str], source: str, line: int) -> str:
    pairs = []
    for price, size in zip(prices, sizes, strict=True):
        ok = (
            _DECIMAL.fullmatch(price) is not None
            and _DECIMAL.fullmatch(size) is not None
            and 0.0 < float(price) < math.inf
            and float(size) < math.inf
        )
        if not ok:
            raise RecordingError(source, f"level {price!r} x {size!r} is not a positive price and a size", line=line)
        pairs.append(f"[{price},{size}]")
    return "[" + ",".join(pairs) + "]"


def split_symbol(text: str, source: str = "", line: int = 0) -> tuple[Venue, str]:
    """``LINKUSDT.HB`` → (huobi, ``LINKUSDT``)."""
    symbol, _, suffix = text.partition(".")
    venue = SUFFIX_VENUES.get(suffix)
    if venue is None or not symbol.isalnum():
        known = ", ".join(SUFFIX_VENUES)
        raise RecordingError(source, f"symbol {text!r}: expected SYMBOL.<{known}>", line=line)
    return venue, symbol.upper()


def row_frame(fields: list[str], seq: int, source: str, line: int) -> tuple[int, bytes]:
    """One CSV row as (epoch ms, csvbook snapshot frame)."""
    if len(fields) != _COLUMNS:
        raise RecordingError(source, f"expected {_COLUMNS} columns, got {len(fields)}", line=line)
    ts = _epoch_ms(fields[0], source, line)
    venue, symbol = split_symbol(fields[1], source, line)
    n = LEVELS
    bids = _levels(fields[2 : 2 + n], fields[2 + n : 2 + 2 * n], source, line)
    asks = _levels(fields[2 + 2 * n : 2 + 3 * n], fields[2 + 3 * n : 2 + 4 * n], source, line)
    frame = (
        f'{{"type":"snapshot","venue":"{venue.value}","symbol":"{symbol}","seq":{seq},"ts":{ts},'
        f'"bids":{bids},"asks":{asks}}}'
    )
    return ts, frame.encode()


class CsvBookFormat:
    """The defi-arbitrage CSV as a recording: one snapshot frame per row (see the module docstring)."""

    name = FORMAT

    def claims(self, path: Path, head: bytes) -> bool:
        # Never claimed when scanning folders: the CSV is not wire format, and tools that read captures
        # (verify-books, the recorder's readers) keep listing it as such. Open it with recordings().
        return False

    @staticmethod
    def is_series(path: Path, head: bytes) -> bool:
        return path.suffix == ".csv" and head.startswith(HEADER)

    def group(self, paths: Sequence[Path]) -> list[Recording]:
        out = []
        for path in paths:
            with path.open("rb") as handle:
                handle.readline()
                first = handle.readline().decode("utf-8", "replace").split(",")
            _venue, symbol = split_symbol(first[1] if len(first) > 1 else "", str(path), 2)
            out.append(Recording(self.name, (path,), symbol=symbol))
        return out

    def read(self, recording: Recording) -> Iterator[RecordedFrame]:
        for path in recording.paths:
            source = str(path)
            try:
                handle = path.open("r", encoding="utf-8")
            except OSError as exc:
                raise RecordingError(source, f"cannot open: {exc}") from None
            with handle:
                header = handle.readline()
                if not header.encode().startswith(HEADER):
                    raise RecordingError(source, "not a defi-arbitrage book CSV (header)", line=1)
                for number, raw in enumerate(handle, start=2):
                    text = raw.strip()
                    if not text:
                        continue
                    ts, frame = row_frame(text.split(","), number - 1, source, number)
                    yield RecordedFrame(ts * 1_000_000, FrameKind.WS, "", frame, source, number, recording.symbol)


# ---- venue registry: where csv-replay recordings are mounted ----------------------------------------------


def _any_venue_protocol(endpoints: Endpoints, terms: InstrumentTerms) -> VenueProtocol:
    return CsvBookProtocol(MOUNT[0], MOUNT[1], accept=tuple(SUFFIX_VENUES.values()))


def _detect(recording: Recording, sample: list[RecordedFrame]) -> tuple[Venue, Market] | None:
    return MOUNT if recording.format == FORMAT else None


# Huobi is reachable only as this replay: its "real" endpoints say so instead of pointing at a venue.
_PLACEHOLDER = Endpoints(ws=f"ws://127.0.0.1:1/{LABEL}-only", rest=f"http://127.0.0.1:1/{LABEL}-only")


# ---- the replay plugin --------------------------------------------------------------------------------------


class _Request(msgspec.Struct, frozen=True):
    op: str
    venue: str
    symbols: list[str]


class _Label(msgspec.Struct, frozen=True):
    venue: str
    symbol: str


_request = msgspec.json.Decoder(_Request)
_label = msgspec.json.Decoder(_Label)


class CsvBookSession:
    """One client connection: ``subscribe``/``unsubscribe`` by venue and symbols; frames pass unchanged."""

    def initial_topics(self) -> list[str]:
        return []

    def on_text(self, text: str) -> SessionReply:
        try:
            request = _request.decode(text)
        except msgspec.DecodeError as exc:
            return SessionReply(replies=[msgspec.json.encode({"type": "error", "message": str(exc)})])
        topics = [f"{request.venue}:{s.upper()}" for s in request.symbols]
        ack = msgspec.json.encode({"type": "subscribed", "symbols": [s.upper() for s in request.symbols]})
        if request.op == "subscribe":
            return SessionReply(replies=[ack], subscribe=topics)
        if request.op == "unsubscribe":
            return SessionReply(unsubscribe=topics)
        return SessionReply(replies=[msgspec.json.encode({"type": "error", "message": f"unknown op {request.op}"})])

    def wire(self, topic: str, payload: bytes) -> bytes:
        return payload


class CsvBookPlugin(NoTopicState):
    """:class:`~feeds.replay.plugin.ReplayPlugin` of the csvbook protocol (mounted as ``huobi/spot``)."""

    venue = MOUNT[0]
    markets = frozenset({MOUNT[1]})

    def endpoints(self, market: Market, http_base: str, ws_base: str) -> Endpoints:
        return Endpoints(ws=ws_base, rest=http_base)

    def open_session(self, market: Market, path: str, query: Mapping[str, str]) -> CsvBookSession | None:
        return CsvBookSession() if path == PATH else None

    def topic_of(self, market: Market, payload: bytes) -> str | None:
        try:
            label = _label.decode(payload)
        except msgspec.DecodeError:
            return None
        return f"{label.venue}:{label.symbol}"

    def book_key_of(self, market: Market, topic: str) -> str | None:
        venue, _, symbol = topic.partition(":")
        return book_key(venue, market, symbol)

    def snapshot_query(self, market: Market, path: str, query: Mapping[str, str]) -> SnapshotQuery | None:
        return None

    def render_snapshot(self, market: Market, key: str, book: OrderBook, query: SnapshotQuery) -> bytes:
        raise RecordingError(key, f"{LABEL} has no REST snapshots")

    def error_body(self, market: Market, status: int, message: str) -> bytes:
        return msgspec.json.encode({"type": "error", "status": status, "message": message})

    def subscribe_frames(self, market: Market, topic: str, book: OrderBook | None) -> list[bytes]:
        """A new subscriber gets the current book at once, as the next row would give it."""
        if book is None:
            return []
        venue, _, symbol = topic.partition(":")
        frame = {
            "type": "snapshot",
            "venue": venue,
            "symbol": symbol,
            "seq": book.last_id,
            "ts": book.venue_ms,
            "bids": book.levels(Side.BID, LEVELS),
            "asks": book.levels(Side.ASK, LEVELS),
        }
        return [msgspec.json.encode(frame)]

    def shutdown_notice(self, market: Market) -> bytes | None:
        return None

    def server_ping_interval_s(self, market: Market) -> float | None:
        return 20.0

    def max_incoming_per_s(self, market: Market) -> float | None:
        return None


def recordings(paths: Sequence[str | Path]) -> list[Recording]:
    """csvbook recordings of the given CSV files (each must be a defi-arbitrage book CSV)."""
    fmt = CsvBookFormat()
    out: list[Recording] = []
    for given in paths:
        path = Path(given)
        try:
            with path.open("rb") as handle:
                head = handle.read(len(HEADER))
        except OSError as exc:
            raise RecordingError(str(path), f"cannot open: {exc}") from None
        if not fmt.is_series(path, head):
            raise RecordingError(str(path), "not a defi-arbitrage book CSV (expected a .csv with its header)")
        out.extend(fmt.group([path]))
    return out


register_format(CsvBookFormat())
register_detector(_detect)


def _huobi_symbol(instrument: InstrumentId) -> str | None:
    """Huobi's spot symbols are the pair without a separator (``LINKUSDT``, keys upper-case it)."""
    return f"{instrument.base}{instrument.quote}" if instrument.kind is Kind.SPOT else None


register_venue(
    VenueEntry(
        MOUNT[0], MOUNT[1], _PLACEHOLDER, _any_venue_protocol, lambda frame: None, naming=_huobi_symbol, live=False
    )
)
register_plugin(CsvBookPlugin())
