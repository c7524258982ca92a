"""Prometheus metrics of the daemon: one registry per daemon instance, bounded label sets.

Names are the contract with ``deploy/grafana`` and ``deploy/prometheus`` (a test evaluates every PromQL
expression there against a real Prometheus scraping the demo). Labels never carry a candidate id unless
``per_candidate`` is configured; venue/market/symbol come from configuration, so they are bounded.
"""

from __future__ import annotations

import math
import platform
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import HistogramMetricFamily

from feeds.levels import LEVELS_LOOP

# Evaluation costs are microseconds; update→decision includes queueing in the loop.
_EVAL_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1)
_LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1.0)


class LoopHistogram:
    """An unlabelled histogram for a value observed on the event loop's hot path.

    ``prometheus_client.Histogram.observe`` takes a lock and walks the buckets (~2 µs); the engine observes
    update→decision latency on every drain, and the registry is only read by the ``/metrics`` handler on
    the same loop, so a bisect and two additions suffice. Exposed exactly like a ``Histogram``
    (``_bucket{le}``, ``_sum``, ``_count``).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = [*buckets, math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # le: a value on a bound counts in that bucket
        self._sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, self._counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


# arbscan_feed_handover_events{event}: FeedStats.held, .handover_flushes, .stale_snapshots, in this order
HANDOVER_EVENTS = ("held", "flushed", "stale_snapshot")


class Metrics:
    """Every metric the daemon exports, created on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str = "0") -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        # ---- evaluation ----
        self.evaluations = Counter(
            "arbscan_evaluations", "Candidate evaluations by strategy and outcome", ["strategy", "outcome"], registry=r
        )
        self.rejection_reasons = Counter(
            "arbscan_rejection_reasons",
            "Reasons that applied to rejected evaluations (every applicable reason, not only the primary)",
            ["strategy", "reason"],
            registry=r,
        )
        self.primary_rejections = Counter(
            "arbscan_primary_rejections", "Rejected evaluations by primary reason", ["strategy", "reason"], registry=r
        )
        self.qualified_now = Gauge(
            "arbscan_qualified_candidates", "Candidates currently qualified", ["strategy"], registry=r
        )
        self.best_net_edge = Gauge(
            "arbscan_best_net_edge_bps",
            "Best net edge among the strategy's candidates right now",
            ["strategy"],
            registry=r,
        )
        self.evaluations_reused = Counter(
            "arbscan_evaluations_reused",
            "Evaluations answered with the candidate's previous decision (no input changed; ages refreshed); "
            "also counted in arbscan_evaluations",
            ["strategy"],
            registry=r,
        )
        self.candidate_net_edge = Gauge(
            "arbscan_candidate_net_edge_bps",
            "Latest net edge of each candidate (only with metrics.per_candidate_labels; bounded by the config)",
            ["strategy", "candidate"],
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            "arbscan_evaluation_seconds",
            "Time to evaluate one candidate (a sample: one full evaluation in 8)",
            ["strategy"],
            buckets=_EVAL_BUCKETS,
            registry=r,
        )
        self.update_to_decision_seconds = LoopHistogram(
            "arbscan_update_to_decision_seconds",
            "From a frame's local receive time to the decisions it caused",
            _LATENCY_BUCKETS,
            r,
        )
        self.coalesced_updates = Counter(
            "arbscan_coalesced_updates", "Book updates folded into a later evaluation instead of queued", registry=r
        )
        self.candidate_events = Counter(
            "arbscan_candidate_events", "Candidate state events emitted", ["strategy", "event"], registry=r
        )
        # ---- feeds ----
        self.feed_connected = Gauge(
            "arbscan_feed_connected",
            "Open websocket connections of one feed (a [[feeds]] entry's connections; Binance USD-M funding "
            "has its own feed, binance:usdm/market; a second entry of the same venue market is name#index)",
            ["venue", "market", "feed"],
            registry=r,
        )
        self.feed_messages = Counter("arbscan_feed_messages", "Frames received", ["venue", "market"], registry=r)
        self.feed_malformed = Counter(
            "arbscan_feed_malformed_frames", "Frames that could not be decoded", ["venue", "market"], registry=r
        )
        self.feed_reconnects = Counter(
            "arbscan_feed_reconnects", "Websocket reconnects", ["venue", "market", "reason"], registry=r
        )
        self.feed_future_stamped = Counter(
            "arbscan_feed_future_stamped_updates",
            "Updates (and REST snapshots) refused for a venue time further ahead of the local clock than the "
            "allowed skew: a burst from every venue at once means this host's clock is behind",
            ["venue", "market"],
            registry=r,
        )
        self.feed_handovers = Counter(
            "arbscan_feed_handover_events",
            "Connection handovers (rollovers): deltas held until the old connection caught up (held), held deltas "
            "released as they were because the old connection ended first (flushed), websocket snapshots passed "
            "over as older than the book (stale_snapshot)",
            ["venue", "market", "event"],
            registry=r,
        )
        self.book_gaps = Counter(
            "arbscan_book_gaps", "Sequence gaps and checksum failures", ["venue", "market"], registry=r
        )
        self.book_resyncs = Counter("arbscan_book_resyncs", "Book resyncs started", ["venue", "market"], registry=r)
        self.book_recovery_retries = Counter(
            "arbscan_book_recovery_retries",
            "Resubscribes asked again for books still not live past the recovery deadline",
            ["venue", "market"],
            registry=r,
        )
        self.books_abandoned = Counter(
            "arbscan_books_abandoned",
            "Books given up because the venue rejected their snapshot request for good (e.g. an unknown symbol)",
            ["venue", "market"],
            registry=r,
        )
        self.book_live = Gauge("arbscan_book_live", "1 if the book is live", ["venue", "market", "symbol"], registry=r)
        self.book_age_seconds = Gauge(
            "arbscan_book_age_seconds",
            "Seconds since the book last changed (local monotonic clock)",
            ["venue", "market", "symbol"],
            registry=r,
        )
        self.rest_requests = Counter(
            "arbscan_rest_requests", "REST requests by outcome", ["venue", "outcome"], registry=r
        )
        self.rest_weight_used = Gauge(
            "arbscan_rest_weight_used",
            "Request weight used in the current budget window, per venue market (OKX and Bybit count per IP: "
            "their markets share one budget and show the same value)",
            ["venue", "market"],
            registry=r,
        )
        self.instrument_metadata_loads = Counter(
            "arbscan_instrument_metadata_loads",
            "Instrument metadata loads over REST (start-up and refresh) by result: ok, failed (the old kept)",
            ["venue", "market", "result"],
            registry=r,
        )
        self.funding_age_seconds = Gauge(
            "arbscan_funding_age_seconds",
            "Seconds since the funding state last changed",
            ["venue", "symbol"],
            registry=r,
        )
        # ---- sinks ----
        self.journal_events = Counter("arbscan_journal_events", "Events written to the journal", ["event"], registry=r)
        self.journal_errors = Counter("arbscan_journal_errors", "Journal write or fsync failures", registry=r)
        self.journal_bytes = Gauge("arbscan_journal_bytes", "Size of the current journal file", registry=r)
        self.journal_backlog = Gauge(
            "arbscan_journal_backlog", "Engine events waiting for the journal (its disk refused a write)", registry=r
        )
        self.journal_events_lost = Counter(
            "arbscan_journal_events_lost",
            "Engine events never journaled: backlog_full (rejections dropped first), unencodable (our bug)",
            ["reason"],
            registry=r,
        )
        self.webhook_sent = Counter("arbscan_webhook_sent", "Webhook deliveries acknowledged", ["webhook"], registry=r)
        self.webhook_failures = Counter(
            "arbscan_webhook_failures", "Webhook delivery attempts that failed", ["webhook"], registry=r
        )
        self.outbox_depth = Gauge(
            "arbscan_webhook_outbox_depth", "Alerts waiting for delivery", ["webhook"], registry=r
        )
        self.outbox_oldest_age = Gauge(
            "arbscan_webhook_outbox_oldest_age_seconds", "Age of the oldest undelivered alert", ["webhook"], registry=r
        )
        self.webhook_unrecorded = Gauge(
            "arbscan_webhook_unrecorded_events",
            "Journaled events held for the alert outbox (its disk refused a write)",
            registry=r,
        )
        self.webhook_backlog_spills = Counter(
            "arbscan_webhook_backlog_spills",
            "Times the held events passed the limit and were let go, to be re-read from the journal",
            registry=r,
        )
        self.webhook_outbox_write_failures = Counter(
            "arbscan_webhook_outbox_write_failures",
            "Delivery records (ack, dead letter, compaction) the outbox's disk refused: delivery goes on, and a "
            "restart may send such an alert once more under the same idempotency key",
            registry=r,
        )
        self.webhook_events_lost = Counter(
            "arbscan_webhook_events_lost",
            "Journaled events dropped from the alert backlog with no journal to re-read them from (embedded "
            "use without catch_up; the daemon always re-reads)",
            registry=r,
        )
        self.webhook_suppressed = Counter(
            "arbscan_webhook_suppressed",
            "Alerts not enqueued for a webhook, by reason (cooldown: same event and dedup key too recently; "
            "duplicate: an event id already alerted)",
            ["webhook", "reason"],
            registry=r,
        )
        # ---- daemon ----
        self.config_reloads = Counter("arbscan_config_reloads", "SIGHUP reloads by result", ["result"], registry=r)
        self.constraints_source = Gauge(
            "arbscan_constraints_authenticated",
            "1 where signed endpoints overlay the template constraints for the venue, 0 where template only",
            ["venue"],
            registry=r,
        )
        self.build_info = Info("arbscan_build", "Build information", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version(), "book_levels_loop": LEVELS_LOOP})
