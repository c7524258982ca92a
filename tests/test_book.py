"""The order book: levels, top of book, ticker overlay, depth walk, truncation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.book import OrderBook, Side
from feeds.instruments import ContractType


def make_book(**kwargs: object) -> OrderBook:
    book = OrderBook("binance:spot:BTCUSDT", **kwargs)  # type: ignore[arg-type]
    book.apply(
        [(100.0, 1.0), (99.0, 2.0), (98.0, 5.0)],
        [(101.0, 1.5), (102.0, 3.0), (104.0, 10.0)],
        last_id=10,
        venue_ms=1_000,
        recv_ns=5,
    )
    return book


def test_top_of_book_and_removal():
    """Best levels are read from the sorted ends; quantity 0 removes a level."""
    book = make_book()
    assert book.best_bid() == (100.0, 1.0)
    assert book.best_ask() == (101.0, 1.5)
    book.apply([(100.0, 0.0), (99.5, 4.0)], [(101.0, 0.0)], last_id=11, venue_ms=1_001, recv_ns=6)
    assert book.best_bid() == (99.5, 4.0)
    assert book.best_ask() == (102.0, 3.0)
    assert book.levels(Side.BID) == [(99.5, 4.0), (99.0, 2.0), (98.0, 5.0)]
    assert (book.last_id, book.venue_ms, book.recv_ns) == (11, 1_001, 6)


def test_removing_an_absent_level_is_harmless():
    """Binance documents that removing a level you do not have is normal."""
    book = make_book()
    book.apply([(50.0, 0.0)], [], last_id=11, venue_ms=0, recv_ns=0)
    assert book.depth() == (3, 3)


def test_walk_buy_by_base_and_by_quote():
    """Buying walks asks; VWAP = quote / base over the consumed levels."""
    book = make_book()
    fill = book.walk(Side.ASK, base=2.0)
    # 1.5 @ 101 + 0.5 @ 102 = 151.5 + 51 = 202.5 -> vwap 101.25
    assert fill.complete and fill.base == 2.0 and fill.quote == pytest.approx(202.5, abs=1e-12)
    assert fill.vwap == pytest.approx(101.25, abs=1e-12) and fill.top_price == 101.0 and fill.levels == 2
    fill = book.walk(Side.ASK, quote=151.5 + 306.0)  # exactly the first two levels
    assert fill.complete and fill.base == pytest.approx(4.5, abs=1e-12) and fill.levels == 2


def test_walk_reports_insufficient_depth():
    """A walk past the last level is incomplete and reports what it could fill."""
    book = make_book()
    fill = book.walk(Side.BID, base=10.0)
    assert not fill.complete
    assert fill.base == 8.0 and fill.quote == 100.0 + 198.0 + 490.0
    assert fill.vwap == pytest.approx(788.0 / 8.0, abs=1e-12)


def test_walk_on_empty_side_is_nan_and_incomplete():
    """An empty side has no price: nan VWAP, nothing filled."""
    book = OrderBook("k")
    fill = book.walk(Side.ASK, base=1.0)
    assert not fill.complete and fill.base == 0.0 and math.isnan(fill.vwap)
    assert math.isnan(book.best_bid_price()) and not book.is_crossed()


def test_walk_rejects_bad_arguments():
    """Exactly one positive amount is required."""
    book = make_book()
    with pytest.raises(ValueError, match="exactly one"):
        book.walk(Side.ASK)
    with pytest.raises(ValueError, match="positive"):
        book.walk(Side.ASK, base=0.0)


def test_ticker_overlay_newer_than_diffs():
    """A newer ticker replaces the top until a diff at or past its id arrives; older ones are ignored."""
    book = make_book()
    assert not book.set_top(10, (100.0, 1.0), (101.0, 1.5), venue_ms=0, recv_ns=0)  # not newer
    assert book.set_top(12, (100.5, 0.5), (100.8, 0.25), venue_ms=1_002, recv_ns=7)
    assert book.best_bid() == (100.5, 0.5) and book.best_ask() == (100.8, 0.25)
    # Walk: ticker level first, then only book levels strictly worse than it.
    fill = book.walk(Side.BID, base=1.0)
    assert fill.top_price == 100.5 and fill.vwap == pytest.approx((0.5 * 100.5 + 0.5 * 100.0) / 1.0, abs=1e-12)
    assert not book.set_top(11, (1.0, 1.0), (2.0, 1.0), venue_ms=0, recv_ns=0)  # behind the overlay
    book.apply([], [], last_id=12, venue_ms=1_003, recv_ns=8)  # the diff catches up: overlay dropped
    assert book.best_bid() == (100.0, 1.0)


def test_ticker_overlay_skips_levels_it_supersedes():
    """Book levels at or better than the ticker's price are not walked while the overlay is active."""
    book = make_book()
    book.set_top(12, (99.0, 0.5), (102.0, 1.0), venue_ms=0, recv_ns=0)
    assert book.walk(Side.BID, base=3.0).levels == 2  # 99.0 (ticker) then 98.0; 100.0 is gone
    assert book.walk(Side.BID, base=3.0).vwap == pytest.approx((0.5 * 99.0 + 2.5 * 98.0) / 3.0, abs=1e-12)


def test_crossed_book_detection():
    """Bid at or above ask is crossed."""
    book = make_book()
    assert not book.is_crossed()
    book.apply([(101.0, 1.0)], [], last_id=11, venue_ms=0, recv_ns=0)
    assert book.is_crossed()


def test_linear_and_inverse_contracts_walk_in_base_units():
    """Contract books convert contracts to base (linear) or from quote value (inverse)."""
    linear = make_book(contract_type=ContractType.LINEAR, contract_size=0.01)
    fill = linear.walk(Side.ASK, base=0.015)  # ask 101 has 1.5 contracts = 0.015 base
    assert fill.complete and fill.levels == 1 and fill.vwap == 101.0
    inverse = make_book(contract_type=ContractType.INVERSE, contract_size=100.0)
    fill = inverse.walk(Side.ASK, quote=150.0)  # 1.5 contracts x 100 USD = 150 USD at 101
    assert fill.complete and fill.levels == 1 and fill.base == pytest.approx(150.0 / 101.0, abs=1e-15)


def test_truncate_keeps_best_levels_and_raw_strings():
    """Truncation keeps the best n per side, with their exact strings."""
    book = OrderBook("kraken:spot:XBT/USD", keep_raw=True)
    book.apply(
        [(100.0, 1.0), (99.0, 2.0), (98.0, 5.0)],
        [(101.0, 1.5), (102.0, 3.0)],
        last_id=1,
        venue_ms=0,
        recv_ns=0,
        raw_bids=[("100.0", "1.000"), ("99.0", "2.000"), ("98.0", "5.000")],
        raw_asks=[("101.0", "1.500"), ("102.0", "3.000")],
    )
    book.truncate(2)
    assert book.levels(Side.BID) == [(100.0, 1.0), (99.0, 2.0)]
    assert book.raw_levels(Side.BID, 10) == [("100.0", "1.000"), ("99.0", "2.000")]
    assert book.raw_levels(Side.ASK, 1) == [("101.0", "1.500")]


prices = st.integers(min_value=1, max_value=60).map(float)
qtys = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 7.0])
updates = st.lists(st.tuples(st.lists(st.tuples(prices, qtys)), st.lists(st.tuples(prices, qtys))), max_size=30)


@given(updates)
def test_book_matches_a_plain_dict_model(batches):
    """After any sequence of updates the sorted levels equal a naive dict model's."""
    book = OrderBook("k")
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for n, (b, a) in enumerate(batches):
        book.apply(b, a, last_id=n, venue_ms=0, recv_ns=0)
        for model, levels in ((bids, b), (asks, a)):
            for p, q in levels:
                if q == 0.0:
                    model.pop(p, None)
                else:
                    model[p] = q
    assert book.levels(Side.BID) == sorted(bids.items(), reverse=True)
    assert book.levels(Side.ASK) == sorted(asks.items())
    if asks:
        assert book.best_ask() == min(asks.items())
