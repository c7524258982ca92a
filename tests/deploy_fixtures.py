"""Helpers for the deploy tests: external tools, a real Prometheus, a stand-in exporter, PromQL plumbing.

The stand-in exporter (``python -m tests.deploy_fixtures --scenario healthy|degraded``) builds the
daemon's own ``scanner.metrics.Metrics``, moves every metric with realistic labels and serves it with
prometheus_client on 127.0.0.1 (port 0; it prints ``PORT <n>``). ``healthy`` is a scanner at work;
``degraded`` is one in which every alert of ``deploy/prometheus/arbscan-rules.yml`` has a reason to fire.
It lets the dashboard and rules be proven without the daemon, and the alerts be proven to discriminate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "arbscan-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "arbscan-dashboard.json"
TIMEOUT_FACTOR = float(os.environ.get("ARBSCAN_TESTS_TIMEOUT_FACTOR", "1"))

INSTALL_HINTS = {
    "prometheus": "apt-get install prometheus (Debian/Ubuntu), or bash .ci/install-tools.sh",
    "promtool": "apt-get install prometheus (Debian/Ubuntu), or bash .ci/install-tools.sh",
    "systemd-analyze": "apt-get install systemd (Debian/Ubuntu), or bash .ci/install-tools.sh",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Path of an external tool; skip with an install hint where it is absent, fail under CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed: {INSTALL_HINTS[name]}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port that was free a moment ago (for programs that cannot report a port 0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> int:
    """SIGTERM a process we started, SIGKILL it if it ignores that; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace * TIMEOUT_FACTOR)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


# ---------------------------------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    """A running Prometheus on 127.0.0.1, queried through its HTTP API."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10 * TIMEOUT_FACTOR) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises (with Prometheus' error text) on a PromQL error."""
        try:
            data = self.api("/api/v1/query", query=expr)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode(errors='replace')}") from exc
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def run_prometheus(tmp: Path, targets: list[str], *, lifetime: float = 120.0) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (job "arbscan") every 500 ms, evaluating arbscan-rules.yml as often.

    Its lifetime is bounded twice: the context manager stops it, and coreutils ``timeout`` ends it
    after ``lifetime`` seconds should the test process die without cleaning up.
    """
    binary = require_tool("prometheus")
    config = {
        "global": {"scrape_interval": "500ms", "scrape_timeout": "500ms", "evaluation_interval": "500ms"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "arbscan", "static_configs": [{"targets": targets}]}],
    }
    config_file = tmp / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    log = tmp / "prometheus.log"
    argv = [
        "timeout",
        "--kill-after=5",
        str(int(lifetime * TIMEOUT_FACTOR)),
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 20 * TIMEOUT_FACTOR
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}:\n{prometheus.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready after 20 s:\n{prometheus.log_tail()}")
            time.sleep(0.1)
        yield prometheus
    finally:
        stop(proc)


# ---------------------------------------------------------------------------------------- expressions

# Grafana's built-in interval variables, with values that make sense for a test scraping every 500 ms
# for a few seconds: windows long enough to hold every sample the test has.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1s", "__range": "1m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# A comparison with a scalar literal on its right: `x > 5`, `x == 0`.
_SCALAR_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?=-?[0-9.])")


@dataclass(frozen=True)
class DashboardQuery:
    where: str  # "panel 'Book age' target A" / "variable strategy"
    expr: str  # PromQL, variables substituted
    label: str | None = None  # for a label_values() variable: the label whose values it lists


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def template_variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def substitute(expr: str, variables: dict[str, dict[str, Any]]) -> str:
    """Replace Grafana variables the way Grafana does with "All" selected (query variables' allValue)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        variable = variables.get(name)
        if variable is None or variable["type"] != "query":
            raise AssertionError(f"{expr!r} uses ${name}, which is not a query variable of the dashboard")
        return str(variable["allValue"])

    return _VARIABLE.sub(value, expr)


def dashboard_queries(dashboard: dict[str, Any]) -> list[DashboardQuery]:
    """Every PromQL expression of the dashboard: panel targets and label_values() variables."""
    variables = template_variables(dashboard)
    out: list[DashboardQuery] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target['refId']}"
            out.append(DashboardQuery(where, substitute(target["expr"], variables)))
    for variable in variables.values():
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["definition"])
        assert match, f"variable {variable['name']}: only label_values(selector, label) is supported"
        selector = substitute(match["selector"], variables)
        label = match["label"]
        out.append(DashboardQuery(f"variable {variable['name']}", f"count by ({label}) ({selector})", label))
    return out


def comparisons_as_bool(expr: str) -> str:
    """``x > 5`` → ``x > bool 5``: keeps every compared series (as 0/1) instead of only the matching ones."""
    return _SCALAR_COMPARISON.sub(r"\1 bool\2", expr)


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


# ---------------------------------------------------------------------------------------- exporter


@dataclass
class Exporter:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def run_standin(scenario: str, *, lifetime: float = 120.0) -> Iterator[Exporter]:
    """Start the stand-in exporter in a subprocess and wait for the port it bound."""
    argv = [sys.executable, "-m", "tests.deploy_fixtures", "--scenario", scenario, "--lifetime", str(lifetime)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"stand-in exporter ({scenario}) did not start: {line!r} {err.decode()[-2000:]}")
        yield Exporter(proc, int(line.split()[1]))
    finally:
        stop(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


STRATEGIES = ("cex_cex", "cex_dex", "funding_carry_cex_cex", "perp_spot_basis")
REASONS = ("fee_dominated", "below_min_edge", "leverage_limit_exceeded", "insufficient_depth", "stale_book")
FEEDS = (
    ("binance", "spot", "BTCUSDT"),
    ("binance", "usdm", "BTCUSDT"),
    ("bybit", "linear", "BTCUSDT"),
    ("okx", "swap", "BTC-USDT-SWAP"),
    ("kraken", "spot", "BTC/USD"),
    ("huobi", "spot", "btcusdt"),
)
WEBHOOKS = ("slack", "ops")
EVENTS = ("qualified", "disqualified", "rejected")
TICK = 0.1  # seconds between two updates of the stand-in's metrics


def _standin(scenario: str, lifetime: float, freeze_after: float, port: int) -> int:
    """Serve scanner.metrics.Metrics, moved as a healthy or a degraded daemon would move them."""
    from prometheus_client import start_http_server

    from scanner.metrics import HANDOVER_EVENTS, Metrics

    m = Metrics(version="0.1.0")
    healthy = scenario == "healthy"
    # Every label combination exists from the start (zero-valued), as the daemon pre-initializes them.
    for strategy in STRATEGIES:
        for outcome in ("qualified", "rejected"):
            m.evaluations.labels(strategy, outcome)
        for reason in REASONS:
            m.rejection_reasons.labels(strategy, reason)
            m.primary_rejections.labels(strategy, reason)
        for event in EVENTS:
            m.candidate_events.labels(strategy, event)
        m.evaluation_seconds.labels(strategy)
        m.qualified_now.labels(strategy).set(0)
        m.best_net_edge.labels(strategy).set(-12.5)
    for venue, market, symbol in FEEDS:
        m.feed_connected.labels(venue, market, f"{venue}:{market}").set(1)
        m.feed_messages.labels(venue, market)
        m.feed_malformed.labels(venue, market)
        m.feed_future_stamped.labels(venue, market)
        m.feed_reconnects.labels(venue, market, "server_close")
        for handover in HANDOVER_EVENTS:
            m.feed_handovers.labels(venue, market, handover)
        m.book_gaps.labels(venue, market)
        m.book_resyncs.labels(venue, market)
        m.book_recovery_retries.labels(venue, market)
        m.books_abandoned.labels(venue, market)
        m.book_live.labels(venue, market, symbol).set(1)
        m.book_age_seconds.labels(venue, market, symbol).set(0.05)
        m.rest_requests.labels(venue, "ok")
        m.rest_requests.labels(venue, "error")
        m.rest_weight_used.labels(venue, market).set(0)
        m.constraints_source.labels(venue).set(0)
    for event in EVENTS:
        m.journal_events.labels(event)
    for webhook in WEBHOOKS:
        m.webhook_sent.labels(webhook)
        m.webhook_failures.labels(webhook)
        m.webhook_suppressed.labels(webhook, "cooldown")
        m.outbox_depth.labels(webhook).set(0)
        m.outbox_oldest_age.labels(webhook).set(0)
    for result in ("applied", "rejected"):
        m.config_reloads.labels(result)

    server, _ = start_http_server(port, addr="127.0.0.1", registry=m.registry)
    print(f"PORT {server.server_port}", flush=True)

    start = time.monotonic()
    tick = 0
    journal_bytes = 0
    while time.monotonic() - start < lifetime:
        if time.monotonic() - start > freeze_after:  # like a demo whose recording has ended
            time.sleep(TICK)
            continue
        tick += 1
        elapsed = time.monotonic() - start
        for venue, market, symbol in FEEDS:
            m.feed_messages.labels(venue, market).inc(25)
            m.book_age_seconds.labels(venue, market, symbol).set(0.02 + (tick % 7) * 0.01)
            m.rest_weight_used.labels(venue, market).set(5 * (tick % 20))
        if tick % 10 == 0:
            m.rest_requests.labels("binance", "ok").inc()
        if tick % 50 == 0:
            m.feed_reconnects.labels("kraken", "spot", "server_close").inc()
            m.feed_handovers.labels("bybit", "linear", "stale_snapshot").inc()
            m.book_gaps.labels("okx", "swap").inc()
            m.book_resyncs.labels("okx", "swap").inc()
        m.feed_malformed.labels("huobi", "spot").inc(tick % 2)
        m.coalesced_updates.inc(3)
        if healthy:
            for i, strategy in enumerate(STRATEGIES):
                rejected = 20 + i
                qualified = 1 + (tick + i) % 3
                m.evaluations.labels(strategy, "rejected").inc(rejected)
                m.evaluations.labels(strategy, "qualified").inc(qualified)
                m.primary_rejections.labels(strategy, REASONS[(tick + i) % len(REASONS)]).inc(rejected)
                for reason in REASONS[: 2 + i % 3]:
                    m.rejection_reasons.labels(strategy, reason).inc(rejected // 2)
                for k in range(rejected + qualified):
                    m.evaluation_seconds.labels(strategy).observe(6e-6 + 2e-6 * ((k + i) % 20))
                m.qualified_now.labels(strategy).set(qualified)
                m.best_net_edge.labels(strategy).set(2.5 + i + (tick % 10) / 10)
                m.candidate_events.labels(strategy, EVENTS[tick % 3]).inc()
            for k in range(50):
                m.update_to_decision_seconds.observe(4e-5 + 2e-5 * (k % 40))
            for webhook in WEBHOOKS:
                m.webhook_sent.labels(webhook).inc(tick % 2)
                m.webhook_suppressed.labels(webhook, "cooldown").inc(tick % 5 == 0)
            if tick % 30 == 0:
                m.config_reloads.labels("applied").inc()
        else:
            # evaluations stopped; okx swap down and its book stale; bybit linear resyncing over and
            # over; kraken spot refusing updates stamped in the future; the slack webhook failing with a growing
            # outbox; reloads rejected; journal failing.
            m.feed_connected.labels("okx", "swap", "okx:swap").set(0)
            m.book_live.labels("okx", "swap", "BTC-USDT-SWAP").set(0)
            m.book_age_seconds.labels("okx", "swap", "BTC-USDT-SWAP").set(300 + elapsed)
            m.book_resyncs.labels("bybit", "linear").inc()
            m.feed_future_stamped.labels("kraken", "spot").inc(2)
            if tick == 3:  # a symbol the venue rejected for good
                m.books_abandoned.labels("binance", "spot").inc()
            m.webhook_failures.labels("slack").inc()
            m.webhook_sent.labels("ops").inc(tick % 2)
            m.outbox_depth.labels("slack").set(tick)
            m.outbox_oldest_age.labels("slack").set(1000 + elapsed)
            if tick % 30 == 0:
                m.config_reloads.labels("rejected").inc()
            m.journal_errors.inc()
        journal_bytes += 300
        m.journal_bytes.set(journal_bytes)
        m.journal_events.labels(EVENTS[tick % 3]).inc()
        time.sleep(TICK)
    server.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="arbscan metrics stand-in exporter for the deploy tests")
    parser.add_argument("--scenario", choices=("healthy", "degraded"), required=True)
    parser.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    parser.add_argument("--freeze-after", type=float, default=math.inf, help="stop moving metrics after this")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (0: any free one)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return _standin(args.scenario, args.lifetime, args.freeze_after, args.port)


if __name__ == "__main__":
    sys.exit(main())
