"""Funding state of every perpetual, and settled funding history, venue-neutral.

Venue protocols normalize their funding streams to :class:`feeds.updates.FundingUpdate` (rate for one
interval, the interval, the next settlement, mark/index price, venue and receive time). This module keeps
the latest one per perpetual (:class:`FundingBook`) and defines the record of a settled funding
(:class:`FundingRecord`) that every venue's history parser returns, plus the interval helpers the
parsers share. Rates are decimal fractions per interval (0.0001 = 1 bp per interval).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from feeds.errors import MalformedFrame
from feeds.updates import FundingUpdate

HOUR_MS = 3_600_000
DEFAULT_INTERVAL_MS = 8 * HOUR_MS  # Binance and OKX default; Bybit states its interval per symbol


@dataclass(frozen=True, slots=True)
class FundingRecord:
    """One settled (or published) funding of a perpetual: the rate for the interval ending at ``funding_ms``.

    ``realized_rate`` is what was actually charged where the venue reports it separately (OKX), else None.
    """

    key: str
    funding_ms: int
    rate: float
    realized_rate: float | None = None
    mark_price: float | None = None


def finite(text: str) -> float:
    """A venue's decimal string as a float, refusing what ``float()`` also takes: ``nan`` and ``inf`` (a NaN
    rate would compare false with every threshold; an infinite one would swamp every carry)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def finite_price(text: str) -> float:
    """A mark or index price: finite and above 0."""
    value = finite(text)
    if value <= 0.0:
        raise ValueError(f"{text!r} is not a price above 0")
    return value


def interval_from_hours(hours: str | int | float, *, venue: str, symbol: str) -> int:
    """A venue's interval in hours (``fundingIntervalHour``, ``fundingIntervalHours``) as milliseconds."""
    try:
        value = float(hours)
    except (TypeError, ValueError) as exc:
        raise MalformedFrame(f"{symbol}: funding interval {hours!r} is not a number of hours", venue=venue) from exc
    if not 0 < value <= 24 * 7:
        raise MalformedFrame(f"{symbol}: funding interval {hours!r} h is out of range", venue=venue)
    return round(value * HOUR_MS)


def interval_from_times(funding_ms: int, next_funding_ms: int, *, venue: str, symbol: str) -> int:
    """OKX: the interval is ``nextFundingTime - fundingTime`` (8 h, or 6/4/2/1 h for volatile contracts)."""
    interval = next_funding_ms - funding_ms
    if not 0 < interval <= 7 * 24 * HOUR_MS:
        raise MalformedFrame(
            f"{symbol}: nextFundingTime {next_funding_ms} - fundingTime {funding_ms} = {interval} ms is no interval",
            venue=venue,
        )
    return interval


class FundingBook:
    """The latest funding state per perpetual key; newer venue time wins, so replays never go back."""

    __slots__ = ("_latest",)

    def __init__(self) -> None:
        self._latest: dict[str, FundingUpdate] = {}

    def apply(self, update: FundingUpdate) -> bool:
        """Store ``update`` unless an update with a later venue time is already stored. True if stored."""
        current = self._latest.get(update.key)
        if current is not None and update.venue_ms < current.venue_ms:
            return False
        self._latest[update.key] = update
        return True

    def get(self, key: str) -> FundingUpdate | None:
        return self._latest.get(key)

    def forget(self, key: str) -> bool:
        """Drop the state of ``key`` (its stream is down); True if there was one."""
        return self._latest.pop(key, None) is not None

    def age_ns(self, key: str, now_ns: int) -> int | None:
        """Nanoseconds since the stored update was received (local monotonic clock), or None."""
        current = self._latest.get(key)
        return None if current is None else now_ns - current.recv_ns

    def __iter__(self) -> Iterator[FundingUpdate]:
        return iter(self._latest.values())

    def __len__(self) -> int:
        return len(self._latest)
