"""OKX funding: the ``funding-rate`` push, and funding history over REST (pure parsers and requests).

``fundingRate`` is the rate of the current period, settled at ``fundingTime``; ``nextFundingTime`` is the
settlement after it, so the interval is their difference (exchange-protocols.md §4.3).
"""

from __future__ import annotations

import msgspec

from feeds.errors import MalformedFrame, VenueRejected
from feeds.funding import FundingRecord, finite, interval_from_times
from feeds.instruments import Market, Venue
from feeds.okx.schemas import FundingData, FundingHistory
from feeds.protocol import RestRequest
from feeds.updates import FundingUpdate, book_key

HISTORY_PATH = "/api/v5/public/funding-rate-history"
HISTORY_LIMIT = 400  # per page (OKX keeps only the last 3 months)

_history = msgspec.json.Decoder(FundingHistory)


def funding_update(row: FundingData, recv_ns: int) -> FundingUpdate:
    """Normalize one ``funding-rate`` push; numbers arrive as strings."""
    try:
        funding_ms, next_ms = int(row.fundingTime), int(row.nextFundingTime)
        rate, venue_ms = finite(row.fundingRate), int(row.ts)
    except ValueError as exc:
        raise MalformedFrame(f"funding-rate {row.instId}: {exc}", venue="okx") from exc
    interval = interval_from_times(funding_ms, next_ms, venue="okx", symbol=row.instId)
    return FundingUpdate(
        key=book_key(Venue.OKX, Market.SWAP, row.instId),
        rate=rate,
        interval_ms=interval,
        next_funding_ms=funding_ms,
        venue_ms=venue_ms,
        recv_ns=recv_ns,
    )


def history_request(inst_id: str, *, after_ms: int | None = None, limit: int = HISTORY_LIMIT) -> RestRequest:
    """One page of settled rates, newest first; ``after_ms`` pages back (records strictly earlier)."""
    params = {"instId": inst_id, "limit": str(limit)}
    if after_ms is not None:
        params["after"] = str(after_ms)
    return RestRequest("GET", HISTORY_PATH, params)


def parse_history(body: bytes) -> list[FundingRecord]:
    """Decode a funding-rate-history reply, oldest first."""
    try:
        reply = _history.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"funding-rate-history: {exc}", venue="okx", sample=body) from exc
    if reply.code != "0":
        raise VenueRejected("okx", f"funding-rate-history: {reply.code} {reply.msg}")
    try:
        records = [
            FundingRecord(
                key=book_key(Venue.OKX, Market.SWAP, row.instId),
                funding_ms=int(row.fundingTime),
                rate=finite(row.fundingRate),
                realized_rate=finite(row.realizedRate) if row.realizedRate else None,
            )
            for row in reply.data
        ]
    except ValueError as exc:
        raise MalformedFrame(f"funding-rate-history: {exc}", venue="okx", sample=body) from exc
    records.sort(key=lambda r: r.funding_ms)
    return records
