"""Funding settlements inside a horizon: each venue's own next time and interval, never an assumed 8 h."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.funding import settlements

H = 3_600_000
NOW = 1_723_161_600_000


def test_counts_settlements_in_the_half_open_horizon():
    """Settlements at t with now < t <= now + horizon."""
    assert settlements(NOW, 24 * H, NOW + H, 8 * H) == 3  # +1, +9, +17 h
    assert settlements(NOW, 24 * H, NOW + 30 * 60_000, 4 * H) == 6  # +0.5 ... +20.5 h
    assert settlements(NOW, 24 * H, NOW + 24 * H, 8 * H) == 1  # exactly at the end: counted
    assert settlements(NOW, H, NOW + 2 * H, 8 * H) == 0  # the first one is after the horizon
    assert settlements(NOW, 8 * H, NOW, 8 * H) == 1  # one settling right now is not ours: next at +8 h


def test_a_next_time_in_the_past_is_rolled_forward_by_whole_intervals():
    """A feed that has not caught up with a settlement yet still counts the right future ones."""
    assert settlements(NOW, 24 * H, NOW - 3 * H, 8 * H) == 3  # +5, +13, +21 h
    assert settlements(NOW, 2 * H, NOW - 17 * H, 8 * H) == 0  # next is +7 h


def test_interval_must_be_positive():
    """A zero interval is a programming error (the evaluator reports funding_unknown before calling)."""
    with pytest.raises(ValueError, match="interval_ms"):
        settlements(NOW, H, NOW, 0)


@given(
    offset=st.integers(-50 * H, 50 * H),
    interval=st.sampled_from([H, 2 * H, 4 * H, 8 * H, 5 * 60_000]),
    horizon=st.integers(1, 72 * H),
)
def test_matches_brute_force_enumeration(offset: int, interval: int, horizon: int):
    """The closed form equals enumerating the schedule next + k·interval, k >= 0 (nothing settles before next)."""
    nxt = NOW + offset
    last_k = max(0, (NOW - nxt) // interval) + horizon // interval + 2
    times = (nxt + k * interval for k in range(last_k + 1))
    expected = sum(1 for t in times if NOW < t <= NOW + horizon)
    assert settlements(NOW, horizon, nxt, interval) == expected
