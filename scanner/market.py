"""The daemon's market view: live books and funding from the feeds, stated funding from config, a market clock.

:class:`LiveMarket` satisfies :class:`rules.market.MarketView`. It hands ``rules`` the feeds' own
:class:`~feeds.book.OrderBook` objects (read in place, never copied) for books whose sync state is
``LIVE``, and ``None`` otherwise (a book being buffered or resynced is empty or stale: ``book_not_ready``).

Funding, per perpetual: the latest live/REST :class:`~feeds.updates.FundingUpdate` when a feed carries
one; otherwise the configured assumption (``[[funding_assumptions]]``) as an :class:`AssumedFunding`
whose ``source`` is ``assumed`` and whose next settlement is aligned to UTC multiples of the stated
interval, on the market clock. Never the other way round: an assumption never hides a live rate.

:class:`MarketClock` is the latest venue time seen on any update. Funding settlements and the candidate
dwell are counted on it, so a replay of 2024 data counts settlements in the recording's own time; live,
it tracks the wall clock within the feeds' latency. Ages (staleness) stay on the local monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from feeds.book import OrderBook, Side
from feeds.instruments import InstrumentId
from feeds.sync import BookSync, SyncState
from feeds.updates import FundingSource, FundingUpdate
from rules.funding import missed
from rules.market import DexQuote


class MarketClock:
    """Market time in venue epoch milliseconds: the latest venue time seen (never goes back)."""

    __slots__ = ("now_ms",)

    def __init__(self) -> None:
        self.now_ms = 0

    def advance(self, venue_ms: int) -> None:
        self.now_ms = max(self.now_ms, venue_ms)


@dataclass(frozen=True, slots=True)
class FundingAssumptionSpec:
    """A stated funding rate for one perpetual (from ``[[funding_assumptions]]``)."""

    instrument: InstrumentId
    rate: float  # decimal per interval, positive = longs pay shorts
    interval_ms: int
    reason: str  # why this number; carried to the journal with every decision that used it


@dataclass(frozen=True, slots=True)
class AssumedFunding:
    """A :class:`rules.market.FundingView` built from an assumption at one market time."""

    rate: float
    interval_ms: int
    next_funding_ms: int
    reason: str
    source: FundingSource = FundingSource.ASSUMED


def next_aligned_ms(now_ms: int, interval_ms: int) -> int:
    """The first UTC multiple of ``interval_ms`` strictly after ``now_ms`` (8 h → 00:00, 08:00, 16:00)."""
    return (now_ms // interval_ms + 1) * interval_ms


@dataclass
class StaticMarket:
    """A :class:`rules.market.MarketView` over books, funding and pools held in plain dicts (benchmarks, tests)."""

    books: dict[InstrumentId, OrderBook] = field(default_factory=dict)
    fundings: dict[InstrumentId, FundingUpdate] = field(default_factory=dict)
    pools: dict[str, DexQuote] = field(default_factory=dict)
    bid_side: Side = Side.BID
    ask_side: Side = Side.ASK

    def book(self, instrument: InstrumentId) -> OrderBook | None:
        return self.books.get(instrument)

    def funding(self, instrument: InstrumentId) -> FundingUpdate | None:
        return self.fundings.get(instrument)

    def dex(self, pool: str) -> DexQuote | None:
        return self.pools.get(pool)


class LiveMarket:
    """Books and funding of the running feeds, by canonical instrument (a :class:`rules.market.MarketView`).

    ``books`` maps each instrument to its feed's :class:`BookSync` (the book plus its sync state) and
    ``funding`` looks up the latest funding update of an instrument (or None). Both are the feeds' own
    objects: nothing is copied, and a resync that swaps a book's contents is seen at once.
    """

    bid_side = Side.BID
    ask_side = Side.ASK

    __slots__ = ("_assumed", "_books", "_dex", "_funding", "_time_ms", "clock")

    def __init__(
        self,
        books: Mapping[InstrumentId, BookSync],
        funding: Callable[[InstrumentId], FundingUpdate | None],
        assumptions: Mapping[InstrumentId, FundingAssumptionSpec],
        clock: MarketClock,
        dex: Mapping[str, DexQuote] | None = None,
    ) -> None:
        self._books = books
        self._funding = funding
        self._assumed: dict[InstrumentId, tuple[FundingAssumptionSpec, AssumedFunding | None]] = {
            inst: (spec, None) for inst, spec in assumptions.items()
        }
        self._dex = dex or {}
        self.clock = clock
        self._time_ms = 0

    def set_time(self, now_ms: int) -> None:
        """The market time of the evaluation about to run (assumed funding is aligned to it).

        ``MarketView.funding`` takes no time, and candidates replayed from different dates must each see
        their own settlements, so the engine states the time before each evaluation (0: the global clock).
        """
        self._time_ms = now_ms

    def book(self, instrument: InstrumentId) -> OrderBook | None:
        sync = self._books.get(instrument)
        if sync is None or sync.state is not SyncState.LIVE:
            return None
        return sync.book

    def sync(self, instrument: InstrumentId) -> BookSync | None:
        return self._books.get(instrument)

    def live_funding(self, instrument: InstrumentId) -> FundingUpdate | None:
        """The feed's latest funding update of ``instrument`` (None when there is none: assumed or unknown)."""
        return self._funding(instrument)

    def funding(self, instrument: InstrumentId) -> FundingUpdate | AssumedFunding | None:
        live = self._funding(instrument)
        entry = self._assumed.get(instrument)
        # The stream's rate, unless its settlement is missed (the feed stopped, rules.funding.missed) and an
        # assumption is stated for it: the assumption is what it is configured for. Without one, the stale
        # rate is returned and the rules call the leg's funding unknown.
        now_ms = self._time_ms or self.clock.now_ms
        if live is not None and (entry is None or not missed(live.next_funding_ms, live.source, now_ms)):
            return live
        if entry is None:
            return None
        spec, cached = entry
        next_ms = next_aligned_ms(now_ms, spec.interval_ms)
        if cached is None or cached.next_funding_ms != next_ms:
            cached = AssumedFunding(spec.rate, spec.interval_ms, next_ms, spec.reason)
            self._assumed[instrument] = (spec, cached)
        return cached

    def set_assumptions(self, assumptions: Mapping[InstrumentId, FundingAssumptionSpec]) -> None:
        """Replace the stated assumptions (config reload)."""
        self._assumed = {inst: (spec, None) for inst, spec in assumptions.items()}

    def assumption(self, instrument: InstrumentId) -> FundingAssumptionSpec | None:
        entry = self._assumed.get(instrument)
        return None if entry is None else entry[0]

    def dex(self, pool: str) -> DexQuote | None:
        return self._dex.get(pool)
