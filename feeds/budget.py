"""Rate budgets: at most ``limit`` units in any sliding ``window_s``, granted in FIFO order.

One primitive serves every limit a venue publishes: REST request weight per minute, websocket connection
attempts per five minutes, messages per second on one connection. When the budget is spent, callers queue
(in arrival order) instead of bursting, so a reconnect storm of many symbols is spread out rather than
getting the IP banned. A venue's explicit "slow down" (HTTP 429/418 with Retry-After) pauses the whole
budget until the venue's deadline.

Budgets are shared per venue through a :class:`BudgetRegistry`: two feeds of the same venue and market
draw from the same weight, as the venue counts it per IP.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from feeds.errors import LocalProtocolError

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Grant:
    """One granted acquisition (kept for metrics and tests: who got what, when, by the budget's clock)."""

    at: float
    cost: int
    label: str


class WindowBudget:
    """A sliding-window rate limit with a FIFO queue of waiters."""

    def __init__(
        self, name: str, *, limit: int, window_s: float, clock: Clock = time.monotonic, history: int = 1024
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise LocalProtocolError(f"budget {name}: limit={limit} and window_s={window_s} must be positive")
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._granted: deque[tuple[float, int]] = deque()  # (time, cost) inside the window
        self._used = 0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()  # FIFO: waiters are woken in arrival order
        self._waiting: deque[str] = deque()
        self.history: deque[Grant] = deque(maxlen=history)
        self.granted_total = 0
        self.waits = 0  # acquisitions that had to queue
        self._venue_extra = 0  # units the venue counts beyond our grants, until _venue_until (observe_used)
        self._venue_until = 0.0

    def used(self) -> int:
        """Units spent within the current window (with what the venue counts beyond our own grants)."""
        self._expire(self._clock())
        return self._used + self.venue_extra

    def waiting(self) -> list[str]:
        """Labels of the callers queued right now, first in line first."""
        return list(self._waiting)

    def observe_used(self, used: int, *, window_elapsed_s: float) -> int:
        """The venue says ``used`` units are spent in its current window, which began ``window_elapsed_s``
        ago (Binance: the calendar minute, not a sliding one). What our own grants since that start do not
        account for was spent by someone else (another client on the same IP, a weight priced low): it
        counts against this budget until the venue's window ends. Returns that extra (0: we knew it all).
        The venue's word never loosens the budget: our own sliding count stays as it is."""
        now = self._clock()
        start = now - window_elapsed_s
        ours = sum(cost for at, cost in self._granted if at >= start)
        extra = max(0, min(used, self.limit) - ours)
        until = start + self.window_s
        if now >= self._venue_until or until > self._venue_until + 1.0:  # a new window of the venue's
            self._venue_extra, self._venue_until = extra, until
        else:
            self._venue_extra = max(self._venue_extra, extra)
        return extra

    @property
    def venue_extra(self) -> int:
        """Units the venue counts in its current window beyond our own grants (see :meth:`observe_used`)."""
        return self._venue_extra_at(self._clock())

    def _venue_extra_at(self, now: float) -> int:
        return self._venue_extra if now < self._venue_until else 0

    def pause_until(self, deadline: float) -> None:
        """Grant nothing before ``deadline`` (budget clock): the venue told us to back off."""
        self._paused_until = max(self._paused_until, deadline)

    def pause_for(self, seconds: float) -> None:
        self.pause_until(self._clock() + seconds)

    async def acquire(self, cost: int = 1, *, label: str = "") -> None:
        """Wait until ``cost`` units fit in the window, behind everyone who asked earlier."""
        if not 0 < cost <= self.limit:
            raise LocalProtocolError(f"budget {self.name}: cost {cost} can never fit a limit of {self.limit}")
        self._waiting.append(label)
        try:
            async with self._lock:
                queued = False
                while (delay := self._delay(cost)) > 0:
                    queued = True
                    await asyncio.sleep(delay)
                now = self._clock()
                self._granted.append((now, cost))
                self._used += cost
                self.granted_total += cost
                self.waits += queued
                self.history.append(Grant(now, cost, label))
        finally:
            self._waiting.remove(label)

    def try_acquire(self, cost: int = 1, *, label: str = "") -> bool:
        """Take ``cost`` units now if they fit and nobody is queued; never waits."""
        if self._waiting or self._delay(cost) > 0:
            return False
        now = self._clock()
        self._granted.append((now, cost))
        self._used += cost
        self.granted_total += cost
        self.history.append(Grant(now, cost, label))
        return True

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        granted = self._granted
        while granted and granted[0][0] <= horizon:
            self._used -= granted.popleft()[1]

    def _delay(self, cost: int) -> float:
        """Seconds until ``cost`` fits (0 if it fits now)."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._expire(now)
        extra = self._venue_extra_at(now)
        excess = self._used + extra + cost - self.limit
        if excess <= 0:
            return 0.0
        # Wait until enough of the oldest grants leave the window (or the venue's window ends).
        releases = [(at + self.window_s, spent) for at, spent in self._granted]
        if extra:
            releases.append((self._venue_until, extra))
            releases.sort()
        freed = 0
        for at, spent in releases:
            freed += spent
            if freed >= excess:
                return max(at - now, 1e-3)
        return self.window_s  # unreachable while cost <= limit; kept as a safe upper bound


class BudgetRegistry:
    """Process-wide budgets by name (``"binance:spot:rest"``), so every feed of a venue shares one."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._budgets: dict[str, WindowBudget] = {}

    def get(self, name: str, *, limit: int, window_s: float) -> WindowBudget:
        budget = self._budgets.get(name)
        if budget is None:
            budget = self._budgets[name] = WindowBudget(name, limit=limit, window_s=window_s, clock=self._clock)
        elif (budget.limit, budget.window_s) != (limit, window_s):
            raise LocalProtocolError(
                f"budget {name}: already defined as {budget.limit}/{budget.window_s}s, asked for {limit}/{window_s}s"
            )
        return budget

    def __iter__(self) -> Iterator[WindowBudget]:
        return iter(self._budgets.values())
