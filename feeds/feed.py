"""A venue feed: one protocol, one book sync per book, the connection runners and the REST snapshot tasks.

:class:`VenueFeed` is what the daemon instantiates per (venue, market). It splits the subscriptions over
as many :class:`~feeds.connection.ConnectionRunner` as the venue's streams-per-connection limit needs
(both channels of a symbol stay on one connection), receives their frames synchronously, routes each
update to its book's :class:`~feeds.sync.BookSync`, and performs the sync's actions: a REST snapshot is
queued to the feed's own snapshot workers (never awaited while a frame is handled), a resubscribe goes
to the runner carrying the book. Malformed frames are counted and logged, never fatal.

Connection handover (rollover, ``serverShutdown``): while a replacement connection overlaps the old one,
each book remembers which connections have *joined* it, i.e. delivered a delta that chains onto the book
(or a duplicate of one already applied). A delta from a connection that has not joined yet and would
gap is held back until the old connection's deltas catch the book up to it; then it joins and its held
deltas are applied in order, duplicates skipped by the sync rules. When every book of the runner has
joined, the runner closes the old connection. Should the old connection die before that, the held
deltas go to the sync as they are (a real gap: that one book resyncs). While two connections stream a
book, a websocket snapshot older than the live book is passed over, whichever sent it (the two sockets are
not ordered between them: applying it would rewind the book). An unplanned disconnect resets the books the connection
carried: a book nobody is streaming is not live.

Callbacks: ``on_update(key, recv_ns)`` after a book (or a funding state) changed; ``on_transition(key,
old, new, event)`` on every sync state change (gaps, resyncs: metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import structlog

from feeds.backoff import Backoff, BackoffPolicy, classify
from feeds.book import OrderBook
from feeds.budget import WindowBudget
from feeds.connection import ConnectionRunner, ConnInfo, FrameTap, RunnerConfig, unwrap_feed_error
from feeds.errors import ConnectionLost, LocalProtocolError, MalformedFrame, RateLimited, VenueRejected
from feeds.funding import FundingBook
from feeds.limits import BudgetSpec, venue_budgets
from feeds.protocol import Channel, Subscription, VenueProtocol
from feeds.rest import RestClient
from feeds.sequencing import Verdict
from feeds.sync import BookSync, SyncEvent, SyncState
from feeds.updates import (
    Action,
    BookDelta,
    BookSnapshot,
    Control,
    ControlKind,
    FetchSnapshot,
    FundingUpdate,
    Received,
    Resubscribe,
    TopOfBook,
    book_key,
)

log = structlog.get_logger("feeds.feed")

OnUpdate = Callable[[str, int], None]
OnTransition = Callable[[str, SyncState, SyncState, SyncEvent], None]
#: Called with (key, body, recv_ns) for every REST snapshot fetched: the recorder's hook.
SnapshotTap = Callable[[str, bytes, int], None]

_WAITING = (SyncState.AWAITING_SNAPSHOT, SyncState.RESYNC)
#: 4xx answers that are not worth another try (Binance -1121 "Invalid symbol" is a 400): the book is
#: abandoned. 403 stays retried (Bybit answers its IP rate limit with 403, Binance its WAF), and so do
#: 408/425 (timing) and 429/418 (rate limits: RateLimited, never VenueRejected).
_TRANSIENT_4XX = frozenset({403, 408, 418, 425, 429})


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    """Where a feed connects and how it paces itself. URLs are configuration; the defaults are the venue's."""

    ws_url: str
    rest_url: str
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    rest_budget: BudgetSpec | None = None  # None: the venue's (feeds.limits)
    connect_budget: BudgetSpec | None = None
    snapshot_workers: int = 4  # concurrent REST snapshot fetches (the weight budget paces them further)
    snapshot_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_s=0.2, min_s=0.5, max_s=30.0, healthy_after_s=0.0)
    )
    max_held_per_key: int = 10_000  # deltas held back per book while a replacement connection catches up
    # A book recovering by resubscribe (OKX, Kraken, Bybit) that is still not live this long after asking
    # is asked again (the venue may have refused or lost the request while the connection stays healthy);
    # the wait doubles on each retry up to 8x. REST-snapshot books retry their fetch on their own.
    recovery_deadline_s: float = 15.0
    # An update stamped further ahead of the local wall clock than this is refused as malformed: a venue
    # time from the future would move the market clock (funding settlements, dwell) for good. Recorded
    # data is always in the past; this only has to allow for the clocks' skew.
    max_venue_ahead_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.ws_url or not self.rest_url:
            raise ValueError("feed config: ws_url and rest_url are required")
        if self.snapshot_workers < 1 or self.max_held_per_key < 1:
            raise ValueError("feed config: snapshot_workers and max_held_per_key must be >= 1")
        if not self.recovery_deadline_s > 0:
            raise ValueError(f"feed config: recovery_deadline_s must be > 0, got {self.recovery_deadline_s}")
        if not self.max_venue_ahead_s > 0:
            raise ValueError(f"feed config: max_venue_ahead_s must be > 0, got {self.max_venue_ahead_s}")


_SAMPLE_CHARS = 120  # of a malformed frame, in its log line


def _logged(count: int) -> bool:
    """Whether the ``count``-th malformed frame is logged: the first ten, then at powers of two (visible,
    never a flood)."""
    return count <= 10 or count & (count - 1) == 0


@dataclass(slots=True)
class FeedStats:
    malformed: int = 0
    control_errors: int = 0
    unknown_keys: int = 0  # updates for books this feed did not subscribe
    snapshots_fetched: int = 0
    snapshot_failures: int = 0
    snapshot_rejected: int = 0  # books abandoned because the venue rejected their snapshot request for good
    resubscribes: int = 0  # of books, and of other streams whose snapshot comes on subscribe (Bybit tickers)
    recovery_retries: int = 0  # resubscribes re-issued because a book stayed not live past the deadline
    resets: int = 0  # books reset because no connection carried them any more
    held: int = 0  # deltas held back during handovers
    handover_flushes: int = 0  # held deltas released because the old connection ended first
    stale_snapshots: int = 0  # snapshots passed over during a handover: older than the book
    # Updates refused for a venue time past the allowed skew: each counted here, and its frame once in
    # malformed (a REST snapshot's refusal counts in snapshot_failures instead: it is fetched again).
    future_stamped: int = 0
    # Funding states forgotten because the last connection that streamed them went down: a rate no
    # stream carries any more is not live (the candidates fall back to a stated assumption, or unknown).
    funding_dropped: int = 0
    last_malformed: str = ""


class VenueFeed:
    """Books of one (venue, market) kept live over websockets. ``async with VenueFeed(...) as feed:``."""

    def __init__(
        self,
        protocol: VenueProtocol,
        subscriptions: Sequence[Subscription],
        *,
        rest: RestClient,
        config: FeedConfig,
        on_update: OnUpdate | None = None,
        on_transition: OnTransition | None = None,
        frame_tap: FrameTap | None = None,
        snapshot_tap: SnapshotTap | None = None,
        name: str = "",
    ) -> None:
        if not subscriptions:
            raise LocalProtocolError("a feed needs at least one subscription")
        self.protocol = protocol
        self.config = config
        self._max_ahead_ms = round(config.max_venue_ahead_s * 1000)
        self.rest = rest
        self.name = name or f"{protocol.venue}:{protocol.market}"
        self.on_update = on_update
        self.on_transition = on_transition
        self.snapshot_tap = snapshot_tap
        self.stats = FeedStats()
        self.funding = FundingBook()
        self._log = log.bind(venue=str(protocol.venue), market=str(protocol.market))
        defaults = venue_budgets(protocol.venue, protocol.market)
        rest_spec = config.rest_budget or defaults.rest
        connect_spec = config.connect_budget or defaults.connect
        prefix = defaults.prefix(protocol.venue, protocol.market)  # per IP: one budget for the venue's markets
        self.rest_budget = rest.budgets.get(f"{prefix}:rest", limit=rest_spec.limit, window_s=rest_spec.window_s)
        connect_budget = rest.budgets.get(f"{prefix}:connect", limit=connect_spec.limit, window_s=connect_spec.window_s)

        self.syncs: dict[str, BookSync] = {}
        self._subs_by_key: dict[str, list[Subscription]] = {}
        for sub in subscriptions:
            key = book_key(protocol.venue, protocol.market, sub.venue_symbol)
            self._subs_by_key.setdefault(key, []).append(sub)
            if sub.channel is not Channel.FUNDING and key not in self.syncs:
                sync = protocol.new_sync(key)
                sync.on_transition = self._transition
                self.syncs[key] = sync

        self.runners: list[ConnectionRunner] = []
        self._runner_of: dict[str, ConnectionRunner] = {}
        self._keys_of: dict[int, list[str]] = {}  # id(runner) -> book keys it carries
        self._funded_by: dict[int, set[str]] = {}  # id(runner) -> funding keys its connections delivered
        per_conn = protocol.limits.max_streams_per_connection
        chunk: list[Subscription] = []
        chunk_keys: list[str] = []
        for key, subs in self._subs_by_key.items():
            if len(subs) > per_conn:
                raise LocalProtocolError(f"{key}: {len(subs)} streams exceed {per_conn} per connection")
            if len(chunk) + len(subs) > per_conn:
                self._add_runner(chunk, chunk_keys, connect_budget, frame_tap)
                chunk, chunk_keys = [], []
            chunk.extend(subs)
            chunk_keys.append(key)
        self._add_runner(chunk, chunk_keys, connect_budget, frame_tap)

        # Handover state (see the module docstring).
        self._joined: dict[str, set[int]] = {key: set() for key in self.syncs}
        self._unjoined: dict[int, set[str]] = {}  # replacement conn -> books it has not joined yet
        self._held: dict[str, dict[int, deque[BookDelta]]] = {}
        self._live: dict[int, list[int]] = {}  # id(runner) -> its open connections, oldest first
        self._snapshot_ids: dict[tuple[str, int], int] = {}  # (book, conn) -> the last snapshot id it sent

        # Snapshot fetching: one queue, a few owned workers, one request in flight per book.
        #: books whose snapshot the venue rejected for good (key -> the venue's answer): never fetched again
        self.failed: dict[str, str] = {}
        self._snapshot_queue: asyncio.Queue[str] = asyncio.Queue()
        self._fetching: set[str] = set()
        self._refetch: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        # Books waiting to (re)become live by resubscribe: key -> (asked at, monotonic ns; retries so far).
        self._recovering: dict[str, tuple[int, int]] = {}

    def _add_runner(
        self, subs: list[Subscription], keys: list[str], budget: WindowBudget, tap: FrameTap | None
    ) -> None:
        runner = ConnectionRunner(
            self.protocol,
            subs,
            base_url=self.config.ws_url,
            sink=self,
            connect_budget=budget,
            config=self.config.runner,
            name=f"{self.name}#{len(self.runners) + 1}",
            tap=tap,
        )
        self.runners.append(runner)
        self._keys_of[id(runner)] = [k for k in keys if k in self.syncs]
        for key in keys:
            self._runner_of[key] = runner

    # ---- reading ---------------------------------------------------------------------------------------

    def book(self, key: str) -> OrderBook:
        return self.syncs[key].book

    def is_live(self, key: str) -> bool:
        return self.syncs[key].state is SyncState.LIVE

    @property
    def books(self) -> Mapping[str, OrderBook]:
        return {key: sync.book for key, sync in self.syncs.items()}

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the runners and the snapshot workers until cancelled; a fatal error propagates."""
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.config.snapshot_workers):
                    tg.create_task(self._snapshot_worker(), name=f"{self.name} snapshots#{i}")
                for runner in self.runners:
                    tg.create_task(runner.run(), name=f"runner {runner.name}")
                tg.create_task(self._recovery_watchdog(), name=f"{self.name} recovery watchdog")
        except BaseExceptionGroup as group:
            raise unwrap_feed_error(group) from None

    async def __aenter__(self) -> VenueFeed:
        if self._task is not None:
            raise LocalProtocolError(f"feed {self.name} entered twice")
        self._task = asyncio.create_task(self.run(), name=f"feed {self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we ourselves are being cancelled
        # Any other exception (a fatal error of the feed) propagates to the owner.

    def check(self) -> None:
        """Raise the feed's fatal error if it stopped (for owners that poll, e.g. tests)."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                raise exc
            raise LocalProtocolError(f"feed {self.name} stopped")

    # ---- ConnectionSink --------------------------------------------------------------------------------

    def on_connection_up(self, runner: ConnectionRunner, conn: ConnInfo) -> None:
        self._live.setdefault(id(runner), []).append(conn.conn_id)
        keys = self._keys_of[id(runner)]
        self._asked(keys)  # a new connection subscribes its books: their recovery deadline starts now
        if conn.replacing is None:
            for key in keys:
                self._joined[key].add(conn.conn_id)
            return
        self._unjoined[conn.conn_id] = set(keys)
        if not keys:
            runner.handover_complete(conn.conn_id)

    def on_received(self, runner: ConnectionRunner, conn: ConnInfo, received: Received) -> None:
        conn_id = conn.conn_id
        # Venue times are epoch ms: only the wall clock can say one is impossibly far ahead.
        latest_ms = time.time_ns() // 1_000_000 + self._max_ahead_ms
        refused = False  # an update of this frame was stamped in the future: the frame is counted once
        for update in received.updates:
            kind = type(update)
            if kind is BookDelta:
                assert isinstance(update, BookDelta)
                if update.venue_ms > latest_ms:
                    refused = self._from_the_future(conn, update, update.key, refused)
                    continue
                self._on_delta(conn_id, update)
            elif kind is TopOfBook:
                assert isinstance(update, TopOfBook)
                sync = self.syncs.get(update.key)
                if sync is None:
                    self.stats.unknown_keys += 1
                elif update.venue_ms > latest_ms:
                    refused = self._from_the_future(conn, update, "", refused)  # a ticker loses the book nothing
                elif sync.on_top(update):
                    self._notify(update.key, update.recv_ns)
            elif kind is BookSnapshot:
                assert isinstance(update, BookSnapshot)
                if update.venue_ms > latest_ms:
                    refused = self._from_the_future(conn, update, update.key, refused)
                    continue
                self._on_ws_snapshot(conn_id, update)
            elif kind is FundingUpdate:
                assert isinstance(update, FundingUpdate)
                if update.venue_ms > latest_ms:
                    refused = self._from_the_future(conn, update, "", refused)
                    continue
                if self.funding.apply(update):
                    self._funded_by.setdefault(id(runner), set()).add(update.key)
                    self._notify(update.key, update.recv_ns)
            elif kind is Control:
                assert isinstance(update, Control)
                self._on_control(update)
        for action in received.actions:
            self._perform(action)

    @staticmethod
    def _ahead_ms(venue_ms: int) -> int:
        """How far ``venue_ms`` is ahead of the local wall clock."""
        return venue_ms - time.time_ns() // 1_000_000

    @staticmethod
    def _ahead_reason(what: str, venue_ms: int, ahead_ms: int) -> str:
        """Why ``what`` (a book's update, its REST snapshot) is refused for its venue time."""
        return f"{what} venue time {venue_ms} ms is {ahead_ms / 1000:.0f} s ahead of the local clock"

    def _from_the_future(
        self,
        conn: ConnInfo,
        update: BookDelta | BookSnapshot | TopOfBook | FundingUpdate,
        key: str,
        counted: bool,
    ) -> bool:
        """Refuse an update stamped impossibly far ahead (FeedConfig.max_venue_ahead_s): its frame is malformed
        (counted and logged once, ``counted``: already), and book ``key`` (empty: none) lost a change.
        Each update counts in ``future_stamped``. Returns True: the frame is counted."""
        self.stats.future_stamped += 1
        if not counted:
            reason = self._ahead_reason(f"{update.key}:", update.venue_ms, self._ahead_ms(update.venue_ms))
            # The update as the sample, built only when it is logged (a websocket snapshot's repr is long).
            sample = repr(update)[:_SAMPLE_CHARS] if _logged(self.stats.malformed + 1) else ""
            self._count_malformed(MalformedFrame(reason, venue=self.protocol.venue, sample=sample, key=key))
        if key:
            self._lose(conn, key)
        return True

    def on_malformed(self, runner: ConnectionRunner, conn: ConnInfo, error: MalformedFrame) -> None:
        self._count_malformed(error)
        if error.key:  # a book's snapshot or diff, refused: its changes are lost
            self._lose(conn, error.key)

    def _count_malformed(self, error: MalformedFrame) -> None:
        stats = self.stats
        stats.malformed += 1
        stats.last_malformed = error.reason
        n = stats.malformed
        if _logged(n):
            self._log.warning("malformed frame", count=n, reason=error.reason, sample=error.sample[:_SAMPLE_CHARS])

    def _lose(self, conn: ConnInfo, key: str) -> None:
        """Book ``key`` lost a change (a refused frame): its sequence rules decide what that costs."""
        sync = self.syncs.get(key)
        if sync is not None and conn.conn_id in self._joined[key]:  # not a replacement's copy before it joins
            version = sync.book.version
            for action in sync.lose_update():
                self._perform(action)
            if sync.book.version != version:
                self._notify(key, time.monotonic_ns())

    def on_connection_down(self, runner: ConnectionRunner, conn: ConnInfo, reason: str) -> None:
        conn_id = conn.conn_id
        self._unjoined.pop(conn_id, None)
        live = self._live.get(id(runner), [])
        if conn_id in live:
            live.remove(conn_id)
        survivors = list(live)
        for key in self._keys_of[id(runner)]:
            self._snapshot_ids.pop((key, conn_id), None)
            joined = self._joined[key]
            joined.discard(conn_id)
            held = self._held.get(key)
            if held is not None:
                held.pop(conn_id, None)
            if joined:
                continue
            sync = self.syncs[key]
            if survivors:
                # The replacement never caught up before the old connection ended: it carries the book
                # from here, and its held deltas meet the sync rules as they are (a gap resyncs the book).
                successor = survivors[-1]
                pending = held.pop(successor, deque()) if held is not None else deque()
                if pending:
                    self.stats.handover_flushes += 1
                self._join(key, successor, runner)
                for delta in pending:
                    self._apply_delta(sync, delta)
            else:
                self.stats.resets += 1
                sync.reset()  # nobody streams this book now: it is not live until resynced
                self._notify(key, time.monotonic_ns())
            if held is not None and not held:
                del self._held[key]
        if not survivors:
            self._drop_funding(runner, reason)

    def _drop_funding(self, runner: ConnectionRunner, reason: str) -> None:
        """No connection of ``runner`` is open: the funding states it streamed are forgotten, not kept as live.

        The next push after a reconnect brings them back (Binance every second; OKX every 30 to 90 s, the
        candidates meanwhile on their stated assumption, or ``funding_unknown``).
        """
        keys = self._funded_by.pop(id(runner), set())
        dropped = sorted(key for key in keys if self.funding.forget(key))
        if not dropped:
            return
        self.stats.funding_dropped += len(dropped)
        self._log.info("funding_dropped", keys=dropped, reason=reason)
        now_ns = time.monotonic_ns()
        for key in dropped:
            self._notify(key, now_ns)

    # ---- books -----------------------------------------------------------------------------------------

    def _on_delta(self, conn_id: int, delta: BookDelta) -> None:
        key = delta.key
        sync = self.syncs.get(key)
        if sync is None:
            self.stats.unknown_keys += 1
            return
        if conn_id not in self._joined[key] and not self._admit(key, conn_id, delta, sync):
            return
        self._apply_delta(sync, delta)
        if self._held and key in self._held:
            self._drain(key, sync)

    def _apply_delta(self, sync: BookSync, delta: BookDelta) -> None:
        version = sync.book.version
        actions = sync.on_delta(delta)
        if actions:
            for action in actions:
                self._perform(action)
        if sync.book.version != version:
            self._notify(delta.key, delta.recv_ns)

    def _admit(self, key: str, conn_id: int, delta: BookDelta, sync: BookSync) -> bool:
        """May a delta from a connection that has not joined this book be applied? (handover)"""
        runner = self._runner_of[key]
        if not self._joined[key] or sync.state is not SyncState.LIVE:
            self._join(key, conn_id, runner)
            return True
        if sync.rules.check(delta, sync.book.last_id, first=False) is not Verdict.GAP:
            self._join(key, conn_id, runner)
            return True
        queues = self._held.setdefault(key, {})
        queue = queues.setdefault(conn_id, deque())
        if len(queue) >= self.config.max_held_per_key:
            # The old connection is not catching up: stop protecting the book, let the rules decide.
            self.stats.handover_flushes += 1
            del queues[conn_id]
            if not queues:
                del self._held[key]
            self._join(key, conn_id, runner)
            for held in queue:
                self._apply_delta(sync, held)
            return True
        queue.append(delta)
        self.stats.held += 1
        return False

    def _drain(self, key: str, sync: BookSync) -> None:
        """After the book advanced: held deltas that now chain (or are all duplicates) join the book."""
        queues = self._held[key]
        runner = self._runner_of[key]
        for conn_id in list(queues):
            queue = queues[conn_id]
            last = sync.book.last_id
            while queue and queue[0].last_id <= last:
                queue.popleft()  # already applied from the old connection
            live = sync.state is SyncState.LIVE
            if queue and live and sync.rules.check(queue[0], last, first=False) is Verdict.GAP:
                continue
            del queues[conn_id]
            self._join(key, conn_id, runner)
            for delta in queue:
                self._apply_delta(sync, delta)
        if not queues:
            del self._held[key]

    def _join(self, key: str, conn_id: int, runner: ConnectionRunner) -> None:
        self._joined[key].add(conn_id)
        missing = self._unjoined.get(conn_id)
        if missing is not None:
            missing.discard(key)
            if not missing:
                del self._unjoined[conn_id]
                runner.handover_complete(conn_id)

    def _on_ws_snapshot(self, conn_id: int, snapshot: BookSnapshot) -> None:
        key = snapshot.key
        sync = self.syncs.get(key)
        if sync is None:
            self.stats.unknown_keys += 1
            return
        joined = self._joined[key]
        sent_before = self._snapshot_ids.get((key, conn_id))
        self._snapshot_ids[(key, conn_id)] = snapshot.last_id
        if (
            sync.state is SyncState.LIVE
            and snapshot.last_id < sync.book.last_id
            and (len(joined) > 1 or (joined and conn_id not in joined))
            and (sent_before is None or snapshot.last_id >= sent_before)
        ):
            # A handover: two connections stream this book, and the snapshot is older than what the other
            # one already applied (the two sockets are not ordered between them): the replacement's before
            # it joined, or the old connection's, lagging, after the replacement joined ahead of it.
            # Applying it would take the book back in time, and a venue that screens snapshots (Bybit: seq)
            # would call it a gap. A replacement joins with its first delta or snapshot that is not behind
            # the book (the same state joins too). A snapshot older than the connection's own previous one
            # is not lagging but the venue going back (Bybit's restart, ``u == 1``), and with one connection
            # an older snapshot can only be that: the sync rules judge it.
            self.stats.stale_snapshots += 1
            return
        version = sync.book.version
        # A websocket snapshot starts the chain for the connection that sent it.
        self._join(key, conn_id, self._runner_of[key])
        for action in sync.on_snapshot(snapshot):
            self._perform(action)
        if sync.book.version != version:
            self._notify(key, snapshot.recv_ns)
        if self._held and key in self._held:
            self._drain(key, sync)

    def _on_control(self, control: Control) -> None:
        if control.kind is ControlKind.ERROR:
            self.stats.control_errors += 1
            self._log.warning("venue error", detail=control.detail, key=control.key)
        elif control.kind is ControlKind.SERVER_SHUTDOWN:
            self._log.info("venue announced a shutdown", detail=control.detail)

    def _perform(self, action: Action) -> None:
        if isinstance(action, FetchSnapshot):
            self._request_snapshot(action.key)
        elif isinstance(action, Resubscribe):
            runner = self._runner_of.get(action.key)
            subs = self._resubscribed(action)
            if runner is not None and subs:
                self.stats.resubscribes += 1
                runner.resubscribe(subs)
                if action.channel == Channel.BOOK:
                    self._asked([action.key])
            else:  # a protocol asking for a stream this feed does not carry: say so, never act on it silently
                self._log.warning("resubscribe_without_subscription", key=action.key, channel=action.channel)
        else:  # SendText / Reconnect are the runner's; they never come from a sync
            raise LocalProtocolError(f"{self.name}: unexpected action {action!r} outside a connection")

    def _resubscribed(self, action: Resubscribe) -> list[Subscription]:
        """The subscriptions a resubscribe renews: the key's, of the action's channel only (a ticker snapshot
        asked for must not make the book of the same symbol start over)."""
        return [s for s in self._subs_by_key.get(action.key, ()) if s.channel == action.channel]

    def _notify(self, key: str, recv_ns: int) -> None:
        if self.on_update is not None:
            self.on_update(key, recv_ns)

    def _transition(self, key: str, old: SyncState, new: SyncState, event: SyncEvent) -> None:
        if new is SyncState.LIVE:
            self._recovering.pop(key, None)
        elif key not in self._recovering:
            self._recovering[key] = (time.monotonic_ns(), 0)
        if new is SyncState.GAP:
            self._log.warning("book gap", key=key, state=old.value)
        elif old in _WAITING and new is SyncState.LIVE:
            self._log.info("book live", key=key)
        if self.on_transition is not None:
            self.on_transition(key, old, new, event)

    def _asked(self, keys: Sequence[str]) -> None:
        """Subscribes for ``keys`` just went out: a book not live yet waits a full deadline from now."""
        now = time.monotonic_ns()
        for key in keys:
            found = self._recovering.get(key)
            if found is not None:
                self._recovering[key] = (now, found[1])

    async def _recovery_watchdog(self) -> None:
        """Ask again for the books that a resubscribe should have made live by now (see FeedConfig)."""
        deadline_ns = int(self.config.recovery_deadline_s * 1e9)
        now = time.monotonic_ns()
        for key, sync in self.syncs.items():  # the first subscription counts as asking
            if sync.state is not SyncState.LIVE:
                self._recovering.setdefault(key, (now, 0))
        while True:
            await asyncio.sleep(min(1.0, self.config.recovery_deadline_s / 4))
            now = time.monotonic_ns()
            for key, (asked_ns, retries) in list(self._recovering.items()):
                sync = self.syncs[key]
                if sync.state is SyncState.LIVE or sync.rules.recovery is not Resubscribe:
                    continue
                if now - asked_ns < deadline_ns << min(retries, 3):
                    continue
                runner = self._runner_of.get(key)
                if runner is None or not runner.live_connections:
                    continue  # the runner subscribes everything again when it reconnects
                self._recovering[key] = (now, retries + 1)  # _perform restarts the wait; keep the count
                self.stats.recovery_retries += 1
                self._log.warning(
                    "book still not live, resubscribing again",
                    key=key,
                    state=sync.state.value,
                    waited_s=round((now - asked_ns) / 1e9, 1),
                    retry=retries + 1,
                )
                self._perform(Resubscribe(key))

    # ---- REST snapshots --------------------------------------------------------------------------------

    def _request_snapshot(self, key: str) -> None:
        if key in self.failed:
            return  # rejected for good: the book stays not live, the rest of the feed carries on
        if key in self._fetching:
            self._refetch.add(key)  # a fetch is in flight; it may be too old for the new need
            return
        self._fetching.add(key)
        self._snapshot_queue.put_nowait(key)

    async def _snapshot_worker(self) -> None:
        while True:
            key = await self._snapshot_queue.get()
            try:
                await self._fetch_snapshot(key)
            finally:
                self._fetching.discard(key)
            if key in self._refetch:
                self._refetch.discard(key)
                if self.syncs[key].state in _WAITING:
                    self._request_snapshot(key)

    async def _fetch_snapshot(self, key: str) -> None:
        request = self.protocol.snapshot_request(key)
        if request is None:
            return
        sync = self.syncs[key]
        backoff = Backoff(self.config.snapshot_backoff)
        venue = str(self.protocol.venue)
        while sync.state in _WAITING:
            try:
                response = await self.rest.fetch(self.config.rest_url, request, budget=self.rest_budget, venue=venue)
                snapshot = self.protocol.parse_snapshot(key, response.body, response.recv_ns)
                ahead_ms = self._ahead_ms(snapshot.venue_ms)
                if ahead_ms > self._max_ahead_ms:
                    self.stats.future_stamped += 1
                    reason = self._ahead_reason(f"{key}: REST snapshot's", snapshot.venue_ms, ahead_ms)
                    raise MalformedFrame(reason, venue=venue, sample=response.body)
            except VenueRejected as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status not in _TRANSIENT_4XX:
                    self._abandon(key, exc)
                    return
                await self._snapshot_retry(key, backoff, exc)
                continue
            except (RateLimited, ConnectionLost, MalformedFrame) as exc:
                # All worth another try for a book we need; each is counted and logged, never fatal.
                await self._snapshot_retry(key, backoff, exc)
                continue
            self.stats.snapshots_fetched += 1
            if self.snapshot_tap is not None:
                self.snapshot_tap(key, response.body, response.recv_ns)
            version = sync.book.version
            for action in sync.on_snapshot(snapshot):
                self._perform(action)
            if sync.book.version != version:
                self._notify(key, response.recv_ns)
            if self._held and key in self._held:
                self._drain(key, sync)
            return

    async def _snapshot_retry(self, key: str, backoff: Backoff, exc: Exception) -> None:
        self.stats.snapshot_failures += 1
        delay = backoff.next_delay(at_least_s=classify(exc).min_delay_s)
        self._log.warning("snapshot failed", key=key, error=str(exc), retry_in_s=round(delay, 3))
        await asyncio.sleep(delay)

    def _abandon(self, key: str, exc: VenueRejected) -> None:
        """A permanent rejection (bad symbol, bad request): retrying forever would hide it, so stop loudly."""
        self.stats.snapshot_failures += 1
        self.stats.snapshot_rejected += 1
        self.failed[key] = str(exc)
        symbol = key.rsplit(":", 1)[-1]
        self._log.error(
            "snapshot rejected, book abandoned",
            key=key,
            symbol=symbol,
            status=exc.status,
            detail=exc.detail,
        )
