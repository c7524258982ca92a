"""`arbscan verify-books` on the bundled Kraken v1 capture: every ``c`` verified, books truncated to 1000."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from feeds.book import Side
from feeds.recordings import FrameKind, open_recordings
from feeds.sync import SyncState
from feeds.venues import detect
from feeds.verify import BookVerifier
from scanner.cli import main
from tests.venue_fixtures import KRAKEN_WS, messages


def test_kraken_capture_verifies_every_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    carrying = sum(b'"c":"' in m for _, m in messages(KRAKEN_WS))
    assert main(["verify-books", str(KRAKEN_WS)]) == 0
    *books, total = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert carrying == 4269 and total["ok"] is True and len(books) == 10
    assert total["total"]["checksum_ok"] == carrying and total["total"]["checksum_failed"] == 0
    xmr = next(b for b in books if b["symbol"] == "XMR/USD")
    assert (xmr["venue"], xmr["market"], xmr["checksum_ok"], xmr["gaps"]) == ("kraken", "spot", 846, 0)
    assert (xmr["best_bid"], xmr["best_ask"]) == (353.64, 354.48)


def test_a_volume_whose_decimal_point_moved_is_refused_though_its_checksum_passes() -> None:
    """XMR/USD's best bid "6.88271768" written "68.8271768" (10x the size): Kraken's CRC32 covers the digits
    only, so it passed and the wrong size sat at the top of the book for 20 updates, live, no signal. A level
    not written with the snapshot's decimals is malformed: that update is lost and the book resyncs."""
    (rec,) = open_recordings([KRAKEN_WS]).recordings
    verifier = BookVerifier(detect(rec))
    key = "kraken:spot:XMR/USD"
    mutated = False
    for frame in rec.frames():
        payload = frame.payload
        if not mutated and frame.kind is FrameKind.WS and b'"6.88271768"' in payload and b"XMR/USD" in payload:
            sync = verifier.syncs[key]
            assert sync.state is SyncState.LIVE and sync.stats.gaps == 0
            payload = payload.replace(b'"6.88271768"', b'"68.8271768"', 1)
            mutated = True
            verifier.feed(dataclasses.replace(frame, payload=payload))
            assert verifier.bad_count == 1 and "decimals" in verifier.bad_records[-1].reason
            assert sync.stats.gaps == 1 and sync.state is not SyncState.LIVE
            assert all(qty != 68.8271768 for _price, qty in sync.book.levels(Side.BID, 10))
            continue
        verifier.feed(frame)
    assert mutated
