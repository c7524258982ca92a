"""Levels no book can hold (NaN, infinite, zero or negative prices; NaN, infinite or negative quantities)
are refused by every venue protocol, on real recorded frames with one value changed, and by the funding
parsers; the compiled check agrees with its Python reference on every kind of level.

Parsing alone lets them through: ``float("nan")``, ``float("-1")`` and msgspec's string-to-float all
succeed. What reaches a book must not: a NaN key can never be removed again, a negative quantity fills
negative amounts, an infinite price makes every edge infinite.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds import _levels_py
from feeds.book import Side
from feeds.bybit.protocol import BybitProtocol
from feeds.csvbook import CsvBookProtocol
from feeds.errors import MalformedFrame, RecordingError
from feeds.instruments import Market, Venue
from feeds.kraken.v1 import KrakenV1Protocol
from feeds.kraken.v2 import KrakenV2Protocol
from feeds.levels import check_levels, levels_problem
from feeds.okx.protocol import OkxProtocol
from feeds.recordings import FrameKind, open_recordings, rest_snapshot_book
from feeds.replay.csvbook import row_frame
from feeds.sync import SyncState
from feeds.updates import BookDelta, BookSnapshot, Resubscribe
from feeds.venues import detect
from feeds.verify import BookVerifier
from tests.engine_fixtures import btc_recordings, csv_recordings
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
def test_check_levels_names_the_book_and_the_first_bad_level(bids, asks, reason):
    with pytest.raises(MalformedFrame, match=f"^okx: malformed frame: okx:spot:X: {reason}") as info:
        check_levels(bids, asks, key="okx:spot:X", venue="okx", sample=b"frame")
    assert (info.value.key, info.value.venue, info.value.sample) == ("okx:spot:X", "okx", b"frame")
    assert levels_problem(bids, asks) == info.value.reason.removeprefix("okx:spot:X: ")


def test_zero_and_negative_zero_quantities_remove_a_level_and_pass():
    bids, asks = [(1.0, 0.0), (0.5, -0.0), (0.25, 3.0)], [[2.0, 0.0]]  # a [price, qty] list is a pair too
    check_levels(bids, asks, key="k", venue="v")  # type: ignore[arg-type]
    assert levels_problem(bids, asks) == ""  # type: ignore[arg-type]


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


def _refused(receive, frame: bytes, old: bytes, new: bytes, reason: str, key: str) -> MalformedFrame:  # noqa: PLR0917
    """``frame`` decodes; with ``old`` replaced by ``new`` it is refused for ``reason``, naming book ``key``."""
    assert old in frame
    good = receive(frame)
    assert good and all(isinstance(u, BookSnapshot | BookDelta) for u in good)
    with pytest.raises(MalformedFrame, match=f"malformed frame: {key}: {reason}") as info:
        receive(frame.replace(old, new, 1))
    assert info.value.key == key  # the feed resyncs that book: its update is lost
    return info.value


def test_bybit_snapshot_with_a_nan_bid():
    frame = message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"')
    error = _refused(
        lambda f: BybitProtocol(Market.LINEAR, depth=1).receive(f, 1).updates,
        frame,
        b'"b":[["0.6131","17.9"]]',
        b'"b":[["nan","17.9"]]',
        r"bid level 0 \(nan, 17.9\): the price must be a finite number above 0",
        "bybit:linear:BANDUSDT",
    )
    assert error.venue == "bybit" and error.sample.startswith(b'{"topic":"orderbook.1.BANDUSDT"')


def test_a_refused_bybit_delta_resyncs_its_book():
    """Bybit's ``u`` does not chain: a lost delta would not show as a gap, and the book would keep a level
    the delta removed. The refusal itself resyncs the book (found by review)."""
    band = "bybit:linear:BANDUSDT"
    frame = message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"')  # a real push, re-typed as a delta
    proto = BybitProtocol(Market.LINEAR, depth=50)
    sync = proto.new_sync(band)
    (snapshot,) = proto.receive(frame, 1).updates
    assert isinstance(snapshot, BookSnapshot) and sync.on_snapshot(snapshot) == []
    delta = frame.replace(b'"type":"snapshot"', b'"type":"delta"').replace(b'"u":24042997', b'"u":24042998')
    removal = delta.replace(b'"b":[["0.6131","17.9"]]', b'"b":[["0.6131","0"],["0.6130","nan"]]')
    with pytest.raises(MalformedFrame) as info:
        proto.receive(removal, 2)
    assert sync.lose_update() == [Resubscribe(band)] and info.value.key == band
    assert sync.state is SyncState.RESYNC and sync.stats.gaps == 1 and sync.book.best_bid() is None
    assert sync.lose_update() == []  # not live: it waits for the snapshot anyway


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'["30249.4","0","0","0"]', b'["30249.4","-1","0","0"]', r"ask level 0 \(30249.4, -1.0\): the quantity"),
        (b'["30182.6","452","0","1"]', b'["inf","452","0","1"]', r"bid level 0 \(inf, 452.0\): the price"),
    ],
)
def test_okx_update_with_a_bad_level(old, new, reason):
    frame = message(OKX_WS, b'"action":"update"')
    key = "okx:futures:BTC-USD-220527"
    error = _refused(lambda f: OkxProtocol(checksum=False).receive(f, 1).updates, frame, old, new, reason, key)
    assert error.venue == "okx"


def test_okx_rest_snapshot_with_a_nan_quantity():
    body = b'{"code":"0","msg":"","data":[{"asks":[["12","1","0","1"]],"bids":[["9","1","0","1"]],"ts":"5","seqId":7}]}'
    proto = OkxProtocol()
    assert proto.parse_snapshot("okx:spot:BTC-USDT", body, 1).asks == [(12.0, 1.0)]
    with pytest.raises(MalformedFrame, match=r"okx:spot:BTC-USDT: bid level 0 \(9.0, nan\)"):
        proto.parse_snapshot("okx:spot:BTC-USDT", body.replace(b'["9","1"', b'["9","nan"', 1), 1)


def test_kraken_v1_snapshot_and_update_with_bad_levels():
    snapshot = message(KRAKEN_WS, b'"as":')
    first_ask = snapshot[snapshot.index(b'"as":[[') + 7 :].split(b'"', 2)[1]
    pair = snapshot.rsplit(b'"', 2)[1].decode()
    _refused(
        lambda f: KrakenV1Protocol().receive(f, 1).updates,
        snapshot,
        b'[["' + first_ask + b'"',
        b'[["-' + first_ask + b'"',
        rf"ask level 0 \(-{float(first_ask)!r}, [0-9.e-]+\): the price",
        f"kraken:spot:{pair}",
    )
    update = message(KRAKEN_WS, b'"b":[')
    _refused(
        lambda f: KrakenV1Protocol().receive(f, 1).updates,
        update,
        b'"5.00000000"',
        b'"NaN"',
        r"bid level 0 \(354.15, nan\): the quantity",
        "kraken:spot:XMR/USD",
    )


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (b'["354.15000000","5.00000000","inf"]', r"level \[.*'inf'\]: timestamp 'inf' is no time"),
        (b'["354.15000000","5.00000000","1e400"]', r"level \[.*'1e400'\]: timestamp '1e400' is no time"),
        (b'{"x":1}', r"level \{'x': 1\} is not \[price, volume, timestamp, ...\]"),
        (b'"354.15000000"', r"level '354.15000000' is not \[price, volume, timestamp, ...\]"),
        (b'["354.15000000","5.00000000"]', r"level \['354.15000000', '5.00000000'\] is not \[price, volume"),
    ],
)
def test_kraken_v1_odd_rows_are_malformed_not_a_crash(new, reason):
    """Each of these once escaped as OverflowError or KeyError, or parsed a string as a level (found by
    review): the read loop only survives MalformedFrame."""
    update = message(KRAKEN_WS, b'"b":[')
    old = b'["354.15000000","5.00000000","1618678133.365913"]'
    assert old in update
    with pytest.raises(MalformedFrame, match=f"book-1000 XMR/USD: b: {reason}"):
        KrakenV1Protocol().receive(update.replace(old, new, 1), 1)


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
        r"bid level 0 \(45283.5, -0.1\): the quantity",
        "kraken:spot:BTC/USD",
    )


def test_csv_replay_snapshot_with_a_negative_price_is_refused_without_a_resync():
    """Every csv-replay frame is a whole snapshot: a refused one loses nothing the next one does not
    replace, so its live book is not resynced (its rules count as chained)."""
    frame = next(iter(csv_recordings()[0].frames())).payload
    old, new = b'"asks":[[27.101,', b'"asks":[[-27.101,'
    assert old in frame
    protocol = CsvBookProtocol(Venue.BINANCE)
    with pytest.raises(MalformedFrame, match=r"binance:spot:LINKUSDT: ask level 0 \(-27.101, 21.079\): the price"):
        protocol.receive(frame.replace(old, new, 1), 1)
    with pytest.raises(MalformedFrame) as info:
        protocol.receive(frame.replace(old, new, 1), 1)
    assert (info.value.key, info.value.venue, info.value.sample) == (
        "binance:spot:LINKUSDT",
        "csv-replay",
        frame.replace(old, new, 1)[:200],
    )
    sync = protocol.new_sync(info.value.key)
    (snapshot,) = protocol.receive(frame, 2).updates
    assert isinstance(snapshot, BookSnapshot) and sync.on_snapshot(snapshot) == []
    assert sync.state is SyncState.LIVE and sync.lose_update() == [] and sync.state is SyncState.LIVE


def test_verify_books_handles_a_refused_diff_as_the_feed_does():
    """Offline rebuilds follow the live feed. Kraken's arrival numbers do not chain: the refused diff's
    book asks for its snapshot again at once. Binance's ids chain: the refusal changes nothing by itself,
    and the next diff shows the gap."""
    (kraken,) = open_recordings([KRAKEN_WS]).recordings
    verifier = BookVerifier(detect(kraken))
    update = message(KRAKEN_WS, b'"b":[')
    for frame in kraken.frames():
        if frame.payload == update:
            sync = verifier.syncs["kraken:spot:XMR/USD"]
            assert sync.state is SyncState.LIVE and verifier.resubscribe_requests == 0
            verifier.feed(dataclasses.replace(frame, payload=update.replace(b'"5.00000000"', b'"NaN"')))
            assert verifier.bad_count == 1 and "nan" in verifier.bad_records[0].reason
            assert sync.state is SyncState.RESYNC and sync.stats.gaps == 1 and verifier.resubscribe_requests == 1
            break
        verifier.feed(frame)
    else:
        raise AssertionError("the update was not found")

    binance = btc_recordings()[0]  # Binance spot BTCUSDT
    verifier = BookVerifier(detect(binance))
    key, depth_seen = "binance:spot:BTCUSDT", 0
    for frame in binance.frames():
        if frame.kind is FrameKind.WS and b"@depth" in frame.payload[:40]:
            depth_seen += 1
            if depth_seen == 50:  # refused, and lost: the next diff does not chain
                sync = verifier.syncs[key]
                bad = re.sub(rb'\[\["[0-9.]+"', b'[["nan"', frame.payload, count=1)
                verifier.feed(dataclasses.replace(frame, payload=bad))
                assert sync.state is SyncState.LIVE and sync.stats.gaps == 0 and key not in verifier.pending
                continue
            if depth_seen == 51:
                verifier.feed(frame)
                assert sync.state is SyncState.RESYNC and sync.stats.gaps == 1 and key in verifier.pending
                break
        verifier.feed(frame)
    assert depth_seen == 51


@pytest.mark.parametrize("price", ["inf", "1e400", "nan", "1_000", " 27.1", "-27.1", "0", "0x1p4", "27.", "027.1"])
def test_csv_series_rows_with_a_price_json_cannot_carry_name_the_file_and_line(price):
    """The csv-replay series are copied into JSON frames verbatim: a value that float() takes but that is
    not a plain positive decimal fails at load, with file and line, not as a garbled frame later."""
    source = csv_recordings()[0].paths[0]
    with source.open() as lines:
        next(lines)
        row = next(lines).rstrip("\n").split(",")
    _, frame = row_frame(row, 0, str(source), 2)
    assert frame.startswith(b'{"type":"snapshot","venue":"binance","symbol":"LINKUSDT"')
    row[2] = price
    with pytest.raises(RecordingError, match=rf"{re.escape(str(source))}.*2.*level '{re.escape(price)}' x"):
        row_frame(row, 0, str(source), 2)


@pytest.mark.parametrize(
    ("receive", "frame", "old", "new", "key"),
    [
        (
            lambda f: BybitProtocol(Market.LINEAR, depth=1).receive(f, 1),
            message(BYBIT_LINEAR_WS, b'"topic":"orderbook.1.BANDUSDT"'),
            b'"17.9"',
            b'"17.9x"',
            "bybit:linear:BANDUSDT",
        ),
        (
            lambda f: OkxProtocol(checksum=False).receive(f, 1),
            message(OKX_WS, b'"action":"update"'),
            b'"ts":"1652459225464"',
            b'"ts":"1.2.3"',
            "okx:futures:BTC-USD-220527",
        ),
        (
            lambda f: KrakenV1Protocol().receive(f, 1),
            message(KRAKEN_WS, b'"b":['),
            b'"5.00000000"',
            b'"5.0x"',
            "kraken:spot:XMR/USD",
        ),
        (
            lambda f: KrakenV1Protocol().receive(f, 1),
            message(KRAKEN_WS, b'"b":['),
            b'"1618678133.365913"',
            b'"inf"',
            "kraken:spot:XMR/USD",
        ),
        (
            lambda f: KrakenV2Protocol().receive(f, 1),
            b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":0,'
            b'"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
            b'"2023-10-06T17:35:55.440295Z"',
            b'"yesterday"',
            "kraken:spot:BTC/USD",
        ),
    ],
)
def test_a_book_frame_refused_for_any_reason_names_its_book(receive, frame, old, new, key):
    """Not only a bad level: a book frame refused for anything once its book is known loses that book's
    changes, so the error names it and the feed resyncs it (found by review); the sample is the frame."""
    assert old in frame
    receive(frame)
    bad = frame.replace(old, new, 1)
    with pytest.raises(MalformedFrame) as info:
        receive(bad)
    assert info.value.key == key and info.value.sample == bad[:200]


def test_a_rest_snapshot_of_a_recording_with_a_bad_level_names_the_file(tmp_path):
    """The hftbacktest reader's first REST snapshot goes through the same check (bench and tests use it)."""
    good = '{"lastUpdateId":7,"bids":[["2.0","1.0"]],"asks":[["3.0","1.0"]]}'
    path = tmp_path / "btcusdt_20240808.gz"
    for text, expected in ((good, None), (good.replace('"1.0"]]}', '"-1"]]}'), "ask level 0 (3.0, -1.0)")):
        with gzip.open(path, "wt") as out:
            out.write(f"1723161253937085768 {text}\n")
        if expected is None:
            book, _ = rest_snapshot_book(path, recv_ns=1)
            assert book.levels(Side.ASK) == [(3.0, 1.0)] and book.last_id == 7
        else:
            with pytest.raises(RecordingError, match=re.escape(f"REST depth snapshot: {expected}")):
                rest_snapshot_book(path, recv_ns=1)
