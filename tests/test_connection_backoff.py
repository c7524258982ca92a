"""Reconnect policy as data: jittered capped backoff, reset after a healthy connection, and the classifier
that retries transient failures and never a programming error."""

from __future__ import annotations

import random

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.http11 import Response

from feeds.backoff import Backoff, BackoffPolicy, classify
from feeds.errors import ConnectionLost, LocalProtocolError, RateLimited, VenueRejected


@given(
    initial=st.floats(0, 10),
    low=st.floats(0.01, 5),
    span=st.floats(0, 100),
    factor=st.floats(1, 4),
    jitter=st.floats(0, 0.9),
    seed=st.integers(0, 2**32),
)
def test_delays_are_bounded_growing_and_capped(
    *, initial: float, low: float, span: float, factor: float, jitter: float, seed: int
) -> None:
    """First delay in [0, initial]; later ones within jitter of min·factor^k, never above the cap."""
    policy = BackoffPolicy(initial_s=initial, min_s=low, max_s=low + span, factor=factor, jitter=jitter)
    delays = policy.delays(random.Random(seed))
    assert 0 <= next(delays) <= initial
    nominal = low
    for _ in range(40):
        delay = next(delays)
        assert nominal * (1 - jitter) <= delay <= nominal * (1 + jitter) + 1e-9
        assert delay <= policy.max_s * (1 + jitter) + 1e-9
        nominal = min(nominal * factor, policy.max_s)


def test_healthy_connection_resets_the_streak_a_flapping_one_does_not() -> None:
    """Up for healthy_after_s: the next failure starts over; a short-lived connection keeps backing off."""
    policy = BackoffPolicy(initial_s=0.0, min_s=1.0, max_s=60.0, factor=2.0, jitter=0.0, healthy_after_s=30.0)
    backoff = Backoff(policy, rng=random.Random(1))
    assert [backoff.next_delay() for _ in range(4)] == [0.0, 1.0, 2.0, 4.0]
    backoff.connected(0)
    backoff.disconnected(5 * 10**9)  # up 5 s: flapping
    assert backoff.next_delay() == 8.0
    backoff.connected(0)
    backoff.disconnected(31 * 10**9)  # up 31 s: healthy
    assert backoff.next_delay() == 0.0 and backoff.attempts == 1


def test_retry_after_is_a_floor() -> None:
    """A venue's Retry-After wins over a shorter backoff delay."""
    backoff = Backoff(BackoffPolicy(initial_s=0.0, jitter=0.0))
    assert backoff.next_delay(at_least_s=7.0) == 7.0


def test_invalid_policy_is_rejected_with_every_reason() -> None:
    with pytest.raises(ValueError, match=r"min_s=0 .*factor=0.5 must be >= 1"):
        BackoffPolicy(min_s=0, factor=0.5)


def response(status: int, **headers: str) -> Response:
    return Response(status, "reason", Headers(headers))


@pytest.mark.parametrize(
    ("exc", "retry", "floor"),
    [
        (ConnectionLost("binance: reset"), True, 0.0),
        (RateLimited("binance", retry_after_s=30), True, 30.0),
        (ConnectionClosedError(Close(1006, ""), None), True, 0.0),
        (ConnectionRefusedError(111, "refused"), True, 0.0),
        (TimeoutError(), True, 0.0),
        (InvalidStatus(response(503)), True, 0.0),
        (InvalidStatus(response(429, **{"Retry-After": "12"})), True, 12.0),
        (InvalidStatus(response(429)), True, 60.0),  # no Retry-After: as long as the REST client waits
        (InvalidStatus(response(418)), True, 120.0),  # the IP is banned already
        (InvalidStatus(response(403)), True, 0.0),  # Binance's WAF, Bybit's IP rate limit
        (InvalidStatus(response(522)), True, 0.0),  # any server error
        (InvalidStatus(response(505)), True, 0.0),
        (aiohttp.ClientConnectionError("reset"), True, 0.0),
        (InvalidStatus(response(404)), False, 0.0),
        (InvalidURI("htp://x", "bad scheme"), False, 0.0),
        (VenueRejected("binance", "Invalid symbol.", status=400), False, 0.0),
        (LocalProtocolError("illegal transition"), False, 0.0),
        (TypeError("unsupported operand"), False, 0.0),
        (KeyError("bids"), False, 0.0),
    ],
)
def test_classifier_retries_transient_failures_only(exc: Exception, retry: bool, floor: float) -> None:
    decision = classify(exc)
    assert (decision.retry, decision.min_delay_s) == (retry, floor), decision.reason
