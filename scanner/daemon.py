"""The daemon: config → feeds → engine → journal → alert outbox, with metrics, signals and systemd notify.

::

    VenueFeed (one per [[feeds]] entry) ──on_update(key)──► Engine ──CandidateEvent──► journal.append
         │ books, funding                                   │ decisions                      │
         └──────────── LiveMarket (read in place) ◄─────────┘                AlertDispatcher.enqueue (outbox)

Every task belongs to one :class:`asyncio.TaskGroup`: the feeds, the engine's evaluator, the journal's
fsync cadence, the webhook workers, the metrics refresh, the instrument metadata refresh, the terminal
summary and the systemd watchdog. A fatal error in any of them stops the daemon (exit 1, the error
logged); expected errors at start (bad config, bad constraints, a port in use) are raised before anything
runs.

Instrument metadata: before any feed starts, every (venue, market) streamed in its wire protocol loads
its instrument metadata over REST (``exchangeInfo``, OKX ``instruments``...; Binance USD-M also
``fundingInfo``) through the shared REST client and the venue's budget, from the feed's ``rest_url``.
Protocols are built with those terms: OKX swap/futures and Binance COIN-M books count contracts of the
listed size, USD-M funding uses the listed interval. A configured contract instrument the metadata does
not list is a config error (exit 2). A transient failure (network, 5xx, 418/429) is retried for up to
``instrument_start_timeout_s`` (5 minutes; systemd's start timeout extended meanwhile, each retry logged and
in its STATUS); after that, or at once for a refusal (4xx) or a malformed reply, the start fails (exit 1).
The metadata is then reloaded every ``instrument_refresh_s``; a failed reload keeps the previous one
(logged, counted in :attr:`Daemon.metadata_stats`). ``DaemonOptions.instruments`` supplies a catalog
instead (the demo: the recorded metadata of its Binance markets), loaded nothing and refreshed never.

Signals: ``SIGHUP`` reloads the config file atomically (:meth:`Daemon.reload`): a new config that fails
validation, or whose constraints or webhooks cannot be loaded, is rejected and the old one kept; either
way it is logged and counted in ``arbscan_config_reloads_total{result}``. ``[[feeds]]``, ``[daemon]``,
``[metrics]`` and ``[logging]`` take effect only after a restart: every key of them a reload changed is
listed in the log (``restart_required``).
``SIGTERM``/``SIGINT`` stop gracefully: feeds stop, the evaluator finishes its drain, webhook requests
in flight finish (pending alerts stay in the durable outbox), the journal is fsynced and closed.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import msgspec
import structlog
from prometheus_client import Gauge

from feeds.errors import ConnectionLost, MalformedFrame, RateLimited, VenueRejected
from feeds.feed import FeedConfig as VenueFeedConfig
from feeds.feed import VenueFeed
from feeds.funding import FundingBook
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.levels import LEVELS_LOOP
from feeds.metadata import InstrumentCatalog
from feeds.metadata_loader import LoadResult, RefreshStats, refresh_forever, refresh_once
from feeds.protocol import Channel
from feeds.rest import RestClient
from feeds.sync import BookSync, SyncEvent, SyncState
from feeds.updates import FundingUpdate
from feeds.venues import feed_key
from rules.candidates import Strategy
from rules.decision import Decision
from rules.errors import RulesError
from rules.reasons import EVALUATED, Outcome
from scanner import __version__
from scanner.alerts import AlertDispatcher
from scanner.candidate_state import EventKind as CandidateEventKind
from scanner.candidates import build_candidates
from scanner.config import Config, reload_config, restart_required
from scanner.engine import CandidateEvent, Engine, duplicate_ids
from scanner.errors import ConfigError, InstrumentsUnavailable, ScannerError
from scanner.event_log import EventLog
from scanner.feedplan import EndpointsHook, FeedPlan, ProtocolHook, check_metadata, feed_labels, plan_feeds
from scanner.journal import EventKind as JournalEventKind
from scanner.journal import JournalWriter
from scanner.market import LiveMarket, MarketClock
from scanner.metrics import HANDOVER_EVENTS, Metrics
from scanner.metrics_http import MetricsServer
from scanner.notify import Notifier
from scanner.resume import (
    OpenEpisode,
    Resumed,
    downtime_s,
    load_open_episodes,
    mark_alive,
    open_episode,
    resume_states,
    save_open_episodes,
)
from scanner.runtime import engine_settings, funding_assumptions, load_effective_constraints
from scanner.summary import FeedHealth, render

log = structlog.get_logger("scanner.daemon")

HEARTBEAT_INTERVAL_S = 5.0  # how often the journal's heartbeat file is touched (scanner.resume)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonOptions:
    """How this process runs the config (the CLI and the demo fill it in)."""

    config_path: Path
    cli_overrides: Mapping[Strategy, float] = field(default_factory=dict)
    adjust: Callable[[Config], Config] | None = None  # applied to the loaded config and to every reload
    endpoints_hook: EndpointsHook | None = None
    protocol_hook: ProtocolHook | None = None
    label: str = "live"
    summary_interval_s: float | None = None  # print the terminal summary this often (None: only at the end)
    summary_stream: TextIO | None = None  # default stdout
    final_summary: bool = True
    handle_signals: bool = True
    refresh_interval_s: float = 1.0  # gauges (ages, connections, best edge) and systemd STATUS
    instruments: InstrumentCatalog | None = None  # given metadata (the demo); None: load over REST at start
    instrument_refresh_s: float = 3600.0  # reload the REST-loaded metadata this often
    instrument_retry_s: float = 60.0  # after a failed reload
    # At start, a venue whose metadata cannot be loaded for a transient reason (network, 5xx, 418/429) is
    # retried this long (systemd's start timeout extended meanwhile) before the start fails: a venue's REST
    # outage of a minute must not turn into five failed starts and a failed unit.
    instrument_start_timeout_s: float = 300.0
    # Start candidates where the journal says they stood (scanner.resume). The demo does not: it replays a
    # recording from its start, so its market clock would go back past the states it read.
    resume_candidates: bool = True


@dataclass(slots=True)
class _FeedRuntime:
    plan: FeedPlan
    feed: VenueFeed
    seen: dict[str, int] = field(default_factory=dict)  # counter name -> value already exported
    funding_exported: set[str] = field(default_factory=set)  # funding keys whose age gauge was set


def export_funding_ages(gauge: Gauge, venue: str, funding: FundingBook, exported: set[str], now_ns: int) -> None:
    """Set ``arbscan_funding_age_seconds`` of every funding state ``funding`` holds; ``exported`` (updated) names
    the keys set so far, so that one dropped with its stream (VenueFeed._drop_funding) shows no age (NaN)
    rather than its last age, frozen, looking fresh."""
    for update in funding:
        gauge.labels(venue, update.key.split(":", 2)[2]).set((now_ns - update.recv_ns) / 1e9)
        exported.add(update.key)
    for key in [key for key in exported if funding.get(key) is None]:
        gauge.labels(venue, key.split(":", 2)[2]).set(float("nan"))
        exported.discard(key)


class Daemon:
    """One running arbscan. ``code = await Daemon(config, options).run()``."""

    def __init__(self, config: Config, options: DaemonOptions) -> None:
        self.options = options
        self.config = config
        self.metrics = Metrics(version=__version__)
        self.notifier = Notifier.from_environ()
        self.constraints = load_effective_constraints(config, options.cli_overrides, config_path=options.config_path)
        self.candidates = build_candidates(config)
        self.catalog = options.instruments if options.instruments is not None else InstrumentCatalog()
        # Protocols are planned again, strictly, once the metadata is loaded (run); these name the metrics.
        self.plans = self._plan(strict=False)
        self.metadata_stats: dict[tuple[Venue, Market], RefreshStats] = {}
        self._metadata_urls: dict[tuple[Venue, Market], str] = {}
        self._metadata_seen: dict[tuple[str, str, str], int] = {}  # exported so far, per label set
        self.clock = MarketClock()
        self._books: dict[InstrumentId, BookSync] = {}
        self._funding: dict[InstrumentId, tuple[FundingBook, str]] = {}
        self.market = LiveMarket(self._books, self._funding_of, funding_assumptions(config), self.clock)
        self.keys = {i: feed_key(i) for i in config.instruments()}
        self.engine = Engine(
            self.market,
            self.constraints,
            keys=self.keys,
            candidates=self.candidates,
            settings=engine_settings(config),
            metrics=self.metrics,
            sink=self._on_event,
            strategies=[s.value for s in Strategy],
        )
        self.feeds: list[_FeedRuntime] = []
        self.journal: JournalWriter | None = None
        self.dispatcher: AlertDispatcher | None = None
        self.event_log: EventLog | None = None  # engine events -> journal -> outbox (set up by run)
        self.metrics_server: MetricsServer | None = None
        self.started = asyncio.Event()  # feeds started and /metrics listening (READY)
        self.reloads: list[bool] = []  # outcome of every reload, for tests and the summary
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._final_summary = ""
        self._t0 = time.monotonic()
        self._heartbeat_at = -math.inf
        self._stopped_cleanly = False  # set at the end of a graceful stop: the open episodes may be saved
        self._reload_pending = False  # a SIGHUP came before the daemon served: reload once it does
        self._closing = False  # set on every way out (a requested stop sets _stop; a failure only this)
        self._preinitialize_metrics()

    # ---- wiring helpers --------------------------------------------------------------------------

    def _plan(self, *, strict: bool) -> list[FeedPlan]:
        o = self.options
        return plan_feeds(
            self.config,
            catalog=self.catalog,
            strict=strict,
            endpoints_hook=o.endpoints_hook,
            protocol_hook=o.protocol_hook,
            label=o.label,
        )

    def _resume_candidates(self, journal_dir: Path, journal_seq: int, last_event_id: str) -> None:
        """Start each candidate where its last journaled event left it (scanner.resume), and say so; not
        after a downtime longer than ``[engine] resume_max_downtime_s``, or without a heartbeat. Episodes left
        open that this run will not continue are closed (``not_watched``): those of candidates no longer
        configured and, when nothing is resumed, all of them. Which are open: :meth:`_open_episodes`."""
        down = downtime_s(journal_dir)
        limit = self.config.engine.resume_max_downtime_s
        found = resume_states(journal_dir, [c.id for c in self.candidates])
        for problem in found.problems:
            log.warning("journal_problem", problem=str(problem))
        episodes, source = self._open_episodes(journal_dir, journal_seq, last_event_id, found)
        definitions = self.engine.definitions()

        def watched(candidate_id: str, definition: str) -> bool:
            """Configured, and as the journal recorded it: a candidate redefined under the same id (a new
            horizon, say) starts afresh and its episode ends, as a reload does (Engine.set_candidates)."""
            known = definitions.get(candidate_id)
            return known is not None and (not definition or definition == known)

        resuming = down is not None and down <= limit
        # the journal's word; a saved episode the files read did not reach, too
        states = {cid: s for cid, s in found.states.items() if watched(cid, found.definitions.get(cid, ""))}
        redefined = sorted(set(found.states) - set(states))
        if redefined:
            log.info("candidates_redefined", candidates=redefined, resumed=False)
        closing: dict[str, tuple[Decision, tuple[str, ...]]] = {}  # what a resumed episode closes with
        for candidate_id, episode in episodes.items():
            if watched(candidate_id, episode.definition):
                states.setdefault(candidate_id, episode.state)
                closing[candidate_id] = (episode.decision, episode.assumptions)
        closed = 0
        for e in episodes.values():
            if not resuming or not watched(e.candidate_id, e.definition):
                event = self.engine.unwatch(
                    e.candidate_id, e.strategy, e.state, e.decision, e.assumptions, definition=e.definition
                )
                closed += event is not None
        if down is None or not resuming:
            why = "no heartbeat" if down is None else f"down {down:.0f} s, more than {limit:g} s"
            count = len(self.candidates)
            log.warning(
                "candidates_not_resumed",
                reason=why,
                candidates=count,
                episodes_closed=closed,
                source=source,
                journal_last_event=last_event_id,
            )
            return
        for unreadable in found.unreadable:
            if unreadable.split(": ", 1)[0] not in states:  # "<candidate>: <why>"; else the saved file's
                log.warning("candidate_not_resumed", reason=unreadable)
        resumed = self.engine.resume(states, closing)
        qualified = sum(1 for state in states.values() if state.qualified)
        log.info(
            "candidates_resumed",
            resumed=resumed,
            qualified=qualified,
            unseen=len(self.candidates) - resumed,
            episodes_closed=closed,
            source=source,
            journal_last_event=last_event_id,  # what the saved episodes were matched against (with the seq)
            files_read=found.files_read,
            bytes_read=found.bytes_read,
            complete=found.complete,
            downtime_s=round(down, 1),
        )

    @staticmethod
    def _open_episodes(
        journal_dir: Path, journal_seq: int, last_event_id: str, found: Resumed
    ) -> tuple[dict[str, OpenEpisode], str]:
        """The episodes left open (by candidate), and where they were read from: those of the journal files
        read, and those the last clean stop saved if nothing was journaled since (those win: their decisions
        are the latest; the journal's add what the stop could not know, e.g. a close the disk refused)."""
        episodes = {}
        for candidate_id, event in found.open_episodes.items():
            try:
                episodes[candidate_id] = open_episode(event)
            except ValueError as exc:
                log.warning("episode_not_closed", candidate=candidate_id, reason=str(exc))
        try:
            saved = load_open_episodes(journal_dir, journal_seq, last_event_id)
        except ValueError as exc:
            log.warning("saved_open_episodes_unreadable", problem=str(exc))
            saved = None
        if saved is None:
            return episodes, "journal"
        return episodes | saved, "journal and the last clean stop"

    async def _load_instruments(self, rest: RestClient) -> None:
        """Load the metadata of every planned (venue, market) (unless given), check it, plan strictly."""
        if self.options.instruments is None:
            for plan in self.plans:
                if plan.metadata:
                    self._metadata_urls.setdefault((plan.venue, plan.market), plan.rest_url)
            deadline = asyncio.get_running_loop().time() + self.options.instrument_start_timeout_s
            for (venue, market), url in self._metadata_urls.items():
                # Exported from the first attempt: the failures of a start that waits out an outage show.
                stats = self.metadata_stats[(venue, market)] = RefreshStats()
                await self._load_at_start(rest, venue, market, url, deadline, stats)
                if self._stop.is_set():
                    return  # SIGTERM/SIGINT while waiting: a clean stop, nothing started
                stats.loads += 1
        check_metadata(self.plans, self.catalog, str(self.options.config_path))
        self.plans = self._plan(strict=True)

    async def _load_at_start(  # noqa: PLR0917 (positional: the venue market's load and its bookkeeping)
        self, rest: RestClient, venue: Venue, market: Market, url: str, deadline: float, stats: RefreshStats
    ) -> None:
        """Load one venue market's metadata, retrying transient failures (network, 5xx, 418/429) until
        ``deadline`` or a stop is requested; a refusal (4xx) or a malformed reply fails at once (a wrong URL,
        not an outage). Each retry is counted in ``stats``, logged, shown in systemd's STATUS and extends its
        start timeout."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await refresh_once(self.catalog, rest, venue, market, base_url=url)
                return
            except (ConnectionLost, RateLimited) as exc:
                stats.failures += 1
                stats.last_error = str(exc)
                failures = stats.failures
                if self._stop.is_set():
                    return  # asked to stop while the request was in flight: a clean stop, not a failure
                delay = min(30.0, 2.0 ** (failures - 1))
                if isinstance(exc, RateLimited):
                    delay = max(delay, exc.retry_after_s)
                if loop.time() + delay > deadline:
                    raise InstrumentsUnavailable(f"{venue}/{market}", url, f"{exc} ({failures} attempts)") from None
                log.warning(
                    "instruments_unavailable_retrying",
                    venue=str(venue),
                    market=str(market),
                    attempt=failures,
                    retry_in_s=delay,
                    reason=str(exc),
                )
                self.notifier.notify(
                    status=f"waiting for the instrument metadata of {venue}/{market} (attempt {failures} failed)",
                    extend_timeout_usec=int((delay + 60.0) * 1e6),
                )
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return  # SIGTERM/SIGINT: the caller ends the start cleanly
                except TimeoutError:
                    pass
            except (VenueRejected, MalformedFrame) as exc:
                if self._stop.is_set():
                    return
                raise InstrumentsUnavailable(f"{venue}/{market}", url, str(exc)) from None

    def _on_metadata(self, venue: Venue, market: Market) -> Callable[[LoadResult], None]:
        """After a reload: books made at start take any changed contract terms (rare; never silently stale)."""

        def on_loaded(result: LoadResult) -> None:
            for runtime in self.feeds:
                if (runtime.plan.venue, runtime.plan.market) == (venue, market):
                    for sync in runtime.feed.syncs.values():
                        self.catalog.apply_contract_terms(sync.book)

        return on_loaded

    def _funding_of(self, instrument: InstrumentId) -> FundingUpdate | None:
        found = self._funding.get(instrument)
        return found[0].get(found[1]) if found is not None else None

    def _preinitialize_metrics(self) -> None:
        """Zero every label combination known at start, so dashboards never see an absent series."""
        m = self.metrics
        for strategy in Strategy:
            for outcome in Outcome:
                m.evaluations.labels(strategy.value, outcome.value)
            for reason in EVALUATED:
                m.rejection_reasons.labels(strategy.value, reason.value)
                m.primary_rejections.labels(strategy.value, reason.value)
            for candidate_event in CandidateEventKind:
                m.candidate_events.labels(strategy.value, candidate_event.value)
            m.qualified_now.labels(strategy.value).set(0)
            m.best_net_edge.labels(strategy.value).set(0)
            m.evaluation_seconds.labels(strategy.value)
        venues = set()
        for plan, feed_label in zip(self.plans, feed_labels(self.plans), strict=True):
            venue, market = plan.venue.value, plan.market.value
            venues.add(venue)
            m.feed_connected.labels(venue, market, feed_label).set(0)
            m.rest_weight_used.labels(venue, market).set(0)
            m.feed_messages.labels(venue, market)
            m.feed_malformed.labels(venue, market)
            m.feed_future_stamped.labels(venue, market)
            for why in ("rollover", "failure"):
                m.feed_reconnects.labels(venue, market, why)
            for event in HANDOVER_EVENTS:
                m.feed_handovers.labels(venue, market, event)
            m.book_gaps.labels(venue, market)
            m.book_resyncs.labels(venue, market)
            m.book_recovery_retries.labels(venue, market)
            m.books_abandoned.labels(venue, market)
            for sub in plan.subscriptions:
                if sub.channel is not Channel.BOOK:
                    continue
                m.book_live.labels(venue, market, sub.venue_symbol.upper()).set(0)
                m.book_age_seconds.labels(venue, market, sub.venue_symbol.upper()).set(float("nan"))
            for inst in plan.instruments:
                if inst.kind is Kind.PERP:
                    m.funding_age_seconds.labels(venue, feed_key(inst).split(":", 2)[2]).set(float("nan"))
        for venue in sorted(venues):
            for result in ("ok", "error"):
                m.rest_requests.labels(venue, result)
            authenticated = any(
                r.source == "authenticated" and r.venue == venue for r in self.constraints.document.rules
            )
            m.constraints_source.labels(venue).set(1 if authenticated else 0)
        for reload_result in ("applied", "rejected"):
            m.config_reloads.labels(reload_result)
        for kind in JournalEventKind:
            m.journal_events.labels(kind.value)
        for webhook in self.config.webhooks:
            m.webhook_sent.labels(webhook.name)
            m.webhook_failures.labels(webhook.name)
            for suppression in ("cooldown", "duplicate"):
                m.webhook_suppressed.labels(webhook.name, suppression)

    def _on_event(self, event: CandidateEvent) -> None:
        """Engine → journal → outbox (:class:`scanner.event_log.EventLog`: in order, nothing lost to a full disk)."""
        if self.event_log is not None:
            self.event_log(event)

    def _on_transition(self, plan: FeedPlan) -> Callable[[str, SyncState, SyncState, SyncEvent], None]:
        m = self.metrics
        venue, market = plan.venue.value, plan.market.value
        gaps, resyncs = m.book_gaps.labels(venue, market), m.book_resyncs.labels(venue, market)

        def on_transition(key: str, old: SyncState, new: SyncState, event: SyncEvent) -> None:
            if new is SyncState.GAP:
                gaps.inc()
            elif new is SyncState.RESYNC:
                resyncs.inc()
            m.book_live.labels(venue, market, key.split(":", 2)[2]).set(1 if new is SyncState.LIVE else 0)
            if old is SyncState.LIVE or new is SyncState.LIVE:
                self.engine.touch(key, time.monotonic_ns())  # a book that went (not) live changes decisions

        return on_transition

    def _build_feeds(self, rest: RestClient) -> None:
        for plan in self.plans:
            feed = VenueFeed(
                plan.protocol,
                plan.subscriptions,
                rest=rest,
                config=VenueFeedConfig(
                    ws_url=plan.ws_url,
                    rest_url=plan.rest_url,
                    max_venue_ahead_s=self.config.feeds[plan.feed_index].max_venue_ahead_s,
                ),
                on_update=self.engine.touch,
                on_transition=self._on_transition(plan),
                name=plan.name,
            )
            self.feeds.append(_FeedRuntime(plan, feed))
            for inst in plan.instruments:
                key = feed_key(inst)
                sync = feed.syncs.get(key)
                if sync is not None:
                    self._books[inst] = sync
                if inst.kind is Kind.PERP and any(s.channel is Channel.FUNDING for s in plan.subscriptions):
                    self._funding[inst] = (feed.funding, key)

    # ---- lifecycle -------------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            log.info("stopping", reason=reason)
        self._stop.set()

    async def run(self, until: Awaitable[object] | None = None) -> int:
        """Run until SIGTERM/SIGINT, :meth:`request_stop`, or ``until`` completes. Returns the exit code."""
        cfg = self.config
        self.dispatcher = AlertDispatcher.open(cfg.daemon.outbox_dir, cfg.webhooks, self.metrics)
        installed: list[signal.Signals] = []
        try:
            self.journal = JournalWriter.open(
                cfg.daemon.journal_dir,
                cfg.daemon.journal,
                self.metrics,
                min_next_seq=self.dispatcher.outbox.journal_seq + 1,
            )
            self.event_log = EventLog(self.journal, self.dispatcher.enqueue, metrics=self.metrics)
            caught = self.dispatcher.catch_up(cfg.daemon.journal_dir)
            if caught:
                log.info("alerts_recovered_from_journal", alerts=caught)
            if self.options.resume_candidates:
                self._resume_candidates(cfg.daemon.journal_dir, self.journal.next_seq - 1, self.journal.last_event_id)
            self.metrics_server = MetricsServer(
                self.metrics.registry, cfg.metrics.host, cfg.metrics.port, before_scrape=self.refresh_metrics
            )
            await self.metrics_server.start()
            # From here to the end: SIGTERM/SIGINT stop cleanly (also a start that waits out a venue's outage:
            # exit 0, not the signal's default action), SIGHUP reloads (deferred until serving).
            installed += self._install_signals()
            async with RestClient() as rest:
                await self._load_instruments(rest)
                if self._stop.is_set():
                    log.info("stopped_before_start", reason=self._stop_reason)
                    return 0
                self._build_feeds(rest)
                try:
                    await self._serve(until, rest)
                except BaseExceptionGroup as group:
                    # One failing task is the usual case: surface it as itself, so the CLI can map it.
                    leaves = _leaves(group)
                    if len(leaves) == 1:
                        raise leaves[0] from None
                    raise
        finally:
            self._closing = True
            if inspect.iscoroutine(until):
                until.close()  # never started when the daemon failed first: no "never awaited" warning
            try:
                await self._close()
            finally:  # after the close: a signal during it must not take its default action (kill) half-way
                self._remove_signals(installed)
        return 0

    def _install_signals(self) -> list[signal.Signals]:
        """SIGTERM/SIGINT request a stop, SIGHUP a reload (unless the options leave signals alone)."""
        if not self.options.handle_signals:
            return []
        loop = asyncio.get_running_loop()
        handlers: dict[signal.Signals, Callable[[], object]] = {
            signal.SIGTERM: lambda: self.request_stop("SIGTERM"),
            signal.SIGINT: lambda: self.request_stop("SIGINT"),
            signal.SIGHUP: self._on_sighup,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        return list(handlers)

    def _on_sighup(self) -> None:
        """Reload now if serving; before (the start still loading metadata), once serving: a reload says READY
        to systemd, which must not hear it before the start is done."""
        if self._stop.is_set() or self._closing:  # a reload now would swap the config under the shutdown
            log.info("reload_ignored", reason="SIGHUP while stopping")
        elif self.started.is_set():
            self.reload()
        else:
            self._reload_pending = True
            log.info("reload_deferred", reason="SIGHUP during the start: applied once the daemon serves")

    @staticmethod
    def _remove_signals(installed: list[signal.Signals]) -> None:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)

    async def _serve(self, until: Awaitable[object] | None, rest: RestClient) -> None:
        assert self.journal is not None and self.dispatcher is not None and self.metrics_server is not None
        async with asyncio.TaskGroup() as tg:
            feed_tasks = [tg.create_task(r.feed.run(), name=f"feed {r.plan.name}") for r in self.feeds]
            engine_task = tg.create_task(self.engine.run(), name="engine")
            recheck_task = tg.create_task(self.engine.run_rechecks(), name="engine rechecks")
            journal_task = tg.create_task(self.journal.run(), name="journal fsync")
            dispatch_task = tg.create_task(self.dispatcher.run(), name="webhooks")
            aux = [tg.create_task(self._refresh_loop(), name="metrics refresh")]
            if self.options.summary_interval_s:
                aux.append(tg.create_task(self._summary_loop(self.options.summary_interval_s), name="summary"))
            if self.notifier.enabled:
                aux.append(tg.create_task(self.notifier.run_watchdog(), name="watchdog"))
            if until is not None:
                aux.append(tg.create_task(self._stop_after(until), name="until"))
            for (venue, market), url in self._metadata_urls.items():
                refresh = refresh_forever(
                    self.catalog,
                    rest,
                    venue,
                    market,
                    interval_s=self.options.instrument_refresh_s,
                    retry_s=self.options.instrument_retry_s,
                    base_url=url,
                    stats=self.metadata_stats[(venue, market)],
                    on_loaded=self._on_metadata(venue, market),
                    initial_delay_s=self.options.instrument_refresh_s,
                )
                aux.append(tg.create_task(refresh, name=f"instruments {venue}/{market}"))
            log.info(
                "daemon_started",
                metrics=self.metrics_server.url,
                feeds=[f"{r.plan.name} [{r.plan.label}]" for r in self.feeds],
                candidates=len(self.candidates),
                state_dir=self.config.daemon.state_dir,
                book_levels_loop=LEVELS_LOOP,
            )
            if LEVELS_LOOP != "c":  # installed without a C compiler: correct, slower on large diffs
                log.warning("book_levels_loop_not_compiled", loop=LEVELS_LOOP, see="setup.py")
            self.notifier.ready(status=f"{len(self.candidates)} candidates, {len(self.feeds)} feeds")
            self.started.set()
            if self._reload_pending and not self._stop.is_set():  # a SIGHUP came during the start
                self._reload_pending = False
                self.reload()
            self._heartbeat()
            try:
                await self._stop.wait()
            finally:  # also when a failing task cancels this wait: the group's teardown is a way out too
                self._closing = True
            self.notifier.stopping()
            # Graceful: evaluate what the feeds delivered, stop evaluating, then stop the feeds (their
            # disconnects must not become decisions), then the sinks.
            self.engine.drain()
            self._final_summary = self.summary_text(final=True)
            engine_task.cancel()
            recheck_task.cancel()
            for task in (*feed_tasks, *aux):
                task.cancel()
            await asyncio.gather(engine_task, recheck_task, *feed_tasks, *aux, return_exceptions=True)
            self.dispatcher.stop()
            try:
                async with asyncio.timeout(self.config.daemon.shutdown_timeout_s):
                    await asyncio.shield(dispatch_task)
            except TimeoutError:
                log.warning("webhook_requests_unfinished_at_shutdown", timeout_s=self.config.daemon.shutdown_timeout_s)
                dispatch_task.cancel()
            self.engine.flush_metrics()
            if self.event_log is not None:
                self.event_log.close()
            self.journal.sync_written()  # a failed fsync at the end is logged and counted, not fatal
            journal_task.cancel()
        self._stopped_cleanly = True  # the group ended without a failure, the engine drained, events written

    async def _stop_after(self, until: Awaitable[object]) -> None:
        await until
        self.request_stop("finished")

    async def _close(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self.journal is not None:
            self.journal.close()
            if self._heartbeat_at > -math.inf:  # this run watched the market: its downtime begins now
                self._heartbeat_at = -math.inf
                self._heartbeat()
                self._save_open_episodes(self.journal.next_seq - 1, self.journal.last_event_id)
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.notifier.close()
        if self.options.final_summary and self._final_summary:
            print(self._final_summary, file=self.options.summary_stream or sys.stdout, flush=True)

    def _save_open_episodes(self, journal_seq: int, last_event_id: str) -> None:
        """A clean stop saves the open episodes (scanner.resume). Not after a failure (the engine may not have
        drained), nor when an event did not reach the journal (waiting for its disk, dropped, unencodable):
        the file would not match the journal, and the next start reads the journal alone."""
        events = self.event_log
        if not (self.options.resume_candidates and self._stopped_cleanly):
            return
        if events is not None and (events.backlog or events.dropped or events.skipped):
            return
        definitions = self.engine.definitions()
        episodes = [OpenEpisode(*episode, definitions.get(episode[0], "")) for episode in self.engine.open_episodes()]
        try:
            save_open_episodes(self.config.daemon.journal_dir, journal_seq, episodes, last_event_id)
        except OSError as exc:
            log.warning("open_episodes_not_saved", error=exc.strerror or str(exc))

    # ---- reload ----------------------------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: apply a valid new config atomically, or keep the old one (logged and counted)."""
        self.notifier.reloading()
        try:
            ok = self._reload()
        finally:
            self.notifier.ready(status="reloaded")
        self.reloads.append(ok)
        self.metrics.config_reloads.labels("applied" if ok else "rejected").inc()
        return ok

    def _reload(self) -> bool:
        """Everything that can fail first (load, constraints, candidates, webhooks), then apply all of it."""
        path = self.options.config_path
        result = reload_config(path, self.config)
        if result.error is not None:
            log.error("config_reload_rejected", file=str(path), problems=_problems(result.error), kept="old config")
            return False
        new = self.options.adjust(result.config) if self.options.adjust is not None else result.config
        try:
            constraints = load_effective_constraints(new, self.options.cli_overrides, config_path=path)
            candidates = build_candidates(new)
            dupes = duplicate_ids(candidates)
            if dupes:
                raise ConfigError(str(path), [("strategies", f"duplicate candidate {d}") for d in dupes])
            webhooks = AlertDispatcher.resolve(new.webhooks) if self.dispatcher is not None else None
        except (RulesError, ScannerError) as exc:
            log.error("config_reload_rejected", file=str(path), error=str(exc), kept="old config")
            return False
        # Feeds, [daemon], [metrics] and [logging] stay as they are until a restart (the old instruments keep
        # streaming and indexed); every key of them that changed is reported, none silently kept.
        restart = list(restart_required(self.config, new))
        kept = msgspec.structs.replace(
            new,
            feeds=self.config.feeds,
            daemon=self.config.daemon,
            metrics=self.config.metrics,
            logging=self.config.logging,
        )
        if self.dispatcher is not None and webhooks is not None:
            self.dispatcher.apply(webhooks)
        self.market.set_assumptions(funding_assumptions(kept))
        self.engine.set_candidates(candidates, constraints=constraints, settings=engine_settings(kept))
        self.constraints, self.candidates, self.config = constraints, candidates, kept
        log.info("config_reloaded", file=str(path), candidates=len(candidates), restart_required=restart)
        return True

    # ---- periodic work ---------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Touch the journal's heartbeat (what the next start measures its downtime by), every few seconds,
        once the feeds are up: a start that fails before (metadata unreachable, restarted by systemd in a
        loop) never watched the market and must not make a long outage look short."""
        if not self.started.is_set():
            return
        now = time.monotonic()
        if now - self._heartbeat_at < HEARTBEAT_INTERVAL_S:
            return
        self._heartbeat_at = now
        try:
            mark_alive(self.config.daemon.journal_dir)
        except OSError as exc:
            log.warning("heartbeat_failed", error=exc.strerror or str(exc))

    async def _refresh_loop(self) -> None:
        while True:
            self._heartbeat()
            if self.event_log is not None and self.event_log.backlog:
                self.event_log.retry()  # the journal's disk may take writes again
            if self.dispatcher is not None and self.dispatcher.backlog:
                self.dispatcher.retry()  # and the outbox's
            self.refresh_metrics()
            await asyncio.sleep(self.options.refresh_interval_s)

    def refresh_metrics(self) -> None:
        """Export the feeds' counters and the gauges that are ages or snapshots (cheap, on a timer)."""
        m = self.metrics
        now = time.monotonic_ns()
        labels = feed_labels([runtime.plan for runtime in self.feeds])
        for runtime, feed_label in zip(self.feeds, labels, strict=True):
            plan, feed = runtime.plan, runtime.feed
            venue, market = plan.venue.value, plan.market.value
            # Gauges are per feed: several feeds share a venue market (USD-M's depth and /market funding, two
            # [[feeds]] entries), and one writing over another would show the last feed's state as the market's.
            frames = sum(r.stats.frames for r in feed.runners)
            connects = sum(r.stats.connects for r in feed.runners)
            rollovers = sum(r.stats.rollovers for r in feed.runners)
            failures = max(0, connects - len(feed.runners) - rollovers)
            self._export(runtime, "frames", frames, m.feed_messages.labels(venue, market))
            self._export(runtime, "malformed", feed.stats.malformed, m.feed_malformed.labels(venue, market))
            future = m.feed_future_stamped.labels(venue, market)
            self._export(runtime, "future_stamped", feed.stats.future_stamped, future)
            self._export(runtime, "rollovers", rollovers, m.feed_reconnects.labels(venue, market, "rollover"))
            self._export(runtime, "failures", failures, m.feed_reconnects.labels(venue, market, "failure"))
            handovers = (feed.stats.held, feed.stats.handover_flushes, feed.stats.stale_snapshots)
            for event, n in zip(HANDOVER_EVENTS, handovers, strict=True):
                self._export(runtime, f"handover_{event}", n, m.feed_handovers.labels(venue, market, event))
            self._export(runtime, "rest_ok", feed.stats.snapshots_fetched, m.rest_requests.labels(venue, "ok"))
            self._export(runtime, "rest_error", feed.stats.snapshot_failures, m.rest_requests.labels(venue, "error"))
            retries = m.book_recovery_retries.labels(venue, market)
            self._export(runtime, "recovery_retries", feed.stats.recovery_retries, retries)
            self._export(runtime, "abandoned", feed.stats.snapshot_rejected, m.books_abandoned.labels(venue, market))
            m.feed_connected.labels(venue, market, feed_label).set(sum(len(r.live_connections) for r in feed.runners))
            for key, sync in feed.syncs.items():
                symbol = key.split(":", 2)[2]
                book = sync.book
                age = (now - book.recv_ns) / 1e9 if book.recv_ns else float("nan")
                m.book_age_seconds.labels(venue, market, symbol).set(age)
                m.book_live.labels(venue, market, symbol).set(1 if sync.state is SyncState.LIVE else 0)
            export_funding_ages(m.funding_age_seconds, venue, feed.funding, runtime.funding_exported, now)
            weight = feed.rest_budget.used()  # shared by the venue's markets where it counts per IP (OKX, Bybit)
            m.rest_weight_used.labels(venue, market).set(weight)
        for (meta_venue, meta_market), stats in self.metadata_stats.items():
            for result, value in (("ok", stats.loads), ("failed", stats.failures)):
                seen_key = (meta_venue.value, meta_market.value, result)
                counter = m.instrument_metadata_loads.labels(*seen_key)  # zero series from the start
                delta = value - self._metadata_seen.get(seen_key, 0)
                if delta > 0:
                    counter.inc(delta)
                    self._metadata_seen[seen_key] = value
        self.engine.best_net_edge()
        self.engine.flush_metrics()
        if not self.started.is_set():
            return  # a scrape while the instrument metadata loads: systemd hears READY before any STATUS
        qualified = self.engine.qualified_now()
        self.notifier.status(
            f"qualified {sum(qualified.values())}, evaluations {self.engine.stats.evaluations}, "
            f"books live {sum(r.feed.is_live(k) for r in self.feeds for k in r.feed.syncs)}"
        )

    @staticmethod
    def _export(runtime: _FeedRuntime, name: str, value: int, counter: object) -> None:
        delta = value - runtime.seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)  # type: ignore[attr-defined]
            runtime.seen[name] = value

    async def _summary_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.print_summary()

    def feed_health(self) -> list[FeedHealth]:
        out = []
        for runtime in self.feeds:
            feed = runtime.feed
            syncs = list(feed.syncs.values())
            connects = sum(r.stats.connects for r in feed.runners)
            out.append(
                FeedHealth(
                    name=runtime.plan.name,
                    label=runtime.plan.label,
                    books_live=sum(s.state is SyncState.LIVE for s in syncs),
                    books=len(syncs),
                    connections=sum(len(r.live_connections) for r in feed.runners),
                    messages=sum(r.stats.frames for r in feed.runners),
                    gaps=sum(s.stats.gaps for s in syncs),
                    resyncs=sum(s.stats.resyncs for s in syncs),
                    reconnects=max(0, connects - len(feed.runners)),
                    malformed=feed.stats.malformed,
                )
            )
        return out

    def summary_text(self, *, final: bool = False) -> str:
        strategies = sorted({c.strategy.value for c in self.candidates})
        return render(
            self.engine.stats,
            self.engine.qualified_now(),
            self.feed_health(),
            strategies=strategies,
            market_ms=self.clock.now_ms,
            elapsed_s=time.monotonic() - self._t0,
            final=final,
        )

    def print_summary(self, *, final: bool = False) -> None:
        stream = self.options.summary_stream or sys.stdout
        print(self.summary_text(final=final), file=stream, flush=True)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        elif not isinstance(exc, asyncio.CancelledError):
            out.append(exc)
    return out


def _problems(error: ScannerError) -> list[str]:
    problems = getattr(error, "problems", None)
    if problems:
        return [f"{key}: {reason}" for key, reason in problems]
    return [str(error)]
