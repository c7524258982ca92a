"""The constraints model: template and schema drift, every-error validation, lookup, overlay, overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

from rules import (
    ConstraintsError,
    FeeTable,
    FeeTier,
    OverrideError,
    Rule,
    Strategy,
    json_schema,
    load_constraints,
    parse_override,
    parse_overrides,
    template_document,
    validate_document,
)
from rules.constraints import Constraints
from rules.model import ConstraintsFile
from rules.template import to_json

CONFIG = Path(__file__).resolve().parent.parent / "config"


def test_committed_template_is_what_the_code_builds():
    """config/execution_constraints.json == `arbscan constraints template` (regenerate it if this fails)."""
    assert (CONFIG / "execution_constraints.json").read_bytes() == to_json(template_document())


def test_committed_schema_is_what_the_model_generates():
    """config/execution_constraints.schema.json == `arbscan constraints schema` (no drift)."""
    committed = json.loads((CONFIG / "execution_constraints.schema.json").read_text())
    assert committed == json_schema()
    rule = committed["$defs"]["Rule"]
    assert rule["additionalProperties"] is False and rule["required"] == ["source", "as_of"]
    assert committed["$defs"]["ConstraintsFile"]["required"] == ["version", "rules", "fees"]
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_template_is_valid_and_carries_the_documented_fees():
    """The template validates; fee tables match docs/exchange-protocols.md."""
    document, problems = validate_document((CONFIG / "execution_constraints.json").read_bytes())
    assert problems == [] and document is not None
    constraints = Constraints(document)
    expected = {
        ("binance", "spot"): ("regular", 10.0, 10.0),
        ("binance", "usdm"): ("regular", 2.0, 5.0),
        ("bybit", "spot"): ("VIP0", 10.0, 10.0),
        ("bybit", "linear"): ("VIP0", 2.0, 5.5),
        ("okx", "spot"): ("Lv1", 8.0, 10.0),
        ("okx", "swap"): ("Lv1", 2.0, 5.0),
    }
    for (venue, market), (tier, maker, taker) in expected.items():
        fee = constraints.fees_for(venue, market)
        assert fee is not None and (fee.tier, fee.maker_bps, fee.taker_bps) == (tier, maker, taker)
    assert constraints.fees_for("kraken", "spot") is None  # no documented table: constraints_missing
    usdm = next(t for t in document.fees if t.market == "usdm")
    assert [(t.name, t.maker_bps, t.taker_bps, t.confirmed) for t in usdm.tiers][1:3] == [
        ("VIP1", 1.6, 4.0, False),
        ("VIP2", 1.4, 3.5, False),
    ]
    okx_swap = next(t for t in document.fees if (t.venue, t.market) == ("okx", "swap"))
    assert okx_swap.tiers[0].confirmed is False  # marked unconfirmed in the docs
    assert {s: constraints.multiplier(s) for s in Strategy} == {
        Strategy.CEX_CEX: 1.0,
        Strategy.CEX_DEX: 1.0,
        Strategy.FUNDING_CARRY_CEX_CEX: 2.0,
        Strategy.PERP_SPOT_BASIS: 1.25,
    }


def test_the_account_tier_is_selectable():
    """Choosing VIP3 on Binance USD-M changes the rates used."""
    document = template_document()
    fees = [msgspec.structs.replace(t, tier="VIP3") if t.market == "usdm" else t for t in document.fees]
    constraints = Constraints(msgspec.structs.replace(document, fees=fees))
    fee = constraints.fees_for("binance", "usdm")
    assert fee is not None and (fee.tier, fee.maker_bps, fee.taker_bps, fee.confirmed) == ("VIP3", 1.2, 3.2, False)


def rule(**kwargs: object) -> Rule:
    return Rule(source="template", as_of="2026-01-01", **kwargs)  # type: ignore[arg-type]


def test_most_specific_rule_wins_per_limit():
    """venue:market:asset > venue:market > venue > default, limit by limit, with provenance."""
    document = ConstraintsFile(
        version=1,
        rules=[
            rule(max_leverage=1.0, equity_usd=100.0, min_net_edge_bps=1.0, max_size_usd=10.0, max_book_age_ms=1.0),
            rule(venue="binance", max_leverage=2.0, equity_usd=200.0),
            rule(venue="binance", market="spot", max_leverage=3.0),
            rule(venue="binance", market="spot", asset="BTC", max_leverage=4.0, max_borrow_usd=7.0),
        ],
        fees=[],
    )
    c = Constraints(document)
    btc = c.rule_for("binance", "spot", "BTC")
    assert (btc.max_leverage, btc.equity_usd, btc.min_net_edge_bps, btc.max_borrow_usd) == (4.0, 200.0, 1.0, 7.0)
    assert btc.provenance["max_leverage"].scope == "binance:spot:BTC"
    assert btc.provenance["equity_usd"].scope == "binance"
    assert btc.provenance["min_net_edge_bps"].scope == "default"
    assert btc.missing == ("borrow_rate_bps_per_hour", "max_leg_skew_ms")
    eth = c.rule_for("binance", "spot", "ETH")
    assert (eth.max_leverage, eth.max_borrow_usd) == (3.0, None)
    assert c.rule_for("binance", "usdm", "BTC").max_leverage == 2.0
    assert c.rule_for("okx", "spot", "BTC").max_leverage == 1.0
    assert c.rule_for("binance", "spot", "BTC") is btc  # memoized: no work per evaluation


def test_overlay_authenticated_beats_template_at_the_same_scope():
    """Signed-endpoint values overlay the template; fields they do not set keep the template's values."""
    base = Constraints(template_document())
    signed = Rule(
        venue="binance",
        market="spot",
        borrow_rate_bps_per_hour=0.0571,
        source="authenticated",
        as_of="2026-08-21T10:00:00Z",
    )
    fee = FeeTable(
        venue="binance",
        market="spot",
        tier="account",
        tiers=[FeeTier(name="account", maker_bps=7.5, taker_bps=7.5)],
        source="authenticated",
        as_of="2026-08-21T10:00:00Z",
    )
    c = base.overlay(rules=[signed], fees=[fee])
    r = c.rule_for("binance", "spot", "BTC")
    assert r.borrow_rate_bps_per_hour == 0.0571 and r.provenance["borrow_rate_bps_per_hour"].source == "authenticated"
    assert r.max_borrow_usd == 5_000.0 and r.provenance["max_borrow_usd"].source == "template"
    used = c.fees_for("binance", "spot")
    assert used is not None and (used.taker_bps, used.source) == (7.5, "authenticated")
    # a newer authenticated value replaces the older one; the original is untouched
    newer = msgspec.structs.replace(signed, borrow_rate_bps_per_hour=0.06)
    assert c.overlay(rules=[newer]).rule_for("binance", "spot", "BTC").borrow_rate_bps_per_hour == 0.06
    assert base.rule_for("binance", "spot", "BTC").borrow_rate_bps_per_hour == 0.1
    with pytest.raises(ConstraintsError) as err:
        base.overlay(rules=[rule(venue="okx")])
    assert err.value.problems == [("overlay.rules[0].source", "must be 'authenticated', got 'template'")]


def test_overlay_checks_values_as_a_file_does():
    """A struct built in code skips msgspec's bounds, so overlaid values meet the file's checks: a NaN rate,
    a negative limit, an unknown tier are refused, every one with its path, and nothing is overlaid."""
    base = Constraints(template_document())
    signed = {"source": "authenticated", "as_of": "2026-08-21T10:00:00Z"}
    bad_rules = [
        Rule(venue="binance", market="spot", borrow_rate_bps_per_hour=math.nan, **signed),
        Rule(venue="okx", max_borrow_usd=-1.0, max_book_age_ms=math.inf, **signed),
        Rule(venue="binance", market="linear", **signed),
    ]
    bad_fee = FeeTable(
        venue="okx",
        market="spot",
        tier="vip9",
        tiers=[FeeTier(name="account", maker_bps=math.nan, taker_bps=7.5)],
        **signed,
    )
    with pytest.raises(ConstraintsError) as err:
        base.overlay(rules=bad_rules, fees=[bad_fee])
    assert err.value.problems == [
        ("overlay.rules[0].borrow_rate_bps_per_hour", "must be finite, got nan"),
        ("overlay.rules[1].max_borrow_usd", "must be >= 0, got -1"),
        ("overlay.rules[1].max_book_age_ms", "must be finite, got inf"),
        ("overlay.rules[2].market", "binance has no market 'linear' (known: coinm, spot, usdm)"),
        ("overlay.fees[0].tiers[0].maker_bps", "must be finite, got nan"),
        ("overlay.fees[0].tier", "'vip9' is not one of this table's tiers (account)"),
    ]


def test_overrides_replace_multipliers_and_are_recorded():
    """with_overrides: the multiplier changes, the file's value is kept for display."""
    c = Constraints(template_document()).with_overrides({Strategy.PERP_SPOT_BASIS: 1.5})
    assert c.multiplier(Strategy.PERP_SPOT_BASIS) == 1.5 and c.overrides == {"perp_spot_basis": 1.5}
    assert c.document.strategy_leverage_notional_multiplier.perp_spot_basis == 1.25
    assert c.effective_document().strategy_leverage_notional_multiplier.perp_spot_basis == 1.5
    c2 = c.with_overrides({Strategy.CEX_CEX: 3.0})
    assert c2.overrides == {"cex_cex": 3.0, "perp_spot_basis": 1.5}


STRATEGIES = "cex_cex, cex_dex, funding_carry_cex_cex, perp_spot_basis"
RULE_KEYS = (
    "venue, market, asset, max_leverage, equity_usd, max_borrow_usd, borrow_rate_bps_per_hour, min_net_edge_bps, "
    "max_size_usd, max_book_age_ms, max_leg_skew_ms, source, as_of, note"
)
BAD = b"""{
  "version": 2,
  "strategy_leverage_notional_multiplier": {"cex_cex": 0, "perp_spot_basis": "x", "funding_carry": 2},
  "rules": [
    {"venue": "binanse", "market": "spot", "max_leverage": -1, "source": "template", "as_of": "yesterday"},
    {"market": "spot", "asset": "btc", "source": "guess", "as_of": "2026-02-30", "max_leverage": 2, "max_leverage": 3},
    {"venue": "binance", "market": "linear", "source": "template", "as_of": "2026-01-01"},
    {"venue": "binance", "market": "linear", "source": "template", "as_of": "2026-01-01", "maxLeverage": 3},
    {"venue": "okx", "max_book_age_ms": true, "as_of": "2026-01-01"}
  ],
  "fees": [{"venue": "okx", "market": "swap", "tier": "VIP9", "source": "template", "as_of": "2026-07-21",
            "tiers": [{"name": "Lv1", "maker_bps": 2, "taker_bps": "5"},
                      {"name": "Lv1", "maker_bps": 1, "taker_bps": 2}]}]
}"""


def test_validation_reports_every_error_with_its_json_path():
    """One pass finds all of them, each with a JSON path and a reason, grouped by item."""
    document, problems = validate_document(BAD)
    assert document is None
    assert problems == [
        ("$.version", "must be one of 1, got 2"),
        (
            "$.strategy_leverage_notional_multiplier.funding_carry",
            "unknown key (allowed: cex_cex, cex_dex, funding_carry_cex_cex, perp_spot_basis)",
        ),
        ("$.strategy_leverage_notional_multiplier.cex_cex", "must be > 0, got 0"),
        ("$.strategy_leverage_notional_multiplier.perp_spot_basis", 'expected a number, got "x"'),
        (
            "$.rules[0].venue",
            "unknown value 'binanse' (known: binance, bybit, okx, kraken, huobi, uniswap_v2, uniswap_v3)",
        ),
        ("$.rules[0].max_leverage", "must be > 0, got -1"),
        (
            "$.rules[0].as_of",
            "must be an ISO-8601 date (2026-08-21) or date-time with offset (2026-08-21T09:30:00Z), got 'yesterday'",
        ),
        ("$.rules[1].max_leverage", "key given more than once"),
        ("$.rules[1].as_of", "'2026-02-30' is not a real date"),
        ("$.rules[1].asset", "must be 1-20 upper-case letters or digits (BTC, 1000PEPE), got 'btc'"),
        ("$.rules[1].source", 'must be one of "authenticated", "template", got "guess"'),
        ("$.rules[1].market", "a market scope needs a venue"),
        ("$.rules[2].market", "binance has no market 'linear' (known: coinm, spot, usdm)"),
        ("$.rules[3]", "same scope (binance:linear) and source as $.rules[2]"),
        ("$.rules[3].maxLeverage", f"unknown key (allowed: {RULE_KEYS})"),
        ("$.rules[3].market", "binance has no market 'linear' (known: coinm, spot, usdm)"),
        ("$.rules[4].source", "required key is missing"),
        ("$.rules[4].max_book_age_ms", "expected a number, got true"),
        ("$.fees[0].tiers[0].taker_bps", 'expected a number, got "5"'),
        ("$.fees[0].tiers[1].name", "tier 'Lv1' is listed twice"),
        ("$.fees[0].tier", "'VIP9' is not one of this table's tiers (Lv1, Lv1)"),
    ]
    with pytest.raises(ConstraintsError) as err:
        load_constraints(BAD, "bad.json")
    assert err.value.exit_code == 2 and str(err.value).startswith(
        "bad.json: invalid execution constraints (21 errors):"
    )
    assert "  $.rules[4].source: required key is missing" in str(err.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            b'{"version": 1,',
            ("$", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 15"),
        ),
        (b'{"version": NaN}', ("$", "not valid JSON: NaN is not valid JSON")),
        (b"[]", ("$", "expected an object, got array")),
        (b'{"version": 1}', ("$.rules", "required key is missing")),
        (b"\xff", ("$", "not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte")),
    ],
)
def test_unparseable_documents(text: bytes, problem: tuple[str, str]):
    """Syntax errors give line and column; wrong shapes give paths."""
    _, problems = validate_document(text)
    assert problems[0] == problem


def test_override_parsing():
    """STRATEGY=MULTIPLIER: unknown strategy, non-numeric, non-positive and repeated are precise errors."""
    assert parse_override("perp_spot_basis=1.5") == (Strategy.PERP_SPOT_BASIS, 1.5)
    assert parse_override(" cex_dex = 2 ") == (Strategy.CEX_DEX, 2.0)
    cases = {
        "perp_basis=1.5": f"unknown strategy 'perp_basis' (known: {STRATEGIES})",
        "cex_cex=abc": "multiplier 'abc' is not a number",
        "cex_cex=0": "multiplier must be > 0, got 0",
        "cex_cex=-1.5": "multiplier must be > 0, got -1.5",
        "cex_cex=inf": "multiplier 'inf' is not a finite number",
        "cex_cex=nan": "multiplier 'nan' is not a finite number",
        "cex_cex=1e6": "multiplier must be <= 1000, got 1e6",
        "cex_cex": "expected STRATEGY=MULTIPLIER",
    }
    for text, reason in cases.items():
        with pytest.raises(OverrideError) as err:
            parse_override(text)
        assert err.value.reason == reason and err.value.exit_code == 2
        assert str(err.value) == f"--strategy-leverage-override {text!r}: {reason}"
    with pytest.raises(OverrideError, match="cex_cex is overridden more than once"):
        parse_overrides(["cex_cex=1", "cex_cex=2"])
    assert parse_overrides(["cex_cex=1", "perp_spot_basis=2"]) == {Strategy.CEX_CEX: 1.0, Strategy.PERP_SPOT_BASIS: 2.0}
