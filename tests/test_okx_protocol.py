"""OKX v5: checksum vectors, frame parsing on the bundled 2022 capture, sequence rules, REST bootstrap."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from feeds.book import OrderBook, Side
from feeds.errors import LocalProtocolError, MalformedFrame, VenueRejected
from feeds.instruments import ContractType, Market
from feeds.okx import checksum
from feeds.okx.protocol import OkxProtocol
from feeds.protocol import Channel, Subscription
from feeds.sequencing import OkxRules, Verdict
from feeds.sync import SyncState
from feeds.updates import (
    BookDelta,
    BookSnapshot,
    Control,
    ControlKind,
    FetchSnapshot,
    Reconnect,
    Resubscribe,
)
from tests.venue_fixtures import OKX_WS, message, messages

KEY_SPOT = "okx:spot:BTC-USDT"


def raw_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    book = OrderBook("okx:spot:T", keep_raw=True)
    book.apply(
        [(float(p), float(q)) for p, q in bids],
        [(float(p), float(q)) for p, q in asks],
        last_id=1,
        venue_ms=0,
        recv_ns=0,
        raw_bids=bids,
        raw_asks=asks,
    )
    return book


@pytest.mark.parametrize(
    ("bids", "asks", "text", "expected"),
    [
        # OKX-CRC-1 and OKX-CRC-2 (exchange-protocols.md §6), built as books: the interleaving and the
        # skipping of a shorter side are part of what is tested.
        (
            [("3366.1", "7"), ("3366", "6")],
            [("3366.8", "9"), ("3368", "8")],
            "3366.1:7:3366.8:9:3366:6:3368:8",
            -1881014294,
        ),
        (
            [("3366.1", "7")],
            [("3366.8", "9"), ("3368", "8"), ("3372", "8")],
            "3366.1:7:3366.8:9:3368:8:3372:8",
            831078360,
        ),
    ],
)
def test_official_checksum_vectors(bids, asks, text, expected):
    """OKX-CRC-1/2: the documented strings and signed CRC32 values, from a book with exact strings."""
    book = raw_book(bids, asks)
    assert checksum.checksum_string(book.raw_levels(Side.BID, 25), book.raw_levels(Side.ASK, 25)) == text
    assert checksum.signed_crc32(text) == expected
    assert checksum.book_checksum(book) == expected


def test_checksum_uses_only_the_top_25_levels_and_exact_strings():
    """Levels beyond 25 do not count; "0.5000" is hashed as sent, not re-formatted."""
    bids = [(f"{100 - i}.5000", "1") for i in range(30)]
    asks = [(f"{200 + i}.5000", "2") for i in range(30)]
    book = raw_book(bids, asks)
    text = checksum.checksum_string(book.raw_levels(Side.BID, 25), book.raw_levels(Side.ASK, 25))
    assert text.startswith("100.5000:1:200.5000:2:99.5000:1") and text.endswith("76.5000:1:224.5000:2")
    assert text.count(":") == 25 * 4 - 1


def test_snapshot_frame_decodes_field_by_field():
    """The recorded BTC-USDT snapshot: key from the instId, exact strings kept, venue ms, checksum."""
    frame = message(OKX_WS, b'"action":"snapshot","data":[{"asks":[["30243.5"')
    proto = OkxProtocol()
    (snap,) = proto.receive(frame, 7).updates
    assert isinstance(snap, BookSnapshot)
    body = orjson.loads(frame)["data"][0]
    assert snap.key == KEY_SPOT and not snap.from_rest and snap.recv_ns == 7
    assert (
        snap.asks[0] == (30243.5, 1.44679) and snap.raw_asks is not None and snap.raw_asks[0] == ("30243.5", "1.44679")
    )
    assert snap.bids[0] == (float(body["bids"][0][0]), float(body["bids"][0][1]))
    assert len(snap.asks) == len(body["asks"]) and len(snap.bids) == len(body["bids"])
    assert snap.venue_ms == int(body["ts"]) and snap.checksum == body["checksum"] and snap.last_id == 1


def test_every_instrument_type_gets_its_market_from_the_inst_id():
    """One connection carries spot, futures and swaps: each book key names its own market."""
    proto = OkxProtocol(Market.SWAP)
    keys = set()
    for _, frame in messages(OKX_WS):
        if frame.startswith(b'{"arg":{"channel":"books"'):
            keys.update(u.key for u in proto.receive(frame, 0).updates)
    assert keys == {"okx:spot:BTC-USDT", "okx:futures:BTC-USD-220527", "okx:swap:UNI-USD-SWAP"}


def test_2022_pushes_without_seq_id_are_numbered_in_arrival_order():
    """No seqId in 2022: snapshot and updates of a book get arrival numbers; prev_id stays None."""
    proto = OkxProtocol()
    snap = proto.receive(message(OKX_WS, b'"action":"snapshot","data":[{"asks":[["30243.5"'), 0).updates[0]
    first = proto.receive(message(OKX_WS, b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update"'), 0)
    (delta,) = first.updates
    assert isinstance(snap, BookSnapshot) and isinstance(delta, BookDelta)
    assert (snap.last_id, delta.first_id, delta.last_id, delta.prev_id) == (1, 2, 2, None) and delta.checksum != 0


def test_an_update_buffered_before_a_resubscribe_snapshot_is_skipped():
    """Unsequenced pushes: one that arrived before the snapshot is older than it and never applied."""
    rules = OkxRules()
    assert rules.check(BookDelta("k", 4, 4, None, [], []), 5, first=True) is Verdict.SKIP
    assert rules.check(BookDelta("k", 6, 6, None, [], []), 5, first=True) is Verdict.APPLY


def test_acks_tickers_and_pong():
    """Subscribe acks (recorded), channels we do not use, and the text pong."""
    proto = OkxProtocol()
    ack = proto.receive(message(OKX_WS, b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}'), 0)
    assert ack.updates == [Control(ControlKind.SUBSCRIBED, "books", KEY_SPOT)]
    ticker = proto.receive(message(OKX_WS, b'{"arg":{"channel":"tickers"'), 0)
    assert ticker.updates == [Control(ControlKind.IGNORED, "tickers")]
    assert proto.receive("pong", 0).updates == [Control(ControlKind.PONG)]
    assert proto.app_ping() == "ping"


def test_notice_64008_reconnects_and_errors_are_reported():
    """The documented pre-disconnect notice asks the runner for a new connection."""
    proto = OkxProtocol()
    notice = proto.receive(b'{"event":"notice","code":"64008","msg":"The connection will soon be closed"}', 0)
    assert notice.updates[0].kind is ControlKind.SERVER_SHUTDOWN
    assert notice.actions == [Reconnect("okx notice 64008: The connection will soon be closed")]
    err = proto.receive(b'{"event":"error","code":"60012","msg":"Invalid request"}', 0)
    assert err.updates == [Control(ControlKind.ERROR, "60012: Invalid request")]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["1"]],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["x","1"]],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"replace","data":[{"asks":[],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"BTC"},"action":"update","data":[{"asks":[],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"}}',
        b'{"arg":{"channel":"books","instId":"BTC-US',
    ],
)
def test_malformed_frames_raise_a_precise_error(frame):
    with pytest.raises(MalformedFrame) as info:
        OkxProtocol().receive(frame, 0)
    assert info.value.venue == "okx" and info.value.reason


def test_subscribe_round_trip_and_chunking():
    """Book and funding subscriptions; at most limits.max_args_per_subscribe args per message."""
    proto = OkxProtocol(book_channel="books-l2-tbt")
    subs = [Subscription(f"C{i}-USDT", Channel.BOOK) for i in range(31)] + [
        Subscription("BTC-USD-SWAP", Channel.FUNDING)
    ]
    frames = [orjson.loads(f) for f in proto.subscribe(subs)]
    assert [len(f["args"]) for f in frames] == [30, 2]
    assert frames[0]["op"] == "subscribe" and frames[0]["args"][0] == {"channel": "books-l2-tbt", "instId": "C0-USDT"}
    assert frames[1]["args"][1] == {"channel": "funding-rate", "instId": "BTC-USD-SWAP"}
    assert orjson.loads(proto.unsubscribe(subs[:1])[0]) == {"op": "unsubscribe", "args": [frames[0]["args"][0]]}
    with pytest.raises(LocalProtocolError):
        proto.subscribe([Subscription("BTC-USDT", Channel.TOP)])


def d(seq: int, prev: int) -> BookDelta:
    return BookDelta("okx:swap:X", seq, seq, prev, [], [])


def test_documented_sequence_example():
    """exchange-protocols.md §4.2: snapshot -1→10, update 10→15, heartbeat 15→15, reset 15→3, 3→5."""
    rules = OkxRules()
    assert rules.check(d(15, 10), 10, first=True) is Verdict.APPLY
    assert rules.check(d(15, 15), 15, first=False) is Verdict.APPLY  # no-change heartbeat
    assert rules.check(d(3, 15), 15, first=False) is Verdict.APPLY  # sequence reset after maintenance
    assert rules.check(d(5, 3), 3, first=False) is Verdict.APPLY
    assert rules.check(d(9, 6), 5, first=False) is Verdict.GAP  # prevSeqId != last seqId
    assert rules.check(d(5, 3), 5, first=False) is Verdict.SKIP  # an old event seen again


def test_rest_bootstrap_when_no_websocket_snapshot_arrives():
    """Updates first: a REST snapshot is requested; stale ones are refetched; the bracketing event applies."""
    proto = OkxProtocol(Market.SWAP)
    sync = proto.new_sync("okx:swap:BTC-USDT-SWAP")
    assert sync.on_delta(
        BookDelta(sync.key, 105, 105, 100, [(10.0, 1.0)], [], raw_bids=[("10", "1")], raw_asks=[])
    ) == [FetchSnapshot(sync.key)]
    sync.on_delta(BookDelta(sync.key, 108, 108, 105, [(11.0, 2.0)], [], raw_bids=[("11", "2")], raw_asks=[]))
    rest = (
        b'{"code":"0","msg":"","data":[{"asks":[["12","1","0","1"]],"bids":[["9","1","0","1"]],"ts":"5","seqId":%d}]}'
    )
    stale = proto.parse_snapshot(sync.key, rest % 99, 1)
    assert stale.from_rest and stale.last_id == 99
    assert sync.on_snapshot(stale) == [FetchSnapshot(sync.key)]  # 99 < first prevSeqId 100
    assert sync.on_snapshot(proto.parse_snapshot(sync.key, rest % 103, 2)) == []
    assert sync.state is SyncState.LIVE and sync.book.last_id == 108
    assert sync.book.levels(Side.BID) == [(11.0, 2.0), (10.0, 1.0), (9.0, 1.0)]


def test_rest_snapshot_errors():
    proto = OkxProtocol()
    with pytest.raises(VenueRejected, match="51001"):
        proto.parse_snapshot(KEY_SPOT, b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}', 0)
    with pytest.raises(MalformedFrame, match="without seqId"):
        proto.parse_snapshot(KEY_SPOT, b'{"code":"0","data":[{"asks":[],"bids":[],"ts":"1"}]}', 0)
    request = proto.snapshot_request("okx:swap:BTC-USDT-SWAP")
    assert request is not None and request.path == "/api/v5/market/books"
    assert request.params == {"instId": "BTC-USDT-SWAP", "sz": "400"}


def test_gap_resubscribes_by_default_and_fetches_with_rest_recovery():
    for proto, action in ((OkxProtocol(), Resubscribe), (OkxProtocol(rest_recovery=True), FetchSnapshot)):
        sync = proto.new_sync("okx:swap:X")
        sync.on_snapshot(
            BookSnapshot("okx:swap:X", 10, [(1.0, 1.0)], [(2.0, 1.0)], raw_bids=[("1", "1")], raw_asks=[("2", "1")])
        )
        (got,) = sync.on_delta(BookDelta("okx:swap:X", 20, 20, 15, [], [], raw_bids=[], raw_asks=[]))
        assert isinstance(got, action) and sync.stats.gaps == 1


def test_contract_books_know_their_contract_size():
    """With metadata a swap book converts contracts to base; strict mode refuses a book without it."""
    from feeds.instruments import InstrumentId, InstrumentSpec, Kind, Venue

    spec = InstrumentSpec(
        InstrumentId(Venue.OKX, Market.SWAP, "BTC", "USDT", Kind.PERP),
        "BTC-USDT-SWAP",
        0.1,
        1.0,
        contract_type=ContractType.LINEAR,
        contract_size=0.01,
    )
    book = OkxProtocol(specs={"BTC-USDT-SWAP": spec}, strict_specs=True).new_sync("okx:swap:BTC-USDT-SWAP").book
    assert (book.contract_type, book.contract_size) == (ContractType.LINEAR, 0.01)
    with pytest.raises(LocalProtocolError, match="contract size is unknown"):
        OkxProtocol(strict_specs=True).new_sync("okx:swap:ETH-USDT-SWAP")
    assert OkxProtocol(strict_specs=True).new_sync(KEY_SPOT).book.contract_type is ContractType.BASE


def test_a_crossed_book_resyncs_when_no_checksum_vouches_for_it():
    """Since 2026-06-23 OKX sends checksum 0: the recorded snapshot and first update with the update's checksum
    zeroed and a bid above every ask added. Nothing else can tell the level is corrupt: the book resyncs."""
    proto = OkxProtocol()
    (snap,) = proto.receive(message(OKX_WS, b'"action":"snapshot","data":[{"asks":[["30243.5"'), 0).updates
    update = message(OKX_WS, b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update"')
    (delta,) = proto.receive(update, 0).updates
    assert isinstance(snap, BookSnapshot) and isinstance(delta, BookDelta) and delta.checksum != 0
    crossing = dataclasses.replace(delta, checksum=0, bids=[(99_999.0, 1.0), *delta.bids])
    if delta.raw_bids is not None:
        crossing = dataclasses.replace(crossing, raw_bids=[("99999", "1"), *delta.raw_bids])
    sync = proto.new_sync(snap.key)
    assert sync.on_snapshot(snap) == [] and sync.state is SyncState.LIVE
    assert sync.on_delta(crossing) == [Resubscribe(snap.key)]
    assert (sync.stats.crossed, sync.stats.gaps, sync.state) == (1, 1, SyncState.RESYNC)


def test_a_push_with_a_seq_id_but_no_prev_seq_id_is_refused():
    """Every push that carries seqId names its predecessor (§4.2); one without prevSeqId would be taken
    unchecked, as a 2022 capture's arrival-numbered push, and a gap before it missed. The recorded update with
    a seqId added: malformed, naming its book (it resyncs)."""
    update = message(OKX_WS, b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update"')
    assert b'"data":[{' in update and b"seqId" not in update
    with pytest.raises(MalformedFrame, match="update with seqId 120 but no prevSeqId") as info:
        OkxProtocol().receive(update.replace(b'"data":[{', b'"data":[{"seqId":120,', 1), 0)
    assert info.value.key == "okx:spot:BTC-USDT"
    chained = update.replace(b'"data":[{', b'"data":[{"seqId":120,"prevSeqId":115,', 1)
    (delta,) = OkxProtocol().receive(chained, 0).updates
    assert isinstance(delta, BookDelta) and (delta.last_id, delta.prev_id) == (120, 115)


def test_a_resync_whose_resubscribe_brings_no_snapshot_falls_back_to_rest_once():
    """OKX announced that websocket snapshots may stop (§4.2): after a gap the resubscribe may bring only
    updates. Once they have come for RESYNC_REST_FALLBACK_NS without a snapshot, a REST snapshot is asked for
    (once per resync), and its answer makes the book live; without this the book waited for ever."""
    proto = OkxProtocol(Market.SWAP)
    sync = proto.new_sync("okx:swap:BTC-USDT-SWAP")
    rest = (
        b'{"code":"0","msg":"","data":[{"asks":[["12","1","0","1"]],"bids":[["9","1","0","1"]],"ts":"5","seqId":%d}]}'
    )

    def update(seq: int, prev: int, at_s: float) -> BookDelta:
        return BookDelta(
            sync.key, seq, seq, prev, [(10.0, 1.0)], [], raw_bids=[("10", "1")], raw_asks=[], recv_ns=int(at_s * 1e9)
        )

    assert sync.on_delta(update(105, 100, 0.0)) == [FetchSnapshot(sync.key)]
    assert sync.on_snapshot(proto.parse_snapshot(sync.key, rest % 103, 1)) == [] and sync.state is SyncState.LIVE
    assert sync.on_delta(update(120, 110, 2.0)) == [Resubscribe(sync.key)]  # a gap: prevSeqId 110 != 105
    assert sync.on_delta(update(125, 120, 2.5)) == []  # buffered, waiting for the resubscribe's snapshot
    assert sync.on_delta(update(130, 125, 7.4)) == []
    assert sync.on_delta(update(135, 130, 7.5)) == [FetchSnapshot(sync.key)]  # 5 s of updates, no snapshot
    assert sync.on_delta(update(140, 135, 20.0)) == []  # asked once per resync
    assert sync.on_snapshot(proto.parse_snapshot(sync.key, rest % 124, 21)) == []
    assert sync.state is SyncState.LIVE and sync.book.last_id == 140
