"""The Prometheus rules and the example config pass promtool's checks and unit tests."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy_fixtures import DEPLOY, require_tool

pytestmark = pytest.mark.external_tool

PROMETHEUS_DIR = DEPLOY / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the rules file and counts every rule in it."""
    done = promtool("check", "rules", "arbscan-rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", done.stdout)
    assert found, done.stdout
    text = (PROMETHEUS_DIR / "arbscan-rules.yml").read_text()
    declared = len(re.findall(r"^\s*- (?:record|alert): ", text, flags=re.MULTILINE))
    assert declared > 0
    assert int(found[1]) == declared


def test_rules_pass_their_unit_tests() -> None:
    """`promtool test rules` runs arbscan-rules.test.yml: every alert and recording rule as specified."""
    done = promtool("test", "rules", "arbscan-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_example_config_passes_promtool_check() -> None:
    """The example prometheus.yml is valid and loads the rules file beside it."""
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
