"""`arbscan verify-books` on the bundled OKX capture: every checksum-carrying push verified (290 of 290)."""

from __future__ import annotations

import orjson
import pytest

from scanner.cli import main
from tests.venue_fixtures import OKX_WS, messages


def test_okx_capture_verifies_every_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    carrying = sum(b'"checksum":' in m for _, m in messages(OKX_WS))
    assert main(["verify-books", str(OKX_WS)]) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    *books, total = lines
    assert carrying == 290 and total["ok"] is True
    assert total["total"]["checksum_ok"] == carrying and total["total"]["checksum_failed"] == 0
    assert {(b["market"], b["symbol"]) for b in books} == {
        ("spot", "BTC-USDT"),
        ("futures", "BTC-USD-220527"),
        ("swap", "UNI-USD-SWAP"),
    }
    spot = next(b for b in books if b["symbol"] == "BTC-USDT")
    assert (spot["snapshots"], spot["diffs_applied"], spot["gaps"], spot["crossed"]) == (1, 97, 0, 0)
    assert (spot["best_bid"], spot["best_ask"]) == (30236.1, 30236.2)
