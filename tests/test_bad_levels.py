"""Levels no book can hold (NaN, infinite, zero or negative prices; NaN, infinite or negative quantities)
are refused by every venue protocol, on real recorded frames with one value changed, and by the funding
parsers; the compiled check agrees with its Python reference on every kind of level.

Parsing alone lets them through: ``float("nan")``, ``float("-1")`` and msgspec's string-to-float all
succeed. What reaches a book must not: a NaN key can never be removed again, a negative quantity fills
negative amounts, an infinite price makes every edge infinite.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds import _levels_py
from feeds.bybit.protocol import BybitProtocol
from feeds.csvbook import CsvBookProtocol
from feeds.errors import MalformedFrame
from feeds.instruments import Market, Venue
from feeds.kraken.v1 import KrakenV1Protocol
from feeds.kraken.v2 import KrakenV2Protocol
from feeds.levels import check_levels, top_problem
from feeds.okx.protocol import OkxProtocol
from feeds.updates import BookDelta, BookSnapshot
from tests.engine_fixtures import csv_recordings
from tests.venue_fixtures import BYBIT_LINEAR_WS, KRAKEN_WS, OKX_WS, message

# ---- the check itself ----------------------------------------------------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([(NAN, 1.0)], [], r"bid level 0 \(nan, 1.0\): the price must be a finite number above 0"),
        ([(1.0, 1.0), (INF, 1.0)], [], r"bid level 1 \(inf, 1.0\): the price must be"),
        ([], [(2.0, 0.0), (0.0, 1.0)], r"ask level 1 \(0.0, 1.0\): the price must be"),
        ([], [(-0.0, 1.0)], r"ask level 0 \(-0.0, 1.0\): the price must be"),
        ([], [(-2.0, 1.0)], r"ask level 0 \(-2.0, 1.0\): the price must be"),
        ([(1.0, NAN)], [], r"bid level 0 \(1.0, nan\): the quantity must be a finite number of 0 or more"),
        ([(1.0, -INF)], [], r"bid level 0 \(1.0, -inf\): the quantity must be"),
        ([(1.0, -1e-12)], [], r"bid level 0 \(1.0, -1e-12\): the quantity must be"),
        ([(1, 1.0)], [], r"bid level 0 \(1, 1.0\): price and quantity must be floats"),
        ([(1.0, 1.0, 1.0)], [], r"bid level 0 \(1.0, 1.0, 1.0\): not a \(price, quantity\) pair"),
    ],
)
def test_check_levels_names_the_first_bad_level(bids, asks, reason):
    with pytest.raises(ValueError, match=f"^{reason}"):
        check_levels(bids, asks)


def test_zero_and_negative_zero_quantities_remove_a_level_and_pass():
    check_levels([(1.0, 0.0), (0.5, -0.0), (0.25, 3.0)], [[2.0, 0.0]])  # a [price, qty] list is a pair too


def test_top_problem():
    assert top_problem(1.0, 0.0, 2.0, 5.0) is None
    assert top_problem(NAN, 1.0, 2.0, 1.0) == "best bid nan: the price must be a finite number above 0"
    assert top_problem(1.0, 1.0, 2.0, -1.0) == (
        "best ask quantity -1.0: the quantity must be a finite number of 0 or more"
    )


_VALUES = st.sampled_from([1.0, 0.5, 0.0, -0.0, -1.0, NAN, INF, -INF, 1e308, 5e-324, 1, "1.0", None])
_LEVEL = st.one_of(
    st.tuples(_VALUES, _VALUES),
    st.lists(_VALUES, min_size=2, max_size=2),
    st.tuples(_VALUES),
    st.tuples(_VALUES, _VALUES, _VALUES),
    st.floats(),
)


@pytest.mark.skipif(os.environ.get("ARBSCAN_PURE_PYTHON") == "1", reason="compiled loop not installed")
@given(st.lists(_LEVEL, max_size=6))
def test_the_compiled_check_agrees_with_its_reference(levels):
    from feeds import _levels as compiled

    assert compiled.first_bad_level(levels) == _levels_py.first_bad_level(levels)


@pytest.mark.skipif(os.environ.get("ARBSCAN_PURE_PYTHON") == "1", reason="compiled loop not installed")
def test_the_compiled_check_wants_a_list():
    from feeds import _levels as compiled

    with pytest.raises(TypeError, match="levels must be a list, got tuple"):
        compiled.first_bad_level(((1.0, 1.0),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="levels must be a list, got tuple"):
        _levels_py.first_bad_level(((1.0, 1.0),))  # type: ignore[arg-type]


# ---- every venue protocol, on real recorded frames -------------------------------------------------------


def _refused(receive, frame: bytes, old: bytes, new: bytes, reason: str) -> MalformedFrame:
    """``frame`` decodes; with ``old`` replaced by ``new`` it is refused for ``reason``."""
    assert old in frame
    good = receive(frame)
    assert good and all(isinstance(u, BookSnapshot | BookDelta) for u in good)
    with pytest.raises(MalformedFrame, match=reason) as info:
        receive(frame.replace(old, new, 1))
    return info.value


def test_bybit_snapshot_with_a_nan_bid():
    frame = message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"')
    error = _refused(
        lambda f: BybitProtocol(Market.LINEAR, depth=1).receive(f, 1).updates,
        frame,
        b'"b":[["0.6131","17.9"]]',
        b'"b":[["nan","17.9"]]',
        r"orderbook.1.BANDUSDT: bid level 0 \(nan, 17.9\): the price must be a finite number above 0",
    )
    assert error.venue == "bybit"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'["30249.4","0","0","0"]', b'["30249.4","-1","0","0"]', r"ask level 0 \(30249.4, -1.0\): the quantity"),
        (b'["30182.6","452","0","1"]', b'["inf","452","0","1"]', r"bid level 0 \(inf, 452.0\): the price"),
    ],
)
def test_okx_update_with_a_bad_level(old, new, reason):
    frame = message(OKX_WS, b'"action":"update"')
    error = _refused(lambda f: OkxProtocol(checksum=False).receive(f, 1).updates, frame, old, new, reason)
    assert error.venue == "okx"


def test_okx_rest_snapshot_with_a_nan_quantity():
    body = b'{"code":"0","msg":"","data":[{"asks":[["12","1","0","1"]],"bids":[["9","1","0","1"]],"ts":"5","seqId":7}]}'
    proto = OkxProtocol()
    assert proto.parse_snapshot("okx:spot:BTC-USDT", body, 1).asks == [(12.0, 1.0)]
    with pytest.raises(MalformedFrame, match=r"okx:spot:BTC-USDT: REST books: bid level 0 \(9.0, nan\)"):
        proto.parse_snapshot("okx:spot:BTC-USDT", body.replace(b'["9","1"', b'["9","nan"', 1), 1)


def test_kraken_v1_snapshot_and_update_with_bad_levels():
    snapshot = message(KRAKEN_WS, b'"as":')
    first_ask = snapshot[snapshot.index(b'"as":[[') + 7 :].split(b'"', 2)[1]
    _refused(
        lambda f: KrakenV1Protocol().receive(f, 1).updates,
        snapshot,
        b'[["' + first_ask + b'"',
        b'[["-' + first_ask + b'"',
        rf"ask level 0 \(-{float(first_ask)!r}, [0-9.e-]+\): the price",
    )
    update = message(KRAKEN_WS, b'"b":[')
    _refused(
        lambda f: KrakenV1Protocol().receive(f, 1).updates,
        update,
        b'"5.00000000"',
        b'"NaN"',
        r"bid level 0 \(354.15, nan\): the quantity",
    )


def test_kraken_v2_update_with_a_negative_quantity():
    """v2 sends JSON numbers (the documented shape; no v2 capture exists)."""
    frame = (
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.1}],'
        b'"asks":[],"checksum":0,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
    )
    _refused(
        lambda f: KrakenV2Protocol().receive(f, 1).updates,
        frame,
        b'"qty":0.1',
        b'"qty":-0.1',
        r"book: bid level 0 \(45283.5, -0.1\): the quantity",
    )


def test_csv_replay_snapshot_with_a_negative_price():
    frame = next(iter(csv_recordings()[0].frames())).payload
    _refused(
        lambda f: CsvBookProtocol(Venue.BINANCE).receive(f, 1).updates,
        frame,
        b'"asks":[[27.101,',
        b'"asks":[[-27.101,',
        r"binance LINKUSDT snapshot: ask level 0 \(-27.101, 21.079\): the price",
    )
