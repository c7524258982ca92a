"""OKX v5 wire schemas (msgspec), field names as the venue sends them.

Only what we read is declared; OKX adds fields over time and unknown ones are ignored. ``data`` is kept
raw in the envelope and decoded by the channel's own schema, so one frame is parsed once.
"""

from __future__ import annotations

import msgspec

_NO_DATA = msgspec.Raw(b"")


class Arg(msgspec.Struct):
    channel: str
    instId: str = ""  # venue field name


class Envelope(msgspec.Struct):
    """Every text frame but ``pong``: an event reply (``event``) or a push (``arg`` + ``data``)."""

    event: str = ""  # subscribe | unsubscribe | error | notice | channel-conn-count ...
    arg: Arg | None = None
    action: str = ""  # books: snapshot | update
    data: msgspec.Raw = _NO_DATA
    code: str = ""  # error/notice code, e.g. "60012", "64008"
    msg: str = ""


class BookData(msgspec.Struct):
    """One ``books*`` push: levels are ``[px, sz, "0" (deprecated), numOrders]`` strings."""

    asks: list[list[str]]
    bids: list[list[str]]
    ts: str = "0"  # venue ms, as a string
    checksum: int = 0  # signed CRC32 of the top 25; always 0 in production since 2026-06-23
    seqId: int | None = None  # absent from 2022 captures
    prevSeqId: int | None = None  # -1 on a snapshot


class RestBooks(msgspec.Struct):
    """``GET /api/v5/market/books`` reply."""

    code: str
    msg: str = ""
    data: list[BookData] = msgspec.field(default_factory=list)


class FundingData(msgspec.Struct):
    """One ``funding-rate`` push (same fields as ``GET /api/v5/public/funding-rate``)."""

    instId: str
    fundingRate: str  # for the current period, settled at fundingTime
    fundingTime: str  # ms: settlement time of the current period
    nextFundingTime: str  # ms: the settlement after; the difference is the interval
    instType: str = "SWAP"
    ts: str = "0"


class FundingHistoryRow(msgspec.Struct):
    """One row of ``GET /api/v5/public/funding-rate-history``."""

    instId: str
    fundingRate: str
    fundingTime: str
    realizedRate: str = ""  # what was actually charged
    method: str = ""


class FundingHistory(msgspec.Struct):
    code: str
    msg: str = ""
    data: list[FundingHistoryRow] = msgspec.field(default_factory=list)


class Instrument(msgspec.Struct):
    """One row of ``GET /api/v5/public/instruments``; numbers are decimal strings, "" when n/a."""

    instId: str
    instType: str  # SPOT | MARGIN | SWAP | FUTURES | OPTION
    tickSz: str
    lotSz: str
    minSz: str = ""
    baseCcy: str = ""  # spot
    quoteCcy: str = ""  # spot
    settleCcy: str = ""
    ctVal: str = ""  # contract value, derivatives
    ctValCcy: str = ""  # currency of ctVal: the base for linear, the quote for inverse
    ctType: str = ""  # linear | inverse
    ctMult: str = ""
    uly: str = ""  # underlying, e.g. BTC-USD
    expTime: str = ""
    state: str = ""  # live | suspend | preopen | ...


class Instruments(msgspec.Struct):
    code: str
    msg: str = ""
    data: list[Instrument] = msgspec.field(default_factory=list)
