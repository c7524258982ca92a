"""Smoke test of the benchmark harness (``python -m bench``) on a short slice of the real recordings.

No timing is asserted (a shared, noisy machine): the harness must produce the right books and decisions.
Reference books come from ``verify-books``' rebuild (:class:`feeds.verify.BookVerifier`) of the same
records, independent of the harness's pipeline.
"""

from __future__ import annotations

import math

import pytest

from bench.common import Timeline, bench_candidates, load_timeline, perp, spot
from bench.pipeline import PipelineRun, run, summarize
from feeds.book import OrderBook, Side
from feeds.sync import SyncState
from feeds.venues import detect
from feeds.verify import BookVerifier
from rules.candidates import BasisDirection, CexCexCandidate, PerpSpotBasisCandidate

RECORDS = 6_000  # ~9 s of market time: every book has synced on its REST snapshot


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return load_timeline(RECORDS, freeze=False)


@pytest.fixture(scope="module")
def reference(timeline: Timeline) -> dict[str, OrderBook]:
    """verify-books' rebuild of the same records, book by key."""
    verifiers = [BookVerifier(detect(r)) for r in timeline.recordings]
    for index, frame, _cls in timeline.records:
        verifiers[index].feed(frame)
    books = {}
    for verifier in verifiers:
        for key, sync in verifier.syncs.items():
            assert sync.state is SyncState.LIVE, key
            books[key] = sync.book
    return books


@pytest.fixture(scope="module")
def harness(timeline: Timeline) -> PipelineRun:
    return run(timeline, bench_candidates(), peer=False, block=500)


def test_books_equal_verify_books(harness: PipelineRun, reference: dict[str, OrderBook]) -> None:
    books = {sync.book.key: sync.book for sync in harness.pipeline.books.values()}
    assert (
        sorted(books)
        == sorted(reference)
        == [
            "binance:spot:BTCUSDT",
            "binance:spot:ETHUSDT",
            "binance:usdm:BTCUSDT",
            "binance:usdm:ETHUSDT",
        ]
    )
    for key, book in books.items():
        ref = reference[key]
        assert book.last_id == ref.last_id, key
        assert (book.best_bid(), book.best_ask()) == (ref.best_bid(), ref.best_ask()), key
        assert book.levels(Side.BID, 20) == ref.levels(Side.BID, 20), key
        assert book.levels(Side.ASK, 20) == ref.levels(Side.ASK, 20), key


def test_decisions_read_the_final_books(harness: PipelineRun, reference: dict[str, OrderBook]) -> None:
    """Every candidate's latest decision walked the books as verify-books has them at the end."""
    engine = harness.pipeline.engine
    assert len(engine.candidates) == 8
    for candidate in engine.candidates:
        _status, decision = engine.state_of(candidate.id)
        assert decision is not None
        if isinstance(candidate, PerpSpotBasisCandidate):
            forward = candidate.direction is BasisDirection.LONG_SPOT_SHORT_PERP
            first, second = candidate.spot, candidate.perp
            first_side = Side.ASK if forward else Side.BID
        else:
            assert isinstance(candidate, CexCexCandidate)
            first, second, first_side = candidate.buy, candidate.sell, Side.ASK
        second_side = Side.BID if first_side is Side.ASK else Side.ASK
        key = {spot(b): f"binance:spot:{b}USDT" for b in ("BTC", "ETH")} | {
            perp(b): f"binance:usdm:{b}USDT" for b in ("BTC", "ETH")
        }
        book1, book2 = reference[key[first]], reference[key[second]]
        fill1 = book1.walk(first_side, quote=candidate.size_usd)
        fill2 = book2.walk(second_side, base=fill1.base)
        leg1, leg2 = decision.legs
        assert (leg1.top_price, leg1.vwap, leg1.filled_base) == (fill1.top_price, fill1.vwap, fill1.base)
        assert (leg2.top_price, leg2.vwap, leg2.filled_base) == (fill2.top_price, fill2.vwap, fill2.base)
        buy, sell = (fill1, fill2) if first_side is Side.ASK else (fill2, fill1)
        assert decision.gross_bps == pytest.approx((sell.vwap - buy.vwap) / buy.vwap * 1e4, rel=1e-12)
        assert not decision.qualified  # basis and fees: nothing qualifies in this window (data/SOURCES.md)


def test_summary_counts(harness: PipelineRun) -> None:
    summary = summarize(harness)
    classes = [cls for _i, _f, cls in harness.timeline.records]
    headline = sum(1 for c in classes if c in ("depth", "ticker", "rest"))
    assert summary["records"] == RECORDS
    assert summary["headline_frames"] == headline == summary["floor"]["count"] == summary["pipeline"]["count"]
    assert classes.count("rest") == 4  # the four recorded start-up snapshots
    # Each book update touches the 4 candidates of its pair: exactly 4 evaluations per update.
    assert summary["evaluations"] == 4 * summary["update_to_decision"]["count"]
    assert summary["evaluations_per_update"] == 4.0
    for key, (bid, ask) in summary["book_top"].items():
        assert math.isfinite(bid) and math.isfinite(ask) and bid < ask, key


def test_cryptofeed_peer_rebuilds_the_same_books(timeline: Timeline, reference: dict[str, OrderBook]) -> None:
    """The peer, fed the same frames offline, ends with the same top of book as verify-books."""
    pytest.importorskip("cryptofeed", reason="cryptofeed is installed by requirements/bench.txt only")
    from bench.peer_cryptofeed import CryptofeedPeer

    peer = CryptofeedPeer(timeline, "bbo")
    for index, frame, cls in timeline.records:
        if cls in ("depth", "ticker"):
            peer.feed(index, frame)
    assert sorted(peer.snapshot_requests()) == ["BTCUSDT", "BTCUSDT", "ETHUSDT", "ETHUSDT"]
    tops = peer.top_of_books()
    assert sorted(tops) == sorted(reference)
    for key, (bid, ask) in tops.items():
        ref = reference[key]
        assert (bid, ask) == (ref.levels(Side.BID, 1)[0][0], ref.levels(Side.ASK, 1)[0][0]), key
    assert peer.tickers == sum(1 for _i, _f, c in timeline.records if c == "ticker")
