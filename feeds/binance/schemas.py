"""Binance wire schemas (spot, USD-M, COIN-M market streams and REST depth), field names as Binance sends them.

Decoded with ``msgspec.json.Decoder(..., strict=False)``: Binance sends prices and quantities as decimal
strings, and non-strict mode converts them to float while decoding, with no Python-level loop
(measured ~4-5x faster than ``orjson.loads`` plus ``float()`` per level: ``python -m bench.decoders``).
The same string always parses to the same float, so book levels key exactly. Binance has no book
checksum, so the exact strings are not kept.

Non-strict decoding alone takes ``"nan"``, ``"inf"`` and ``"-1"``: the best bid/ask of a bookTicker carry
the rule every level obeys as msgspec constraints (a price finite and above 0, a quantity finite and 0 or
more), so a frame breaking them fails to decode with the value's path (``Expected `float` > 0.0 - at
`$.data.b```). Depth levels are checked after decoding by :func:`feeds.levels.check_levels`, one compiled
pass: per value, msgspec's constraint check costs more (measured with callgrind on ``bench.pipeline``).

Conversion to normalized updates happens only in :mod:`feeds.binance.protocol`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec

Price = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]  # NaN fails gt, inf fails le
# A top of book is a level, never a removal: a zero quantity there would make walks skip the book's own
# levels at and better than its price (the overlay is consumed first, then only worse levels).
TopQuantity = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]

# One price level: [price, quantity] as strings on the wire, floats after decoding (checked by the protocol).
WireLevel = tuple[float, float]


class DepthUpdate(msgspec.Struct, gc=False):
    """A diff-depth event (``<symbol>@depth[@100ms]``), spot and futures."""

    e: str  # event type, always "depthUpdate"
    E: int  # event time, venue ms
    s: str  # symbol, upper case (BTCUSDT; COIN-M: BTCUSD_PERP)
    U: int  # first update id in this event
    u: int  # final update id in this event
    b: list[WireLevel]  # bids to set: absolute quantity, 0 removes the level
    a: list[WireLevel]  # asks to set: absolute quantity, 0 removes the level
    T: int = 0  # futures only: transaction time, venue ms
    pu: int | None = None  # futures only: final update id of the previous event (the chain); spot has none
    ps: str = ""  # COIN-M only: the pair (BTCUSD)


class BookTicker(msgspec.Struct, gc=False):
    """A best bid/ask event (``<symbol>@bookTicker``). Spot sends only u/s/b/B/a/A (no e, E, T)."""

    u: int  # order book update id this top belongs to (same id space as the depth diffs)
    s: str  # symbol
    b: Price  # best bid price
    B: TopQuantity  # best bid quantity
    a: Price  # best ask price
    A: TopQuantity  # best ask quantity
    e: str = ""  # futures only: event type "bookTicker"
    E: int = 0  # futures only: event time, venue ms
    T: int = 0  # futures only: transaction time, venue ms
    ps: str = ""  # COIN-M only: the pair


class DepthFrame(msgspec.Struct, gc=False):
    """Combined-stream envelope around a diff-depth event."""

    stream: str  # stream name, lower-case symbol: "btcusdt@depth@100ms"
    data: DepthUpdate  # the event


class BookTickerFrame(msgspec.Struct, gc=False):
    """Combined-stream envelope around a bookTicker event."""

    stream: str  # stream name: "btcusdt@bookTicker"
    data: BookTicker  # the event


class WsError(msgspec.Struct, gc=False):
    """The ``error`` object of a refused request: ``{"error":{"code":2,"msg":"Invalid request"},"id":1}``."""

    code: int  # Binance error code
    msg: str  # human-readable reason


class AnyFrame(msgspec.Struct, gc=False):
    """Any frame, bodies left undecoded: the slow path when the fast ``{"stream":"`` prefix check fails.

    Combined-stream events carry ``stream`` and ``data`` (in any key order). Replies:
    ``{"result":null,"id":1}`` acknowledges SUBSCRIBE/UNSUBSCRIBE; errors come as
    ``{"error":{...},"id":1}`` or (spot) ``{"code":2,"msg":"...","id":1}``. Raw (``/ws/``) events carry ``e``.
    """

    stream: str | None = None  # combined-stream name
    data: msgspec.Raw = msgspec.Raw()  # combined-stream event, decoded later by its stream's decoder; empty if absent

    id: int | str | None = None  # the request id we sent
    result: msgspec.Raw = msgspec.Raw()  # null for SUBSCRIBE acks, a list for LIST_SUBSCRIPTIONS; empty if absent
    error: WsError | None = None  # futures-style error reply
    code: int | None = None  # spot-style error reply: code
    msg: str | None = None  # spot-style error reply: message
    e: str | None = None  # event type of a raw event ("serverShutdown", "depthUpdate", ...)
    E: int = 0  # event time of a raw event, venue ms


class DepthSnapshot(msgspec.Struct, gc=False):
    """REST ``GET /api/v3/depth`` (spot), ``/fapi/v1/depth`` (USD-M), ``/dapi/v1/depth`` (COIN-M)."""

    lastUpdateId: int  # the book's update id at the snapshot
    bids: list[WireLevel]  # best first
    asks: list[WireLevel]  # best first
    E: int = 0  # futures only: message output time, venue ms
    T: int = 0  # futures only: transaction time, venue ms
    symbol: str = ""  # COIN-M only: symbol
    pair: str = ""  # COIN-M only: pair
