"""Generate ``arbscan-dashboard.json``, the Grafana dashboard for arbscan, from this file.

Run ``python deploy/grafana/generate.py`` after editing, and commit both files: the test suite checks that
the committed JSON is exactly what this script produces (``--check`` does the same from the shell), and
evaluates every PromQL expression in it against a real Prometheus scraping the daemon.

Heavy queries (ratios, histogram quantiles, message rates) read the recording rules of
``deploy/prometheus/arbscan-rules.yml``; the rest read the raw series of ``scanner/metrics.py``.
Stdlib only, so it runs without the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("arbscan-dashboard.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every panel query is scoped by these template variables (all of them are multi-value, All = ".*").
SCOPE = 'job=~"$job", instance=~"$instance"'
BY_STRATEGY = f'{SCOPE}, strategy=~"$strategy"'
BY_VENUE = f'{SCOPE}, venue=~"$venue"'

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat"
    unit: str = "short"
    width: int = 12
    height: int = 8
    # stat panels: value → text, e.g. {"0": "template"}
    mappings: dict[str, str] = field(default_factory=dict)
    decimals: int | None = None
    # stat panels: "value_and_name", or "name" where the legend carries the information (build info)
    text_mode: str = "value_and_name"


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def q(expr: str, legend: str) -> Query:
    return Query(expr=expr, legend=legend)


ROWS = (
    Row(
        "Decisions",
        (
            Panel(
                "Rejection rate by reason and strategy",
                "Share of each strategy's evaluations to which the reason applied (5m rate; reasons overlap, "
                "so one strategy's shares may add up past 100%).",
                (
                    q(
                        f"strategy_reason:arbscan_rejection_reasons:ratio_rate5m{{{BY_STRATEGY}}}",
                        "{{strategy}} · {{reason}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Rejections/s by primary reason",
                "Rejected evaluations per second, by the reason that decided them (5m rate).",
                (
                    q(
                        f"sum by (strategy, reason) "
                        f"(strategy_reason:arbscan_primary_rejections:rate5m{{{BY_STRATEGY}}})",
                        "{{strategy}} · {{reason}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Qualified now",
                "Candidates currently qualified, per strategy.",
                (q(f"sum by (strategy) (arbscan_qualified_candidates{{{BY_STRATEGY}}})", "{{strategy}}"),),
                kind="stat",
                width=6,
            ),
            Panel(
                "Best net edge",
                "Best net edge (after fees, slippage and funding) among each strategy's candidates right now.",
                (q(f"max by (strategy) (arbscan_best_net_edge_bps{{{BY_STRATEGY}}})", "{{strategy}}"),),
                kind="stat",
                unit="bps",  # not a Grafana unit id: shown as a suffix
                width=6,
                decimals=2,
            ),
            Panel(
                "Rejected share by strategy",
                "Share of each strategy's evaluations that were rejected (5m rate).",
                (q(f"strategy:arbscan_evaluations_rejected:ratio_rate5m{{{BY_STRATEGY}}}", "{{strategy}}"),),
                unit="percentunit",
                width=6,
            ),
            Panel(
                "Evaluations/s by outcome",
                "Candidate evaluations per second (5m rate).",
                (
                    q(
                        f"sum by (strategy, outcome) (strategy_outcome:arbscan_evaluations:rate5m{{{BY_STRATEGY}}})",
                        "{{strategy}} · {{outcome}}",
                    ),
                ),
                unit="ops",
                width=6,
            ),
            Panel(
                "Qualified over time",
                "Candidates qualified at each moment, per strategy.",
                (q(f"sum by (strategy) (arbscan_qualified_candidates{{{BY_STRATEGY}}})", "{{strategy}}"),),
                width=12,
            ),
            Panel(
                "Candidate events/s",
                "qualified / disqualified / rejected (on reason change) events emitted per second.",
                (
                    q(
                        f"sum by (strategy, event) "
                        f"(rate(arbscan_candidate_events_total{{{BY_STRATEGY}}}[$__rate_interval]))",
                        "{{strategy}} · {{event}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
        ),
    ),
    Row(
        "Feed health",
        (
            Panel(
                "Connections",
                "Open websocket connections per feed (0 = that feed down; USD-M's funding is its own feed, "
                "binance:usdm/market).",
                (q(f"sum by (venue, market, feed) (arbscan_feed_connected{{{BY_VENUE}}})", "{{feed}}"),),
                width=8,
            ),
            Panel(
                "Messages/s",
                "Frames received per second (5m rate).",
                (
                    q(
                        f"sum by (venue, market) (venue_market:arbscan_feed_messages:rate5m{{{BY_VENUE}}})",
                        "{{venue}} {{market}}",
                    ),
                ),
                unit="ops",
                width=8,
            ),
            Panel(
                "Reconnects",
                "Websocket reconnects per interval, by reason; and what the rollovers' handovers did: deltas held "
                "until the old connection caught up, held deltas released as they were (the old connection ended "
                "first: expect a resync), snapshots passed over as older than the book.",
                (
                    q(
                        f"sum by (venue, market, reason) "
                        f"(increase(arbscan_feed_reconnects_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "{{venue}} {{market}} · {{reason}}",
                    ),
                    q(
                        f"sum by (venue, market, event) "
                        f"(increase(arbscan_feed_handover_events_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "handover {{venue}} {{market}} · {{event}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Gaps and resyncs",
                "Sequence gaps / checksum failures and the book resyncs they started, per interval; resubscribes "
                "asked again because a book stayed not live past the recovery deadline; books abandoned (now).",
                (
                    q(
                        f"sum by (venue, market) (increase(arbscan_book_gaps_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "gaps {{venue}} {{market}}",
                    ),
                    q(
                        f"sum by (venue, market) "
                        f"(increase(arbscan_book_resyncs_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "resyncs {{venue}} {{market}}",
                    ),
                    q(
                        f"sum by (venue, market) "
                        f"(increase(arbscan_book_recovery_retries_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "recovery asked again {{venue}} {{market}}",
                    ),
                    q(
                        f"sum by (venue, market) (arbscan_books_abandoned_total{{{BY_VENUE}}})",
                        "abandoned books {{venue}} {{market}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Book age",
                "Seconds since each book last changed (local monotonic clock).",
                (
                    q(
                        f"max by (venue, market, symbol) (arbscan_book_age_seconds{{{BY_VENUE}}})",
                        "{{venue}} {{market}} {{symbol}}",
                    ),
                ),
                unit="s",
                width=8,
            ),
            Panel(
                "Live books",
                "Share of each venue's books that are live (not buffering or resyncing).",
                (
                    q(
                        f"sum by (venue, market) (arbscan_book_live{{{BY_VENUE}}}) "
                        f"/ count by (venue, market) (arbscan_book_live{{{BY_VENUE}}})",
                        "{{venue}} {{market}}",
                    ),
                ),
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Malformed frames",
                "Frames that could not be decoded, per interval.",
                (
                    q(
                        f"sum by (venue, market) "
                        f"(increase(arbscan_feed_malformed_frames_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "{{venue}} {{market}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "REST requests/s",
                "REST requests (book snapshots, constraints) by outcome.",
                (
                    q(
                        f"sum by (venue, outcome) (rate(arbscan_rest_requests_total{{{BY_VENUE}}}[$__rate_interval]))",
                        "{{venue}} · {{outcome}}",
                    ),
                ),
                unit="reqps",
                width=8,
            ),
            Panel(
                "REST weight used",
                "Request weight used in each venue market's current budget window (each has its own budget).",
                (q(f"max by (venue, market) (arbscan_rest_weight_used{{{BY_VENUE}}})", "{{venue}} {{market}}"),),
                width=8,
            ),
        ),
    ),
    Row(
        "Latency",
        (
            Panel(
                "Evaluation latency",
                "Time to evaluate one candidate: p50 / p90 / p99 over 5 minutes.",
                (
                    q(
                        f"strategy:arbscan_evaluation_seconds:quantile_rate5m{{{BY_STRATEGY}}}",
                        "{{strategy}} p{{quantile}}",
                    ),
                ),
                unit="s",
                width=10,
            ),
            Panel(
                "Update → decision latency",
                "From a frame's local receive time to the decisions it caused: p50 / p90 / p99 over 5 minutes.",
                (
                    q(
                        f"instance:arbscan_update_to_decision_seconds:quantile_rate5m{{{SCOPE}}}",
                        "{{instance}} p{{quantile}}",
                    ),
                ),
                unit="s",
                width=10,
            ),
            Panel(
                "Coalesced updates/s",
                "Book updates folded into a later evaluation because evaluations lagged the feed.",
                (
                    q(
                        f"sum by (instance) (rate(arbscan_coalesced_updates_total{{{SCOPE}}}[$__rate_interval]))",
                        "{{instance}}",
                    ),
                ),
                unit="ops",
                width=4,
            ),
        ),
    ),
    Row(
        "Alerts and journal",
        (
            Panel(
                "Webhook outbox depth",
                "Alerts waiting for delivery, per webhook.",
                (q(f"max by (webhook) (arbscan_webhook_outbox_depth{{{SCOPE}}})", "{{webhook}}"),),
                width=6,
            ),
            Panel(
                "Oldest undelivered alert",
                "Age of the oldest alert still in each webhook's outbox.",
                (q(f"max by (webhook) (arbscan_webhook_outbox_oldest_age_seconds{{{SCOPE}}})", "{{webhook}}"),),
                unit="s",
                width=6,
            ),
            Panel(
                "Webhook deliveries and failures",
                "Acknowledged deliveries, failed attempts, and alerts suppressed (cooldown) per second, per webhook.",
                (
                    q(
                        f"sum by (webhook) (rate(arbscan_webhook_sent_total{{{SCOPE}}}[$__rate_interval]))",
                        "sent {{webhook}}",
                    ),
                    q(
                        f"sum by (webhook) (rate(arbscan_webhook_failures_total{{{SCOPE}}}[$__rate_interval]))",
                        "failed {{webhook}}",
                    ),
                    q(
                        f"sum by (webhook, reason) "
                        f"(rate(arbscan_webhook_suppressed_total{{{SCOPE}}}[$__rate_interval]))",
                        "suppressed {{webhook}} · {{reason}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
            Panel(
                "Journal events/s",
                "Events appended to the JSONL journal per second, by event.",
                (
                    q(
                        f"sum by (event) (rate(arbscan_journal_events_total{{{SCOPE}}}[$__rate_interval]))",
                        "{{event}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
            Panel(
                "Journal file size",
                "Size of the current journal file (drops at rotation).",
                (q(f"max by (instance) (arbscan_journal_bytes{{{SCOPE}}})", "{{instance}}"),),
                unit="bytes",
                width=6,
            ),
            Panel(
                "Journal errors",
                "Journal write or fsync failures in the dashboard's time range (should be 0).",
                (
                    q(
                        f"sum by (instance) (increase(arbscan_journal_errors_total{{{SCOPE}}}[$__range]))",
                        "{{instance}}",
                    ),
                ),
                kind="stat",
                width=6,
                decimals=0,
            ),
            Panel(
                "Events waiting for a disk",
                "Engine events held because the journal's disk refused a write, and journaled events waiting "
                "for the alert outbox because its disk refused one (should be 0).",
                (
                    q(f"max by (instance) (arbscan_journal_backlog{{{SCOPE}}})", "journal {{instance}}"),
                    q(f"max by (instance) (arbscan_webhook_unrecorded_events{{{SCOPE}}})", "outbox {{instance}}"),
                ),
                width=24,
            ),
        ),
    ),
    Row(
        "Daemon",
        (
            Panel(
                "Up",
                "1 when Prometheus can scrape the daemon.",
                (q(f"up{{{SCOPE}}}", "{{instance}}"),),
                kind="stat",
                width=4,
                mappings={"0": "DOWN", "1": "UP"},
            ),
            Panel(
                "Build",
                "Version and Python of each running daemon.",
                (q(f"arbscan_build_info{{{SCOPE}}}", "{{instance}}: arbscan {{version}}, Python {{python}}"),),
                kind="stat",
                width=8,
                text_mode="name",
            ),
            Panel(
                "Config reloads",
                "SIGHUP reloads in the dashboard's time range, by result (rejected = bad config, old one kept).",
                (
                    q(
                        f"sum by (result) (increase(arbscan_config_reloads_total{{{SCOPE}}}[$__range]))",
                        "{{result}}",
                    ),
                ),
                kind="stat",
                width=6,
                decimals=0,
            ),
            Panel(
                "Constraints source",
                "Per venue: constraints from signed endpoints overlaying the template, or the template only.",
                (q(f"max by (venue) (arbscan_constraints_authenticated{{{BY_VENUE}}})", "{{venue}}"),),
                kind="stat",
                width=6,
                mappings={"0": "template", "1": "authenticated"},
            ),
        ),
    ),
)

VARIABLES = (
    # name, label, query (Grafana's label_values(), resolved through the datasource), multi-value
    ("job", "Job", "label_values(arbscan_build_info, job)"),
    ("instance", "Instance", 'label_values(arbscan_build_info{job=~"$job"}, instance)'),
    ("strategy", "Strategy", f"label_values(arbscan_evaluations_total{{{SCOPE}}}, strategy)"),
    ("venue", "Venue", f"label_values(arbscan_feed_connected{{{SCOPE}}}, venue)"),
)


def _target(query: Query, ref: str) -> Json:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": True,
        "refId": ref,
    }


def _field_config(panel: Panel) -> Json:
    defaults: Json = {"unit": panel.unit}
    if panel.unit == "bps":
        defaults["unit"] = "suffix: bps"
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    value: {"text": text, "index": i} for i, (value, text) in enumerate(panel.mappings.items())
                },
            },
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
        }
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> Json:
    if panel.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": panel.text_mode,
            "orientation": "auto",
            "justifyMode": "auto",
        }
    return {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"], "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
        "targets": [_target(query, chr(ord("A") + i)) for i, query in enumerate(panel.queries)],
    }


def _layout() -> list[Json]:
    """Rows and panels left to right, wrapping at Grafana's 24 columns."""
    out: list[Json] = []
    panel_id = 1
    y = 0
    for row in ROWS:
        out.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            out.append(_panel(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return out


def _variable(name: str, label: str, query: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,  # on time range change
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def build() -> Json:
    datasource_variable: Json = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": 0,
    }
    return {
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "id": None,
        "uid": "arbscan-overview",
        "title": "arbscan",
        "description": "Decisions, feed health, latency and alert delivery of the arbscan daemon.",
        "tags": ["arbscan", "crypto", "arbitrage"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,  # shared crosshair
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": 38,
        "version": 1,
        "links": [],
        "annotations": {"list": []},
        "templating": {"list": [datasource_variable, *(_variable(*v) for v in VARIABLES)]},
        "panels": _layout(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
