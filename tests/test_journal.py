"""The JSONL event journal: round trip, seq across restarts, fsync cadence, rotation, torn and corrupt lines."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from feeds.recordings import rest_snapshot_book
from rules.candidates import CexCexCandidate
from rules.decision import Decision as RulesDecision
from rules.evaluate import evaluate
from scanner.config import JournalConfig
from scanner.errors import JournalError
from scanner.journal import (
    EventKind,
    JournalEvent,
    JournalReader,
    JournalWriter,
    first_seq,
    journal_files,
    read_journal,
)
from scanner.market import StaticMarket
from scanner.metrics import Metrics
from tests.conftest import DATA, ROOT, timeout
from tests.rules_fixtures import BIN_SPOT, OKX_SPOT, simple_constraints
from tests.sinks_fixtures import Decision, wait_for

FAST = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000)


def decision(i: int = 0, net: float = 1.5) -> Decision:
    return Decision(strategy="cex_cex", candidate_id=f"c{i}", net_bps=net, size_usd=1000.0, slippage_bps=math.nan)


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def write_events(directory: Path, n: int, settings: JournalConfig = FAST, **kw: int) -> list[JournalEvent]:
    with JournalWriter.open(directory, settings, Metrics(), **kw) as writer:
        return [writer.append(EventKind.QUALIFIED, f"k{i}", decision(i), venue_ts_ms=1000 + i) for i in range(n)]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    """What append returns is what the reader reads back; NaN is encoded as null, structs as objects."""
    metrics = Metrics()
    with JournalWriter.open(tmp_path, FAST, metrics) as writer:
        a = writer.append(EventKind.QUALIFIED, "cand-1", decision(1), venue_ts_ms=1723161255201, local_ts_ms=5)
        b = writer.append("rejected", "cand-2", {"reasons": ["stale_book"]}, context={"episode_ms": 7})
    events, problems = read_journal(tmp_path)
    assert problems == []
    assert [e.seq for e in events] == [1, 2]
    first, second = events
    assert first.event_id == a.event_id and len(a.event_id) == 32
    assert first.kind is EventKind.QUALIFIED
    assert (first.dedup_key, first.local_ts_ms, first.venue_ts_ms) == ("cand-1", 5, 1723161255201)
    assert first.decision == {
        "strategy": "cex_cex",
        "candidate_id": "c1",
        "net_bps": 1.5,
        "size_usd": 1000.0,
        "slippage_bps": None,
        "funding_source": None,
        "primary_reason": None,
    }
    assert first.context == {}
    assert second.kind is EventKind.REJECTED and second.event_id == b.event_id
    assert second.decision == {"reasons": ["stale_book"]}
    assert second.context == {"episode_ms": 7}
    assert metric(metrics, "arbscan_journal_events_total", event="qualified") == 1
    assert metric(metrics, "arbscan_journal_events_total", event="rejected") == 1
    assert metric(metrics, "arbscan_journal_bytes") == (tmp_path / journal_files(tmp_path)[0]).stat().st_size


def test_a_real_rules_decision_is_journaled(tmp_path: Path) -> None:
    """A decision evaluated by rules/ on a recorded Binance snapshot goes in whole and reads back equal."""
    book, _ = rest_snapshot_book(DATA / "hftbacktest/spot/btcusdt_20240808.gz", recv_ns=1_000_000_000)
    market = StaticMarket(books={BIN_SPOT: book, OKX_SPOT: book})
    candidate = CexCexCandidate(id="cex_cex:forward:x", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1000.0)
    real = evaluate(candidate, market, simple_constraints(), now_ns=1_000_000_000, now_ms=1723161253937)
    assert isinstance(real, RulesDecision)
    with JournalWriter.open(tmp_path, FAST, Metrics()) as writer:
        writer.append(EventKind.REJECTED, real.candidate_id, real)
    [event], problems = read_journal(tmp_path)
    assert problems == []
    # Same bytes as msgspec's own encoding of the decision (NaN → null in both).
    assert event.decision == orjson.loads(real.to_json())
    assert event.decision["candidate_id"] == "cex_cex:forward:x"
    assert event.decision["primary_reason"] == real.primary_reason


def test_seq_continues_across_restarts_in_a_new_file(tmp_path: Path) -> None:
    """Each open starts a new file; seq never restarts; min_next_seq lifts it (journal reset, outbox kept)."""
    write_events(tmp_path, 3)
    write_events(tmp_path, 2)
    write_events(tmp_path, 1, min_next_seq=100)
    files = journal_files(tmp_path)
    assert [first_seq(f) for f in files] == [1, 4, 100]
    events, problems = read_journal(tmp_path)
    assert problems == []
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 100]
    assert [e.seq for e in JournalReader(tmp_path).events(after_seq=4)] == [5, 100]


def test_empty_file_of_a_run_that_wrote_nothing_is_removed(tmp_path: Path) -> None:
    """A file opened but never written is dropped at the next open, and seqs still continue."""
    write_events(tmp_path, 2)
    write_events(tmp_path, 0)
    assert len(journal_files(tmp_path)) == 2
    write_events(tmp_path, 1)
    assert [first_seq(f) for f in journal_files(tmp_path)] == [1, 3]


def test_rotation_by_size_keeps_old_files_in_order(tmp_path: Path) -> None:
    """Past rotate_bytes a new file starts; every file stays within the limit; the reader reads them in order."""
    settings = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000, rotate_bytes=4096, rotate_interval_s=0)
    written = write_events(tmp_path, 60, settings)
    files = journal_files(tmp_path)
    assert len(files) > 3
    assert all(f.stat().st_size <= 4096 for f in files)
    assert files == sorted(files)
    assert [first_seq(f) for f in files] == sorted(first_seq(f) for f in files)
    events, problems = read_journal(tmp_path)
    assert problems == []
    assert [e.event_id for e in events] == [e.event_id for e in written]
    # Skipping whole files: reading after the last file's first seq opens only that file.
    last_first = first_seq(files[-1])
    assert [e.seq for e in JournalReader(tmp_path).events(after_seq=last_first - 1)] == list(range(last_first, 61))


def test_rotation_by_time(tmp_path: Path) -> None:
    """Past rotate_interval_s (on the monotonic clock) the next event starts a new file."""
    now = [0]
    settings = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000, rotate_interval_s=60)
    with JournalWriter.open(tmp_path, settings, Metrics(), monotonic_ns=lambda: now[0]) as writer:
        writer.append(EventKind.QUALIFIED, "a", decision())
        now[0] += 59_000_000_000
        writer.append(EventKind.QUALIFIED, "b", decision())
        now[0] += 1_000_000_000
        writer.append(EventKind.QUALIFIED, "c", decision())
    assert [first_seq(f) for f in journal_files(tmp_path)] == [1, 3]


def test_fsync_every_n_events(tmp_path: Path) -> None:
    """Without the flusher task, the Nth event fsyncs inline and resets the unsynced count."""
    settings = JournalConfig(fsync_every=3, fsync_interval_ms=3_600_000)
    with JournalWriter.open(tmp_path, settings, Metrics()) as writer:
        counts = []
        for i in range(7):
            writer.append(EventKind.QUALIFIED, f"k{i}", decision(i))
            counts.append(writer.unsynced)
    assert counts == [1, 2, 0, 1, 2, 0, 1]


async def test_fsync_interval_by_the_flusher_task(tmp_path: Path) -> None:
    """With run() as an owned task, one event is fsynced after fsync_interval_ms even if no more come."""
    settings = JournalConfig(fsync_every=1000, fsync_interval_ms=20)
    writer = JournalWriter.open(tmp_path, settings, Metrics())
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        writer.append(EventKind.QUALIFIED, "k", decision())
        assert writer.unsynced == 1
        await wait_for(lambda: writer.unsynced == 0, what="timed fsync")
        for i in range(5):
            writer.append(EventKind.QUALIFIED, f"k{i}", decision(i))
        assert writer.unsynced == 5
        await wait_for(lambda: writer.unsynced == 0, what="second timed fsync")
        task.cancel()
    writer.close()
    assert len(read_journal(tmp_path)[0]) == 6


def _fsync_refused(writer: JournalWriter) -> tuple[int, int]:
    """Point the writer's descriptor at a pipe: writes go through, fsync fails with EINVAL (a real kernel
    refusal). Returns (saved file descriptor, pipe read end)."""
    saved = os.dup(writer._fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, writer._fd)
    os.close(write_end)
    return saved, read_end


def _fsync_restored(writer: JournalWriter, saved: int, read_end: int) -> bytes:
    """Put the file back; returns what went into the pipe meanwhile (written to the file too, by the test)."""
    written = os.read(read_end, 65536)
    os.dup2(saved, writer._fd)
    os.close(saved)
    os.close(read_end)
    os.write(writer._fd, written)  # keep the file whole: the lines the pipe took belong to it
    return written


async def test_a_failed_background_fsync_is_counted_and_the_flusher_goes_on(tmp_path: Path) -> None:
    """The flusher task's fsync fails: logged and counted, the task keeps running, and the next events are
    fsynced once the disk is back. Before, the failure ended the task and with it the daemon."""
    metrics = Metrics()
    writer = JournalWriter.open(tmp_path, JournalConfig(fsync_every=1000, fsync_interval_ms=20), metrics)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        saved, read_end = _fsync_refused(writer)
        writer.append(EventKind.QUALIFIED, "k0", decision(0))
        await wait_for(lambda: metric(metrics, "arbscan_journal_errors_total") == 1.0, what="failed fsync")
        await wait_for(lambda: writer.unsynced == 0, what="the failed fsync's events given up")
        assert not task.done()
        assert b'"dedup_key":"k0"' in _fsync_restored(writer, saved, read_end)
        writer.append(EventKind.QUALIFIED, "k1", decision(1))
        await wait_for(lambda: writer.unsynced == 0, what="fsync after the disk came back")
        assert not task.done() and metric(metrics, "arbscan_journal_errors_total") == 1.0
        task.cancel()
    writer.close()
    assert [e.dedup_key for e in read_journal(tmp_path)[0]] == ["k0", "k1"]


def test_a_failed_inline_fsync_does_not_make_a_written_event_look_unwritten(tmp_path: Path) -> None:
    """Without the flusher, fsync runs inside append: its failure is counted, and append still returns the
    event (raising would make the caller write it again under a new seq)."""
    metrics = Metrics()
    writer = JournalWriter.open(tmp_path, JournalConfig(fsync_every=1, fsync_interval_ms=3_600_000), metrics)
    saved, read_end = _fsync_refused(writer)
    event = writer.append(EventKind.QUALIFIED, "k0", decision(0))
    assert event.seq == 1 and writer.unsynced == 0
    assert metric(metrics, "arbscan_journal_errors_total") == 1.0
    _fsync_restored(writer, saved, read_end)
    assert writer.append(EventKind.QUALIFIED, "k1", decision(1)).seq == 2
    writer.close()
    assert [(e.seq, e.dedup_key) for e in read_journal(tmp_path)[0]] == [(1, "k0"), (2, "k1")]
    assert metric(metrics, "arbscan_journal_errors_total") == 1.0


def test_a_failed_fsync_at_rotation_or_close_is_counted_and_loses_nothing(tmp_path: Path) -> None:
    """The old file's fsync fails at a rotation: the new event still goes to the new file (not back to the
    caller as unwritten); at close, a failed fsync is counted, not raised."""
    metrics = Metrics()
    settings = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000, rotate_bytes=4096, rotate_interval_s=0)
    writer = JournalWriter.open(tmp_path, settings, metrics)
    saved, read_end = _fsync_refused(writer)
    writer.append(EventKind.QUALIFIED, "k0", decision(0))
    big = {"padding": "x" * 5000}
    rotated = writer.append(EventKind.QUALIFIED, "k1", big)  # rotates: the old file's fsync fails
    assert rotated.seq == 2 and metric(metrics, "arbscan_journal_errors_total") == 1.0
    written = os.read(read_end, 65536)
    os.close(saved)
    os.close(read_end)
    saved, read_end = _fsync_refused(writer)  # the new file's descriptor now refuses fsync too
    writer.close()  # counted, not raised
    assert metric(metrics, "arbscan_journal_errors_total") == 2.0
    assert b'"dedup_key":"k0"' in written  # went to the pipe that stood in for the old file
    assert [e.dedup_key for e in read_journal(tmp_path)[0]] == ["k1"]  # in the new file, whole
    os.close(saved)
    os.close(read_end)


async def test_background_fsync_overlapping_a_rotation_leaves_new_events_unsynced(tmp_path: Path) -> None:
    """A background fsync of the old file that finishes after a rotation must not count the new file's
    events as synced. Driven step by step: the fsync task is started, then (with no await in between, so
    it cannot finish) the rotation happens and two events go to the new file."""
    now = [0]
    settings = JournalConfig(fsync_every=1000, fsync_interval_ms=3_600_000, rotate_interval_s=60)
    writer = JournalWriter.open(tmp_path, settings, Metrics(), monotonic_ns=lambda: now[0])
    try:
        for i in range(3):
            writer.append(EventKind.QUALIFIED, f"old{i}", decision(i))
        assert writer.unsynced == 3
        old_file = writer.current_file
        background = asyncio.ensure_future(writer._sync_off_loop())
        await asyncio.sleep(0)  # the task takes its count (3) and hands the fsync to a thread
        now[0] += 60_000_000_000
        writer.append(EventKind.QUALIFIED, "new0", decision(10))  # rotates: the old file is synced inline
        writer.append(EventKind.QUALIFIED, "new1", decision(11))
        assert writer.current_file != old_file
        assert writer.unsynced == 2
        await background
        assert writer.unsynced == 2  # the two events of the new file are still waiting for an fsync
        # Without an overlap the background fsync counts its events as synced.
        await writer._sync_off_loop()
        assert writer.unsynced == 0
    finally:
        writer.close()
    assert [first_seq(f) for f in journal_files(tmp_path)] == [1, 4]


def test_torn_trailing_line_is_reported_then_repaired_without_loss(tmp_path: Path) -> None:
    """A half-written last line: the reader reports file:line; open() moves it aside and seqs continue."""
    write_events(tmp_path, 3)
    [path] = journal_files(tmp_path)
    torn = b'{"seq":4,"id":"abc","event":"qualified","dedup_k'
    with path.open("ab") as f:
        f.write(torn)

    events, problems = read_journal(tmp_path)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [str(p) for p in problems] == [
        f"{path}:4: torn_tail: {len(torn)} bytes without a newline (an interrupted write)"
    ]

    metrics = Metrics()
    with JournalWriter.open(tmp_path, FAST, metrics) as writer:
        assert [str(p) for p in writer.repairs] == [
            f"{path}:4: torn_tail: {len(torn)} bytes of an interrupted write moved to {path.name}.torn-"
            f"{path.stat().st_size}"
        ]
        assert writer.append(EventKind.QUALIFIED, "next", decision()).seq == 4
    assert metric(metrics, "arbscan_journal_errors_total") == 1
    assert path.read_bytes().endswith(b"\n")
    sidecar = path.with_name(f"{path.name}.torn-{path.stat().st_size}")
    assert sidecar.read_bytes() == torn
    events, problems = read_journal(tmp_path)
    assert problems == []
    assert [e.seq for e in events] == [1, 2, 3, 4]


def test_whole_last_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    """A complete record cut just before its newline is an event, not a torn line: kept, newline added."""
    write_events(tmp_path, 2)
    [path] = journal_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    events, problems = read_journal(tmp_path)
    assert [e.seq for e in events] == [1, 2]
    assert problems == []
    with JournalWriter.open(tmp_path, FAST, Metrics()) as writer:
        assert [p.detail for p in writer.repairs] == ["a whole record without its newline: newline added"]
        assert writer.next_seq == 3
    assert path.read_bytes() == data


def test_corrupt_and_invalid_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    """A garbage line and a line missing fields are skipped and named; the lines around them survive."""
    write_events(tmp_path, 3)
    [path] = journal_files(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(1, b"\x00\x00\x00\x00\n")
    lines.insert(3, b'{"seq": 9, "id": "x"}\n')
    lines.insert(4, b"#garbage\n")
    lines.append(lines[0])  # a record repeated out of order (two journals concatenated by hand)
    path.write_bytes(b"".join(lines))
    events, problems = read_journal(tmp_path)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [str(p) for p in problems] == [
        f"{path}:2: corrupt: 5 NUL bytes (blocks never written before a power loss)",
        f"{path}:4: invalid: missing event, dedup_key, local_ts_ms, venue_ts_ms, decision",
        f"{path}:5: corrupt: not JSON: unexpected character, expected a JSON value at byte 0",
        f"{path}:7: out_of_order: seq 1 after seq 3",
    ]


def test_unencodable_decision_is_a_journal_error_and_writes_nothing(tmp_path: Path) -> None:
    """An object orjson cannot encode raises JournalError, is counted, and leaves no partial line."""
    metrics = Metrics()
    with JournalWriter.open(tmp_path, FAST, metrics) as writer:
        writer.append(EventKind.QUALIFIED, "ok", decision())
        with pytest.raises(JournalError, match=r"qualified event 'bad' cannot be encoded"):
            writer.append(EventKind.QUALIFIED, "bad", {"x": object()})
        assert writer.append(EventKind.QUALIFIED, "ok2", decision()).seq == 2
    assert metric(metrics, "arbscan_journal_errors_total") == 1
    assert [e.dedup_key for e in read_journal(tmp_path)[0]] == ["ok", "ok2"]


_FILL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from scanner.config import JournalConfig
    from scanner.errors import JournalError
    from scanner.journal import EventKind, JournalWriter
    from scanner.metrics import Metrics

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death when the file limit is hit
    metrics = Metrics()
    writer = JournalWriter.open(sys.argv[1], JournalConfig(), metrics)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
    written = 0
    try:
        for i in range(1000):
            writer.append(EventKind.QUALIFIED, f"k{i}", {"pad": "x" * 170})
            written += 1
    except JournalError as exc:
        print(written, metrics.registry.get_sample_value("arbscan_journal_errors_total"), exc)
    """
)


def test_full_disk_rolls_back_the_partial_line(tmp_path: Path) -> None:
    """A write cut short by a file-size limit (a full disk) is truncated away: the file ends on a whole line."""
    out = (
        subprocess.run(
            [sys.executable, "-c", _FILL_DISK, str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout(60),
            check=True,
        )
        .stdout.splitlines()[-1]
        .split(" ", 2)
    )
    written, errors, message = int(out[0]), float(out[1]), out[2]
    assert errors == 1.0
    assert "write failed: short write" in message
    [path] = journal_files(tmp_path)
    assert path.stat().st_size <= 3000
    assert path.read_bytes().endswith(b"\n")
    events, problems = read_journal(tmp_path)
    assert problems == []
    assert [e.seq for e in events] == list(range(1, written + 1))
    assert written >= 5


_APPEND_FOREVER = textwrap.dedent(
    """
    import sys
    from scanner.config import JournalConfig
    from scanner.journal import EventKind, JournalWriter
    from scanner.metrics import Metrics

    writer = JournalWriter.open(sys.argv[1], JournalConfig(fsync_every=50), Metrics())
    i = 0
    while True:
        writer.append(EventKind.QUALIFIED, f"k{i}", {"i": i, "pad": "x" * 300})
        i += 1
        if i == 200:
            print("running", flush=True)
    """
)


def test_killed_writer_leaves_whole_lines_and_seqs_continue(tmp_path: Path) -> None:
    """SIGKILL in the middle of appending: every line is whole and contiguous, and a new writer continues."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPEND_FOREVER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "running\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout(30))
        if proc.stdout is not None:
            proc.stdout.close()
    events, problems = read_journal(tmp_path)
    # Linux may cut a write(2) short when SIGKILL arrives mid-copy: at most the last line is torn, and the
    # reader reports it (never an error in the middle, never a lost whole line).
    assert [p.kind for p in problems] in ([], ["torn_tail"])
    assert all(p.file == journal_files(tmp_path)[-1] for p in problems)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.decision["i"] for e in events] == list(range(len(events)))
    with JournalWriter.open(tmp_path, FAST, Metrics()) as writer:
        # Reopening moves a torn tail aside (kept in a sidecar) and continues the sequence.
        assert [r.kind for r in writer.repairs] == [p.kind for p in problems]
        assert writer.append(EventKind.QUALIFIED, "after", decision()).seq == len(events) + 1
    assert read_journal(tmp_path)[1] == []
