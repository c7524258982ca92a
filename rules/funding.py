"""Funding expected over a holding horizon, counted by the settlements that fall inside it.

A perpetual settles at ``next_funding_ms`` and then every ``interval_ms`` (each venue and symbol has its
own interval: Binance 8 h unless listed in ``fundingInfo``, Bybit ``fundingIntervalHour``, OKX
``nextFundingTime − fundingTime``). A position opened at ``now_ms`` and held for ``horizon_ms`` receives
or pays the settlements at times ``t`` with ``now_ms < t <= now_ms + horizon_ms``. A ``next_funding_ms``
already in the past (the feed has not caught up with a settlement yet) is rolled forward by whole
intervals, for :data:`CATCH_UP_MS` at most: a stream's rate whose settlement is further behind comes from a
feed that stopped (an up-to-date one names the next settlement within seconds of it; OKX pushes every 30 to
90 s), and is not used (:func:`missed`: the leg's funding is unknown). A stated assumption rolls with the
clock and never misses one. The current rate is the estimate for every settlement in the horizon.

Sign: a positive rate is paid by longs to shorts. A short receives ``rate × notional`` per settlement,
a long pays it.
"""

from __future__ import annotations

import math

from rules.market import FundingView

CATCH_UP_MS = 300_000  # how long after its settlement a stream's next_funding_ms may still name it


def usable(funding: FundingView | None) -> bool:
    return funding is not None and funding.interval_ms > 0 and math.isfinite(funding.rate)


def missed_at(next_funding_ms: int, source: str) -> int | None:
    """The first market time at which a stream's (live or REST) funding naming ``next_funding_ms`` is missed:
    more than CATCH_UP_MS after that settlement. None for an assumption (it rolls with the clock)."""
    return None if source == "assumed" else next_funding_ms + CATCH_UP_MS + 1


def missed(next_funding_ms: int, source: str, now_ms: int) -> bool:
    """True if a stream's funding names a settlement more than CATCH_UP_MS before ``now_ms`` (:func:`missed_at`)."""
    at = missed_at(next_funding_ms, source)
    return at is not None and now_ms >= at


def settlements(now_ms: int, horizon_ms: int, next_funding_ms: int, interval_ms: int) -> int:
    """How many settlements fall in ``(now_ms, now_ms + horizon_ms]``."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    first = next_funding_ms
    if first <= now_ms:
        first += ((now_ms - first) // interval_ms + 1) * interval_ms
    end = now_ms + horizon_ms
    if first > end:
        return 0
    return (end - first) // interval_ms + 1
