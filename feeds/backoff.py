"""Reconnect policy as data: jittered, capped exponential backoff and a classifier of failures.

The shape follows the websockets library's ``backoff()`` and ``process_exception``: the first retry waits
a random fraction of ``initial_s`` (so a fleet of clients dropped together does not reconnect together),
then delays grow by ``factor`` up to ``max_s``, each jittered by ``± jitter``. A connection that stayed up
for ``healthy_after_s`` resets the sequence: one blip after hours of service retries quickly, a flapping
endpoint backs off.

:func:`classify` decides whether a failure is worth retrying. Network trouble, server errors and rate
limits are; our own bugs (``TypeError``, ``LocalProtocolError``...) and explicit refusals are not: retrying
a programming error only hides it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus

from feeds.errors import ConnectionLost, RateLimited


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    """How long to wait between reconnection attempts (seconds)."""

    initial_s: float = 1.0  # the first retry waits uniform(0, initial_s)
    min_s: float = 0.5  # the second retry waits this, then it grows by ``factor``
    max_s: float = 60.0  # never wait longer than this (before jitter)
    factor: float = 1.618
    jitter: float = 0.2  # each delay is scaled by uniform(1 - jitter, 1 + jitter)
    healthy_after_s: float = 30.0  # a connection up this long resets the sequence

    def __post_init__(self) -> None:
        problems = []
        if self.initial_s < 0:
            problems.append(f"initial_s={self.initial_s} must be >= 0")
        if not 0 < self.min_s <= self.max_s:
            problems.append(f"min_s={self.min_s} must be > 0 and <= max_s={self.max_s}")
        if self.factor < 1:
            problems.append(f"factor={self.factor} must be >= 1")
        if not 0 <= self.jitter < 1:
            problems.append(f"jitter={self.jitter} must be in [0, 1)")
        if self.healthy_after_s < 0:
            problems.append(f"healthy_after_s={self.healthy_after_s} must be >= 0")
        if problems:
            raise ValueError("invalid backoff policy: " + "; ".join(problems))

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The delays of one failure streak, forever (the cap repeats)."""
        yield rng.random() * self.initial_s
        delay = self.min_s
        while True:
            yield min(delay, self.max_s) * (1 + self.jitter * (2 * rng.random() - 1))
            delay = min(delay * self.factor, self.max_s)


class Backoff:
    """The backoff state of one reconnecting thing (a websocket slot, a snapshot fetcher)."""

    __slots__ = ("_connected_ns", "_delays", "_rng", "attempts", "policy")

    def __init__(self, policy: BackoffPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._delays: Iterator[float] | None = None
        self._connected_ns: int | None = None
        self.attempts = 0  # failures in the current streak

    def next_delay(self, *, at_least_s: float = 0.0) -> float:
        """The wait before the next attempt; ``at_least_s`` honours a venue's Retry-After."""
        if self._delays is None:
            self._delays = self.policy.delays(self._rng)
        self.attempts += 1
        return max(next(self._delays), at_least_s)

    def reset(self) -> None:
        self._delays = None
        self.attempts = 0

    def connected(self, now_ns: int) -> None:
        """A connection is up; whether it was healthy is decided when it ends."""
        self._connected_ns = now_ns

    def disconnected(self, now_ns: int) -> None:
        """The connection ended; a long, healthy one resets the failure streak."""
        if self._connected_ns is not None and now_ns - self._connected_ns >= self.policy.healthy_after_s * 1e9:
            self.reset()
        self._connected_ns = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about a failure: retry (no sooner than ``min_delay_s``) or give up."""

    retry: bool
    reason: str
    min_delay_s: float = 0.0


# HTTP statuses a retry can cure: rate limits (honour Retry-After) and server-side trouble (every 5xx, below).
# 403 too: Binance's WAF and Bybit's IP rate limit refuse a handshake with it for a while.
_RETRYABLE_STATUS = frozenset({403, 408, 418, 425, 429, 500, 502, 503, 504})
# Without a Retry-After, wait as the REST client does: 418 means the IP is already banned.
_BAN_FLOOR_S = {418: 120.0, 429: 60.0}


def classify(exc: BaseException) -> Decision:
    """Retryable or fatal. Anything not known to be transient is fatal (an unknown error is a bug)."""
    name = type(exc).__name__
    if isinstance(exc, RateLimited):
        return Decision(True, str(exc), exc.retry_after_s)
    if isinstance(exc, ConnectionLost):
        return Decision(True, str(exc))
    if isinstance(exc, ConnectionClosed):
        return Decision(True, f"connection closed: {exc}")
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in _RETRYABLE_STATUS or status >= 500:
            retry_after = retry_after_seconds(exc.response.headers.get("Retry-After")) or _BAN_FLOOR_S.get(status, 0.0)
            return Decision(True, f"handshake refused with HTTP {status}", retry_after)
        return Decision(False, f"handshake refused with HTTP {status}")
    if isinstance(exc, InvalidMessage):
        # A handshake cut short by EOF is a network error; a garbled one is a misconfigured endpoint.
        return Decision(isinstance(exc.__cause__, EOFError), f"{name}: {exc}")
    if isinstance(exc, InvalidHandshake):
        return Decision(False, f"{name}: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Decision(exc.status in _RETRYABLE_STATUS, f"HTTP {exc.status}: {exc.message}")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return Decision(True, f"{name}: {exc}")
    if isinstance(exc, OSError | TimeoutError | EOFError):
        return Decision(True, f"{name}: {exc}")
    return Decision(False, f"{name}: {exc}")


def retry_after_seconds(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds form; dates are not used by the venues)."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
