"""`arbscan verify-books` on the bundled Bybit v5 captures: every book rebuilds, never crossed."""

from __future__ import annotations

import orjson
import pytest

from scanner.cli import main
from tests.venue_fixtures import BYBIT_DIR


def test_bybit_captures_rebuild_without_a_crossed_book(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-books", str(BYBIT_DIR)]) == 0
    *books, total = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert total["ok"] is True and total["total"]["crossed"] == 0 and total["total"]["snapshots"] == 337
    assert sorted((b["market"], b["symbol"]) for b in books) == sorted(
        [("linear", s) for s in ("BANDUSDT", "RADUSDT", "SNTUSDT", "AIOZUSDT")]
        + [("spot", s) for s in ("OPUSDC", "TUSDUSDT", "KCSUSDT", "CPOOLUSDT", "ARBUSDC", "MASAUSDT")]
    )
    assert all(b["ok"] and b["best_bid"] < b["best_ask"] for b in books)
