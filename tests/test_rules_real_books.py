"""perp_spot_basis on REAL books: Binance spot and USD-M BTCUSDT REST snapshots recorded 2024-08-08 23:54 UTC."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from feeds.book import OrderBook
from feeds.recordings import first_rest_snapshot, rest_snapshot_book
from rules import BasisDirection, PerpSpotBasisCandidate, Reason, evaluate
from scanner.market import StaticMarket
from tests.rules_fixtures import (
    BIN_PERP,
    BIN_SPOT,
    DATA,
    HOUR_MS,
    MS,
    funding,
    template,
)

SPOT = DATA / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
USDM = DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
NEXT_FUNDING_MS = 1_723_161_600_000  # 2024-08-09 00:00 UTC, Binance's 8-hourly schedule


def walk(levels: list[list[str]], *, quote: F | None = None, base: F | None = None) -> tuple[F, F]:
    """Independent exact depth walk over the snapshot's strings: (base filled, quote filled)."""
    got_base = got_quote = F(0)
    for price_s, qty_s in levels:
        price, qty = F(price_s), F(qty_s)
        if quote is not None and got_quote + price * qty >= quote:
            return got_base + (quote - got_quote) / price, quote
        if base is not None and got_base + qty >= base:
            return base, got_quote + (base - got_base) * price
        got_base += qty
        got_quote += price * qty
    raise AssertionError("the snapshot is too thin for this test")


def real_market() -> tuple[StaticMarket, dict[str, list[list[str]]], dict[str, list[list[str]]], int, int]:
    spot_ns, _ = first_rest_snapshot(SPOT)
    usdm_ns, _ = first_rest_snapshot(USDM)
    # Local receive times of the recording, moved onto a monotonic-looking origin (only differences matter).
    spot_book, spot = rest_snapshot_book(SPOT, recv_ns=spot_ns - spot_ns + 10_000 * MS)
    perp_book, perp = rest_snapshot_book(USDM, recv_ns=usdm_ns - spot_ns + 10_000 * MS)
    now_ns = perp_book.recv_ns + 100 * MS
    now_ms = int(perp["E"])
    market = StaticMarket(
        books={BIN_SPOT: spot_book, BIN_PERP: perp_book},
        fundings={BIN_PERP: funding(0.0001, interval_h=8, next_ms=NEXT_FUNDING_MS)},
    )
    return market, spot, perp, now_ns, now_ms


def test_snapshot_books_are_real_and_sane():
    """The two REST snapshots load through OrderBook.apply, are not crossed, and the perp trades below spot."""
    market, spot, perp, _, _ = real_market()
    spot_book, perp_book = market.books[BIN_SPOT], market.books[BIN_PERP]
    assert isinstance(spot_book, OrderBook) and not spot_book.is_crossed() and not perp_book.is_crossed()
    assert spot_book.best_bid_price() == float(spot["bids"][0][0]) == 61837.63
    assert perp_book.best_ask_price() == float(perp["asks"][0][0])
    spot_mid = (spot_book.best_bid_price() + spot_book.best_ask_price()) / 2
    perp_mid = (perp_book.best_bid_price() + perp_book.best_ask_price()) / 2
    # data/SOURCES.md: over the shared window the USD-M mid sat 2.3-5.5 bps below spot; at the two
    # start-up snapshots (1.1 s apart) it is 6.05 bps below.
    assert (spot_mid - perp_mid) / spot_mid * 1e4 == pytest.approx(6.0454, abs=1e-3)


@pytest.mark.parametrize("size_usd", [1_000.0, 9_500.0])
def test_long_spot_short_perp_on_real_books(size_usd: float):
    """Cash and carry on the real books: VWAPs, gross, fees and funding match an independent exact walk."""
    market, spot, perp, now_ns, now_ms = real_market()
    cand = PerpSpotBasisCandidate(id="real", spot=BIN_SPOT, perp=BIN_PERP, size_usd=size_usd, horizon_ms=8 * HOUR_MS)
    d = evaluate(cand, market, template(), now_ns=now_ns, now_ms=now_ms)

    q, n = walk(spot["asks"], quote=F(size_usd))
    _, perp_quote = walk(perp["bids"], base=q)
    gross = (perp_quote / q - n / q) / (n / q) * 10_000
    fees = (F(10, 10_000) * n * 2 + F(5, 10_000) * perp_quote * 2) / n * 10_000  # template taker, round trip
    # now = 23:54:16.5 UTC: the 00:00 settlement is inside (now, now + 8 h], 08:00 is 5.7 min after its end.
    # The short perp receives 1 bp once.
    funding_bps = F(1, 10_000) * 1 * perp_quote / n * 10_000
    spot_leg, perp_leg = d.legs
    assert spot_leg.vwap == pytest.approx(float(n / q), rel=1e-12)
    assert perp_leg.vwap == pytest.approx(float(perp_quote / q), rel=1e-12)
    assert spot_leg.top_price == float(spot["asks"][0][0]) and perp_leg.top_price == float(perp["bids"][0][0])
    assert d.gross_bps == pytest.approx(float(gross), abs=1e-6)
    assert d.fees_bps == pytest.approx(float(fees), abs=1e-9)
    assert perp_leg.funding is not None and perp_leg.funding.settlements == 1
    assert d.funding_bps == pytest.approx(float(funding_bps), abs=1e-9)
    assert d.net_bps == d.gross_bps - d.fees_bps + d.funding_bps - d.borrow_bps
    # The perp trades below spot: buying spot and selling the perp loses the basis and the spread.
    assert d.gross_bps < -2.3 and d.primary_reason is Reason.NO_GROSS_EDGE
    assert d.reasons == (Reason.NO_GROSS_EDGE, Reason.BELOW_MIN_EDGE)
    assert 0.0 < spot_leg.book_age_ms < 5_000.0 and 0.0 < d.leg_skew_ms < 2_000.0
    assert d.slippage_bps >= 0.0 and spot_leg.levels >= 1


def test_reverse_basis_on_real_books_is_positive_gross_but_fee_dominated():
    """Shorting spot against a long perp captures the basis, but template taker fees eat it."""
    market, spot, perp, now_ns, now_ms = real_market()
    cand = PerpSpotBasisCandidate(
        id="real-rev",
        spot=BIN_SPOT,
        perp=BIN_PERP,
        size_usd=5_000.0,
        horizon_ms=8 * HOUR_MS,
        direction=BasisDirection.SHORT_SPOT_LONG_PERP,
    )
    d = evaluate(cand, market, template(), now_ns=now_ns, now_ms=now_ms)
    q, spot_quote = walk(spot["bids"], quote=F(5_000))
    _, n = walk(perp["asks"], base=q)
    gross = (spot_quote - n) / n * 10_000
    assert d.gross_bps == pytest.approx(float(gross), abs=1e-6) and d.gross_bps > 0.0
    assert d.borrow_usd == pytest.approx(5_000.0) and d.borrow_bps == pytest.approx(0.1 * 8 * 5_000.0 / float(n))
    assert d.primary_reason is Reason.FEE_DOMINATED
