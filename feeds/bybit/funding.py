"""Bybit funding: ``tickers.{symbol}`` snapshot + delta merge, and funding history over REST.

Linear/inverse tickers send a ``snapshot`` and then ``delta`` messages in which **a missing field means
unchanged** (exchange-protocols.md §3.3), so the fields are merged into one cached dict per symbol and the
funding state is read from the merge. ``fundingRate`` applies at ``nextFundingTime``; the interval is
``fundingIntervalHour`` (whole hours, a string) when the ticker carries it, else the instrument's
``fundingInterval`` (minutes) from instruments-info, handed to :class:`TickerMerge` at construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from feeds.bybit.schemas import FundingHistory
from feeds.errors import MalformedFrame, VenueRejected
from feeds.funding import FundingRecord, finite, finite_price, interval_from_hours
from feeds.instruments import Market, Venue
from feeds.protocol import RestRequest
from feeds.updates import FundingUpdate, book_key

HISTORY_PATH = "/v5/market/funding/history"
HISTORY_LIMIT = 200
_FUNDING_FIELDS = ("fundingRate", "nextFundingTime", "fundingIntervalHour", "markPrice", "indexPrice")

_history = msgspec.json.Decoder(FundingHistory)


class TickerMerge:
    """Merged ticker fields per symbol for one market; yields a :class:`FundingUpdate` when they allow.

    ``intervals_ms`` maps a symbol to its funding interval from instrument metadata, used when the ticker
    does not state ``fundingIntervalHour``. A symbol with neither has no interval: no update is produced
    (never a guessed 8 h) and :meth:`apply` reports it once through :attr:`missing_interval`.
    """

    __slots__ = ("_fields", "intervals_ms", "market", "missing_interval")

    def __init__(self, market: Market, intervals_ms: Mapping[str, int] | None = None) -> None:
        self.market = market
        self.intervals_ms: Mapping[str, int] = intervals_ms or {}
        self._fields: dict[str, dict[str, Any]] = {}
        self.missing_interval: set[str] = set()

    def fields(self, symbol: str) -> dict[str, Any]:
        """The merged fields of a symbol (empty before its snapshot)."""
        return self._fields.get(symbol, {})

    def forget(self, symbol: str) -> None:
        """Drop a symbol's merged fields (a push of its topic was refused): its deltas wait for a snapshot."""
        self._fields.pop(symbol, None)

    def apply(self, kind: str, data: dict[str, Any], venue_ms: int, recv_ns: int) -> FundingUpdate | None:
        """Merge one ``snapshot`` or ``delta``; a funding update if funding fields are known and changed."""
        symbol = data.get("symbol")
        if not isinstance(symbol, str):
            raise MalformedFrame(f"tickers: no symbol in {kind}", venue="bybit")
        if kind == "snapshot":
            merged = dict(data)
        elif kind == "delta":
            old = self._fields.get(symbol)
            if old is None:
                return None  # a delta before the snapshot: nothing to merge into yet
            merged = {**old, **data}
        else:
            raise MalformedFrame(f"tickers {symbol}: unknown type {kind!r}", venue="bybit")
        # Kept only once it reads: a refused value must not stay behind to refuse every later delta. Nor
        # may the state before it go on: the refused delta may have carried other changes (a new
        # nextFundingTime), so the symbol's fields are dropped and its deltas ignored until a snapshot.
        try:
            update = self._funding(symbol, merged, data, venue_ms, recv_ns)
        except MalformedFrame:
            self.forget(symbol)
            raise
        self._fields[symbol] = merged
        return update

    def _funding(
        self, symbol: str, merged: dict[str, Any], data: dict[str, Any], venue_ms: int, recv_ns: int
    ) -> FundingUpdate | None:
        if not any(name in data for name in _FUNDING_FIELDS):
            return None
        rate, next_ms = merged.get("fundingRate"), merged.get("nextFundingTime")
        if not rate or not next_ms:
            return None  # spot, or a dated future: no funding
        hours = merged.get("fundingIntervalHour")
        try:
            if hours:
                interval = interval_from_hours(hours, venue="bybit", symbol=symbol)
            elif symbol in self.intervals_ms:
                interval = self.intervals_ms[symbol]
            else:
                self.missing_interval.add(symbol)
                return None
            mark, index = merged.get("markPrice"), merged.get("indexPrice")
            return FundingUpdate(
                key=book_key(Venue.BYBIT, self.market, symbol),
                rate=finite(rate),
                interval_ms=interval,
                next_funding_ms=int(next_ms),
                mark_price=finite_price(mark) if mark else None,
                index_price=finite_price(index) if index else None,
                venue_ms=venue_ms,
                recv_ns=recv_ns,
            )
        except (TypeError, ValueError) as exc:
            raise MalformedFrame(f"tickers {symbol}: {exc}", venue="bybit") from exc


def history_request(
    symbol: str, *, category: str = "linear", end_ms: int | None = None, limit: int = HISTORY_LIMIT
) -> RestRequest:
    """One page of settled rates, newest first, ending at ``end_ms`` (only ``startTime`` is an error)."""
    params = {"category": category, "symbol": symbol, "limit": str(limit)}
    if end_ms is not None:
        params["endTime"] = str(end_ms)
    return RestRequest("GET", HISTORY_PATH, params)


def parse_history(body: bytes, *, market: Market = Market.LINEAR) -> list[FundingRecord]:
    """Decode ``/v5/market/funding/history``, oldest first."""
    try:
        reply = _history.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"funding/history: {exc}", venue="bybit", sample=body) from exc
    if reply.retCode != 0 or reply.result is None:
        raise VenueRejected("bybit", f"funding/history: {reply.retCode} {reply.retMsg}")
    try:
        records = [
            FundingRecord(
                book_key(Venue.BYBIT, market, row.symbol), int(row.fundingRateTimestamp), finite(row.fundingRate)
            )
            for row in reply.result.rows
        ]
    except ValueError as exc:
        raise MalformedFrame(f"funding/history: {exc}", venue="bybit", sample=body) from exc
    records.sort(key=lambda r: r.funding_ms)
    return records
