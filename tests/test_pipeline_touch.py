"""ReplayPipeline wakes the engine for exactly the books a record changed (it checks only the books the
verifier reached, not every book): compared, record by record on real Binance frames, with a scan of
every book's version before and after the record."""

from __future__ import annotations

from itertools import islice

from feeds.binance.protocol import BinanceProtocol
from feeds.instruments import Market
from feeds.recordings import FrameKind
from feeds.sync import SyncState
from feeds.venues import detect
from feeds.verify import BookVerifier
from rules.validation import load_constraints
from scanner.pipeline import ReplayPipeline
from tests.engine_fixtures import DEMO_CONSTRAINTS, btc_recordings

RECORDS = 6000  # both REST snapshots, the books going live, tickers, depth diffs and trades


def _versions(pipeline: ReplayPipeline) -> dict[str, int]:
    return {
        key: sync.book.version
        for source in pipeline._sources  # every book, not only the reached ones
        for key, sync in source.verifier.syncs.items()
    }


def test_touches_are_exactly_the_books_whose_version_moved() -> None:
    constraints = load_constraints(DEMO_CONSTRAINTS.read_bytes(), str(DEMO_CONSTRAINTS))
    pipeline = ReplayPipeline(btc_recordings(), [], constraints)
    touched: list[tuple[str, int]] = []
    engine_touch = pipeline.engine.touch

    def record_touch(key: str, recv_ns: int) -> None:
        touched.append((key, recv_ns))
        engine_touch(key, recv_ns)

    pipeline.engine.touch = record_touch  # type: ignore[method-assign]
    quiet = 0
    for index, frame in islice(pipeline.merged(), RECORDS):
        before = _versions(pipeline)
        pipeline.feed(index, frame)
        after = _versions(pipeline)
        expected = [(key, frame.recv_ns) for key, version in after.items() if before.get(key) != version]
        assert touched == expected, f"record {pipeline.records} ({frame.source}:{frame.line})"
        quiet += not touched
        touched.clear()
    assert sorted(after) == ["binance:spot:BTCUSDT", "binance:usdm:BTCUSDT"]
    assert all(sync.state is SyncState.LIVE for source in pipeline._sources for sync in source.verifier.syncs.values())
    assert 0 < quiet < RECORDS  # trades and skipped diffs change nothing; tickers and diffs do
    assert pipeline.engine.stats.updates == RECORDS - quiet


def test_verifier_reports_the_books_a_record_reached() -> None:
    spot = btc_recordings()[0]
    verifier = BookVerifier(detect(spot), BinanceProtocol(Market.SPOT))
    verifier.reached = []
    seen: dict[str, set[tuple[str, ...]]] = {}
    for frame in islice(spot.frames(), 3000):
        verifier.feed(frame)
        head = frame.payload[:40]
        kind = "rest" if frame.kind is FrameKind.REST else "trade" if b"@trade" in head else "book"
        seen.setdefault(kind, set()).add(tuple(verifier.reached))
        verifier.reached.clear()
    assert seen["trade"] == {()}
    assert seen["book"] == {("binance:spot:BTCUSDT",)}
    assert seen["rest"] <= {("binance:spot:BTCUSDT",), ()}  # an unsolicited snapshot reaches no book
    assert ("binance:spot:BTCUSDT",) in seen["rest"]
