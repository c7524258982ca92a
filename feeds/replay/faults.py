"""Fault injection for the replay exchange: the API tests use to make the venue misbehave on command.

Frame-triggered faults fire when the replay clock reaches a matching recorded frame; a frame is matched
by its topic and its index among that topic's frames (0-based, counted over the timeline), or by its
book key and an update id inside the delta's ``[first_id, last_id]``::

    handle = exchange.faults.withhold(topic="btcusdt@depth", index=500)    # the client never sees it
    handle = exchange.faults.withhold(key="binance:spot:BTCUSDT", update_id=50093241000)
    handle = exchange.faults.mutate(corrupt, topic="BTC-USDT", index=10)   # bytes -> bytes (venue helper)
    handle = exchange.faults.drop(topic="btcusdt@depth", index=800)        # drop every connection first
    await handle.wait()                                                     # it fired
    exchange.faults.drop_connections()                                      # now, no frame needed
    exchange.faults.drop_connections(newest=True)                           # only the latest connection
    exchange.faults.pause(); exchange.faults.resume(); exchange.faults.delay(2.0)
    exchange.faults.fail_rest(429, count=1, retry_after=1)                 # next REST answers
    exchange.faults.lose_subscribes("book:BTC-USDT", after=1)              # the 2nd subscribe goes unanswered
    await exchange.faults.shutdown_notice()                                 # the venue's serverShutdown

Withheld and mutated frames still advance the exchange's own rebuild: the venue's state has them, only
the client misses them, which is what a fresh snapshot must repair.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from feeds.errors import LocalProtocolError
from feeds.instruments import Market, Venue

Mutation = Callable[[bytes], bytes]
DropFn = Callable[["Venue | None", "Market | None", bool], int]
NoticeFn = Callable[["Venue | None", "Market | None"], Awaitable[int]]
SpendFn = Callable[["Venue", "Market", int], int]


class FaultKind(Enum):
    WITHHOLD = "withhold"
    MUTATE = "mutate"
    DROP = "drop"  # drop every connection of the frame's venue and market, then (not) deliver it
    PAUSE = "pause"  # pause the clock for ``seconds`` before the frame
    LOSE_SUBSCRIBE = "lose_subscribe"  # a client's subscribe to the topic is neither answered nor served


@dataclass(frozen=True, slots=True)
class FrameMatch:
    """Which recorded frame a fault applies to (all given fields must match)."""

    topic: str | None = None
    index: int | None = None
    key: str | None = None
    update_id: int | None = None

    def __post_init__(self) -> None:
        if self.index is not None and self.topic is None:
            raise LocalProtocolError("a frame index counts within a topic: give topic= too")
        if self.update_id is not None and self.key is None:
            raise LocalProtocolError("an update id belongs to a book: give key= too")
        if self.topic is None and self.key is None:
            raise LocalProtocolError("a frame fault needs topic= (and index=) or key= (and update_id=)")

    @property
    def needs_decode(self) -> bool:
        return self.key is not None


@dataclass(slots=True)
class FaultHandle:
    """A pending fault; ``fired`` counts the frames it hit, ``wait()`` returns once it has fired."""

    kind: FaultKind
    match: FrameMatch
    count: int
    mutation: Mutation | None = None
    seconds: float = 0.0
    fired: int = 0
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        await self._event.wait()

    @property
    def done(self) -> bool:
        return self.fired >= self.count

    def _fire(self) -> None:
        self.fired += 1
        self._event.set()


@dataclass(slots=True)
class RestFault:
    status: int
    count: int
    retry_after: float | None


class Faults:
    """Pending faults of one replay exchange. Created by the exchange; use ``exchange.faults``."""

    def __init__(self, drop: DropFn, shutdown: NoticeFn, spend: SpendFn) -> None:
        self._drop = drop
        self._shutdown = shutdown
        self._spend = spend
        self.frame_faults: list[FaultHandle] = []
        self.rest_faults: list[RestFault] = []
        self.subscribe_faults: list[FaultHandle] = []
        self._let_through: dict[int, int] = {}  # id(subscribe fault) -> subscribes still let through
        self.paused = asyncio.Event()
        self.paused.set()  # set = running (the clock waits on it)
        self.delay_s = 0.0
        self._handshake_refusals: list[tuple[int, float | None]] = []  # (status, Retry-After) of next handshakes

    # ---- frame-triggered ---------------------------------------------------------------------------

    def withhold(
        self,
        *,
        topic: str | None = None,
        index: int | None = None,
        key: str | None = None,
        update_id: int | None = None,
        count: int = 1,
    ) -> FaultHandle:
        """Skip matching frames for every client (up to ``count`` of them)."""
        return self._add(FaultKind.WITHHOLD, FrameMatch(topic, index, key, update_id), count)

    def mutate(
        self,
        mutation: Mutation,
        *,
        topic: str | None = None,
        index: int | None = None,
        key: str | None = None,
        update_id: int | None = None,
        count: int = 1,
    ) -> FaultHandle:
        """Send ``mutation(payload)`` instead of matching frames (corrupt a level, regress a sequence)."""
        return self._add(FaultKind.MUTATE, FrameMatch(topic, index, key, update_id), count, mutation=mutation)

    def drop(
        self,
        *,
        topic: str | None = None,
        index: int | None = None,
        key: str | None = None,
        update_id: int | None = None,
    ) -> FaultHandle:
        """Drop every connection of the venue and market just before the matching frame is sent."""
        return self._add(FaultKind.DROP, FrameMatch(topic, index, key, update_id), 1)

    def pause_at(self, seconds: float, *, topic: str, index: int) -> FaultHandle:
        """Stop the clock for ``seconds`` before the matching frame (an idle venue)."""
        return self._add(FaultKind.PAUSE, FrameMatch(topic, index), 1, seconds=seconds)

    def _add(
        self, kind: FaultKind, match: FrameMatch, count: int, *, mutation: Mutation | None = None, seconds: float = 0
    ) -> FaultHandle:
        if count < 1:
            raise LocalProtocolError(f"fault count must be >= 1, got {count}")
        handle = FaultHandle(kind, match, count, mutation, seconds)
        self.frame_faults.append(handle)
        return handle

    @property
    def needs_decode(self) -> bool:
        return any(f.match.needs_decode for f in self.frame_faults)

    def take(self, topic: str | None, index: int, key: str | None, first_id: int, last_id: int) -> list[FaultHandle]:
        """The faults that fire on this frame (marked fired; exhausted ones are removed)."""
        fired: list[FaultHandle] = []
        for handle in self.frame_faults:
            m = handle.match
            if m.topic is not None and (m.topic != topic or (m.index is not None and m.index != index)):
                continue
            if m.key is not None and (
                m.key != key or (m.update_id is not None and not first_id <= m.update_id <= last_id)
            ):
                continue
            handle._fire()
            fired.append(handle)
        if fired:
            self.frame_faults = [f for f in self.frame_faults if not f.done]
        return fired

    # ---- immediate ---------------------------------------------------------------------------------

    def drop_connections(
        self, venue: Venue | None = None, market: Market | None = None, *, newest: bool = False
    ) -> int:
        """Abort client websockets now (no close frame, like a network failure). Returns how many.

        ``newest=True`` aborts only the most recently opened one per venue and market (a rollover's
        replacement, while the old connection keeps streaming)."""
        return self._drop(venue, market, newest)

    async def shutdown_notice(self, venue: Venue | None = None, market: Market | None = None) -> int:
        """Send the venue's shutdown notice to every client that has one. Returns how many got it."""
        return await self._shutdown(venue, market)

    def spend_weight(self, venue: Venue, market: Market, weight: int) -> int:
        """Another client on the same IP spends ``weight`` of this minute's request weight (venues that
        report it: Binance). Returns the minute's total, as the next answer's header will say."""
        return self._spend(venue, market, weight)

    def refuse_handshakes(self, status: int, count: int = 1, *, retry_after: float | None = None) -> None:
        """Answer the next ``count`` websocket handshakes (any mount) with HTTP ``status`` (and a Retry-After
        header of ``retry_after`` seconds), as a venue's WAF, a rate limit or an overloaded gateway does."""
        self._handshake_refusals += [(status, retry_after)] * count

    def handshake_refusal(self) -> tuple[int, float | None] | None:
        """The status and Retry-After the handshake being served is refused with (a fault taken), or None."""
        return self._handshake_refusals.pop(0) if self._handshake_refusals else None

    def pause(self) -> None:
        self.paused.clear()

    def resume(self) -> None:
        self.paused.set()

    def delay(self, seconds: float) -> None:
        """Hold the clock for ``seconds`` before the next frame (once)."""
        self.delay_s += seconds

    def lose_subscribes(self, topic: str, *, after: int = 0, count: int = 1) -> FaultHandle:
        """Let ``after`` subscribes to ``topic`` through, then lose the next ``count``: no answer, no data.

        What a venue that refuses or drops a subscribe request looks like while the connection stays
        healthy (an unsubscribe in the same exchange of messages still takes effect).
        """
        if after < 0 or count < 1:
            raise LocalProtocolError(f"lose_subscribes: after must be >= 0 and count >= 1, got {after}, {count}")
        handle = FaultHandle(FaultKind.LOSE_SUBSCRIBE, FrameMatch(topic), count)
        self._let_through[id(handle)] = after
        self.subscribe_faults.append(handle)
        return handle

    def loses_subscribe(self, topics: list[str]) -> bool:
        """True if this subscribe request (its topics) is to be lost (and counts it)."""
        for handle in self.subscribe_faults:
            if handle.done or handle.match.topic not in topics:
                continue
            if self._let_through[id(handle)] > 0:
                self._let_through[id(handle)] -= 1
                continue
            handle._fire()
            return True
        return False

    def fail_rest(self, status: int, *, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` REST requests with ``status`` (429 and 418 carry Retry-After)."""
        self.rest_faults.append(RestFault(status, count, retry_after))

    def take_rest(self) -> RestFault | None:
        if not self.rest_faults:
            return None
        fault = self.rest_faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self.rest_faults.pop(0)
        return fault
