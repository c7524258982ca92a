"""The recorder captures what a live Binance feed receives (from the replay exchange) in the hftbacktest
layout; what it writes passes verify-books and replays again through the replay exchange."""

from __future__ import annotations

import asyncio
import gzip
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.binance.protocol import BinanceProtocol
from feeds.errors import RecordingError
from feeds.instruments import Market, Venue
from feeds.recorder import Recorder, repair_tail
from feeds.recordings import FrameKind, open_recordings
from feeds.replay import ReplayConfig, ReplayExchange
from feeds.rest import RestClient
from feeds.verify import verify_paths
from tests.conftest import ROOT, timeout
from tests.replay_fixtures import SPOT, USDM, binance_feed, caught_up, offline_books, same_book, wait_until

FRAMES = 6000
BTC, ETH = "binance:spot:BTCUSDT", "binance:spot:ETHUSDT"


async def test_recording_passes_verify_books_and_replays(tmp_path: Path) -> None:
    """Record two symbols off the replay; verify-books rebuilds them; replaying the recording rebuilds them again."""
    out = tmp_path / "rec"
    with Recorder(out) as recorder:
        async with ReplayExchange([SPOT], config=ReplayConfig(max_frames=FRAMES)) as exchange, RestClient() as rest:
            feed = binance_feed(
                exchange,
                Market.SPOT,
                ["BTCUSDT", "ETHUSDT"],
                rest,
                frame_tap=recorder.frame_tap,
                snapshot_tap=recorder.snapshot_tap,
            )
            async with feed:
                await caught_up(exchange, [feed])
                offline = offline_books([SPOT], FRAMES)
                assert all(same_book(feed.book(key), offline[key]) for key in (BTC, ETH))
        served = {s.key: s for s in exchange.served}
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert [p.name for p in recorder.paths] == [f"btcusdt_{day}.gz", f"ethusdt_{day}.gz"]
    assert recorder.stats.snapshots == 2 and recorder.stats.malformed == 0

    # The layout: "<ns> <frame>" lines, the fetched REST snapshot written bare, byte for byte as served.
    with gzip.open(out / f"btcusdt_{day}.gz") as f:
        lines = [line.rstrip(b"\n").split(b" ", 1) for line in f]
    assert all(ns.isdigit() and len(ns) == 19 for ns, _ in lines)
    assert [int(ns) for ns, _ in lines] == sorted(int(ns) for ns, _ in lines)
    bare = [frame for _, frame in lines if frame.startswith(b'{"lastUpdateId"')]
    assert len(bare) == 1
    snapshot = BinanceProtocol(Market.SPOT).parse_snapshot(BTC, bare[0], 0)
    assert snapshot.last_id == served[BTC].last_id
    assert all(frame.startswith((b'{"stream":"btcusdt@', b'{"lastUpdateId"')) for _, frame in lines)

    report = verify_paths([out])
    assert report.ok, list(report.lines())
    for key in (BTC, ETH):
        assert same_book(report.book(key).book, offline[key])

    # Anything recorded replays: the recording, served again, rebuilds the same books live.
    async with ReplayExchange([out], config=ReplayConfig()) as again, RestClient() as rest:
        feed = binance_feed(again, Market.SPOT, ["BTCUSDT", "ETHUSDT"], rest)
        async with feed:
            await caught_up(again, [feed])
            for key in (BTC, ETH):
                assert same_book(feed.book(key), offline[key])


def test_files_rotate_at_midnight_utc_and_read_back_as_one_stream(tmp_path: Path) -> None:
    """Frames either side of 00:00 UTC land in two daily files that the reader joins into one recording."""
    midnight_ns = int(datetime(2024, 8, 9, tzinfo=UTC).timestamp()) * 10**9
    recorder = Recorder(tmp_path, wall_clock=lambda: midnight_ns)  # monotonic "now" is wall midnight
    protocol = BinanceProtocol(Market.SPOT)
    with gzip.open(SPOT / "btcusdt_20240808.gz") as f:
        frames = [line.rstrip(b"\n").split(b" ", 1)[1] for _, line in zip(range(200), f, strict=False)]
    depth = [fr for fr in frames if fr.startswith(b'{"stream":"btcusdt@depth')][:4]
    mono_now = midnight_ns - recorder.wall_offset_ns  # the monotonic time that maps to midnight
    with recorder:
        for i, frame in enumerate(depth):
            recv_ns = mono_now + (i - 2) * 10**6  # two frames before midnight, two after
            recorder.frame_tap(frame, recv_ns, protocol.receive(frame, recv_ns))
    assert [p.name for p in recorder.paths] == ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
    (recording,) = open_recordings([tmp_path]).recordings
    assert recording.symbol == "BTCUSDT" and [p.name for p in recording.paths] == [p.name for p in recorder.paths]
    assert [f.payload for f in recording.frames()] == depth


async def test_record_command_against_the_replay_exchange(tmp_path: Path) -> None:
    """`arbscan record` (a real subprocess) pointed at the replay: exit 0, files verify-books accepts."""
    config = ReplayConfig(max_frames=8000, start_grace_s=0.0)
    async with ReplayExchange([USDM], config=config) as exchange:
        ep = exchange.endpoints(*exchange.mounts()[0])
        args = ["record", "--venue", "binance", "--market", "usdm", "--symbols", "BTCUSDT", "ETHUSDT"]
        args += ["--out", str(tmp_path), "--ws-url", ep.ws, "--rest-url", ep.rest, "--duration", "3"]
        args += ["--log-level", "warning"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scanner", *args, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout(60))
    assert process.returncode == 0, stderr.decode()
    assert b"snapshots in 2 file(s)" in stderr
    report = verify_paths([tmp_path])
    assert report.ok and sorted(b.symbol for b in report.books) == ["BTCUSDT", "ETHUSDT"]
    assert all(b.counters["snapshots"] == 1 and b.counters["diffs_applied"] > 0 for b in report.books)


def test_a_file_left_cut_short_by_a_crash_is_repaired_before_a_restart_appends(tmp_path: Path) -> None:
    """A recorder killed after a flush leaves its gzip member unfinished; a restart the same day appended a new
    member after it, and the reader refused the file from there (every frame after the crash lost). The
    restart finishes the cut-short member first: every flushed frame and every new one read back."""
    noon_ns = int(datetime(2024, 8, 8, 12, tzinfo=UTC).timestamp()) * 10**9
    protocol = BinanceProtocol(Market.SPOT)
    with gzip.open(SPOT / "btcusdt_20240808.gz") as f:
        frames = [line.rstrip(b"\n").split(b" ", 1)[1] for _, line in zip(range(400), f, strict=False)]
    depth = [fr for fr in frames if fr.startswith(b'{"stream":"btcusdt@depth')][:20]
    first, second = depth[:12], depth[12:]
    crashed = tmp_path / "crashed.gz"

    def record(frames: list[bytes], *, crash: bool) -> Recorder:
        recorder = Recorder(tmp_path / "rec", wall_clock=lambda: noon_ns)
        if not crash:  # a restart: arbscan record checks today's files before connecting
            recorder.prepare(["BTCUSDT"])
            assert recorder.stats.repaired == 1
        mono = noon_ns - recorder.wall_offset_ns
        with recorder:
            for i, frame in enumerate(frames):
                recorder.frame_tap(frame, mono + i, protocol.receive(frame, mono + i))
            if crash:  # what the disk holds when the process dies right after a flush: no gzip trailer
                recorder.flush()
                crashed.write_bytes((tmp_path / "rec" / "btcusdt_20240808.gz").read_bytes())
        if crash:
            crashed.replace(tmp_path / "rec" / "btcusdt_20240808.gz")
        return recorder

    record(first, crash=True)
    with pytest.raises(RecordingError, match="corrupt or truncated"):
        list(open_recordings([tmp_path / "rec"]).recordings[0].frames())
    again = record(second, crash=False)
    assert again.stats.repaired == 1
    (recording,) = open_recordings([tmp_path / "rec"]).recordings
    assert [f.payload for f in recording.frames()] == first + second
    assert repair_tail(tmp_path / "rec" / "btcusdt_20240808.gz") is None  # complete now: left alone


def test_a_file_damaged_before_its_end_is_refused_never_truncated(tmp_path: Path) -> None:
    """A member cut short with a complete one after it (an older recorder's crash and same-day restart, or a
    damaged disk): repairing it as a cut-short end deleted the intact member after the damage. Deflate has no
    check of its own, so the next member's bytes often decode as more of the cut one without an error: at
    every cut point swept here (members of 1,000 real lines, mtime 0 so the bytes are the same every run),
    the file is refused and left as it was; the same cut at the file's end is repaired."""
    with gzip.open(SPOT / "btcusdt_20240808.gz") as f:
        lines = [line for _, line in zip(range(3000), f, strict=False)]
    first, middle, last = (gzip.compress(b"".join(lines[i : i + 1000]), mtime=0) for i in (0, 1000, 2000))
    path = tmp_path / "btcusdt_20240808.gz"
    for cut in range(100, len(middle) - 100, len(middle) // 40):
        damaged = first + middle[:cut] + last
        path.write_bytes(damaged)
        with pytest.raises(RecordingError, match=r"damaged .* not cut short at its end"):
            repair_tail(path)
        assert path.read_bytes() == damaged, cut
        path.write_bytes(first + middle[:cut])  # the same cut at the end: a crash's, repaired
        dropped = repair_tail(path)
        kept = gzip.decompress(path.read_bytes())  # complete now: every whole line kept, in order
        whole = b"".join(lines[:2000])
        assert dropped is not None and kept.endswith(b"\n") and whole.startswith(kept), cut
        assert len(kept) >= len(b"".join(lines[:1000])), cut
    path.write_bytes(first + middle[: len(middle) // 2] + last)
    recorder = Recorder(tmp_path, wall_clock=lambda: int(datetime(2024, 8, 8, 12, tzinfo=UTC).timestamp()) * 10**9)
    with pytest.raises(RecordingError, match="refusing to append"):
        recorder.prepare(["BTCUSDT"])


async def test_record_command_stopped_by_sigterm_closes_its_files(tmp_path: Path) -> None:
    """SIGTERM (what systemd and docker send) ends the recording as --duration does: exit 0, and files that
    verify-books reads (killed, the gzip files had no end and verify-books refused all of them)."""
    config = ReplayConfig(max_frames=8000, start_grace_s=0.0)
    async with ReplayExchange([USDM], config=config) as exchange:
        ep = exchange.endpoints(*exchange.mounts()[0])
        args = ["record", "--venue", "binance", "--market", "usdm", "--symbols", "BTCUSDT"]
        args += ["--out", str(tmp_path), "--ws-url", ep.ws, "--rest-url", ep.rest, "--log-level", "warning"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scanner", *args, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        await wait_until(lambda: exchange.stats.frames_sent >= 500, what="500 frames recorded", seconds=30)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout(30))
    assert process.returncode == 0, stderr.decode()
    report = verify_paths([tmp_path])
    assert report.ok and [b.symbol for b in report.books] == ["BTCUSDT"]
    assert report.books[0].counters["snapshots"] == 1 and report.books[0].counters["diffs_applied"] > 0


async def test_record_command_stops_with_exit_1_when_every_book_is_abandoned(tmp_path: Path) -> None:
    """A REST URL whose depth snapshots answer 404: the books are abandoned at the first fetch, and their frames
    could never be replayed or verified. The recorder stops and says so (exit 1) instead of recording on, exit 0."""
    async with ReplayExchange([USDM], config=ReplayConfig(max_frames=8000, start_grace_s=0.0)) as exchange:
        ep = exchange.endpoints(*exchange.mounts()[0])
        args = ["record", "--venue", "binance", "--market", "usdm", "--symbols", "BTCUSDT"]
        args += ["--out", str(tmp_path), "--ws-url", ep.ws, "--rest-url", ep.rest + "/gone", "--duration", "60"]
        args += ["--log-level", "error"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scanner", *args, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout(50))
    assert process.returncode == 1, stderr.decode()
    last = stderr.decode().splitlines()[-1]
    assert last.startswith("arbscan record: every book was abandoned: binance:usdm:BTCUSDT: ")


def test_an_okx_rest_snapshot_is_recorded_as_one_and_read_back_as_one(tmp_path: Path) -> None:
    """OKX's client fetches GET /api/v5/market/books when the websocket snapshot is missing or a resync brings
    none. The recorder wrote that body bare and the reader took it for a malformed push (verify-books never had
    the book live; a replay of the recording had no snapshot to serve). Real pushes of the 2022 capture around
    a REST body of the documented shape (no sequenced OKX capture exists)."""
    from feeds.okx.protocol import OkxProtocol
    from feeds.venues import get_entry
    from tests.venue_fixtures import OKX_WS

    protocol = OkxProtocol(Market.SPOT)
    pushes = []
    for frame in open_recordings([OKX_WS]).recordings[0].frames():
        if frame.kind is FrameKind.WS and b'"instId":"BTC-USDT"' in frame.payload and b'"books"' in frame.payload:
            pushes.append(frame.payload)
            if len(pushes) == 3:
                break
    body = b'{"code":"0","msg":"","data":[{"asks":[["30000.1","1","0","1"]],"bids":[["29999.9","1","0","1"]],'
    body += b'"ts":"1652400000000","seqId":7}]}'
    noon_ns = int(datetime(2022, 5, 13, 12, tzinfo=UTC).timestamp()) * 10**9
    with Recorder(tmp_path, wall_clock=lambda: noon_ns) as recorder:
        mono = noon_ns - recorder.wall_offset_ns
        recorder.frame_tap(pushes[0], mono, protocol.receive(pushes[0], mono))
        recorder.snapshot_tap("okx:spot:BTC-USDT", body, mono + 1)
        for i, push in enumerate(pushes[1:], 2):
            recorder.frame_tap(push, mono + i, protocol.receive(push, mono + i))
    assert [p.name for p in recorder.paths] == ["btc-usdt_20220513.gz"]
    (recording,) = open_recordings([tmp_path]).recordings
    frames = list(recording.frames())
    assert [f.kind for f in frames] == [FrameKind.WS, FrameKind.REST, FrameKind.WS, FrameKind.WS]
    assert frames[1].payload == body
    assert get_entry(Venue.OKX, Market.SPOT).snapshot_key(frames[1]) == "okx:spot:BTC-USDT"


def test_repair_recording_finishes_a_cut_short_file_and_refuses_a_damaged_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording whose writer was killed (no gzip end) was refused whole; the loader's error names the
    command, which keeps every whole line. A file damaged before its end exits 2 and is left as it was."""
    from scanner.cli import main

    with gzip.open(SPOT / "btcusdt_20240808.gz") as f:
        lines = [line for _, line in zip(range(2000), f, strict=False)]
    whole = gzip.compress(b"".join(lines), mtime=0)
    cut = tmp_path / "btcusdt_20240808.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(RecordingError, match="arbscan repair-recording") as info:
        list(open_recordings([cut]).recordings[0].frames())
    assert info.value.exit_code == 2
    complete = tmp_path / "ethusdt_20240808.gz"
    complete.write_bytes(whole)
    assert main(["repair-recording", str(cut), str(complete)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{cut}: repaired: its cut-short end finished, every whole line kept (")
    assert out[1] == f"{complete}: complete, nothing to do"
    kept = [frame.payload for frame in open_recordings([cut]).recordings[0].frames()]
    assert 0 < len(kept) < 2000 and kept == [line.rstrip(b"\n").split(b" ", 1)[1] for line in lines[: len(kept)]]

    first, middle = gzip.compress(b"".join(lines[:1000]), mtime=0), gzip.compress(b"".join(lines[1000:]), mtime=0)
    damaged = tmp_path / "damaged_20240808.gz"
    damaged.write_bytes(first[: len(first) // 2] + middle)
    before = damaged.read_bytes()
    assert main(["repair-recording", str(damaged), str(tmp_path / "missing.gz")]) == 2
    err = capsys.readouterr().err
    assert "not cut short at its end: refusing" in err and f"{tmp_path / 'missing.gz'}: not a file" in err
    assert damaged.read_bytes() == before
