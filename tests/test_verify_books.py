"""`arbscan verify-books`: output format, totals and exit codes on real recordings and corrupt copies."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest

from feeds.book import Side
from feeds.verify import COUNTERS, verify_paths
from scanner.cli import main
from tests.binance_fixtures import CF_SPOT_WS, CF_USDM_WS, CRYPTOFEED, SPOT_BTC_0808, SPOT_BTC_0809, USDM_BTC

BOOK_KEYS = [
    "venue",
    "market",
    "symbol",
    "frames",
    "diffs_applied",
    "snapshots",
    "gaps",
    "resyncs",
    "crossed",
    "checksum_ok",
    "checksum_failed",
    "ticker_agree",
    "ticker_disagree",
    "ticker_unreached",
    "best_bid",
    "best_ask",
    "ok",
]


def verify_books(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[dict[str, object]], str]:
    code = main(["verify-books", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines()], err


def test_cryptofeed_captures(capsys):
    """Both Binance captures: 8 books, exact keys in order, all ok, totals summed, exit 0."""
    code, lines, err = verify_books(capsys, CF_SPOT_WS, CF_USDM_WS)
    assert code == 0, err
    books, total = lines[:-1], lines[-1]
    assert [list(b) for b in books] == [BOOK_KEYS] * 8
    assert [(b["market"], b["symbol"]) for b in books] == [
        ("spot", "NKNUSDT"),
        ("spot", "BLZETH"),
        ("spot", "LRCBTC"),
        ("spot", "RUNEEUR"),
        ("usdm", "SUSHIUSDT"),
        ("usdm", "AKROUSDT"),
        ("usdm", "KEEPUSDT"),
        ("usdm", "CTKUSDT"),
    ]
    assert all(b["venue"] == "binance" and b["ok"] is True for b in books)
    assert all((b["snapshots"], b["gaps"], b["resyncs"], b["crossed"]) == (1, 0, 0, 0) for b in books)
    nkn = books[0]
    assert (nkn["frames"], nkn["diffs_applied"], nkn["best_bid"], nkn["best_ask"]) == (225, 149, 0.3527, 0.3531)
    sushi = books[4]
    assert (sushi["frames"], sushi["diffs_applied"], sushi["best_bid"], sushi["best_ask"]) == (561, 252, 7.612, 7.615)
    assert list(total) == ["total", "ok"]
    assert list(total["total"]) == list(COUNTERS)
    assert total["total"] == {name: sum(b[name] for b in books) for name in COUNTERS}
    assert total["total"]["diffs_applied"] == 149 + 9 + 13 + 1 + 252 + 188 + 132 + 180
    assert total["ok"] is True
    assert err == ""


def test_folder_with_metadata_and_license(capsys, tmp_path):
    """A folder is searched; companions (http, .0) join their capture; LICENSE is passed over silently."""
    for name in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0", "LICENSE"):
        shutil.copy(CRYPTOFEED / name, tmp_path)
    code, lines, err = verify_books(capsys, tmp_path)
    assert code == 0
    assert [b["symbol"] for b in lines[:-1]] == ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    assert err == ""


def test_final_books_are_exposed(capsys):
    """verify_paths returns the rebuilt books themselves; the CLI prints their tops."""
    report = verify_paths([USDM_BTC])
    (result,) = report.books
    assert result.key == "binance:usdm:BTCUSDT"
    assert result.ok and result.live
    assert result.book.best_bid() == (61659.7, result.book.best_bid()[1])  # type: ignore[index]
    assert result.book.levels(Side.ASK, 1)[0][0] >= 61659.8
    code, lines, _ = verify_books(capsys, USDM_BTC)
    assert code == 0
    assert (lines[0]["best_bid"], lines[0]["best_ask"]) == (61659.7, 61659.8)
    assert (lines[0]["ticker_agree"], lines[0]["ticker_disagree"]) == (573, 0)


def test_missing_snapshot_is_not_ok(capsys):
    """The 0809 file alone has no REST snapshot: the book never goes live, ok false, exit 1."""
    code, lines, _ = verify_books(capsys, SPOT_BTC_0809)
    assert code == 1
    (book,) = lines[:-1]
    assert (book["symbol"], book["snapshots"], book["diffs_applied"], book["ok"]) == ("BTCUSDT", 0, 0, False)
    assert (book["best_bid"], book["best_ask"]) == (None, None)
    assert lines[-1]["ok"] is False


def test_truncated_file_names_file_and_line(capsys, tmp_path):
    target = tmp_path / "btcusdt_20240808.gz"
    data = SPOT_BTC_0808.read_bytes()
    target.write_bytes(data[: len(data) // 4])
    code, _, err = verify_books(capsys, target)
    assert code == 2
    assert err.startswith(f"arbscan verify-books: {target}:")
    assert "corrupt or truncated file" in err
    assert "Traceback" not in err


def test_corrupt_frame_names_file_and_line(capsys, tmp_path):
    """A SUSHIUSDT diff cut short: the bad line is named, exit 2; the books are still reported, and the
    lost diff shows as SUSHIUSDT's gap (no later snapshot in the capture), the other books untouched."""
    lines = CF_USDM_WS.read_bytes().splitlines(keepends=True)
    lines[20] = lines[20][:90] + b"\n"
    (tmp_path / "BINANCE_FUTURES.ws.1.0").write_bytes(b"".join(lines))
    shutil.copy(CRYPTOFEED / "BINANCE_FUTURES.http.0.0", tmp_path)
    code, out, err = verify_books(capsys, tmp_path / "BINANCE_FUTURES.ws.1.0")
    assert code == 2
    assert f"{tmp_path / 'BINANCE_FUTURES.ws.1.0'}:21: malformed frame" in err
    assert "Traceback" not in err
    assert len(out) == 5  # four books and the total are still printed
    assert {b["symbol"]: (b["gaps"], b["ok"]) for b in out[:-1]} == {
        "SUSHIUSDT": (1, False),
        "AKROUSDT": (0, True),
        "KEEPUSDT": (0, True),
        "CTKUSDT": (0, True),
    }


def test_unknown_input(capsys, tmp_path):
    bogus = tmp_path / "bogus.gz"
    bogus.write_bytes(gzip.compress(b"not a recording\n"))
    code, out, err = verify_books(capsys, bogus)
    assert (code, out) == (2, [])
    assert err.startswith(f"arbscan verify-books: {bogus}: not a recording in a known format (hftbacktest, cryptofeed")
    assert err.count("\n") == 1


def test_forced_market(capsys, tmp_path):
    """--venue/--market override detection: spot frames forced as USD-M lack pu and are refused (exit 2)."""
    code, lines, _ = verify_books(capsys, "--venue", "binance", "--market", "spot", CF_SPOT_WS)
    assert code == 0
    assert len(lines) == 5
    code, _, err = verify_books(capsys, "--venue", "binance", "--market", "usdm", CF_SPOT_WS)
    assert code == 2
    assert "futures depthUpdate without pu" in err
