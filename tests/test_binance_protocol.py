"""Binance protocol: decoding of recorded real frames, what we send, limits, malformed input."""

from __future__ import annotations

import orjson
import pytest

from feeds.binance.protocol import (
    FUTURES_LIMITS,
    SPOT_LIMITS,
    USDM_WS_URL,
    BinanceProtocol,
    depth_weight,
)
from feeds.errors import LocalProtocolError, MalformedFrame, VenueRejected
from feeds.instruments import ContractType, Market
from feeds.protocol import Channel, Subscription
from feeds.sequencing import BinanceFuturesRules, BinanceSpotRules
from feeds.updates import BookDelta, BookSnapshot, Control, ControlKind, FundingUpdate, Reconnect, TopOfBook
from tests.binance_fixtures import (
    CF_SPOT_HTTP,
    CF_SPOT_WS,
    CF_USDM_HTTP,
    CF_USDM_WS,
    SPOT_BTC_0808,
    USDM_BTC,
    cryptofeed_message,
    cryptofeed_rest_body,
    hft_frame,
)

SPOT_KEY = "binance:spot:BTCUSDT"
USDM_KEY = "binance:usdm:BTCUSDT"


def only(received_updates: list[object]) -> object:
    assert len(received_updates) == 1
    return received_updates[0]


def test_spot_depth_update_fields():
    """The first recorded spot @depth@100ms frame decodes to a delta with U/u, no pu, float levels."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")
    received = BinanceProtocol(Market.SPOT).receive(frame, ns)
    delta = only(received.updates)
    assert isinstance(delta, BookDelta)
    assert received.actions == []
    assert (delta.key, delta.first_id, delta.last_id, delta.prev_id) == (SPOT_KEY, 50093239189, 50093239202, None)
    assert (delta.venue_ms, delta.recv_ns) == (1723161255208, 1723161253937085768)
    assert delta.bids == [(61737.63, 0.0), (61730.17, 0.0), (56854.58, 0.0)]
    assert delta.asks[0] == (61837.64, 1.54698)
    assert delta.asks[-1] == (61937.64, 0.02)
    assert len(delta.asks) == 9


def test_usdm_depth_update_fields():
    """The first recorded USD-M @depth@0ms frame carries pu, the previous event's u."""
    ns, frame = hft_frame(USDM_BTC, b"@depth")
    delta = only(BinanceProtocol(Market.USDM).receive(frame, ns).updates)
    assert isinstance(delta, BookDelta)
    assert (delta.key, delta.first_id, delta.last_id, delta.prev_id) == (
        USDM_KEY,
        5123107832006,
        5123107837557,
        5123107831937,
    )
    assert delta.venue_ms == 1723161256299
    assert delta.bids[0] == (58710.2, 0.014)
    assert delta.bids[-1] == (61800.2, 2.507)
    assert delta.asks[0] == (61800.3, 3.33)
    assert delta.asks[-1] == (65880.7, 15.918)


def test_spot_book_ticker_has_no_event_time():
    """Spot bookTicker has only u/s/b/B/a/A: venue time stays 0."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@bookTicker")
    top = only(BinanceProtocol(Market.SPOT).receive(frame, ns).updates)
    assert top == TopOfBook(SPOT_KEY, 50093239212, 61837.63, 3.78826, 61837.64, 1.54698, venue_ms=0, recv_ns=ns)


def test_futures_book_ticker_fields():
    """USD-M bookTicker carries e/E/T; E becomes the venue time."""
    ns, frame = hft_frame(USDM_BTC, b"@bookTicker")
    top = only(BinanceProtocol(Market.USDM).receive(frame, ns).updates)
    assert top == TopOfBook(USDM_KEY, 5123107839020, 61800.2, 2.507, 61800.3, 2.51, venue_ms=1723161256313, recv_ns=ns)


def test_cryptofeed_spot_book_ticker_and_depth():
    """2021 spot frames (cryptofeed capture) decode with the same schemas."""
    proto = BinanceProtocol(Market.SPOT)
    top = only(proto.receive(cryptofeed_message(CF_SPOT_WS, b"nknusdt@bookTicker"), 1).updates)
    assert top == TopOfBook("binance:spot:NKNUSDT", 499869768, 0.3521, 672.0, 0.3526, 3199.0, recv_ns=1)
    delta = only(proto.receive(cryptofeed_message(CF_SPOT_WS, b"nknusdt@depth"), 2).updates)
    assert isinstance(delta, BookDelta)
    assert (delta.first_id, delta.last_id, delta.bids[0], delta.asks) == (
        499869750,
        499869752,
        (0.3513, 6195.0),
        [],
    )


@pytest.mark.parametrize(
    ("path", "market", "needle", "channel"),
    [
        (SPOT_BTC_0808, Market.SPOT, b"@trade", "trade"),
        (USDM_BTC, Market.USDM, b"@trade", "trade"),
    ],
)
def test_trades_are_recognised_and_skipped(path, market, needle, channel):
    """Trade frames yield one IGNORED control naming the stream, no book update."""
    ns, frame = hft_frame(path, needle)
    control = only(BinanceProtocol(market).receive(frame, ns).updates)
    assert control == Control(ControlKind.IGNORED, channel, f"binance:{market}:BTCUSDT")


@pytest.mark.parametrize(("path", "market"), [(CF_SPOT_WS, Market.SPOT), (CF_USDM_WS, Market.USDM)])
@pytest.mark.parametrize("needle", [b"@kline_1m", b"@aggTrade"])
def test_klines_and_agg_trades_are_skipped(path, market, needle):
    """kline and aggTrade frames from the cryptofeed captures are skipped as ignored."""
    control = only(BinanceProtocol(market).receive(cryptofeed_message(path, needle), 1).updates)
    assert isinstance(control, Control)
    assert control.kind is ControlKind.IGNORED
    assert control.detail == needle[1:].split(b"_")[0].decode()


def test_skipped_streams_are_not_decoded():
    """A trade frame is skipped on its stream name alone: its body is never parsed."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@trade")
    garbled = frame[: frame.index(b'"data"')] + b'"data":{"p":'  # body cut short
    control = only(BinanceProtocol(Market.SPOT).receive(garbled, ns).updates)
    assert control == Control(ControlKind.IGNORED, "trade", SPOT_KEY)


def test_text_frames_decode_like_bytes():
    """websockets delivers text frames as str; the result is the same as for bytes."""
    ns, frame = hft_frame(USDM_BTC, b"@depth")
    proto = BinanceProtocol(Market.USDM)
    assert proto.receive(frame.decode(), ns) == proto.receive(frame, ns)


def test_reordered_envelope_takes_the_slow_path():
    """A combined frame with "data" before "stream" still decodes to the same delta."""
    ns, frame = hft_frame(USDM_BTC, b"@depth")
    obj = orjson.loads(frame)
    reordered = orjson.dumps({"data": obj["data"], "stream": obj["stream"]})
    proto = BinanceProtocol(Market.USDM)
    assert proto.receive(reordered, ns) == proto.receive(frame, ns)


def test_raw_ws_event_without_envelope():
    """A raw ``/ws/`` depth event (the envelope's data alone) decodes, keyed by its symbol."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")
    raw_event = orjson.dumps(orjson.loads(frame)["data"])
    proto = BinanceProtocol(Market.SPOT)
    assert proto.receive(raw_event, ns) == proto.receive(frame, ns)


# ---- REST snapshots -----------------------------------------------------------------------------


def test_spot_rest_snapshot():
    """The bare hftbacktest spot snapshot: lastUpdateId, 1000 levels a side, best first."""
    ns, body = hft_frame(SPOT_BTC_0808, b"lastUpdateId")
    snap = BinanceProtocol(Market.SPOT).parse_snapshot(SPOT_KEY, body, ns)
    assert isinstance(snap, BookSnapshot)
    assert (snap.key, snap.last_id, snap.from_rest, snap.recv_ns, snap.venue_ms) == (
        SPOT_KEY,
        50093239218,
        True,
        1723161254206652067,
        0,
    )
    assert (len(snap.bids), len(snap.asks)) == (1000, 1000)
    assert snap.bids[:2] == [(61837.63, 3.78826), (61837.62, 0.617)]
    assert snap.asks[0] == (61837.64, 1.54698)
    assert snap.asks[-1] == (62053.18, 0.0001)


def test_usdm_rest_snapshot_event_time():
    """USD-M snapshots carry E and T; E becomes the venue time."""
    ns, body = hft_frame(USDM_BTC, b"lastUpdateId")
    snap = BinanceProtocol(Market.USDM).parse_snapshot(USDM_KEY, body, ns)
    assert (snap.last_id, snap.venue_ms) == (5123107852948, 1723161256501)
    assert (snap.bids[0], snap.asks[0], snap.bids[-1]) == ((61800.2, 2.909), (61800.3, 1.072), (61653.4, 0.068))


def test_cryptofeed_rest_snapshots():
    """2021 REST bodies recorded by cryptofeed decode with the same schema."""
    spot = BinanceProtocol(Market.SPOT).parse_snapshot(
        "binance:spot:NKNUSDT", cryptofeed_rest_body(CF_SPOT_HTTP, "NKNUSDT"), 5
    )
    assert (spot.last_id, spot.bids[0]) == (499869752, (0.3521, 672.0))
    usdm = BinanceProtocol(Market.USDM).parse_snapshot(
        "binance:usdm:SUSHIUSDT", cryptofeed_rest_body(CF_USDM_HTTP, "SUSHIUSDT"), 5
    )
    assert (usdm.last_id, usdm.venue_ms, usdm.bids[0], usdm.asks[0]) == (
        600859605926,
        1626992741264,
        (7.611, 6.0),
        (7.612, 297.0),
    )


def test_rest_error_body_is_a_rejection():
    """A REST error reply (documented shape) raises VenueRejected with Binance's message."""
    with pytest.raises(VenueRejected, match=r"code -1121: Invalid symbol"):
        BinanceProtocol(Market.SPOT).parse_snapshot(SPOT_KEY, b'{"code":-1121,"msg":"Invalid symbol."}', 1)


def test_truncated_snapshot_is_malformed():
    _, body = hft_frame(SPOT_BTC_0808, b"lastUpdateId")
    with pytest.raises(MalformedFrame, match="depth snapshot for binance:spot:BTCUSDT"):
        BinanceProtocol(Market.SPOT).parse_snapshot(SPOT_KEY, body[: len(body) // 2], 1)


def test_snapshot_requests_and_weights():
    """Paths per market and the documented request weights."""
    spot = BinanceProtocol(Market.SPOT).snapshot_request(SPOT_KEY)
    assert (spot.method, spot.path, spot.params, spot.weight) == (
        "GET",
        "/api/v3/depth",
        {"symbol": "BTCUSDT", "limit": "1000"},
        50,
    )
    usdm = BinanceProtocol(Market.USDM).snapshot_request(USDM_KEY)
    assert (usdm.path, usdm.weight) == ("/fapi/v1/depth", 20)
    coinm = BinanceProtocol(Market.COINM, snapshot_limit=500).snapshot_request("binance:coinm:BTCUSD_PERP")
    assert (coinm.path, coinm.params["symbol"], coinm.weight) == ("/dapi/v1/depth", "BTCUSD_PERP", 10)
    assert [depth_weight(Market.SPOT, n) for n in (100, 101, 500, 1000, 5000)] == [5, 25, 25, 50, 250]
    assert [depth_weight(Market.USDM, n) for n in (5, 50, 100, 500, 1000)] == [2, 2, 5, 10, 20]
    with pytest.raises(LocalProtocolError):
        depth_weight(Market.USDM, 200)
    with pytest.raises(LocalProtocolError, match="not a binance spot key"):
        BinanceProtocol(Market.SPOT).snapshot_request(USDM_KEY)


# ---- what we send, acks, control ---------------------------------------------------------------


def test_url_and_subscribe_round_trip():
    """Combined-stream URL on the configured base; SUBSCRIBE frames ack back as SUBSCRIBED."""
    proto = BinanceProtocol(Market.USDM)
    subs = [Subscription("BTCUSDT", Channel.BOOK), Subscription("ETHUSDT", Channel.TOP)]
    assert proto.url(USDM_WS_URL, subs) == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/ethusdt@bookTicker"
    )
    assert proto.url("ws://127.0.0.1:8765/", subs).startswith("ws://127.0.0.1:8765/stream?streams=btcusdt@")
    (sub_frame,) = proto.subscribe(subs)
    sent = orjson.loads(sub_frame)
    assert sent["method"] == "SUBSCRIBE"
    assert sent["params"] == ["btcusdt@depth@100ms", "ethusdt@bookTicker"]
    ack = orjson.dumps({"result": None, "id": sent["id"]})  # documented reply shape
    assert proto.receive(ack, 1).updates == [Control(ControlKind.SUBSCRIBED, f"request id {sent['id']}")]
    (unsub_frame,) = proto.unsubscribe(subs[:1])
    unsent = orjson.loads(unsub_frame)
    assert (unsent["method"], unsent["params"]) == ("UNSUBSCRIBE", ["btcusdt@depth@100ms"])
    assert unsent["id"] != sent["id"]
    reply = proto.receive(orjson.dumps({"result": None, "id": unsent["id"]}), 2)
    assert reply.updates == [Control(ControlKind.UNSUBSCRIBED, f"request id {unsent['id']}")]


def test_subscribe_is_split_per_message_limit():
    proto = BinanceProtocol(Market.SPOT)
    subs = [Subscription(f"SYM{i}USDT", Channel.BOOK) for i in range(450)]
    frames = [orjson.loads(f) for f in proto.subscribe(subs)]
    assert [len(f["params"]) for f in frames] == [200, 200, 50]
    assert len({f["id"] for f in frames}) == 3


def test_error_replies_become_error_controls():
    """Both documented error shapes (futures nested, spot flat) become ERROR controls."""
    proto = BinanceProtocol(Market.SPOT)
    nested = proto.receive(b'{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":7}', 1)
    assert nested.updates == [
        Control(ControlKind.ERROR, "binance error 2: Invalid request: unknown variant (request id 7)")
    ]
    flat = proto.receive(b'{"code":0,"msg":"Unknown property","id":8}', 1)
    assert flat.updates == [Control(ControlKind.ERROR, "binance error 0: Unknown property (request id 8)")]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"e":"serverShutdown","E":1741080000000}',  # documented raw form
        b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1741080000000}}',  # combined form
    ],
)
def test_server_shutdown_asks_for_a_reconnect(frame):
    received = BinanceProtocol(Market.SPOT).receive(frame, 1)
    assert received.updates == [Control(ControlKind.SERVER_SHUTDOWN, "serverShutdown")]
    assert received.actions == [Reconnect("binance serverShutdown")]


def test_limits_per_docs():
    """Spot: 5 msg/s, 1024 streams, 24 h. USD-M: 10 msg/s, designed for 200 streams, 24 h."""
    assert BinanceProtocol(Market.SPOT).limits is SPOT_LIMITS
    assert (SPOT_LIMITS.max_messages_per_second, SPOT_LIMITS.max_streams_per_connection) == (5.0, 1024)
    assert SPOT_LIMITS.max_lifetime_s == FUTURES_LIMITS.max_lifetime_s == 86_400.0
    assert BinanceProtocol(Market.USDM).limits is FUTURES_LIMITS
    assert (FUTURES_LIMITS.max_messages_per_second, FUTURES_LIMITS.max_streams_per_connection) == (10.0, 200)
    assert BinanceProtocol(Market.SPOT).app_ping() is None
    with pytest.raises(LocalProtocolError, match="exceed"):
        BinanceProtocol(Market.USDM).url(USDM_WS_URL, [Subscription(f"S{i}", Channel.TOP) for i in range(201)])


def test_default_endpoints_per_market():
    assert (BinanceProtocol(Market.SPOT).ws_url, BinanceProtocol(Market.SPOT).rest_url) == (
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
    )
    assert BinanceProtocol(Market.USDM).ws_url == "wss://fstream.binance.com/public"
    assert BinanceProtocol(Market.COINM).rest_url == "https://dapi.binance.com"
    assert BinanceProtocol(Market.SPOT, ws_url="ws://127.0.0.1:1").ws_url == "ws://127.0.0.1:1"


def test_new_sync_rules_and_contract_types():
    """Spot and USD-M books are in base units; COIN-M books are inverse with the USD contract size."""
    spot = BinanceProtocol(Market.SPOT).new_sync(SPOT_KEY)
    assert isinstance(spot.rules, BinanceSpotRules)
    assert spot.book.contract_type is ContractType.BASE
    usdm = BinanceProtocol(Market.USDM).new_sync(USDM_KEY)
    assert isinstance(usdm.rules, BinanceFuturesRules)
    coinm = BinanceProtocol(Market.COINM, contract_sizes={"BTCUSD_PERP": 100.0}).new_sync("binance:coinm:BTCUSD_PERP")
    assert isinstance(coinm.rules, BinanceFuturesRules)
    assert (coinm.book.contract_type, coinm.book.contract_size) == (ContractType.INVERSE, 100.0)
    with pytest.raises(LocalProtocolError, match="contract size unknown"):
        BinanceProtocol(Market.COINM).new_sync("binance:coinm:ETHUSD_PERP")


def test_coinm_decodes_the_futures_depth_layout():
    """COIN-M uses the USD-M depth layout (with pu); keys carry the coinm market."""
    ns, frame = hft_frame(USDM_BTC, b"@depth")
    delta = only(BinanceProtocol(Market.COINM).receive(frame, ns).updates)
    assert isinstance(delta, BookDelta)
    assert (delta.key, delta.prev_id) == ("binance:coinm:BTCUSDT", 5123107831937)


# ---- malformed frames --------------------------------------------------------------------------


def test_every_truncation_of_a_real_frame_is_malformed():
    """Cutting a real depth frame anywhere raises MalformedFrame; no partial update ever comes out."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")
    proto = BinanceProtocol(Market.SPOT)
    for cut in range(len(frame)):
        with pytest.raises(MalformedFrame):
            proto.receive(frame[:cut], ns)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'"U":50093239189', b'"U":"abc"', "depth frame"),  # wrong type
        (b'"u":50093239202', b'"u":null', "depth frame"),  # wrong type
        (b'["61737.63000000","0.00000000"]', b'["61737.63000000"]', "depth frame"),  # short level
        (b'"b":[', b'"b":{"x":1},"c":[', "depth frame"),  # object where a list belongs
        (b'"s":"BTCUSDT"', b'"s":"ETHUSDT"', "depth event for ETHUSDT on stream of BTCUSDT"),
        (b'"stream":"btcusdt@depth@100ms"', b'"stream":"btcusdt@nonsense"', "unknown stream"),
        (b'"stream":"btcusdt@depth@100ms"', b'"stream":"btcusdt"', "unknown stream"),
    ],
)
def test_wrong_types_and_unknown_streams_are_malformed(old, new, reason):
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")
    assert old in frame
    with pytest.raises(MalformedFrame, match=reason) as info:
        BinanceProtocol(Market.SPOT).receive(frame.replace(old, new, 1), ns)
    assert info.value.venue == "binance"
    assert len(info.value.sample) <= 200


def refused_on_both_paths(
    frame: bytes, old: bytes, new: bytes, ns: int, *, combined: str, raw: str, event: bytes = b""
) -> MalformedFrame:
    """``frame`` with ``old`` replaced by ``new`` is refused as the combined-stream frame (``combined``
    matches the error, which is returned) and as a raw /ws/ event (its data alone, ``raw`` matches)."""
    assert old in frame
    with pytest.raises(MalformedFrame, match=combined) as info:
        BinanceProtocol(Market.SPOT).receive(frame.replace(old, new, 1), ns)
    raw_event = frame[frame.index(b'"data":') + 7 : -1]
    if event:
        raw_event = raw_event.replace(b"{", b'{"e":"%s",' % event, 1)
    with pytest.raises(MalformedFrame, match=raw):
        BinanceProtocol(Market.SPOT).receive(raw_event.replace(old, new, 1), ns)
    return info.value


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'["61737.63000000","0.00000000"]', b'["nan","0.00000000"]', r"bid level 0 \(nan, 0.0\): the price must be"),
        (b'["61730.17000000","0.00000000"]', b'["61730.17","-1"]', r"bid level 1 \(61730.17, -1.0\): the quantity"),
        (b'["61837.64000000","1.54698000"]', b'["inf","1.54698000"]', r"ask level 0 \(inf, 1.54698\): the price must"),
        (b'["61837.64000000","1.54698000"]', b'["0","1.54698000"]', r"ask level 0 \(0.0, 1.54698\): the price must"),
        (b'["61839.85000000","0.00000000"]', b'["61839.85","Infinity"]', r"ask level 1 \(61839.85, inf\): the"),
        (b'["61839.86000000","0.00000000"]', b'["-61839.86","0"]', r"ask level 2 \(-61839.86, 0.0\): the price"),
    ],
)
def test_levels_no_book_can_hold_are_malformed(old, new, reason):
    """Non-strict decoding alone takes "nan", "inf" and negatives: the protocol refuses the whole recorded
    frame, naming the book, side, index and value (the feed then resyncs that book)."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")
    match = f"malformed frame: {SPOT_KEY}: {reason}"
    error = refused_on_both_paths(frame, old, new, ns, combined=match, raw=match)
    assert (error.venue, error.key) == ("binance", SPOT_KEY)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'"b":"61837.63000000"', b'"b":"nan"', r"`float` > 0.0 - at `\$.data.b`"),
        (b'"a":"61837.64000000"', b'"a":"0"', r"`float` > 0.0 - at `\$.data.a`"),
        (b'"B":"3.78826000"', b'"B":"-3"', r"`float` > 0.0 - at `\$.data.B`"),
        (b'"A":"1.54698000"', b'"A":"0.00000000"', r"`float` > 0.0 - at `\$.data.A`"),  # a top is never empty
        (b'"A":"1.54698000"', b'"A":"inf"', r"`float` <= 1.797.* - at `\$.data.A`"),
    ],
)
def test_book_ticker_no_book_can_hold_is_malformed(old, new, reason):
    ns, frame = hft_frame(SPOT_BTC_0808, b"@bookTicker")
    refused_on_both_paths(
        frame,
        old,
        new,
        ns,
        combined=f"malformed frame: top frame: Expected {reason}",
        raw=f"malformed frame: event body: Expected {reason.replace('.data', '')}",
        event=b"bookTicker",  # spot's bookTicker body has no "e": a raw one names itself
    )
    # The untouched frame decodes: the check refuses only the bad value.
    top = only(BinanceProtocol(Market.SPOT).receive(frame, ns).updates)
    assert isinstance(top, TopOfBook)
    assert (top.bid, top.bid_qty, top.ask, top.ask_qty) == (61837.63, 3.78826, 61837.64, 1.54698)


def test_snapshot_with_a_nan_level_is_malformed():
    _, body = hft_frame(SPOT_BTC_0808, b"lastUpdateId")
    bad = body.replace(b'["61837.62000000","0.61700000"]', b'["61837.62000000","NaN"]', 1)
    assert bad != body
    reason = r"binance:spot:BTCUSDT: bid level 1 \(61837.62, nan\): the quantity must be a finite number of 0"
    with pytest.raises(MalformedFrame, match=f"malformed frame: {reason}"):
        BinanceProtocol(Market.SPOT).parse_snapshot(SPOT_KEY, bad, 1)


def test_futures_depth_without_pu_is_malformed():
    """The pu chain is the futures sync rule: a futures depth event without pu is refused."""
    ns, frame = hft_frame(SPOT_BTC_0808, b"@depth")  # a spot event has no pu
    with pytest.raises(MalformedFrame, match="without pu"):
        BinanceProtocol(Market.USDM).receive(frame, ns)


@pytest.mark.parametrize("frame", [b"", b"null", b"[]", b"{}", b"not json", b'{"id":"x","result":'])
def test_garbage_is_malformed(frame):
    with pytest.raises(MalformedFrame):
        BinanceProtocol(Market.SPOT).receive(frame, 1)


# Documented markPriceUpdate layout (exchange-protocols.md §2.3): no licensed recording of it exists.
MARK_PRICE = (
    b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT",'
    b'"p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}}'
)


def test_mark_price_frames_go_to_the_funding_parser():
    """markPrice frames are handed whole to the plugged-in funding parser; without one they are skipped."""
    assert BinanceProtocol(Market.USDM).receive(MARK_PRICE, 1).updates == [
        Control(ControlKind.IGNORED, "markPrice", USDM_KEY)
    ]
    seen: list[tuple[bytes, int]] = []

    def parser(frame: bytes, recv_ns: int) -> list[FundingUpdate]:
        seen.append((frame, recv_ns))
        return [FundingUpdate(USDM_KEY, 0.00038167, 28_800_000, 1562306400000, recv_ns=recv_ns)]

    proto = BinanceProtocol(Market.USDM, funding_parser=parser)
    received = proto.receive(MARK_PRICE, 7)
    assert received.updates == [FundingUpdate(USDM_KEY, 0.00038167, 28_800_000, 1562306400000, recv_ns=7)]
    raw_event = orjson.dumps(orjson.loads(MARK_PRICE)["data"])
    proto.receive(raw_event, 8)
    assert seen == [(MARK_PRICE, 7), (raw_event, 8)]
    assert proto.stream_name(Subscription("BTCUSDT", Channel.FUNDING)) == "btcusdt@markPrice@1s"
    with pytest.raises(LocalProtocolError, match="spot has no funding"):
        BinanceProtocol(Market.SPOT).stream_name(Subscription("BTCUSDT", Channel.FUNDING))
