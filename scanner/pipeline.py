"""The evaluation path in-process, no sockets: frame → decode → book → engine → decisions and events.

:class:`ReplayPipeline` plays the feeds' part for recordings: each recording is driven through its
venue's protocol and book syncs by :class:`feeds.verify.BookVerifier` (the code ``verify-books`` uses,
which answers snapshot requests with the recording's own REST snapshots), and every book a frame
changed wakes its candidates in the same :class:`~scanner.engine.Engine` the daemon runs. Records of
several recordings are merged by receive time, so books recorded simultaneously evolve together.

Time is the recording's: a book's ``recv_ns`` is the recorder's receive time, and the engine's
monotonic clock is replaced by the time of the frame being processed, so book ages and leg skew are
what they were when recorded. The market clock (funding, dwell) is venue time, as in the daemon.

Use it for benchmarks (:meth:`ReplayPipeline.feed` one frame at a time), stress scenarios (the same
data under different constraints) and tests. Funding here comes from the configured assumptions
only: the bundled recordings carry no funding stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from feeds.instruments import InstrumentId
from feeds.recordings import RecordedFrame, Recording
from feeds.sync import BookSync
from feeds.venues import VenueEntry, detect, feed_key
from feeds.verify import BookVerifier
from rules.candidates import Candidate
from rules.constraints import Constraints
from scanner.engine import Engine, EngineSettings, EventSink
from scanner.market import FundingAssumptionSpec, LiveMarket, MarketClock
from scanner.metrics import Metrics


@dataclass(slots=True)
class _Source:
    recording: Recording
    entry: VenueEntry
    verifier: BookVerifier
    versions: dict[str, int]


def _tagged(index: int, recording: Recording) -> Iterator[tuple[int, int, RecordedFrame]]:
    for frame in recording.frames():
        yield frame.recv_ns, index, frame


class ReplayClock:
    """The engine's 'monotonic' clock during an in-process replay: the receive time of the current record."""

    __slots__ = ("now_ns",)

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


class ReplayPipeline:
    """Recordings in, engine decisions out (see the module docstring).

    ``drain_every`` evaluates after every N records (1: after each record, the benchmark's setting;
    larger values model an evaluator that falls behind: the books move on and candidates are evaluated
    once on the latest state, counted as coalesced updates).

    ``scenarios`` (name → constraints) runs one engine per scenario over the *same* books, so that
    scenarios (``arbscan stress``: other leverage multipliers) are compared on exactly the same data;
    :attr:`engine` is the first one (``constraints`` when no scenario is given).
    """

    def __init__(
        self,
        recordings: Sequence[Recording | tuple[Recording, VenueEntry]],
        candidates: Sequence[Candidate],
        constraints: Constraints,
        *,
        assumptions: Mapping[InstrumentId, FundingAssumptionSpec] | None = None,
        settings: EngineSettings | None = None,
        metrics: Metrics | None = None,
        sink: EventSink | None = None,
        drain_every: int = 1,
        scenarios: Mapping[str, Constraints] | None = None,
    ) -> None:
        if drain_every < 1:
            raise ValueError(f"drain_every must be >= 1, got {drain_every}")
        self.drain_every = drain_every
        self.clock = ReplayClock()
        self._sources: list[_Source] = []
        wanted = {inst for c in candidates for inst in c.instruments}
        keys = {inst: feed_key(inst) for inst in wanted}
        self._by_key = {key: inst for inst, key in keys.items()}
        for item in recordings:
            recording, entry = item if isinstance(item, tuple) else (item, detect(item))
            verifier = BookVerifier(entry)
            verifier.source = recording.name
            verifier.reached = []  # the books each record reached: only those can have changed
            self._sources.append(_Source(recording, entry, verifier, {}))
        # Filled as the recordings' books appear (a verifier makes a book at its first frame).
        self._books: dict[InstrumentId, BookSync] = {}
        self.market = LiveMarket(self._books, lambda _inst: None, assumptions or {}, MarketClock())
        self.engines: dict[str, Engine] = {
            name: Engine(
                self.market,
                scenario,
                keys=keys,
                candidates=candidates,
                settings=settings,
                metrics=metrics if i == 0 else None,
                sink=sink if i == 0 else None,
                clock=self.clock,
            )
            for i, (name, scenario) in enumerate((scenarios or {"base": constraints}).items())
        }
        self.engine = next(iter(self.engines.values()))
        self._engines = tuple(self.engines.values())
        self.records = 0

    @property
    def books(self) -> Mapping[InstrumentId, BookSync]:
        return self._books

    def source_of(self, index: int) -> str:
        """``venue:market`` of recording ``index`` (as detected)."""
        entry = self._sources[index].entry
        return f"{entry.venue}:{entry.market}"

    def feed(self, index: int, frame: RecordedFrame) -> int:
        """Process one record of recording ``index``; returns the evaluations it caused (0 between drains)."""
        source = self._sources[index]
        recv_ns = frame.recv_ns
        self.clock.now_ns = recv_ns
        verifier = source.verifier
        verifier.feed(frame)
        reached = verifier.reached
        if reached:  # the books this record reached (usually one); a @trade frame reaches none
            syncs = verifier.syncs
            if len(reached) == 1:
                self._touch_if_changed(source, reached[0], syncs[reached[0]], recv_ns)
            else:  # several books: every book in creation order, the order the engines see them in
                for key, sync in syncs.items():
                    self._touch_if_changed(source, key, sync, recv_ns)
            reached.clear()
        self.records += 1
        if self.records % self.drain_every == 0:
            engines = self._engines
            if len(engines) == 1:
                return engines[0].drain()
            return sum(engine.drain() for engine in engines)
        return 0

    def _touch_if_changed(self, source: _Source, key: str, sync: BookSync, recv_ns: int) -> None:
        """Wake the engines on ``key`` if its book's version moved since they last heard of it."""
        version = sync.book.version
        versions = source.versions
        if versions.get(key) != version:
            if key not in versions and key in self._by_key:
                self._books[self._by_key[key]] = sync
            versions[key] = version
            for engine in self._engines:
                engine.touch(key, recv_ns)

    def merged(self) -> Iterator[tuple[int, RecordedFrame]]:
        """Every record of every recording, merged by receive time (ties keep recording order)."""
        streams = [_tagged(i, source.recording) for i, source in enumerate(self._sources)]
        for _ns, i, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield i, frame

    def run(self) -> int:
        """Replay everything; returns the number of records processed."""
        for index, frame in self.merged():
            self.feed(index, frame)
        for engine in self.engines.values():
            engine.drain()
        return self.records
