"""Kraken: checksum vectors, v1 frames of the bundled 2021 capture, truncation, v2 decoding, mismatch."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from feeds.book import OrderBook, Side
from feeds.errors import MalformedFrame
from feeds.kraken import checksum
from feeds.kraken.protocol import KrakenProtocol
from feeds.kraken.v1 import KrakenV1Protocol
from feeds.kraken.v2 import KrakenV2Protocol
from feeds.protocol import Channel, Subscription
from feeds.sync import SyncState
from feeds.updates import BookDelta, BookSnapshot, Control, ControlKind, Resubscribe
from tests.venue_fixtures import KRAKEN_WS, message, messages

# KRAKEN-V1 (exchange-protocols.md §5/§6): the old docs.kraken.com book, every volume 0.00000500.
V1_ASKS = [(f"0.{5005 + 5 * i:05d}", "0.00000500") for i in range(10)]
V1_BID_PRICES = ("0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955")
V1_BIDS = [(p, "0.00000500") for p in (*V1_BID_PRICES, "0.04950")]
# KRAKEN-V2 (same sections): docs.kraken.com spot-ws-book-v2 / book-checksum-v2.
V2_ASKS = [
    ("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"), ("45289.6", "1.54560911"),
    ("45290.2", "0.15890660"), ("45291.8", "1.54553491"), ("45294.7", "0.04454749"), ("45296.1", "0.35380000"),
    ("45297.5", "0.09945542"), ("45299.5", "0.18772827"),
]  # fmt: skip
V2_BIDS = [
    ("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"), ("45281.0", "0.10000000"),
    ("45280.3", "1.54592586"), ("45279.0", "0.07990000"), ("45277.6", "0.03310103"), ("45277.5", "0.30000000"),
    ("45277.3", "1.54602737"), ("45276.6", "0.15445238"),
]  # fmt: skip


def raw_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    book = OrderBook("kraken:spot:T", keep_raw=True)
    levels = lambda side: [(float(p), float(q)) for p, q in side]  # noqa: E731
    book.apply(levels(bids), levels(asks), last_id=1, venue_ms=0, recv_ns=0, raw_bids=bids, raw_asks=asks)
    return book


def test_official_v1_vector():
    """KRAKEN-V1: 974947235, asks before bids, dots and leading zeros removed."""
    book = raw_book(V1_BIDS, V1_ASKS)
    text = checksum.checksum_string(book.raw_levels(Side.BID, 10), book.raw_levels(Side.ASK, 10))
    assert text.startswith("50055005010500") and text.endswith("4950500")
    assert checksum.book_checksum(book) == 974947235


def test_official_v2_vector_and_the_documented_step():
    """KRAKEN-V2: 3310070434; the docs' step "45285.2" + "0.00100000" → "452852100000"."""
    book = raw_book(V2_BIDS, V2_ASKS)
    assert checksum.checksum_string([], [("45285.2", "0.00100000")]) == "452852100000"
    assert checksum.book_checksum(book) == 3310070434


def test_v2_json_numbers_keep_their_trailing_zeros():
    """The v2 vector book sent as JSON numbers (as v2 does) verifies through the protocol and sync."""
    levels = lambda side: ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side)  # noqa: E731
    frame = (
        f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{levels(V2_BIDS)}],'
        f'"asks":[{levels(V2_ASKS)}],"checksum":3310070434}}]}}'
    )
    proto = KrakenV2Protocol(depth=10)
    (snap,) = proto.receive(frame, 1).updates
    assert isinstance(snap, BookSnapshot) and snap.raw_asks is not None
    assert snap.raw_asks[0] == ("45285.2", "0.00100000") and snap.asks[0] == (45285.2, 0.001)
    sync = proto.new_sync(snap.key)
    assert sync.on_snapshot(snap) == [] and sync.stats.checksum_ok == 1 and sync.state is SyncState.LIVE


def test_v1_snapshot_and_update_frames_field_by_field():
    """The recorded XMR/USD snapshot and its first update (one bid, checksum 2583817756)."""
    proto = KrakenV1Protocol()
    snap_frame = message(KRAKEN_WS, b'[992,{"as":')
    (snap,) = proto.receive(snap_frame, 5).updates
    body = orjson.loads(snap_frame)[1]
    assert isinstance(snap, BookSnapshot) and snap.key == "kraken:spot:XMR/USD"
    assert snap.raw_asks is not None and snap.raw_asks[0] == ("354.80000000", "1.40000000")
    assert len(snap.asks) == len(body["as"]) == 429 and len(snap.bids) == len(body["bs"])
    assert snap.venue_ms == round(max(float(r[2]) for r in body["as"] + body["bs"]) * 1000)
    (delta,) = proto.receive(message(KRAKEN_WS, b'[992,{"b":[["354.15000000"'), 6).updates
    assert isinstance(delta, BookDelta)
    assert delta.bids == [(354.15, 5.0)] and delta.raw_bids == [("354.15000000", "5.00000000")] and delta.asks == []
    assert delta.checksum == 2583817756 and delta.venue_ms == 1618678133366 and delta.last_id > snap.last_id


def test_v1_levels_written_with_other_decimals_than_the_books_are_refused() -> None:
    """The recorded XMR/USD snapshot writes prices and volumes with 8 decimals; its first update with the volume's
    point moved (a 10x size the digits-only CRC32 cannot tell) is malformed, naming the book. After a snapshot
    with no levels (a new listing, a halted pair), the first update's decimals are the book's."""
    proto = KrakenV1Protocol()
    proto.receive(message(KRAKEN_WS, b'[992,{"as":'), 5)
    update = message(KRAKEN_WS, b'[992,{"b":[["354.15000000"')
    moved = update.replace(b'"5.00000000"', b'"50.0000000"', 1)
    assert moved != update
    with pytest.raises(MalformedFrame, match="decimals") as info:
        proto.receive(moved, 6)
    assert info.value.key == "kraken:spot:XMR/USD"
    (delta,) = proto.receive(update, 7).updates  # as recorded: accepted
    assert isinstance(delta, BookDelta) and delta.bids == [(354.15, 5.0)]

    empty = KrakenV1Protocol()
    empty.receive(b'[992,{"as":[],"bs":[]},"book-1000","XMR/USD"]', 5)
    (first,) = empty.receive(update, 6).updates
    assert isinstance(first, BookDelta)
    with pytest.raises(MalformedFrame, match="decimals"):
        empty.receive(moved, 7)


def test_v1_update_with_both_sides_in_two_objects():
    """``[id, {"a":...}, {"b":..., "c":...}, name, pair]``: both sides, checksum from the last object."""
    frame = message(KRAKEN_WS, b'[1920,{"a":[["0.042990"')
    (delta,) = KrakenV1Protocol().receive(frame, 0).updates
    assert isinstance(delta, BookDelta)
    assert (
        delta.asks == [(0.04299, 364630.28272081)] and delta.bids == [(0.04299, 0.0)] and delta.checksum == 4105471083
    )


def test_events_of_the_capture():
    proto = KrakenV1Protocol()
    status = proto.receive(message(KRAKEN_WS, b'"subscriptionStatus","pair":"XMR/USD"'), 0)
    assert status.updates == [Control(ControlKind.SUBSCRIBED, "book-1000", "kraken:spot:XMR/USD")]
    assert proto.receive(message(KRAKEN_WS, b'{"event":"heartbeat"}'), 0).updates == [Control(ControlKind.HEARTBEAT)]
    assert proto.receive(b'{"event":"pong","reqid":7}', 0).updates == [Control(ControlKind.PONG)]


def test_book_is_truncated_to_the_channel_depth_after_every_update():
    """A 10-deep book: an insert at the top pushes the 10th level out (no qty-0 comes for it)."""
    sync = KrakenV1Protocol(depth=10).new_sync("kraken:spot:T")
    bids = [(f"{100 - i}.0", "1.0") for i in range(10)]
    sync.on_snapshot(
        BookSnapshot(
            "kraken:spot:T",
            1,
            [(float(p), 1.0) for p, _ in bids],
            [(200.0, 1.0)],
            raw_bids=bids,
            raw_asks=[("200.0", "1.0")],
        )
    )
    sync.on_delta(BookDelta("kraken:spot:T", 2, 2, None, [(100.5, 2.0)], [], raw_bids=[("100.5", "2.0")], raw_asks=[]))
    assert sync.book.depth() == (10, 1) and sync.book.levels(Side.BID)[-1] == (92.0, 1.0)


def test_every_checksum_of_the_capture_verifies():
    """Kraken acceptance: every message carrying ``c`` verifies (4269 of 4269), truncated to 1000."""
    proto = KrakenProtocol("wss://ws.kraken.com")  # the v1 endpoint: what the capture speaks
    syncs = {}
    carried = 0
    for recv_ns, frame in messages(KRAKEN_WS):
        carried += b'"c":"' in frame
        for u in proto.receive(frame, recv_ns).updates:
            if isinstance(u, BookSnapshot | BookDelta):
                sync = syncs.get(u.key) or syncs.setdefault(u.key, proto.new_sync(u.key))
                assert (sync.on_snapshot(u) if isinstance(u, BookSnapshot) else sync.on_delta(u)) == []
    assert carried == 4269
    assert sum(s.stats.checksum_ok for s in syncs.values()) == carried
    assert sum(s.stats.checksum_failed for s in syncs.values()) == 0 and len(syncs) == 10
    assert all(s.truncate_depth == 1000 and s.state is SyncState.LIVE for s in syncs.values())


def test_a_corrupted_level_fails_the_checksum_and_resubscribes_that_book_only():
    """One volume string changed in a recorded update: mismatch, that book resubscribed, others live."""
    proto = KrakenProtocol("wss://ws.kraken.com")
    syncs = {}
    target = message(KRAKEN_WS, b'[992,{"b":[["354.15000000"')
    actions = []
    for recv_ns, recorded in messages(KRAKEN_WS)[:200]:
        frame = recorded.replace(b'"5.00000000"', b'"5.00000001"') if recorded == target else recorded
        for u in proto.receive(frame, recv_ns).updates:
            if isinstance(u, BookSnapshot | BookDelta):
                sync = syncs.get(u.key) or syncs.setdefault(u.key, proto.new_sync(u.key))
                actions += sync.on_snapshot(u) if isinstance(u, BookSnapshot) else sync.on_delta(u)
    assert actions == [Resubscribe("kraken:spot:XMR/USD")]
    xmr = syncs.pop("kraken:spot:XMR/USD")
    assert xmr.stats.checksum_failed == 1 and xmr.state is SyncState.RESYNC
    assert all(s.state is SyncState.LIVE and s.stats.checksum_failed == 0 for s in syncs.values())


def test_endpoint_decides_what_we_send():
    subs = [Subscription("XBT/USD", Channel.BOOK)]
    v1 = orjson.loads(KrakenProtocol("wss://ws.kraken.com").subscribe(subs)[0])
    v2 = orjson.loads(KrakenProtocol("wss://ws.kraken.com/v2").subscribe([Subscription("BTC/USD", Channel.BOOK)])[0])
    assert v1 == {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 1000}}
    assert v2 == {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}}
    assert KrakenProtocol("wss://ws.kraken.com/v2").app_ping() == '{"method":"ping"}'


@pytest.mark.parametrize(
    "frame",
    [
        b'[992,{"b":[["354.15000000",5,"1618678133.365913"]],"c":"1"},"book-1000","XMR/USD"]',
        b'[992,{"b":[["354.15000000"]]},"book-1000","XMR/USD"]',
        b'[992,"book-1000"]',
        b'[992,{"b":[["354.1',
    ],
)
def test_malformed_v1_frames(frame):
    with pytest.raises(MalformedFrame):
        KrakenV1Protocol().receive(frame, 0)


def test_v2_decimal_levels_stay_exact_for_tiny_quantities():
    row = (
        KrakenV2Protocol()
        .receive(
            b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":0.00002290,"qty":1e-8}],'
            b'"asks":[],"checksum":1,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
            0,
        )
        .updates[0]
    )
    assert isinstance(row, BookDelta) and row.raw_bids == [("0.00002290", format(Decimal("1e-8"), "f"))]
    assert row.venue_ms == 1696613755440


def test_an_update_without_its_checksum_is_refused():
    """Kraken books have no sequence numbers: the CRC32 is their only check. The recorded XMR/USD update with
    its "c" removed (every recorded update has one), and a v2 update without "checksum", are malformed and
    name their book (it resyncs) instead of being applied unchecked."""
    frame = message(KRAKEN_WS, b'[992,{"b":[["354.15000000"')
    assert b',"c":"2583817756"' in frame
    with pytest.raises(MalformedFrame, match="book update without a checksum") as info:
        KrakenV1Protocol().receive(frame.replace(b',"c":"2583817756"', b""), 0)
    assert info.value.key == "kraken:spot:XMR/USD"
    v2 = (
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.1}],'
        b'"asks":[],"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
    )
    with pytest.raises(MalformedFrame, match="checksum"):
        KrakenV2Protocol().receive(v2, 0)
