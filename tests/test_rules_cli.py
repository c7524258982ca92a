"""`arbscan constraints template|validate|schema|show` and the override flag: output and exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rules import Strategy
from scanner.cli import main
from scanner.commands.constraints import add_override_argument, load_effective_constraints, overrides_from_args
from tests.test_rules_constraints import BAD

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "config" / "execution_constraints.json"
SCHEMA = ROOT / "config" / "execution_constraints.schema.json"


def test_template_prints_the_committed_file(capsysbinary):
    """`constraints template` prints exactly config/execution_constraints.json."""
    assert main(["constraints", "template"]) == 0
    assert capsysbinary.readouterr().out == TEMPLATE.read_bytes()


def test_template_and_schema_write_files(tmp_path: Path):
    """--out writes the file; the written template validates."""
    out = tmp_path / "c.json"
    assert main(["constraints", "template", "--out", str(out)]) == 0
    assert out.read_bytes() == TEMPLATE.read_bytes()
    schema = tmp_path / "s.json"
    assert main(["constraints", "schema", "--out", str(schema)]) == 0
    assert schema.read_bytes() == SCHEMA.read_bytes()


def test_schema_prints_the_committed_schema(capsysbinary):
    """`constraints schema` prints the committed schema (drift fails here and in test_rules_constraints)."""
    assert main(["constraints", "schema"]) == 0
    assert capsysbinary.readouterr().out == SCHEMA.read_bytes()


def test_validate_ok(capsys):
    """A valid file: exit 0 and a one-line summary."""
    assert main(["constraints", "validate", str(TEMPLATE)]) == 0
    assert capsys.readouterr().out == f"{TEMPLATE}: valid (6 rules, 6 fee tables)\n"


def test_validate_lists_every_error_and_exits_2(tmp_path: Path, capsys):
    """An invalid file: exit 2, every error on its own line with its JSON path, no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(BAD)
    assert main(["constraints", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == f"arbscan constraints: {bad}: invalid execution constraints (21 errors):"
    assert len(lines) == 22 and all(line.startswith("  $") for line in lines[1:])
    assert "  $.rules[0].max_leverage: must be > 0, got -1" in lines
    assert "  $.fees[0].tier: 'VIP9' is not one of this table's tiers (Lv1, Lv1)" in lines
    assert "Traceback" not in err


def test_validate_missing_file_exits_2(tmp_path: Path, capsys):
    """A file that cannot be read is a precise input error."""
    missing = tmp_path / "nope.json"
    assert main(["constraints", "validate", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"arbscan constraints: {missing}: invalid execution constraints (1 error):\n"
        "  $: cannot read the file: No such file or directory\n"
    )


def test_show_table_with_override_and_resolution(capsys):
    """`show` prints multipliers (with the override and the file's value), rules, fees and a resolved scope."""
    code = main(
        [
            "constraints",
            "show",
            str(TEMPLATE),
            "--strategy-leverage-override",
            "perp_spot_basis=1.5",
            "--resolve",
            "binance:spot:btc",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "overrides: --strategy-leverage-override perp_spot_basis=1.5" in out
    assert any(line.split() == ["perp_spot_basis", "1.5", "override", "(file:", "1.25)"] for line in out.splitlines())
    assert any(line.split()[:3] == ["max_borrow_usd", "5000", "binance:spot"] for line in out.splitlines())
    assert any(line.split() == ["okx:swap", "*?Lv1", "2", "5", "template"] for line in out.splitlines())


def test_show_json(capsys):
    """`show --json` prints the effective document, the overrides and the resolved rules."""
    assert (
        main(
            ["constraints", "show", "--json", "--strategy-leverage-override", "cex_dex=3", "--resolve", "okx:swap:ETH"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["origin"] == "<built-in template>" and data["overrides"] == {"cex_dex": 3.0}
    assert data["constraints"]["strategy_leverage_notional_multiplier"]["cex_dex"] == 3.0
    assert data["resolved"][0]["key"] == "okx:swap:ETH" and data["resolved"][0]["max_leverage"] == 3.0


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "perp=2",
            "'perp=2': unknown strategy 'perp' (known: cex_cex, cex_dex, funding_carry_cex_cex, perp_spot_basis)",
        ),
        ("cex_cex=two", "'cex_cex=two': multiplier 'two' is not a number"),
        ("cex_cex=0", "'cex_cex=0': multiplier must be > 0, got 0"),
        ("cex_cex=-2", "'cex_cex=-2': multiplier must be > 0, got -2"),
    ],
)
def test_bad_override_exits_2_with_a_precise_message(flag: str, message: str, capsys):
    """argparse rejects a malformed override at parse time: exit 2 and the reason."""
    with pytest.raises(SystemExit) as exit_:
        main(["constraints", "show", f"--strategy-leverage-override={flag}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"arbscan constraints show: error: argument --strategy-leverage-override: {message}"
    )


def test_repeated_override_exits_2(capsys):
    """The same strategy twice is ambiguous: exit 2."""
    args = [
        "constraints",
        "show",
        "--strategy-leverage-override",
        "cex_cex=1",
        "--strategy-leverage-override",
        "cex_cex=2",
    ]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "arbscan constraints: --strategy-leverage-override 'cex_cex=2': cex_cex is overridden more than once\n"
    )


def test_the_override_helper_other_commands_use():
    """add_override_argument + load_effective_constraints give any command the same flag and loading."""
    parser = argparse.ArgumentParser()
    add_override_argument(parser)
    args = parser.parse_args(["--strategy-leverage-override", "funding_carry_cex_cex=3"])
    assert overrides_from_args(args) == {Strategy.FUNDING_CARRY_CEX_CEX: 3.0}
    constraints = load_effective_constraints(TEMPLATE, args)
    assert constraints.multiplier(Strategy.FUNDING_CARRY_CEX_CEX) == 3.0 and constraints.origin == str(TEMPLATE)
    assert overrides_from_args(parser.parse_args([])) == {}


def test_console_entry_point_exit_code(tmp_path: Path):
    """The real process: `python -m scanner constraints validate BAD` exits 2 with the errors on stderr."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(BAD)
    run = subprocess.run(
        [sys.executable, "-m", "scanner", "constraints", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert "$.rules[4].source: required key is missing" in run.stderr


def test_show_refuses_a_scope_no_venue_has(capsys):
    """foo:bar:btc or binance:linear:BTC resolved to the default rule and printed it as if it applied."""
    assert main(["constraints", "show", str(TEMPLATE), "--resolve", "binance:linear:BTC"]) == 2
    assert capsys.readouterr().err == (
        "arbscan constraints: --resolve binance:linear:BTC: binance has no market 'linear' (known: coinm, spot, usdm)\n"
    )  # a usage error, not worded as the constraints file's ("invalid execution constraints")
    assert main(["constraints", "show", str(TEMPLATE), "--resolve", "foo:bar:btc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arbscan constraints: --resolve foo:bar:btc: unknown venue 'foo' (known: binance, bybit,")
    assert main(["constraints", "show", str(TEMPLATE), "--resolve", "binance:spot"]) == 2
    assert capsys.readouterr().err == (
        "arbscan constraints: --resolve binance:spot: expected VENUE:MARKET:ASSET, e.g. binance:spot:BTC\n"
    )
