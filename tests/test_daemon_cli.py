"""``arbscan run`` / ``arbscan demo`` refuse bad input with one precise message and exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, timeout
from tests.engine_fixtures import arbscan_command, free_port, subprocess_env


def arbscan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        arbscan_command(*args),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=cwd,
        timeout=timeout(60),
        check=False,
    )


def runnable_demo_config(tmp_path: Path, *, port: int) -> str:
    """config/demo.toml run from ``tmp_path``: the constraints file by absolute path, its own state dir and port."""
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace('listen = "127.0.0.1:9464"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('file = "demo_constraints.json"', f'file = "{ROOT / "config" / "demo_constraints.json"}"')
    return text.replace('state_dir = "demo-state"', f'state_dir = "{tmp_path / "state"}"')


def test_run_with_a_missing_config(tmp_path: Path) -> None:
    """A config that does not exist: exit 2, the file named, no traceback."""
    result = arbscan("run", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.toml" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_an_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    """Unknown keys and bad values: every one listed with its key path, exit 2."""
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace("[engine]", "[engine]\ndwell = 3").replace(
        'fee_profile = "maker_inventory"', 'fee_profile = "maker"'
    )
    text = text.replace('file = "demo_constraints.json"', f'file = "{ROOT / "config" / "demo_constraints.json"}"')
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = arbscan("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "engine.dwell: unknown key" in result.stderr
    assert "constraints.fee_profile: got 'maker'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("perp_spot_basis=0", "multiplier must be > 0"),
        ("basis=1.5", "unknown strategy 'basis'"),
        ("cex_cex", "expected STRATEGY=MULTIPLIER"),
    ],
)
def test_demo_rejects_bad_leverage_overrides(tmp_path: Path, override: str, message: str) -> None:
    """--strategy-leverage-override is validated before anything starts."""
    result = arbscan("demo", "--strategy-leverage-override", override, "--state-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_demo_refuses_a_state_dir_that_is_a_file(tmp_path: Path) -> None:
    """--state-dir naming a file: exit 2 with the reason before anything starts (it failed at the outbox's
    open with exit 1 and a coroutine-never-awaited warning)."""
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    result = arbscan("demo", "--state-dir", str(taken), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"arbscan demo: --state-dir {str(taken)!r}: exists and is not a directory\n",
    )
    result = arbscan("demo", "--state-dir", str(taken / "below"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"arbscan demo: --state-dir {str(taken / 'below')!r}: Not a directory\n",
    )


def test_run_when_the_metrics_port_is_taken(tmp_path: Path) -> None:
    """/metrics cannot listen: exit 1 with the address, before any feed starts."""
    import socket

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        text = runnable_demo_config(tmp_path, port=port)
        # huobi is served only by a csv-replay: name one (never reached: the daemon stops before any feed)
        text = text.replace('venue = "huobi"', 'venue = "huobi"\nws_url = "ws://127.0.0.1:1/csv"', 1)
        config = tmp_path / "busy.toml"
        config.write_text(text)
        result = arbscan("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"metrics.listen 127.0.0.1:{port}: cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_duplicate_candidates_names_the_key_path(tmp_path: Path) -> None:
    """The same strategy, legs and size twice: exit 2, the repeated entry's key path, no traceback."""
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace('file = "demo_constraints.json"', f'file = "{ROOT / "config" / "demo_constraints.json"}"')
    assert 'pairs = [["binance:spot:LINK-USDT", "huobi:spot:LINK-USDT"]]' in text
    repeat = """
[[strategies]]
strategy = "cex_cex"
pairs = [["binance:spot:LINK-USDT", "huobi:spot:LINK-USDT"]]
sizes_usd = [500.0]
direction = "forward"
"""
    config = tmp_path / "dupe.toml"
    config.write_text(text + repeat)
    result = arbscan("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    index = text.count("[[strategies]]")
    assert (
        f"strategies[{index}].pairs[0]: duplicate of candidate "
        "cex_cex:forward:binance:spot:LINK-USDT|huobi:spot:LINK-USDT:500 (from strategies["
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_record_rejects_a_duration_that_is_no_number_of_seconds(tmp_path: Path, value: str) -> None:
    """--duration nan passed the check (nan <= 0 is false) and ended the recording at once, exit 0."""
    args = ["record", "--venue", "binance", "--market", "usdm", "--symbols", "BTCUSDT", "--out", str(tmp_path)]
    result = arbscan(*args, f"--duration={value}", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"arbscan record: --duration {float(value)}: must be a number of seconds > 0\n",
    )
    assert not any(tmp_path.iterdir())


def test_record_refuses_a_channel_the_venue_lacks_with_exit_2_and_no_folder(tmp_path: Path) -> None:
    """OKX has no top-of-book channel: --channels book,top is refused as bad usage (exit 2; it was exit 1)
    and leaves no output folder behind. The default records top only where the venue has it (it was book,top
    everywhere, so a bare `arbscan record --venue okx` failed)."""
    from feeds.instruments import Market, Venue
    from scanner.commands.record import _has_top

    assert [_has_top(Venue.BINANCE, Market.SPOT), _has_top(Venue.OKX, Market.SPOT)] == [True, False]
    out = tmp_path / "okx"
    result = arbscan(
        "record", "--venue", "okx", "--market", "spot", "--symbols", "BTC-USDT", "--out", str(out),
        "--channels", "book,top", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("arbscan record: ") and "top" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    result = arbscan(
        "record", "--venue", "okx", "--market", "spot", "--symbols", "BTC-USDT", "--out", "/etc/passwd", cwd=tmp_path
    )
    assert (result.returncode, result.stderr) == (
        2,
        "arbscan record: --out /etc/passwd: the output folder exists and is not a folder\n",
    )


@pytest.mark.parametrize("value", ["0.5", "86401", "nan", "-3"])
def test_record_rejects_a_venue_skew_out_of_range(tmp_path: Path, value: str) -> None:
    """--max-venue-ahead-s takes what [[feeds]] max_venue_ahead_s takes (1 to 86400 s), before connecting."""
    args = ["record", "--venue", "binance", "--market", "usdm", "--symbols", "BTCUSDT", "--out", str(tmp_path)]
    result = arbscan(*args, f"--max-venue-ahead-s={value}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"--max-venue-ahead-s {float(value)}: must be 1 to 86400" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_run_refuses_a_venue_that_only_the_demo_replays(tmp_path: Path) -> None:
    """huobi exists only as the demo's csv-replay series: `arbscan run` with it and no ws_url would retry a
    placeholder address forever; it exits 2 naming the feed instead."""
    config = tmp_path / "huobi.toml"
    config.write_text(runnable_demo_config(tmp_path, port=free_port()))
    result = arbscan("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "venue: got 'huobi': huobi:spot has no live feed, only the demo's csv-replay" in result.stderr
    assert "Traceback" not in result.stderr
