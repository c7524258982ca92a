"""Binance books rebuilt from the real recordings through protocol + BookSync, as data/SOURCES.md states.

hftbacktest spot and USD-M: every series syncs on its first applied diff, 0 gaps (across the 0808→0809
file boundary too), never crossed, bookTicker agreement. cryptofeed spot and USD-M: all 8 symbols bracket
their REST snapshot, 0 gaps. Then faults: a diff removed mid-stream, malformed frames in the stream.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterator
from itertools import islice

import pytest

from feeds.book import Side
from feeds.recordings import FrameKind, RecordedFrame, Recording, open_recordings
from feeds.sequencing import SequenceRules, Verdict
from feeds.sync import MAX_SKIPS_IN_A_ROW, SyncState
from feeds.updates import BookDelta, BookSnapshot, TopOfBook
from feeds.venues import detect
from feeds.verify import BookVerifier
from tests.binance_fixtures import CF_SPOT_WS, CF_USDM_WS, HFT, SPOT_BTC_0808, SPOT_BTC_0809, USDM_BTC, book_state


class WatchedRules:
    """Wraps a rule set and records, per snapshot, the book id and the first delta it applied after it."""

    def __init__(self, inner: SequenceRules) -> None:
        self.inner = inner
        self.name = inner.name
        self.bootstrap_from_rest = inner.bootstrap_from_rest
        self.chained = inner.chained
        self.ids_follow_time = inner.ids_follow_time
        self.recovery = inner.recovery
        self.first_applied: list[tuple[int, BookDelta]] = []

    def snapshot_usable(self, snapshot_id: int, first_buffered: BookDelta | None) -> bool:
        return self.inner.snapshot_usable(snapshot_id, first_buffered)

    def check(self, delta: BookDelta, local_id: int, *, first: bool) -> Verdict:
        verdict = self.inner.check(delta, local_id, first=first)
        if first and verdict is Verdict.APPLY:
            self.first_applied.append((local_id, delta))
        return verdict


class WatchedVerifier(BookVerifier):
    """A verifier whose syncs record their first applied delta after each snapshot."""

    def sync(self, key: str):  # type: ignore[no-untyped-def]
        created = key not in self.syncs
        sync = super().sync(key)
        if created:
            sync.rules = WatchedRules(sync.rules)  # type: ignore[assignment]
        return sync


def run(recording: Recording) -> WatchedVerifier:
    verifier = WatchedVerifier(detect(recording))
    verifier.feed_all(recording.frames())
    return verifier


@pytest.fixture(scope="module")
def hft_runs() -> dict[str, WatchedVerifier]:
    """Every hftbacktest series rebuilt once for this module (a few seconds)."""
    runs = {}
    for rec in open_recordings([HFT]).recordings:
        verifier = run(rec)
        (key,) = verifier.syncs
        runs[key] = verifier
    return runs


HFT_EXPECTED = {
    # key: (diffs_applied, ticker_agree) as rebuilt from the bundled files
    # (tickers count when they share u with an applied diff, whether they arrive before or after it)
    "binance:spot:BTCUSDT": (6493, 1059),
    "binance:spot:ETHUSDT": (6468, 992),
    "binance:usdm:BTCUSDT": (6547, 573),
    "binance:usdm:ETHUSDT": (6581, 506),
}


def test_hft_every_series_is_rebuilt(hft_runs):
    assert sorted(hft_runs) == sorted(HFT_EXPECTED)
    for key, verifier in hft_runs.items():
        sync = verifier.syncs[key]
        stats = sync.stats
        assert sync.state is SyncState.LIVE, key
        assert (stats.snapshots, stats.gaps, stats.resyncs, stats.crossed) == (1, 0, 0, 0), key
        assert (stats.diffs_applied, stats.ticker_agree) == HFT_EXPECTED[key], key
        assert stats.ticker_disagree == 0, key
        assert verifier.pending == set()
        assert verifier.bad_count == 0


def test_hft_every_series_syncs_on_its_first_applied_diff(hft_runs):
    """The first diff applied after the snapshot brackets it (spot U <= id+1 <= u; futures U <= id <= u)."""
    for key, verifier in hft_runs.items():
        rules = verifier.syncs[key].rules
        assert isinstance(rules, WatchedRules)
        ((snapshot_id, delta),) = rules.first_applied
        if key.startswith("binance:spot:"):
            assert delta.first_id <= snapshot_id + 1 <= delta.last_id, key
        else:
            assert delta.first_id <= snapshot_id <= delta.last_id, key


def test_hft_spot_stream_continues_across_the_day_boundary():
    """The last 0808 diff and the first 0809 diff chain (U == prev u + 1) and both apply."""
    (rec,) = open_recordings([SPOT_BTC_0808, SPOT_BTC_0809]).recordings
    verifier = BookVerifier(detect(rec))
    key = "binance:spot:BTCUSDT"
    last_0808: BookDelta | None = None
    for frame in rec.frames():
        is_depth = frame.kind is FrameKind.WS and b"@depth" in frame.payload[:40]
        before = verifier.syncs[key].stats.diffs_applied if key in verifier.syncs else 0
        verifier.feed(frame)
        if not is_depth:
            continue
        (delta,) = verifier.protocol.receive(frame.payload, frame.recv_ns).updates
        assert isinstance(delta, BookDelta)
        if frame.source == str(SPOT_BTC_0808):
            last_0808 = delta
            continue
        assert last_0808 is not None
        assert verifier.syncs[key].stats.diffs_applied == before + 1
        assert delta.first_id == last_0808.last_id + 1
        assert verifier.syncs[key].book.last_id == delta.last_id
        break
    else:
        pytest.fail("no 0809 diff found")


def test_hft_spot_tickers_agree_once_their_diff_is_applied():
    """Spot bookTickers arrive before the 100 ms diff with the same u; once that diff is applied the
    rebuilt best bid/ask equal the ticker's exactly (0 disagreements)."""
    (rec,) = open_recordings([SPOT_BTC_0808]).recordings
    verifier = BookVerifier(detect(rec))
    key = "binance:spot:BTCUSDT"
    waiting: dict[int, TopOfBook] = {}
    agree = disagree = 0
    for frame in rec.frames():
        if frame.kind is FrameKind.WS and b"@bookTicker" in frame.payload[:40]:
            (top,) = verifier.protocol.receive(frame.payload, frame.recv_ns).updates
            assert isinstance(top, TopOfBook)
            waiting[top.update_id] = top
        verifier.feed(frame)
        sync = verifier.syncs.get(key)
        if sync is None or sync.state is not SyncState.LIVE:
            continue
        top = waiting.pop(sync.book.last_id, None)
        if top is not None:
            if sync.book.levels(Side.BID, 1) == [(top.bid, top.bid_qty)] and sync.book.levels(Side.ASK, 1) == [
                (top.ask, top.ask_qty)
            ]:
                agree += 1
            else:
                disagree += 1
    assert (agree, disagree) == (564, 0)
    # The sync keeps only the newest ticker ahead of the book, so it compares 4 fewer: tickers that a
    # newer ticker overtook before their own diff arrived (e.g. u=50093256899, then 900, then the diff 899).
    assert (verifier.syncs[key].stats.ticker_agree, verifier.syncs[key].stats.ticker_disagree) == (560, 0)


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        (CF_SPOT_WS, ["binance:spot:NKNUSDT", "binance:spot:BLZETH", "binance:spot:LRCBTC", "binance:spot:RUNEEUR"]),
        (
            CF_USDM_WS,
            ["binance:usdm:SUSHIUSDT", "binance:usdm:AKROUSDT", "binance:usdm:KEEPUSDT", "binance:usdm:CTKUSDT"],
        ),
    ],
)
def test_cryptofeed_symbols_bracket_their_rest_snapshot(path, keys):
    """All 4 symbols of each capture sync on their recorded REST snapshot with 0 gaps."""
    (rec,) = open_recordings([path]).recordings
    verifier = run(rec)
    assert sorted(verifier.syncs) == sorted(keys)
    for key in keys:
        sync = verifier.syncs[key]
        assert sync.state is SyncState.LIVE, key
        assert (sync.stats.snapshots, sync.stats.gaps, sync.stats.crossed) == (1, 0, 0), key
        assert sync.stats.diffs_applied > 0
        rules = sync.rules
        assert isinstance(rules, WatchedRules)
        ((snapshot_id, delta),) = rules.first_applied
        low = snapshot_id + 1 if key.startswith("binance:spot:") else snapshot_id
        assert delta.first_id <= low <= delta.last_id, key
    assert verifier.unsolicited_snapshots == 0
    assert verifier.pending == set()


# ---- faults: a missing diff, malformed frames ----------------------------------------------------


def reference_snapshot(reference: BookVerifier, key: str) -> BookSnapshot:
    """What the venue would answer now: the reference rebuild's book, with its update id."""
    book = reference.syncs[key].book
    return BookSnapshot(key, book.last_id, book.levels(Side.BID), book.levels(Side.ASK), from_rest=True)


def depth_frames_of(frames: list[RecordedFrame], stream: bytes) -> list[int]:
    return [i for i, f in enumerate(frames) if f.kind is FrameKind.WS and f.payload.startswith(stream)]


def merged_spot_frames(limit: int) -> list[RecordedFrame]:
    """BTCUSDT and ETHUSDT spot (0808 files) interleaved by receive time: two books on one stream."""
    recordings = [r for r in open_recordings([HFT / "spot"]).recordings]
    streams: list[Iterator[RecordedFrame]] = [islice(r.frames(), limit) for r in recordings]
    return list(heapq.merge(*streams, key=lambda f: f.recv_ns))


@pytest.mark.parametrize(
    ("frames_of", "victim", "stream"),
    [
        (
            lambda: list(open_recordings([CF_USDM_WS]).recordings[0].frames()),
            "binance:usdm:SUSHIUSDT",
            b'{"stream":"sushiusdt@depth',
        ),
        (lambda: merged_spot_frames(12_000), "binance:spot:BTCUSDT", b'{"stream":"btcusdt@depth'),
    ],
    ids=["usdm-pu-chain", "spot-U-u"],
)
def test_one_missing_diff_resyncs_that_symbol_only(frames_of, victim, stream):
    """Drop one applied diff mid-stream: that book gaps and asks for a snapshot, the others are untouched;
    answered with the venue's book at that moment, it ends equal to the unbroken rebuild."""
    frames = frames_of()
    entry = detect(open_recordings([CF_USDM_WS if b"sushi" in stream else SPOT_BTC_0808]).recordings[0])
    victim_frames = depth_frames_of(frames, stream)
    dropped = victim_frames[len(victim_frames) // 2]
    reference, broken, recorded_only = BookVerifier(entry), BookVerifier(entry), BookVerifier(entry)
    answer_after = 3  # the snapshot "arrives" three victim frames after the request
    seen_since_gap = 0
    for i, frame in enumerate(frames):
        reference.feed(frame)
        if i == dropped:
            continue
        broken.feed(frame)
        recorded_only.feed(frame)
        gapped = broken.syncs[victim].stats.gaps if victim in broken.syncs else 0
        if gapped and victim in broken.pending and frame.payload.startswith(stream):
            seen_since_gap += 1
            if seen_since_gap == answer_after:
                broken.deliver_snapshot(reference_snapshot(reference, victim))
    assert seen_since_gap >= answer_after
    for verifier in (broken, recorded_only):
        stats = verifier.syncs[victim].stats
        assert (stats.gaps, stats.resyncs) == (1, 1)
        for key, sync in verifier.syncs.items():
            if key == victim:
                continue
            ref = reference.syncs[key]
            assert sync.state is SyncState.LIVE
            assert sync.stats.as_dict() == ref.stats.as_dict(), key
            assert book_state(sync) == book_state(ref), key
    # Recording only: no later snapshot for the victim, so it stays down and waits.
    assert recorded_only.syncs[victim].state is SyncState.RESYNC
    assert recorded_only.pending == {victim}
    assert {r.key: r.ok for r in recorded_only.results()}[victim] is False
    # Answered: live again and equal to the unbroken rebuild.
    assert broken.syncs[victim].state is SyncState.LIVE
    assert broken.syncs[victim].stats.snapshots == 2
    assert broken.pending == set()
    assert book_state(broken.syncs[victim]) == book_state(reference.syncs[victim])


def test_malformed_frames_are_counted_and_never_touch_a_book():
    """Truncated JSON, wrong types and an unknown stream, slipped into a real stream: counted with their
    location, and every book ends exactly as the clean rebuild."""
    (rec,) = open_recordings([CF_USDM_WS]).recordings
    frames = list(rec.frames())
    depth = depth_frames_of(frames, b'{"stream":"akrousdt@depth')
    corrupt = {
        depth[2]: lambda p: p[: len(p) // 2],  # truncated JSON
        depth[4]: lambda p: p.replace(b'"pu":', b'"pu":"x","_":', 1),  # wrong type
        depth[6]: lambda p: p.replace(b"@depth@100ms", b"@depthy", 1),  # unknown stream
    }
    clean, dirty = BookVerifier(detect(rec)), BookVerifier(detect(rec))
    for i, frame in enumerate(frames):
        clean.feed(frame)
        if i in corrupt:
            dirty.feed(dataclasses.replace(frame, payload=corrupt[i](frame.payload)))
        dirty.feed(frame)  # the genuine frame still arrives, as after a garbled duplicate
    assert dirty.bad_count == 3
    assert [(b.line, b.reason.split(":")[0]) for b in dirty.bad_records] == [
        (frames[i].line, "malformed frame") for i in sorted(corrupt)
    ]
    assert "unknown stream 'akrousdt@depthy'" in dirty.bad_records[2].reason
    assert sorted(dirty.syncs) == sorted(clean.syncs)
    for key, sync in dirty.syncs.items():
        assert book_state(sync) == book_state(clean.syncs[key]), key
        assert sync.stats.gaps == 0
    assert clean.bad_count == 0


def test_a_ticker_whose_id_no_diff_reaches_is_dropped_within_three_diffs():
    """A real USD-M bookTicker with 10**9 added to its ``u``: no diff ever reaches that id, so its overlay would
    hide the book's top and refuse every real ticker (all have lower ids) until the connection is renewed, while
    the diffs keep the book fresh. It is dropped at the third diff that misses it (real overlays are reached by
    the first or second), counted as ``ticker_unreached``; the book ends exactly as without the corrupt frame."""
    (rec,) = open_recordings([USDM_BTC]).recordings
    key = "binance:usdm:BTCUSDT"
    clean, corrupt = BookVerifier(detect(rec)), BookVerifier(detect(rec))
    tickers = 0
    bogus_id = 0
    frozen_diffs = 0  # diffs applied while the corrupt book showed the bogus ticker's top
    for recorded in rec.frames():
        clean.feed(recorded)
        frame = recorded
        is_ticker = frame.kind is FrameKind.WS and b"@bookTicker" in frame.payload[:40]
        if is_ticker:
            tickers += 1
            if tickers == 200:
                start = frame.payload.index(b'"u":') + 4
                end = frame.payload.index(b",", start)
                bogus_id = int(frame.payload[start:end]) + 10**9
                frame = dataclasses.replace(
                    frame, payload=frame.payload[:start] + b"%d" % bogus_id + frame.payload[end:]
                )
        corrupt.feed(frame)
        sync = corrupt.syncs.get(key)
        overlay = sync.book.overlay() if sync is not None else None
        if overlay is not None and overlay[0] == bogus_id and b"@depth" in frame.payload[:40]:
            frozen_diffs += 1
    assert bogus_id and frozen_diffs == 2  # the third miss drops it
    ours, theirs = corrupt.syncs[key], clean.syncs[key]
    assert (ours.stats.ticker_unreached, theirs.stats.ticker_unreached) == (1, 0)
    assert ours.state is SyncState.LIVE and ours.book.last_id == theirs.book.last_id
    for side in (Side.BID, Side.ASK):
        assert ours.book.levels(side) == theirs.book.levels(side)
    assert (ours.book.best_bid(), ours.book.best_ask()) == (theirs.book.best_bid(), theirs.book.best_ask())
    assert ours.stats.ticker_agree > 0 and ours.stats.ticker_disagree == 0


def depth_mutated(
    rec: Recording, mutate: Callable[[bytes], bytes], at: int = 200
) -> Iterator[tuple[RecordedFrame, int]]:
    """The recording's frames, the ``at``-th depth frame's payload through ``mutate``; each with the depth
    frames counted so far."""
    depth = 0
    for frame in rec.frames():
        if frame.kind is FrameKind.WS and b"@depth" in frame.payload[:40]:
            depth += 1
            if depth == at:
                frame = dataclasses.replace(frame, payload=mutate(frame.payload))  # noqa: PLW2901
        yield frame, depth


def added(payload: bytes, field: bytes, amount: int) -> bytes:
    """``payload`` with ``amount`` added to the integer after ``field`` (e.g. ``b'"u":'``)."""
    start = payload.index(field) + len(field)
    end = payload.index(b",", start)
    return payload[:start] + b"%d" % (int(payload[start:end]) + amount) + payload[end:]


@pytest.mark.parametrize(("path", "key"), [(SPOT_BTC_0808, "binance:spot:BTCUSDT"), (USDM_BTC, "binance:usdm:BTCUSDT")])
def test_a_diff_with_a_corrupt_final_id_resyncs_at_the_next_diff(path, key):  # type: ignore[no-untyped-def]
    """A real depth frame with 10**9 added to its ``u`` moves the book's id past the stream: every later diff
    looks old by its id and would be skipped for as long as the connection lives (the book frozen, no gap).
    The next diff is old by its id yet stamped later than anything applied: a gap there, and a resync."""
    (rec,) = open_recordings([path]).recordings
    verifier = BookVerifier(detect(rec))
    for frame, depth in depth_mutated(rec, lambda payload: added(payload, b'"u":', 10**9)):
        verifier.feed(frame)
        sync = verifier.syncs.get(key)
        if depth == 201:  # the first depth frame after the corrupt one
            assert sync is not None and sync.stats.gaps == 1 and sync.state is not SyncState.LIVE
            break
        assert sync is None or sync.stats.gaps == 0
    assert depth == 201


@pytest.mark.parametrize(("path", "key"), [(SPOT_BTC_0808, "binance:spot:BTCUSDT"), (USDM_BTC, "binance:usdm:BTCUSDT")])
def test_a_diff_with_a_corrupt_final_id_stamped_ahead_resyncs_after_the_skips(path, key):  # type: ignore[no-untyped-def]
    """The same corrupt ``u`` with its event time 200 s ahead too (within the live feed's 300 s skew): the
    later diffs are old by id and stamped earlier, so ids_follow_time cannot tell, and the book stayed live
    and frozen for 200 s of diffs (the review's 1,994). After MAX_SKIPS_IN_A_ROW skipped with none applied,
    it is a gap."""
    (rec,) = open_recordings([path]).recordings
    verifier = BookVerifier(detect(rec))
    gap_at = 0
    for frame, depth in depth_mutated(rec, lambda payload: added(added(payload, b'"u":', 10**9), b'"E":', 200_000)):
        verifier.feed(frame)
        sync = verifier.syncs.get(key)
        if sync is not None and sync.stats.gaps:
            gap_at = depth
            break
    assert sync is not None and (sync.stats.gaps, sync.state) == (1, SyncState.RESYNC)
    assert gap_at == 200 + MAX_SKIPS_IN_A_ROW + 1  # the gap at the first diff past the limit, not 200 s later


def test_a_diff_that_crosses_the_book_resyncs_it():
    """A real spot depth frame with one extra bid at 70,000 (above every ask): a Binance book has no checksum,
    so a crossed book (none in the recordings) is the sign of a corrupt level that still chains. The book
    resyncs at that frame; it used to stay live and crossed for the rest of the file."""
    (rec,) = open_recordings([SPOT_BTC_0808]).recordings
    verifier = BookVerifier(detect(rec))
    key = "binance:spot:BTCUSDT"
    crossing = b'"b":[["70000.00000000","1.00000000"],'
    for frame, depth in depth_mutated(rec, lambda payload: payload.replace(b'"b":[', crossing, 1)):
        verifier.feed(frame)
        if depth == 200:
            sync = verifier.syncs[key]
            assert (sync.stats.crossed, sync.stats.gaps, sync.state) == (1, 1, SyncState.RESYNC)
            assert not sync.book.is_crossed()
            return
    raise AssertionError("the recording has fewer than 200 depth frames")


@pytest.mark.parametrize(("path", "key"), [(SPOT_BTC_0808, "binance:spot:BTCUSDT"), (USDM_BTC, "binance:usdm:BTCUSDT")])
def test_a_snapshot_with_a_corrupt_id_resyncs_instead_of_skipping_every_diff(path, key):  # type: ignore[no-untyped-def]
    """The real REST snapshot with 10**9 added to lastUpdateId: every diff is older than it by id, so nothing
    would ever apply while the book said live (spot's snapshot has no venue time to compare with). After
    MAX_SKIPS_IN_A_ROW diffs received after it are skipped, it is a gap: the book resyncs."""
    (rec,) = open_recordings([path]).recordings
    verifier = BookVerifier(detect(rec))
    for frame in rec.frames():
        payload = frame.payload
        if frame.kind is FrameKind.REST:
            start = payload.index(b'"lastUpdateId":') + 15
            end = payload.index(b",", start)
            payload = payload[:start] + b"%d" % (int(payload[start:end]) + 10**9) + payload[end:]
        verifier.feed(dataclasses.replace(frame, payload=payload))
        sync = verifier.syncs.get(key)
        if sync is not None and sync.stats.gaps:
            break
    assert sync is not None
    assert (sync.stats.gaps, sync.stats.diffs_applied, sync.state) == (1, 0, SyncState.RESYNC)
    assert MAX_SKIPS_IN_A_ROW <= sync.stats.skipped <= MAX_SKIPS_IN_A_ROW + 10
