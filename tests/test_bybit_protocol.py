"""Bybit v5: frames of the bundled 2025 captures, the defensive rules (seq, crossed, silence, u == 1),
subscribe limits, and the history-file format (NDJSON, optionally zipped) through verify-books."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest

from feeds.book import Side
from feeds.bybit.protocol import TICKER_ASK_AGAIN_NS, BybitProtocol
from feeds.errors import LocalProtocolError, MalformedFrame, RecordingError
from feeds.instruments import Market
from feeds.protocol import Channel, Subscription
from feeds.recordings import open_recordings
from feeds.sync import BookSync, SyncState
from feeds.updates import Action, BookDelta, BookSnapshot, Control, ControlKind, Resubscribe
from feeds.verify import verify_paths
from tests.venue_fixtures import BYBIT_LINEAR_WS, BYBIT_SPOT_WS, BYBIT_TICKER_SNAPSHOT, message, messages

BAND = "bybit:linear:BANDUSDT"


def snapshots(path: Path, symbol: bytes) -> list[bytes]:
    return [m for _, m in messages(path) if m.startswith(b'{"topic":"orderbook.1.' + symbol + b'"')]


def test_linear_snapshot_decodes_field_by_field():
    """The first recorded BANDUSDT snapshot: u, seq, ts, levels."""
    frame = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")[0]
    (snap,) = BybitProtocol(Market.LINEAR, depth=1).receive(frame, 3).updates
    assert isinstance(snap, BookSnapshot)
    assert (snap.key, snap.last_id, snap.seq, snap.venue_ms, snap.recv_ns) == (
        BAND,
        24042997,
        209972815373,
        1749833474773,
        3,
    )
    assert snap.bids == [(0.6131, 17.9)] and snap.asks == [(0.6134, 35.4)] and not snap.from_rest


def test_spot_frame_with_ts_before_type_decodes():
    """Spot puts ``ts`` before ``type``: decoding is by name, not key order."""
    frame = message(BYBIT_SPOT_WS, b'{"topic":"orderbook.1.OPUSDC","ts":')
    (snap,) = BybitProtocol(Market.SPOT, depth=1).receive(frame, 0).updates
    assert isinstance(snap, BookSnapshot) and snap.key == "bybit:spot:OPUSDC" and snap.asks == [(0.58, 4043.62)]


def test_replies_of_both_products_and_pongs():
    linear = BybitProtocol(Market.LINEAR).receive(message(BYBIT_LINEAR_WS, b'"op":"subscribe"'), 0)
    spot = BybitProtocol(Market.SPOT).receive(message(BYBIT_SPOT_WS, b'"op":"subscribe"'), 0)
    assert linear.updates == [Control(ControlKind.SUBSCRIBED, "")]
    assert spot.updates == [Control(ControlKind.SUBSCRIBED, "subscribe")]
    # Pong formats documented for spot and for linear (wss-authentication.mdx).
    proto = BybitProtocol()
    assert proto.receive(b'{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}', 0).updates == [
        Control(ControlKind.PONG)
    ]
    assert proto.receive(b'{"req_id":"1","op":"pong","args":["1672916271846"],"conn_id":"c"}', 0).updates == [
        Control(ControlKind.PONG)
    ]
    failed = proto.receive(b'{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}', 0)
    assert failed.updates == [Control(ControlKind.ERROR, "subscribe: error:handler not found")]
    assert proto.app_ping() == '{"op":"ping"}'


def test_spot_subscribes_at_most_ten_args_per_request():
    subs = [Subscription(f"S{i}USDT", Channel.BOOK) for i in range(23)]
    frames = [orjson.loads(f) for f in BybitProtocol(Market.SPOT, depth=50).subscribe(subs)]
    assert [len(f["args"]) for f in frames] == [10, 10, 3]
    assert frames[0] == {"op": "subscribe", "args": [f"orderbook.50.S{i}USDT" for i in range(10)]}
    with pytest.raises(LocalProtocolError):
        BybitProtocol(Market.SPOT).subscribe([Subscription("BTCUSDT", Channel.FUNDING)])
    linear = orjson.loads(BybitProtocol(Market.LINEAR).subscribe([Subscription("BTCUSDT", Channel.FUNDING)])[0])
    assert linear == {"op": "subscribe", "args": ["tickers.BTCUSDT"]}


def feed(proto: BybitProtocol, frames: list[bytes]) -> tuple[dict[str, BookSync], list[Action]]:
    syncs: dict[str, BookSync] = {}
    actions: list[Action] = []
    for i, frame in enumerate(frames):
        received = proto.receive(frame, i)
        actions += received.actions
        for u in received.updates:
            if isinstance(u, BookSnapshot | BookDelta):
                sync = syncs.get(u.key) or syncs.setdefault(u.key, proto.new_sync(u.key))
                actions += sync.on_snapshot(u) if isinstance(u, BookSnapshot) else sync.on_delta(u)
    return syncs, actions


def test_captures_rebuild_without_a_crossed_book():
    """Bybit acceptance: both captures (337 snapshots, 10 books) rebuild, never crossed, no resync."""
    total = 0
    for path, market in ((BYBIT_LINEAR_WS, Market.LINEAR), (BYBIT_SPOT_WS, Market.SPOT)):
        syncs, actions = feed(BybitProtocol(market, depth=1), [m for _, m in messages(path)])
        assert actions == []
        for sync in syncs.values():
            assert sync.state is SyncState.LIVE and sync.stats.crossed == 0 and sync.stats.gaps == 0
            total += sync.stats.snapshots
    assert total == 337


def test_seq_regression_resubscribes_that_symbol_only():
    """A BANDUSDT snapshot whose seq went backwards: gap, resubscribe; the other books stay live."""
    frames = [m for _, m in messages(BYBIT_LINEAR_WS)]
    band = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")
    victim = band[5]
    seq = orjson.loads(victim)["data"]["seq"]
    regressed = victim.replace(b'"seq":%d' % seq, b'"seq":%d' % (seq - 10_000))
    frames[frames.index(victim)] = regressed
    syncs, actions = feed(BybitProtocol(Market.LINEAR, depth=1), frames)
    assert actions == [Resubscribe(BAND)]
    assert syncs[BAND].stats.gaps == 1
    assert syncs[BAND].state is SyncState.LIVE  # the next real snapshot rebuilt it
    others = [s for k, s in syncs.items() if k != BAND]
    assert all(s.stats.gaps == 0 and s.state is SyncState.LIVE for s in others)


def test_a_seq_corrupted_ahead_costs_one_resubscribe_not_one_per_snapshot():
    """A real BANDUSDT snapshot with its seq ×1000: every later real snapshot is behind it. The first is a gap
    (resubscribe); the next one, the answer while the resync waits, is the venue's authority: it restarts the
    sequence and the book is live again (it used to resubscribe at each of the 41 later snapshots)."""
    frames = [m for _, m in messages(BYBIT_LINEAR_WS)]
    band = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")
    victim = band[3]
    seq = orjson.loads(victim)["data"]["seq"]
    frames[frames.index(victim)] = victim.replace(b'"seq":%d' % seq, b'"seq":%d' % (seq * 1000))
    syncs, actions = feed(BybitProtocol(Market.LINEAR, depth=1), frames)
    clean, _ = feed(BybitProtocol(Market.LINEAR, depth=1), [m for _, m in messages(BYBIT_LINEAR_WS)])
    assert actions == [Resubscribe(BAND)]
    assert (syncs[BAND].stats.gaps, syncs[BAND].stats.resyncs) == (1, 1)
    assert syncs[BAND].state is SyncState.LIVE
    assert syncs[BAND].book.levels(Side.BID) == clean[BAND].book.levels(Side.BID)
    assert syncs[BAND].book.levels(Side.ASK) == clean[BAND].book.levels(Side.ASK)


def test_u_one_restart_snapshot_overrides_the_sequence():
    """``u == 1``: a service restart; its lower seq is accepted, the book overwritten."""
    proto = BybitProtocol(Market.LINEAR, depth=1)
    sync = proto.new_sync(BAND)
    first, second = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")[:2]
    (snap,) = proto.receive(first, 0).updates
    assert isinstance(snap, BookSnapshot)
    sync.on_snapshot(snap)
    restart = orjson.loads(second)
    restart["data"]["u"], restart["data"]["seq"] = 1, 5
    (again,) = proto.receive(orjson.dumps(restart), 1).updates
    assert isinstance(again, BookSnapshot) and sync.on_snapshot(again) == []
    assert sync.book.last_id == 1 and sync.stats.gaps == 0


def test_crossed_book_and_delta_rules():
    """Deltas apply on u; a duplicate u is skipped; a delta crossing the book resubscribes."""
    proto = BybitProtocol(Market.LINEAR, depth=50)
    sync = proto.new_sync(BAND)
    sync.on_snapshot(BookSnapshot(BAND, 10, [(1.0, 1.0)], [(2.0, 1.0)], seq=100))
    assert sync.on_delta(BookDelta(BAND, 11, 11, None, [(1.5, 2.0)], [], seq=101)) == []
    assert sync.on_delta(BookDelta(BAND, 11, 11, None, [(1.6, 2.0)], [], seq=101)) == [] and sync.stats.skipped == 1
    assert sync.on_delta(BookDelta(BAND, 12, 12, None, [(2.5, 1.0)], [], seq=102)) == [Resubscribe(BAND)]
    assert sync.stats.crossed == 1 and sync.state is SyncState.RESYNC


def test_a_delta_behind_the_book_that_it_never_applied_is_a_gap():
    """Deltas 11, 13 then 12 (12 arrived late, after 13 was applied): 12 was skipped as a duplicate and its
    changes were missing from a live book, no signal (the adversarial review). A delta behind the book is
    skipped only if the book has it: at or behind the snapshot's u, or one of the deltas it applied. (Hand-made
    levels: the bundled Bybit captures are level 1, snapshots only.)"""
    proto = BybitProtocol(Market.LINEAR, depth=50)
    sync = proto.new_sync(BAND)
    sync.on_snapshot(BookSnapshot(BAND, 10, [(1.0, 1.0)], [(2.0, 1.0)], seq=100))
    assert sync.on_delta(BookDelta(BAND, 9, 9, None, [(0.9, 1.0)], [], seq=99)) == []  # in the snapshot
    assert sync.on_delta(BookDelta(BAND, 11, 11, None, [(1.5, 2.0)], [], seq=101)) == []
    assert sync.on_delta(BookDelta(BAND, 13, 13, None, [(1.6, 2.0)], [], seq=103)) == []
    assert sync.on_delta(BookDelta(BAND, 11, 11, None, [(1.5, 2.0)], [], seq=101)) == []  # a duplicate
    assert (sync.stats.skipped, sync.stats.gaps) == (2, 0)
    assert sync.on_delta(BookDelta(BAND, 12, 12, None, [(1.55, 3.0)], [], seq=102)) == [Resubscribe(BAND)]
    assert sync.stats.gaps == 1 and sync.state is SyncState.RESYNC


def test_a_duplicate_from_a_connection_lagging_hundreds_of_deltas_is_still_skipped():
    """An overlapping old connection's copy of a delta applied 1,000 deltas ago (20 s of orderbook.50) is a
    duplicate, not a gap: the book remembers its last APPLIED_KEPT (4,096) applied deltas."""
    from feeds.sequencing import APPLIED_KEPT

    proto = BybitProtocol(Market.LINEAR, depth=50)
    sync = proto.new_sync(BAND)
    sync.on_snapshot(BookSnapshot(BAND, 10, [(1.0, 1.0)], [(2.0, 1.0)], seq=100))
    for u in range(11, 1012):
        assert sync.on_delta(BookDelta(BAND, u, u, None, [(1.0, float(u))], [], seq=u + 90)) == []
    assert sync.on_delta(BookDelta(BAND, 11, 11, None, [(1.0, 11.0)], [], seq=101)) == []
    assert (sync.stats.skipped, sync.stats.gaps, sync.state) == (1, 0, SyncState.LIVE)
    assert APPLIED_KEPT >= 1000


def test_silent_symbol_is_resubscribed_once_per_silence():
    proto = BybitProtocol(Market.LINEAR, depth=1, silence_s=10)
    band, rad = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")[0], snapshots(BYBIT_LINEAR_WS, b"RADUSDT")[0]
    assert proto.receive(band, 1_000_000_000).actions == []
    assert proto.receive(rad, 5_000_000_000).actions == []
    assert proto.receive(rad, 11_500_000_000).actions == [Resubscribe(BAND, "silent for 10 s")]
    assert proto.receive(rad, 12_600_000_000).actions == []  # reported once, not on every frame


def test_a_refused_push_is_not_news_to_the_silence_check():
    """A book whose pushes are all refused is as silent as one that sends nothing (review finding)."""
    proto = BybitProtocol(Market.LINEAR, depth=1, silence_s=10)
    band, rad = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")[0], snapshots(BYBIT_LINEAR_WS, b"RADUSDT")[0]
    assert proto.receive(band, 1_000_000_000).actions == []
    refused = band.replace(b'"b":[["0.6131"', b'"b":[["nan"', 1)
    for second in range(2, 11):
        with pytest.raises(MalformedFrame):
            proto.receive(refused, second * 1_000_000_000)
    assert proto.receive(rad, 11_500_000_000).actions == [Resubscribe(BAND, "silent for 10 s")]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["1"]],"a":[],"u":1}}',
        b'{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["a","1"]],"a":[],"u":1}}',
        b'{"topic":"orderbook.1.X","type":"partial","ts":1,"data":{"s":"X","b":[],"a":[],"u":1}}',
        b'{"topic":"orderbook.1.X","type":"snapshot","ts":1}',
        b'{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"X","b":[],"a":[],"u":"one"}}',
    ],
)
def test_malformed_frames(frame):
    with pytest.raises(MalformedFrame):
        BybitProtocol().receive(frame, 0)


def write_history(folder: Path, name: str, frames: list[bytes], *, zipped: bool) -> Path:
    """A history file in Bybit's layout, its lines the real recorded pushes."""
    folder.mkdir(parents=True, exist_ok=True)
    text = b"\n".join(frames) + b"\n"
    if not zipped:
        path = folder / name
        path.write_bytes(text)
        return path
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return path


def test_history_files_zipped_across_days_verify_as_one_stream(tmp_path):
    """Two days of BANDUSDT (zipped and plain) in a ``linear`` folder: one stream, every frame applied."""
    band = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")
    folder = tmp_path / "linear"
    write_history(folder, "2025-06-14_BANDUSDT_ob1.data", band[20:], zipped=False)
    write_history(folder, "2025-06-13_BANDUSDT_ob1.data", band[:20], zipped=True)
    opened = open_recordings([tmp_path])
    (recording,) = opened.recordings
    assert recording.format == "bybit-history" and [p.name for p in recording.paths] == [
        "2025-06-13_BANDUSDT_ob1.data.zip",
        "2025-06-14_BANDUSDT_ob1.data",
    ]
    first = next(recording.frames())
    assert first.recv_ns == 1749833474773 * 1_000_000 and first.line == 1
    report = verify_paths([tmp_path])
    (book,) = report.books
    assert (book.key, book.counters["snapshots"], book.counters["crossed"], book.ok) == (BAND, 45, 0, True)
    assert book.book.best_bid() == (0.6132, 462.8)


def test_history_without_a_market_hint_needs_market(tmp_path):
    write_history(tmp_path / "dl", "2025-06-13_BANDUSDT_ob1.data", snapshots(BYBIT_LINEAR_WS, b"BANDUSDT"), zipped=True)
    with pytest.raises(RecordingError, match="cannot recognise"):
        verify_paths([tmp_path])
    from feeds.instruments import Venue

    report = verify_paths([tmp_path], venue=Venue.BYBIT, market=Market.SPOT)
    assert report.books[0].key == "bybit:spot:BANDUSDT"


def test_corrupt_history_zip_names_the_file(tmp_path):
    folder = tmp_path / "spot"
    folder.mkdir()
    bad = folder / "2025-06-13_BTCUSDT_ob200.data.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RecordingError) as info:
        list(open_recordings([bad]).recordings[0].frames())
    assert str(bad) in str(info.value)


def test_contract_terms_by_market():
    """Spot and linear books are in base units; inverse contracts are 1 USD each (a Bybit fact)."""
    from feeds.instruments import ContractType

    inverse = BybitProtocol(Market.INVERSE).new_sync("bybit:inverse:BTCUSD").book
    linear = BybitProtocol(Market.LINEAR).new_sync(BAND).book
    assert (inverse.contract_type, inverse.contract_size) == (ContractType.INVERSE, 1.0)
    assert (linear.contract_type, linear.contract_size) == (ContractType.BASE, 1.0)


def test_a_ticker_delta_with_nothing_to_merge_into_asks_for_a_snapshot() -> None:
    """A refused delta drops the symbol's merged fields; the next delta asks for the tickers topic again
    (Bybit sends a ticker snapshot on subscribe, deltas after), then no more until TICKER_ASK_AGAIN_NS has
    passed (a lost request is asked again); a snapshot that merges lets the next refusal ask at once, one
    refused too does not (never a resubscribe per delta)."""
    protocol = BybitProtocol(Market.LINEAR, intervals_ms={"BTCUSDT": 8 * 3_600_000})
    assert protocol.receive(BYBIT_TICKER_SNAPSHOT, 1).updates[0].rate == -0.000212  # type: ignore[union-attr]
    good = b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","fundingRate":"-0.0001"},"ts":2}'
    bad = good.replace(b'"-0.0001"', b'"nan"')
    ask = Resubscribe("bybit:linear:BTCUSDT", "tickers.BTCUSDT: a delta with no snapshot to merge into", "funding")
    again = TICKER_ASK_AGAIN_NS
    for start in (10, 10 + 3 * again):
        with pytest.raises(MalformedFrame, match="'nan' is not a finite number"):
            protocol.receive(bad, start)
        assert protocol.receive(good, start + 1).actions == [ask]
        assert protocol.receive(good, start + again).actions == []  # asked already, not long ago
        assert protocol.receive(good, start + again + 1).actions == [ask]  # lost? asked again
        assert protocol.receive(good, start + again + 2).updates == [Control(ControlKind.IGNORED, "tickers.BTCUSDT")]
        [funding] = protocol.receive(BYBIT_TICKER_SNAPSHOT, start + again + 3).updates
        assert funding.rate == -0.000212  # type: ignore[union-attr]
        assert protocol.receive(good, start + again + 4).updates[0].rate == -0.0001  # type: ignore[union-attr]
    # A snapshot refused too keeps the symbol asked for: its deltas do not ask again until the interval passed.
    with pytest.raises(MalformedFrame):
        protocol.receive(bad, 10 * again)
    assert protocol.receive(good, 10 * again + 1).actions == [ask]
    with pytest.raises(MalformedFrame):
        protocol.receive(BYBIT_TICKER_SNAPSHOT.replace(b'"markPrice":"17217.33"', b'"markPrice":"0"'), 10 * again + 2)
    assert protocol.receive(good, 10 * again + 3).actions == []
    assert protocol.receive(good, 11 * again + 1).actions == [ask]


def test_a_push_naming_another_symbol_than_its_topic_is_refused():
    """A real BANDUSDT snapshot whose data names RADUSDT would replace RADUSDT's whole book: refused, and the
    subscribed book (the topic's) is the one resynced; a ticker likewise must not merge into another symbol."""
    band = snapshots(BYBIT_LINEAR_WS, b"BANDUSDT")[0]
    assert b'"s":"BANDUSDT"' in band
    with pytest.raises(MalformedFrame, match="data for 'RADUSDT' on the topic of 'BANDUSDT'") as info:
        BybitProtocol().receive(band.replace(b'"s":"BANDUSDT"', b'"s":"RADUSDT"', 1), 0)
    assert info.value.key == BAND
    ticker = BYBIT_TICKER_SNAPSHOT.replace(b'"symbol":"BTCUSDT"', b'"symbol":"ETHUSDT"', 1)
    proto = BybitProtocol()
    with pytest.raises(MalformedFrame, match="data for 'ETHUSDT' on the topic of 'BTCUSDT'"):
        proto.receive(ticker, 0)
    assert not proto.tickers.fields("ETHUSDT") and not proto.tickers.fields("BTCUSDT")
    # After a merged snapshot, a refused push of the topic loses whatever it changed: the symbol's fields go,
    # and its next delta asks for a snapshot instead of publishing the old funding as new.
    proto.receive(BYBIT_TICKER_SNAPSHOT, 1)
    assert proto.tickers.fields("BTCUSDT")
    with pytest.raises(MalformedFrame):
        proto.receive(ticker, 2)
    assert not proto.tickers.fields("BTCUSDT")
    delta = b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"17220.00"},"ts":3}'
    received = proto.receive(delta, 3)
    assert [type(a).__name__ for a in received.actions] == ["Resubscribe"] and received.actions[0].channel == "funding"
