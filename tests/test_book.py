"""The order book: levels, top of book, ticker overlay, depth walk, truncation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
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
side_update = st.lists(st.tuples(prices, qtys), max_size=12)
updates = st.lists(st.tuples(side_update, side_update), max_size=30)


def _model_walk(levels: list[tuple[float, float]], base: float) -> tuple[int, float]:
    """(levels consumed, quote paid) of a walk for ``base`` over ``levels`` (best first), by the plain model."""
    filled = quote = 0.0
    for n, (price, qty) in enumerate(levels, start=1):
        take = min(qty, base - filled)
        filled += take
        quote += take * price
        if filled >= base:
            return n, quote
    return len(levels), quote


@given(updates, st.sampled_from([4, 7, 256]))
def test_book_matches_a_plain_dict_model(batches, window):
    """After any sequence of updates the sorted levels equal a naive dict model's (whatever the window)."""
    book = OrderBook("k", window=window)
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
        if bids:
            assert book.best_bid() == max(bids.items())
        # The best levels as the window holds them (no widening): a tombstone never shows in it.
        assert book.levels(Side.BID, 2) == sorted(bids.items(), reverse=True)[:2]
        assert book.levels(Side.ASK, 2) == sorted(asks.items())[:2]
        fill = book.walk(Side.ASK, base=9.0)
        levels, quote = _model_walk(sorted(asks.items()), 9.0)
        assert fill.levels == levels
        assert fill.quote == pytest.approx(quote, rel=1e-12)
    assert book.depth() == (len(bids), len(asks))
    assert book.levels(Side.BID) == sorted(bids.items(), reverse=True)
    assert book.levels(Side.ASK) == sorted(asks.items())
    if asks:
        assert book.best_ask() == min(asks.items())


# ---- walk-relevant versions (the engine's skip) ---------------------------------------------------


def test_a_quantity_change_that_still_covers_the_walk_moves_nothing():
    """A walk that stops inside the top ask level needed 1.0 of its 1.5: only less than that matters."""
    book = make_book()
    fill = book.walk(Side.ASK, base=1.0)
    version = book.walk_version(Side.ASK)
    # a bid, a deep ask and less at the top ask, but still more than the walk needed
    book.apply([(100.0, 3.0)], [(101.0, 1.2), (104.0, 2.0)], last_id=11, venue_ms=0, recv_ns=0)
    assert book.walk_version(Side.ASK) == version
    assert book.walk(Side.ASK, base=1.0) == fill
    book.apply([], [(101.0, 0.9)], last_id=12, venue_ms=0, recv_ns=0)  # less than the walk needed
    assert book.walk_version(Side.ASK) == version + 1
    assert book.walk(Side.ASK, base=1.0) != fill


def test_a_bid_quantity_change_that_still_covers_the_walk_moves_nothing():
    """The same rule on the bid side: a sell walk stopping inside the top bid (1.0) needed 0.6 of it."""
    book = make_book()
    fill = book.walk(Side.BID, base=0.6)
    version = book.walk_version(Side.BID)
    book.apply([(100.0, 0.7), (98.0, 1.0)], [(101.0, 9.0)], last_id=11, venue_ms=0, recv_ns=0)
    assert book.walk_version(Side.BID) == version
    assert book.walk(Side.BID, base=0.6) == fill
    book.apply([(100.0, 0.5)], [], last_id=12, venue_ms=0, recv_ns=0)  # less than the walk needed
    assert book.walk_version(Side.BID) == version + 1
    assert book.walk(Side.BID, base=0.6) != fill


def test_a_bump_starts_the_watermark_over():
    """After a relevant change, only walks made since count: an old deep walk no longer widens the watermark."""
    book = make_book()
    book.walk(Side.ASK, base=4.0)  # 101 (1.5) and 2.5 of 102
    book.apply([], [(101.0, 0.0)], last_id=11, venue_ms=0, recv_ns=0)
    version = book.walk_version(Side.ASK)
    book.apply([], [(102.0, 1.0)], last_id=12, venue_ms=0, recv_ns=0)  # no walk since the bump
    assert book.walk_version(Side.ASK) == version
    book.walk(Side.ASK, base=0.5)  # 102 now holds 1.0: needs 0.5 of it
    book.apply([], [(104.0, 1.0)], last_id=13, venue_ms=0, recv_ns=0)  # deeper than any walk since
    assert book.walk_version(Side.ASK) == version
    book.apply([], [(101.5, 1.0)], last_id=14, venue_ms=0, recv_ns=0)  # a better level appears
    assert book.walk_version(Side.ASK) == version + 1


def test_a_ticker_moves_a_walk_version_only_where_the_walk_reads():
    book = make_book()
    book.walk(Side.ASK, base=1.0)
    bid_version, ask_version = book.walk_versions
    assert book.set_top(20, (100.0, 0.2), (101.0, 1.1), venue_ms=0, recv_ns=0)  # ask still covers 1.0
    assert book.walk_versions == [bid_version, ask_version]  # and no walk was made on the bid side
    assert book.set_top(21, (100.0, 0.2), (101.0, 0.5), venue_ms=0, recv_ns=0)
    assert book.walk_versions == [bid_version, ask_version + 1]
    book.walk(Side.ASK, base=1.0)
    assert book.set_top(22, (100.0, 0.2), (100.5, 9.0), venue_ms=0, recv_ns=0)  # a new best ask price
    assert book.walk_versions == [bid_version, ask_version + 2]


def test_a_change_of_book_state_moves_both_walk_versions():
    """Crossed or empty is read from both tops, whichever side a leg walks."""
    book = make_book()
    before = list(book.walk_versions)
    assert book.set_top(20, (101.0, 1.0), (101.0, 1.0), venue_ms=0, recv_ns=0)  # crossed, no walk made
    assert book.walk_versions == [before[0] + 1, before[1] + 1]


# Few prices, so that changes often hit a walked level; bids below asks, so that the book rarely crosses
# (a change of state moves both versions, which would hide a missed bump).
low = st.integers(min_value=1, max_value=6).map(float)
high = st.integers(min_value=7, max_value=12).map(float)
amounts = st.tuples(st.sampled_from([Side.BID, Side.ASK]), st.booleans(), st.sampled_from([0.3, 1.0, 2.5, 9.0]))
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("apply"), st.lists(st.tuples(low, qtys), max_size=4), st.lists(st.tuples(high, qtys), max_size=4)
        ),
        st.tuples(st.just("top"), st.tuples(low, qtys.filter(bool)), st.tuples(high, qtys.filter(bool))),
        st.tuples(st.just("walk"), amounts, st.just(None)),
        st.tuples(st.just("truncate"), st.integers(min_value=1, max_value=5), st.just(None)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(operations, st.sampled_from([4, 256]))
def test_an_unchanged_walk_version_means_an_unchanged_fill(ops, window):
    """The promise the engine's skip rests on, against any sequence of diffs, tickers, truncations and walks."""
    book = OrderBook("k", window=window)
    made: list[tuple[Side, bool, float, int, object]] = []  # every walk made, with the version it saw
    for update_id, (op, x, y) in enumerate(ops, start=1):
        if op == "apply":
            book.apply(x, y, last_id=update_id, venue_ms=0, recv_ns=0)
        elif op == "top":
            book.set_top(update_id, x, y, venue_ms=0, recv_ns=0)
        elif op == "truncate":
            book.truncate(x)
        else:
            side, by_base, amount = x
            fill = book.walk(side, base=amount) if by_base else book.walk(side, quote=amount * 30.0)
            made.append((side, by_base, amount, book.walk_version(side), fill))
        copy = _same_levels(book)  # walked afresh: the book itself answers repeated walks from its memo
        for side, by_base, amount, version, fill in made:
            if book.walk_version(side) == version:
                again = copy.walk(side, base=amount) if by_base else copy.walk(side, quote=amount * 30.0)
                assert repr(again) == repr(fill), (op, side, amount)
                cached = book.walk(side, base=amount) if by_base else book.walk(side, quote=amount * 30.0)
                assert cached is fill or repr(cached) == repr(fill)


def _same_levels(book: OrderBook) -> OrderBook:
    """A new book with ``book``'s levels and ticker overlay."""
    copy = OrderBook("copy")
    copy.apply(book.levels(Side.BID), book.levels(Side.ASK), last_id=book.last_id, venue_ms=0, recv_ns=0)
    overlay = book.overlay()
    if overlay is not None:
        assert copy.set_top(overlay[0], overlay[1], overlay[2], venue_ms=0, recv_ns=0)
    return copy


def test_a_book_deeper_than_its_window_reads_and_walks_every_level():
    """Levels beyond the sorted window live in the dict: reads and walks past the window still see them."""
    book = OrderBook("k", window=4)
    asks = [(100.0 + i, 1.0) for i in range(20)]
    book.apply([(99.0 - i, 1.0) for i in range(20)], asks, last_id=1, venue_ms=0, recv_ns=0)
    assert len(book._asks.window_keys()) <= 8 and not book._asks.complete  # cut back: not the whole side
    book.apply([], [(150.0, 2.0), (100.5, 1.0)], last_id=2, venue_ms=0, recv_ns=0)  # one deep, one in the window
    expected = sorted([*asks, (150.0, 2.0), (100.5, 1.0)])
    fill = book.walk(Side.ASK, base=12.0)  # 12 levels: past the window
    assert (fill.levels, fill.quote) == (12, sum(p for p, _ in expected[:12]))
    assert book.levels(Side.ASK) == expected
    book.apply([], [(150.0, 0.0)], last_id=3, venue_ms=0, recv_ns=0)  # cut back again
    expected.remove((150.0, 2.0))
    for price, _ in expected[:6]:  # take the top away level by level: the window refills from the dict
        book.apply([], [(price, 0.0)], last_id=4, venue_ms=0, recv_ns=0)
        assert book.best_ask() == expected[expected.index((price, 1.0)) + 1]
    assert book.levels(Side.ASK, 3) == expected[6:9]
    assert book.levels(Side.ASK) == expected[6:]
    assert book.depth() == (20, 15)


def test_walks_remembered_between_bumps_stay_bounded():
    """A side that never moves, walked for ever new amounts (a second leg's base), keeps a bounded memo."""
    book = make_book()
    fills = [book.walk(Side.ASK, base=0.001 * (n + 1)) for n in range(1000)]
    assert len(book._walks[1]) <= 64
    assert fills[-1] == book.walk(Side.ASK, base=1.0)  # still exact after the memo was cut
    assert fills[10].base == pytest.approx(0.011) and fills[10].vwap == 101.0


def test_a_diff_repeating_a_price_keeps_the_window_consistent():
    """The window's worst price removed, re-added (below the window), removed again in one diff (a fuzzer
    found it): the second removal must not take another level out of the window."""
    book = OrderBook("k", window=4)
    book.apply([], [(100.0 + i, 1.0) for i in range(12)], last_id=1, venue_ms=0, recv_ns=0)  # window: 100-103
    # The window empties, then its former worst price comes back (below it) and goes again.
    diff = [(100.0, 0.0), (101.0, 0.0), (102.0, 0.0), (103.0, 0.0), (103.0, 5.0), (103.0, 0.0)]
    book.apply([], diff, last_id=2, venue_ms=0, recv_ns=0)
    expected = [(100.0 + i, 1.0) for i in range(4, 12)]
    assert book.best_ask() == expected[0]
    assert book.levels(Side.ASK) == expected
    assert book.walk(Side.ASK, base=5.0).quote == sum(p for p, _ in expected[:5])


def test_new_contract_terms_move_both_walk_versions_and_forget_the_walks():
    book = make_book()
    before = book.walk(Side.ASK, base=1.0)
    versions = list(book.walk_versions)
    book.set_contract_terms(ContractType.LINEAR, 0.01)  # metadata arrived: a level is 0.01 base per contract
    assert book.walk_versions == [versions[0] + 1, versions[1] + 1]
    after = book.walk(Side.ASK, base=1.0)
    assert after != before and not after.complete  # 14.5 contracts x 0.01 = 0.145 base in the whole side
    book.set_contract_terms(ContractType.LINEAR, 0.01)  # the same terms again: nothing moves
    assert book.walk_versions == [versions[0] + 1, versions[1] + 1]

