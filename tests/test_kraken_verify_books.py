"""`arbscan verify-books` on the bundled Kraken v1 capture: every ``c`` verified, books truncated to 1000."""

from __future__ import annotations

import orjson
import pytest

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
