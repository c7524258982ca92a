"""Bybit v5 public websocket and REST schemas (msgspec), field names as the venue sends them.

Key order differs between products (spot puts ``ts`` before ``type``), which a decoder by name ignores.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Envelope(msgspec.Struct):
    """A push (``topic`` + ``data``) or a command reply (``op``: subscribe, ping/pong)."""

    topic: str = ""
    type: str = ""  # snapshot | delta
    ts: int = 0  # venue ms of the push
    data: msgspec.Raw = msgspec.Raw(b"")
    cts: int = 0  # matching-engine time (books)
    op: str = ""  # replies: subscribe | unsubscribe | ping | pong
    success: bool | None = None
    ret_msg: str = ""


class BookData(msgspec.Struct):
    """``orderbook.{depth}.{symbol}``: levels ``[price, size]`` strings; ``u`` update id; ``seq`` cross sequence."""

    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int | None = None


TickerFields = dict[str, Any]  # tickers deltas omit unchanged fields: merged into a cached dict


class FundingHistoryRow(msgspec.Struct):
    symbol: str
    fundingRate: str
    fundingRateTimestamp: str  # ms, as a string


class FundingHistoryResult(msgspec.Struct):
    rows: list[FundingHistoryRow] = msgspec.field(name="list")  # newest first
    category: str = ""


class FundingHistory(msgspec.Struct):
    retCode: int
    retMsg: str = ""
    result: FundingHistoryResult | None = None
