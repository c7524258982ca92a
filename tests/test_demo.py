"""``arbscan demo`` from the command line: it ends by itself and its decisions have the right economics."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.engine_fixtures import SETTLEMENT_MS, arbscan_command, journal_lines, subprocess_env


@pytest.mark.slow
def test_demo_runs_the_bundled_recordings(tmp_path: Path) -> None:
    """Qualified cex_cex on the CSV series, rejected perp_spot_basis (basis, not free money), assumed funding."""
    state = tmp_path / "state"
    result = subprocess.run(
        arbscan_command("demo", "--speed", "max", "--state-dir", str(state), "--metrics-listen", "127.0.0.1:0"),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=timeout(240),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    final = out[out.index("arbscan summary (final)") :]
    for feed in (
        "binance:spot [replay]",
        "binance:usdm [replay]",
        "binance:spot [csv-replay]",
        "huobi:spot [csv-replay]",
    ):
        line = next(line for line in final.splitlines() if feed in line)
        assert "gaps 0" in line and "malformed 0" in line
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", out)
    alerts = re.search(
        r"alerts: (\d+) delivered to the demo webhook receiver, HMAC signatures verified.*; (\d+) refused", out
    )
    assert alerts and int(alerts.group(1)) >= 2 and alerts.group(2) == "0"

    # The demo's own reading of the live books: the USD-M mid sat 2.3-5.5 bps below the spot mid.
    for base in ("BTC", "ETH"):
        match = re.search(rf"basis {base}: USD-M mid - spot mid = ([-+]\d+\.\d+) bps median", out)
        assert match, out[-2000:]
        assert -5.5 <= float(match.group(1)) <= -2.3

    lines = list(journal_lines(state))
    by: dict[tuple[str, str], list[dict]] = {}
    for line in lines:
        by.setdefault((line["decision"]["strategy"], line["event"]), []).append(line)

    # ---- cex_cex on the Binance/Huobi series: some qualify, after fees, under the stated demo tier ----
    qualified = by[("cex_cex", "qualified")]
    assert 1 <= len(qualified) < len(by[("cex_cex", "rejected")])
    for line in qualified:
        d = line["decision"]
        buy, sell = d["legs"]
        assert (buy["side"], sell["side"]) == ("buy", "sell")
        assert d["gross_bps"] == pytest.approx((sell["vwap"] - buy["vwap"]) / buy["vwap"] * 1e4, rel=1e-9)
        # maker_inventory with the demo-mm tier: 0 bps on the quoted buy leg, 2 bps on the hedge.
        assert (buy["fee_bps"], sell["fee_bps"]) == (0.0, 2.0)
        assert d["fees_bps"] == pytest.approx(2.0 * sell["filled_quote"] / d["notional_usd"], rel=1e-9)
        assert d["net_bps"] == pytest.approx(d["gross_bps"] - d["fees_bps"], abs=1e-9)
        assert d["net_bps"] >= d["min_net_edge_bps"] == 1.0
        assert d["gross_bps"] <= 8.1  # the series' largest top-of-book crossing is 8.03 bps

    # ---- perp_spot_basis on the simultaneous spot/USD-M capture: never qualifies, and says why ----
    assert ("perp_spot_basis", "qualified") not in by
    rejected = by[("perp_spot_basis", "rejected")]
    economics = [line["decision"] for line in rejected if line["decision"]["notional_usd"] is not None]
    assert economics
    reasons = {d["primary_reason"] for d in economics}
    assert reasons <= {"no_gross_edge", "fee_dominated", "borrow_cost_dominated", "below_min_edge", "leg_skew"}
    for d in economics:
        assert d["funding_source"] == "assumed"
        legs = {leg["side"]: leg for leg in d["legs"]}
        assert d["gross_bps"] == pytest.approx(
            (legs["sell"]["vwap"] - legs["buy"]["vwap"]) / legs["buy"]["vwap"] * 1e4, rel=1e-9
        )
        funding = d["legs"][1]["funding"]
        assert (funding["source"], funding["next_funding_ms"], funding["settlements"]) == ("assumed", SETTLEMENT_MS, 1)
        sign = 1.0 if d["direction"] == "long_spot_short_perp" else -1.0
        assert d["funding_bps"] == pytest.approx(sign * 1.0, abs=0.01)
        total = d["gross_bps"] - d["fees_bps"] + d["funding_bps"] - d["borrow_bps"]
        assert d["net_bps"] == pytest.approx(total, abs=1e-9) and d["net_bps"] < 0
        assert math.isfinite(d["top_gross_bps"])
    for line in rejected:
        assert any("no funding stream" in note for note in line["context"]["funding_assumptions"])
