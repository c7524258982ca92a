"""The Grafana dashboard: generated, importable, scoped by its variables, and written against real metric names.

That every expression returns data from a real Prometheus is proven in test_deploy_scrape.py; these
checks need no external tool.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

import pytest

from scanner.metrics import Metrics
from tests.deploy_fixtures import (
    DASHBOARD,
    DEPLOY,
    RULES,
    comparisons_as_bool,
    dashboard_queries,
    load_dashboard,
    template_variables,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def generator() -> ModuleType:
    path = DEPLOY / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("arbscan_dashboard_generate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def exported_series() -> set[str]:
    """Every series name the daemon exports: counters as _total, histograms as _bucket/_sum/_count..."""
    names: set[str] = set()
    for family in Metrics(version="test").registry.collect():
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":  # labelled histograms have no samples until a child exists
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


def recorded_series() -> set[str]:
    return set(re.findall(r"^\s*- record: (\S+)$", RULES.read_text(), flags=re.MULTILINE))


def rule_exprs() -> list[str]:
    """Every expr of the rules file (block scalars included), read without a YAML library."""
    exprs: list[str] = []
    lines = RULES.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)expr: ?(.*)$", line)
        if not match:
            continue
        if match[2] != "|":
            exprs.append(match[2])
            continue
        block = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= len(match[1]):
                break
            block.append(following.strip())
        exprs.append(" ".join(block))
    return exprs


def series_names(expr: str) -> set[str]:
    """Metric names in an expression: identifiers naming arbscan series, and `up`."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names = {token for token in _IDENTIFIER.findall(without_strings) if "arbscan" in token}
    if re.search(r"\bup\{", without_strings):
        names.add("up")
    return names


def test_committed_json_is_what_the_generator_produces() -> None:
    """deploy/grafana/arbscan-dashboard.json == generate.py's output (run the script after editing it)."""
    assert DASHBOARD.read_text(encoding="utf-8") == generator().render()


def test_every_series_name_is_exported_or_recorded() -> None:
    """No misspelt metric: each name in the dashboard and the rules is in scanner/metrics.py or recorded."""
    exported, recorded = exported_series(), recorded_series()
    assert "arbscan_evaluations_total" in exported
    assert "arbscan_evaluation_seconds_bucket" in exported
    assert "arbscan_build_info" in exported
    exprs = [q.expr for q in dashboard_queries(load_dashboard())] + rule_exprs()
    declared = re.findall(r"^\s*- (?:record|alert): ", RULES.read_text(), flags=re.MULTILINE)
    assert len(rule_exprs()) == len(declared) > 0
    unknown = {
        name
        for expr in exprs
        for name in series_names(expr)
        if name != "up" and name not in (recorded if ":" in name else exported)
    }
    assert unknown == set()


def test_dashboard_covers_the_required_views() -> None:
    """Rejections by reason and strategy, qualified and best edge, feed health, latency, webhooks."""
    used = {name for q in dashboard_queries(load_dashboard()) for name in series_names(q.expr)}
    required = {
        "strategy_reason:arbscan_rejection_reasons:ratio_rate5m",
        "arbscan_qualified_candidates",
        "arbscan_best_net_edge_bps",
        "arbscan_feed_connected",
        "venue_market:arbscan_feed_messages:rate5m",
        "arbscan_feed_reconnects_total",
        "arbscan_book_gaps_total",
        "arbscan_book_resyncs_total",
        "arbscan_book_age_seconds",
        "strategy:arbscan_evaluation_seconds:quantile_rate5m",
        "instance:arbscan_update_to_decision_seconds:quantile_rate5m",
        "arbscan_webhook_outbox_depth",
        "arbscan_webhook_failures_total",
    }
    assert required - used == set()


def test_dashboard_is_importable() -> None:
    """Grafana import needs: no id, a stable uid, a datasource variable every panel and target uses."""
    d = load_dashboard()
    assert d["id"] is None
    assert d["uid"] == "arbscan-overview"
    variables = template_variables(d)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "strategy", "venue"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["allValue"] == ".*"
        assert variables[name]["includeAll"] is True
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["expr"].strip()


def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    g = panel["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}


def test_panels_fit_the_grid_without_overlapping() -> None:
    """Every panel lies within Grafana's 24 columns and no two panels share a cell."""
    taken: dict[tuple[int, int], str] = {}
    for panel in load_dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for cell in cells(panel):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


def test_expressions_use_only_defined_variables() -> None:
    """Each $variable in a panel or variable query is defined, and panels are scoped by job and instance."""
    d = load_dashboard()
    queries = dashboard_queries(d)  # raises on an undefined variable
    assert len(queries) == sum(len(p.get("targets", [])) for p in d["panels"]) + 4
    for panel in d["panels"]:
        for target in panel.get("targets", []):
            assert 'job=~"$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"], panel["title"]


def test_series_names_helper_finds_misspellings() -> None:
    """The name check above is not vacuous: a misspelt series is reported."""
    assert series_names('sum(rate(arbscan_evaluation_total{job=~"$job"}[5m]))') == {"arbscan_evaluation_total"}
    assert "arbscan_evaluation_total" not in exported_series()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("x > 5", "x > bool 5"),
        ("x == 0", "x == bool 0"),
        ("a > 0.5 and b != -1", "a > bool 0.5 and b != bool -1"),
        ('x{a!="1"} >= 2', 'x{a!="1"} >= bool 2'),
        ("x > bool 1", "x > bool 1"),
        ("a / b > c", "a / b > c"),
    ],
)
def test_comparisons_as_bool(expr: str, expected: str) -> None:
    """Alert expressions keep every compared series when their literal comparisons become bool ones."""
    assert comparisons_as_bool(expr) == expected
