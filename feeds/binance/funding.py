"""Binance USD-M funding: ``<symbol>@markPrice@1s`` on the ``/market`` endpoint, the funding interval from
``/fapi/v1/fundingInfo``, and funding history from ``/fapi/v1/fundingRate``. Pure parsers and requests.

Since the 2026 URL split, mark price streams are served only on ``wss://fstream.binance.com/market``
(exchange-protocols.md §2.1, §2.3): a connection to the bare root or ``/public`` never carries them. The
frame ``{"e":"markPriceUpdate","E":..,"s":"BTCUSDT","p":mark,"i":index,"P":..,"r":rate,"T":next}`` gives
the rate for the funding at ``T``. The interval is not in the stream: ``fundingInfo`` lists only symbols
whose interval (or cap/floor) was adjusted, so a symbol not listed has the default 8 h.

:class:`MarkPriceParser` plugs into :class:`feeds.binance.protocol.BinanceProtocol` as its
``funding_parser``; :func:`usdm_funding_protocol` builds that protocol for the ``/market`` endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from feeds.binance.protocol import USDM_MARKET_WS_URL, USDM_REST_URL, BinanceProtocol
from feeds.errors import MalformedFrame, VenueRejected
from feeds.funding import DEFAULT_INTERVAL_MS, FundingRecord, finite, finite_price, interval_from_hours
from feeds.instruments import Market, Venue
from feeds.protocol import RestRequest
from feeds.updates import Control, ControlKind, FundingUpdate, book_key

FUNDING_INFO_PATH = "/fapi/v1/fundingInfo"
HISTORY_PATH = "/fapi/v1/fundingRate"
HISTORY_LIMIT = 1000
# fundingInfo and fundingRate share a 500 requests / 5 min / IP pool (weight 0 on the request-weight one).
FUNDING_POOL_LIMIT, FUNDING_POOL_WINDOW_S = 500, 300.0


class MarkPrice(msgspec.Struct):
    """``markPriceUpdate``: numbers are strings except the times."""

    s: str  # symbol
    p: str  # mark price
    i: str  # index price
    r: str  # funding rate for the funding at T ("" for delivery contracts)
    T: int  # next funding time, ms (0 for delivery contracts)
    E: int = 0  # event time, ms
    P: str = ""  # estimated settle price


class _Single(msgspec.Struct):
    data: MarkPrice
    stream: str = ""


class _All(msgspec.Struct):
    data: list[MarkPrice]
    stream: str = ""


class FundingInfo(msgspec.Struct):
    symbol: str
    fundingIntervalHours: int | float | str = 8  # venue field name
    adjustedFundingRateCap: str = ""
    adjustedFundingRateFloor: str = ""


class FundingRateRow(msgspec.Struct):
    symbol: str
    fundingRate: str
    fundingTime: int
    markPrice: str = ""


class _RestError(msgspec.Struct):
    code: int
    msg: str = ""


_single = msgspec.json.Decoder(_Single)
_all = msgspec.json.Decoder(_All)
_info = msgspec.json.Decoder(list[FundingInfo])
_history = msgspec.json.Decoder(list[FundingRateRow])
_error = msgspec.json.Decoder(_RestError)


class MarkPriceParser:
    """Turns ``markPrice`` frames (one symbol, or the ``!markPrice@arr`` array) into funding updates.

    ``intervals_ms`` comes from :func:`parse_funding_info`; symbols not in it fund every 8 h, which is
    Binance's documented default, not a guess. Delivery contracts (``r == ""``) have no funding: skipped.
    """

    __slots__ = ("_bad", "intervals_ms", "market")

    def __init__(self, intervals_ms: Mapping[str, int] | None = None, *, market: Market = Market.USDM) -> None:
        self.intervals_ms: Mapping[str, int] = intervals_ms or {}
        self.market = market
        self._bad: set[str] = set()  # symbols of the array whose last event was refused (reported once)

    def __call__(self, raw: bytes, recv_ns: int) -> list[FundingUpdate | Control]:
        try:
            all_market = raw.startswith(b'{"stream":"!')  # !markPrice@arr: an array of every symbol
            events = _all.decode(raw).data if all_market else [_single.decode(raw).data]
        except msgspec.DecodeError as exc:
            raise MalformedFrame(f"markPrice frame: {exc}", venue=Venue.BINANCE, sample=raw) from None
        if not all_market:
            update = self.update(events[0], recv_ns)
            return [update] if update is not None else []
        # One symbol's bad values cost that symbol only, not every symbol's funding; reported when it turns
        # bad (the array comes every second: not a warning a second while it stays bad).
        out: list[FundingUpdate | Control] = []
        bad = self._bad
        for event in events:
            try:
                update = self.update(event, recv_ns)
            except MalformedFrame as exc:
                if event.s not in bad:
                    bad.add(event.s)
                    out.append(Control(ControlKind.ERROR, exc.reason, book_key(Venue.BINANCE, self.market, event.s)))
                continue
            bad.discard(event.s)
            if update is not None:
                out.append(update)
        return out

    def update(self, event: MarkPrice, recv_ns: int) -> FundingUpdate | None:
        if not event.r or not event.T:
            return None
        try:
            return FundingUpdate(
                key=book_key(Venue.BINANCE, self.market, event.s),
                rate=finite(event.r),
                interval_ms=self.intervals_ms.get(event.s, DEFAULT_INTERVAL_MS),
                next_funding_ms=event.T,
                mark_price=finite_price(event.p),
                index_price=finite_price(event.i),
                venue_ms=event.E,
                recv_ns=recv_ns,
            )
        except ValueError as exc:
            raise MalformedFrame(f"markPrice {event.s}: {exc}", venue=Venue.BINANCE) from None


def usdm_funding_protocol(
    intervals_ms: Mapping[str, int] | None = None, *, ws_url: str = USDM_MARKET_WS_URL, rest_url: str = USDM_REST_URL
) -> BinanceProtocol:
    """A USD-M protocol for the ``/market`` endpoint whose ``markPrice@1s`` frames become funding updates."""
    return BinanceProtocol(Market.USDM, ws_url=ws_url, rest_url=rest_url, funding_parser=MarkPriceParser(intervals_ms))


def _check_error(body: bytes, what: str) -> None:
    if body.lstrip().startswith(b"{"):
        try:
            err = _error.decode(body)
        except msgspec.DecodeError:
            return
        raise VenueRejected(Venue.BINANCE, f"{what}: {err.code} {err.msg}")


def funding_info_request() -> RestRequest:
    return RestRequest("GET", FUNDING_INFO_PATH, {}, weight=1)


def parse_funding_info(body: bytes) -> dict[str, int]:
    """``/fapi/v1/fundingInfo`` → {symbol: interval ms} for the adjusted symbols (all others: 8 h)."""
    _check_error(body, "fundingInfo")
    try:
        rows = _info.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"fundingInfo: {exc}", venue=Venue.BINANCE, sample=body) from None
    return {
        row.symbol: interval_from_hours(row.fundingIntervalHours, venue=Venue.BINANCE, symbol=row.symbol)
        for row in rows
    }


def history_request(
    symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = HISTORY_LIMIT
) -> RestRequest:
    """One page of settled rates in ascending time from ``start_ms`` (without a range: the latest 200)."""
    params = {"symbol": symbol, "limit": str(limit)}
    if start_ms is not None:
        params["startTime"] = str(start_ms)
    if end_ms is not None:
        params["endTime"] = str(end_ms)
    return RestRequest("GET", HISTORY_PATH, params, weight=1)


def parse_history(body: bytes, *, market: Market = Market.USDM) -> list[FundingRecord]:
    """``/fapi/v1/fundingRate`` → records, oldest first."""
    _check_error(body, "fundingRate")
    try:
        rows = _history.decode(body)
        records = [
            FundingRecord(
                book_key(Venue.BINANCE, market, row.symbol),
                row.fundingTime,
                finite(row.fundingRate),
                mark_price=finite_price(row.markPrice) if row.markPrice else None,
            )
            for row in rows
        ]
    except (msgspec.DecodeError, ValueError) as exc:
        raise MalformedFrame(f"fundingRate: {exc}", venue=Venue.BINANCE, sample=body) from None
    records.sort(key=lambda r: r.funding_ms)
    return records
