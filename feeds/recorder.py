"""Record live venue traffic in the hftbacktest layout, so that anything recorded replays.

One gzip file per venue symbol and UTC day, ``<out>/<symbol>_<YYYYMMDD>.gz`` (the symbol lower-cased and
percent-encoded, so Kraken's ``XBT/USD`` is the file ``xbt%2Fusd_…``, never a sub-folder), each line
``<receive time, ns since the epoch> <raw frame>``: the websocket frames exactly as received, and the REST
depth snapshots the feed fetched, written bare (their ``lastUpdateId`` marks them). This is the layout
hftbacktest's own collector writes and :mod:`feeds.recordings` reads: the file name says which book a bare
snapshot belongs to (the REST body does not), and consecutive days of a symbol are read as one stream.

The recorder is a pair of taps on a :class:`feeds.feed.VenueFeed` (``frame_tap``, ``snapshot_tap``): the
feed keeps its books live, so snapshots are fetched exactly when a live client would fetch them (start,
gaps, reconnects), and the recording holds what a replay needs. Receive times are the feed's monotonic
receive times shifted to the wall clock (an offset re-read at every flush), so they order exactly as
received. Frames that name no book (request replies) are not written; malformed frames are counted.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import structlog

from feeds.errors import RecordingError
from feeds.updates import Received

# A crash loses at most this much (the record command also flushes on a timer, for quiet feeds); flushing
# each frame would ruin compression.
FLUSH_EVERY_S = 5.0

log = structlog.get_logger("feeds.recorder")


@dataclass(slots=True)
class RecorderStats:
    frames: int = 0
    snapshots: int = 0
    unrouted: int = 0  # frames with no book (replies, acks)
    malformed: int = 0  # frames that did not decode, so name no book
    files: int = 0  # files opened (rotations included)
    repaired: int = 0  # same-day files found cut short by an earlier recorder's crash, finished before appending


class _DayFile:
    __slots__ = ("day", "handle", "path", "repaired_bytes")

    def __init__(self, path: Path, day: str, *, checked: bool) -> None:
        self.path = path
        self.day = day
        # A file a killed recorder left unfinished: another gzip member appended after it would be unreadable,
        # and so would everything recorded after it. What it holds is kept (repair_tail). ``checked``: already
        # done before connecting (Recorder.prepare), not on the event loop at the first frame.
        self.repaired_bytes = repair_tail(path) if path.exists() and not checked else None
        try:
            # Append: a restart on the same day continues the file as another gzip member.
            self.handle = gzip.GzipFile(path, "ab", compresslevel=6)
        except OSError as exc:
            raise RecordingError(str(path), f"cannot open for writing: {exc}") from None


def repair_tail(path: Path) -> int | None:
    """Finish a gzip file whose last member was cut short (a recorder killed before it closed the file).

    Returns None when the file is complete (nothing done), else the bytes of decompressed data lost: the
    part of a line after the last whole one. The whole lines are kept, rewritten as one complete member
    through a temporary file renamed over the original (never half a repair). Streamed: a day's file may
    hold gigabytes once decompressed. A file damaged anywhere but at its end (garbled data, a member cut
    short with another after it) is refused, never truncated: what follows the damage may be intact.
    """
    if not _scan(path, None):
        return None
    temporary = path.with_name(path.name + ".repair")
    held = bytearray()  # decompressed data after the last newline written

    try:
        with gzip.open(temporary, "wb", compresslevel=6) as out:

            def keep(data: bytes) -> None:
                held.extend(data)
                end = held.rfind(b"\n") + 1
                if end:
                    out.write(held[:end])
                    del held[:end]

            _scan(path, keep)
        temporary.replace(path)
    except OSError as exc:
        raise RecordingError(str(path), f"cannot repair its cut-short end: {exc}") from None
    return len(held)


def _scan(path: Path, sink: Callable[[bytes], None] | None) -> bool:
    """Decompress every gzip member of ``path`` (to ``sink``); True if the last one is cut short (the file ends
    inside it). RecordingError if the data is damaged before the end: garbled, or a member cut short with a
    complete one after it (deflate has no check of its own, so that member's bytes often decode as more of
    the cut one, without an error, to the end of the file: _complete_member_after finds it)."""
    consumed = 0  # compressed bytes fed before the current chunk, for the error's offset
    member_start = 0  # where the member being decompressed begins
    try:
        with path.open("rb") as raw:
            decompressor, started = zlib.decompressobj(wbits=31), False
            while chunk := raw.read(1 << 16):
                while chunk:
                    started = True
                    data = decompressor.decompress(chunk)
                    if sink is not None:
                        sink(data)
                    if not decompressor.eof:
                        break
                    chunk = decompressor.unused_data  # the next member (a restart's), if any
                    member_start = raw.tell() - len(chunk)
                    decompressor, started = zlib.decompressobj(wbits=31), False
                consumed = raw.tell()
    except zlib.error as exc:
        raise _damaged(path, f"within its first {consumed + (1 << 16)} compressed bytes ({exc})") from None
    except OSError as exc:
        raise RecordingError(str(path), f"cannot read to check its end: {exc}") from None
    if started and _complete_member_after(path, member_start + 1):
        raise _damaged(path, f"in the gzip member at byte {member_start}, which a complete member follows")
    return started  # a member begun and never ended: the file ends inside it


def _damaged(path: Path, where: str) -> RecordingError:
    return RecordingError(
        str(path),
        f"damaged {where}, not cut short at its end: refusing to append to it (move it aside; what follows the "
        "damage may be intact)",
    )


_GZIP_MAGIC = b"\x1f\x8b\x08"


def _complete_member_after(path: Path, start: int) -> bool:
    """Whether a complete gzip member (its CRC checked) begins anywhere in ``path`` from ``start`` on: streamed,
    each candidate header tried until it ends, fails or the file does."""
    with path.open("rb") as raw:
        raw.seek(start)
        offset, carry = start, b""
        while chunk := raw.read(1 << 20):
            window = carry + chunk
            at = window.find(_GZIP_MAGIC)
            while at >= 0:
                if _member_completes(path, offset - len(carry) + at):
                    return True
                at = window.find(_GZIP_MAGIC, at + 1)
            carry = window[-(len(_GZIP_MAGIC) - 1) :]
            offset += len(chunk)
    return False


def _member_completes(path: Path, at: int) -> bool:
    with path.open("rb") as raw:
        raw.seek(at)
        decompressor = zlib.decompressobj(wbits=31)
        try:
            while chunk := raw.read(1 << 16):
                decompressor.decompress(chunk)
                if decompressor.eof:
                    return True
        except zlib.error:
            return False
    return False


class Recorder:
    """Writes frames and snapshots under ``out_dir``. Close it (or use ``with``) to finish the files."""

    def __init__(self, out_dir: str | Path, *, wall_clock: Callable[[], int] = time.time_ns) -> None:
        self.out_dir = Path(out_dir)
        self._wall_clock = wall_clock
        # The folder is created with the first file (_write): a refused start leaves none behind.
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise RecordingError(str(self.out_dir), "the output folder exists and is not a folder")
        self.stats = RecorderStats()
        self._checked: set[Path] = set()  # same-day files prepare() checked (and repaired) before connecting
        self._files: dict[str, _DayFile] = {}
        self._written: set[Path] = set()
        self._offset_ns = wall_clock() - time.monotonic_ns()
        self._last_flush = time.monotonic()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, venue_symbols: Iterable[str]) -> None:
        """Check (and repair, :func:`repair_tail`) today's files of these symbols now, before connecting: the
        check decompresses a file (a day's may take seconds), which at the first frame would stall the feed's
        event loop. RecordingError for a file damaged before its end."""
        day = datetime.fromtimestamp(self._wall_clock() / 1e9, UTC).strftime("%Y%m%d")
        for venue_symbol in venue_symbols:
            path = self.out_dir / f"{file_symbol(venue_symbol)}_{day}.gz"
            if path in self._checked:
                continue
            if path.exists():
                repaired = repair_tail(path)
                if repaired is not None:
                    self._repaired(path, repaired)
            self._checked.add(path)

    def _repaired(self, path: Path, dropped: int) -> None:
        self.stats.repaired += 1
        log.warning(
            "recording_repaired",
            file=str(path),
            reason="its last gzip member was cut short (a recorder stopped before closing it)",
            partial_line_bytes_dropped=dropped,
        )

    @property
    def last_flush(self) -> float:
        """When the files were last flushed (``time.monotonic()``)."""
        return self._last_flush

    @property
    def wall_offset_ns(self) -> int:
        """Added to a monotonic receive time to get the wall-clock time written (re-read at each flush)."""
        return self._offset_ns

    @property
    def paths(self) -> list[Path]:
        """Every file written so far (rotated ones included)."""
        return sorted(self._written)

    # ---- taps ----------------------------------------------------------------------------------------

    def frame_tap(self, frame: str | bytes, recv_ns: int, received: Received | None) -> None:
        """``VenueFeed(frame_tap=...)``: route a raw frame to its book's file."""
        if received is None:
            self.stats.malformed += 1
            return
        key = _key_of(received)
        if not key:
            self.stats.unrouted += 1
            return
        raw = frame.encode() if isinstance(frame, str) else frame
        self._write(key, recv_ns, raw)
        self.stats.frames += 1

    def snapshot_tap(self, key: str, body: bytes, recv_ns: int) -> None:
        """``VenueFeed(snapshot_tap=...)``: a fetched REST depth snapshot, written bare."""
        self._write(key, recv_ns, body.strip())
        self.stats.snapshots += 1

    # ---- files ---------------------------------------------------------------------------------------

    def _write(self, key: str, recv_ns: int, raw: bytes) -> None:
        if b"\n" in raw:
            raw = raw.replace(b"\r", b"").replace(b"\n", b"")  # JSON needs no newlines; a line is a record
        wall_ns = recv_ns + self._offset_ns
        day = datetime.fromtimestamp(wall_ns / 1e9, UTC).strftime("%Y%m%d")
        symbol = file_symbol(key.rsplit(":", 1)[-1])
        current = self._files.get(symbol)
        if current is None or current.day != day:
            if current is not None:
                current.handle.close()  # the day rolled over: a new file, as hftbacktest's collector does
            try:  # once per symbol and day
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordingError(str(self.out_dir), f"cannot create the output folder: {exc}") from None
            path = self.out_dir / f"{symbol}_{day}.gz"
            current = self._files[symbol] = _DayFile(path, day, checked=path in self._checked)
            self._written.add(current.path)
            self.stats.files += 1
            if current.repaired_bytes is not None:
                self._repaired(current.path, current.repaired_bytes)
        current.handle.write(b"%d %s\n" % (wall_ns, raw))
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        for f in self._files.values():
            f.handle.flush()
        self._last_flush = time.monotonic()
        self._offset_ns = self._wall_clock() - time.monotonic_ns()

    def close(self) -> None:
        files, self._files = self._files, {}
        for f in files.values():
            f.handle.close()


def file_symbol(venue_symbol: str) -> str:
    """The file-name form of a venue symbol: lower case, anything but ``[a-z0-9_.~-]`` percent-encoded
    (``XBT/USD`` → ``xbt%2Fusd``); :mod:`feeds.recordings` decodes it back."""
    return quote(venue_symbol.lower(), safe="")


def _key_of(received: Received) -> str:
    """The book a frame belongs to: the key of its first update that has one (trades: their Control)."""
    return next((update.key for update in received.updates if update.key), "")
