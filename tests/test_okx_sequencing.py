"""OKX sequence rules (exchange-protocols.md §4.2): what is applied, skipped as a duplicate, or a gap."""

from __future__ import annotations

from feeds.instruments import Market
from feeds.okx.protocol import OkxProtocol
from feeds.sequencing import OkxRules, Verdict
from feeds.sync import BookSync, SyncState
from feeds.updates import BookDelta, BookSnapshot, Resubscribe

KEY = "okx:swap:BTC-USDT-SWAP"


def push(seq: int, prev: int, bid: float = 100.0) -> BookDelta:
    return BookDelta(KEY, seq, seq, prev, [(bid, 1.0)], [])


def snapshot(seq: int) -> BookSnapshot:
    return BookSnapshot(KEY, seq, [(99.0, 1.0)], [(101.0, 1.0)])


def live_sync(snapshot_seq: int = 10) -> BookSync:
    sync = OkxProtocol(Market.SWAP, checksum=False).new_sync(KEY)
    assert sync.on_snapshot(snapshot(snapshot_seq)) == []
    return sync


def test_documented_example_applies_cleanly_through_the_sync():
    """Snapshot -1→10, update 10→15, heartbeat 15→15, reset 15→3, update 3→5: all applied, book live."""
    sync = live_sync(10)
    for delta in (push(15, 10, 99.5), BookDelta(KEY, 15, 15, 15, [], []), push(3, 15, 99.6), push(5, 3, 100.5)):
        assert sync.on_delta(delta) == []
    assert sync.state is SyncState.LIVE
    assert (sync.stats.diffs_applied, sync.stats.skipped, sync.stats.gaps) == (4, 0, 0)
    assert sync.book.last_id == 5 and sync.book.best_bid() == (100.5, 1.0) and not sync.book.is_crossed()


def test_a_lost_sequence_reset_is_a_gap_not_a_frozen_book():
    """local=15, the reset push 15→3 lost, then 3→5: a gap (resubscribe), never silently skipped."""
    sync = live_sync(10)
    assert sync.on_delta(push(15, 10)) == []
    assert sync.on_delta(push(5, 3)) == [Resubscribe(KEY)]
    assert sync.state is SyncState.RESYNC
    assert (sync.stats.gaps, sync.stats.skipped) == (1, 0)


def test_an_exact_duplicate_push_is_skipped():
    """A push already applied, delivered again by an overlapping connection, is skipped."""
    sync = live_sync(10)
    for delta in (push(15, 10), push(3, 15), push(5, 3)):
        sync.on_delta(delta)
    for duplicate in (push(15, 10), push(3, 15), push(5, 3)):
        assert sync.on_delta(duplicate) == []
    assert sync.state is SyncState.LIVE
    assert (sync.stats.skipped, sync.stats.gaps, sync.book.last_id) == (3, 0, 5)


def test_pushes_jumped_over_by_a_snapshot_are_skipped_but_unknown_ones_gap():
    """After a resubscribe snapshot (book 20 → snapshot 40), a lagging connection's 20→30 is old news."""
    sync = live_sync(10)
    sync.on_delta(push(20, 10))
    assert sync.on_snapshot(snapshot(40)) == []
    assert sync.on_delta(push(30, 20)) == [] and sync.on_delta(push(40, 30)) == []
    assert (sync.stats.skipped, sync.state) == (2, SyncState.LIVE)
    assert sync.on_delta(push(45, 40)) == [] and sync.book.last_id == 45
    assert sync.on_delta(push(8, 5)) == [Resubscribe(KEY)]  # behind the book, but never seen: a gap


def test_the_duplicate_ring_is_bounded():
    rules = OkxRules()
    for seq in range(1, 1000):
        assert rules.check(push(seq, seq - 1), seq - 1, first=False) is Verdict.APPLY
    assert rules.check(push(999, 998), 999, first=False) is Verdict.SKIP
    assert rules.check(push(2, 1), 999, first=False) is Verdict.GAP  # fell out of the ring
    assert len(rules._applied) == OkxRules.APPLIED_RING
