"""The daemon's TOML config: strict loading, every problem with file/key/value/reason, reload, secrets."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from feeds.instruments import InstrumentId
from rules.candidates import Strategy
from rules.fees import FeeProfile
from scanner.candidates import build_candidates
from scanner.config import (
    Config,
    Direction,
    WebhookFormat,
    load_config,
    reload_config,
    resolve_webhook,
)
from scanner.credentials import Secret
from scanner.errors import ConfigError
from tests.conftest import ROOT

VALID = """
[daemon]
state_dir = "var"

[daemon.journal]
fsync_every = 10

[[feeds]]
venue = "binance"
market = "spot"
symbols = ["BTC-USDT"]

[[feeds]]
venue = "binance"
market = "usdm"
symbols = ["BTC-USDT-PERP"]

[[feeds]]
venue = "bybit"
market = "linear"
symbols = ["BTC-USDT-PERP"]

[[feeds]]
venue = "okx"
market = "spot"
symbols = ["BTC-USDT"]

[constraints]
file = "constraints.json"

[[strategies]]
strategy = "perp_spot_basis"
instruments = ["binance:usdm:BTC-USDT-PERP", "binance:spot:BTC-USDT"]
sizes_usd = [1000.0, 5000]
horizon_hours = 8

[[strategies]]
strategy = "cex_cex"
pairs = [["okx:spot:BTC-USDT", "binance:spot:BTC-USDT"]]
sizes_usd = [1000.0]
direction = "forward"

[[funding_assumptions]]
instrument = "binance:usdm:BTC-USDT-PERP"
rate = 0.0001
reason = "recording has no funding stream"

[[webhooks]]
name = "ops"
url = "http://127.0.0.1:9/hook"
secret_env = "ARBSCAN_TEST_KEY"
"""


def write(tmp_path: Path, text: str, name: str = "arbscan.toml") -> Path:
    (tmp_path / "constraints.json").write_text("{}")
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBSCAN_TEST_KEY", "k3y-for-tests-only")


def test_valid_config_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    """A valid file gives frozen structs, defaults filled, relative paths resolved against its directory."""
    config = load_config(write(tmp_path, VALID))
    assert config.daemon.state_dir == str(tmp_path.resolve() / "var")
    assert config.daemon.journal_dir == tmp_path.resolve() / "var" / "journal"
    assert config.daemon.journal.fsync_every == 10
    assert config.daemon.journal.fsync_interval_ms == 1000
    assert config.constraints.file == str(tmp_path.resolve() / "constraints.json")
    assert config.constraints.fee_profile is FeeProfile.TAKER_DEFAULT
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)
    assert config.engine.min_qualified_dwell_ms == 500
    assert config.logging.json == "auto"
    basis, cex = config.strategies
    assert basis.strategy is Strategy.PERP_SPOT_BASIS
    assert basis.sizes_usd == (1000.0, 5000.0)
    # Listed perp first: the pair is still oriented (spot, perp).
    assert basis.legs() == (
        (InstrumentId.parse("binance:spot:BTC-USDT"), InstrumentId.parse("binance:usdm:BTC-USDT-PERP")),
    )
    assert basis.directions() == (Direction.FORWARD, Direction.REVERSE)
    assert cex.legs() == ((InstrumentId.parse("okx:spot:BTC-USDT"), InstrumentId.parse("binance:spot:BTC-USDT")),)
    assert cex.directions() == (Direction.FORWARD,)
    assert config.funding_assumptions[0].interval_hours == 8.0
    assert config.webhooks[0].format is WebhookFormat.GENERIC
    assert config.webhooks[0].on == ("qualified",)
    with pytest.raises(AttributeError):
        config.engine.hysteresis_band_bps = 5.0  # type: ignore[misc]


def test_every_problem_is_listed_with_key_value_and_reason(tmp_path: Path) -> None:
    """Typos, bad types, bad ranges and an unknown strategy are all reported at once, each precisely."""
    text = (
        (
            VALID.replace("fsync_every = 10", "fsync_evry = 10")
            .replace('state_dir = "var"', 'state_dir = "var"\nshutdown_timeout_s = "soon"')
            .replace('strategy = "cex_cex"', 'strategy = "cex_cexx"')
            .replace("rate = 0.0001", "rate = 1.5\ninterval_hours = 1e-7")
            + "\n[engine]\nmin_qualified_dwell_ms = -5\n"
        )
        .replace('market = "usdm"', 'market = "usdm"\nmax_venue_ahead_s = 0.5', 1)
        .replace('market = "linear"', 'market = "linear"\nmax_venue_ahead_s = 86400.5', 1)
    )
    problems = problems_of(write(tmp_path, text))
    assert problems == {
        "daemon.journal.fsync_evry": "unknown key (did you mean 'fsync_every'?)",
        "daemon.shutdown_timeout_s": "got 'soon': expected float",
        "strategies[1].strategy": (
            "got 'cex_cexx': expected one of 'cex_cex', 'cex_dex', 'funding_carry_cex_cex', 'perp_spot_basis'"
        ),
        "funding_assumptions[0].rate": "got 1.5: expected float <= 0.05",
        # 1e-7 h rounds to 0 ms: the daemon divided by it at its first evaluation
        "funding_assumptions[0].interval_hours": "got 1e-07: expected float >= 0.25",
        "engine.min_qualified_dwell_ms": "got -5: expected int >= 1",
        "feeds[1].max_venue_ahead_s": "got 0.5: expected float >= 1.0",
        "feeds[2].max_venue_ahead_s": "got 86400.5: expected float <= 86400.0",
    }


def test_missing_sections_and_wrong_shapes(tmp_path: Path) -> None:
    """Required sections missing and a table where an array belongs are named by key path."""
    problems = problems_of(write(tmp_path, '[metrics]\nlisten = 9464\n[logging]\njson = "yes"\n'))
    assert problems == {
        "metrics.listen": "got 9464: expected str",
        "logging.json": "got 'yes': expected one of true, false, 'auto'",
        "feeds": "missing required key",
        "constraints": "missing required key",
        "strategies": "missing required key",
    }


def test_cross_section_problems(tmp_path: Path) -> None:
    """Legs not streamed, wrong leg kinds, funding fields on the wrong strategy, bad listen address."""
    text = (
        VALID.replace('listen = "127.0.0.1:9464"', "")
        + """
[metrics]
listen = "localhost:99999"

[[strategies]]
strategy = "funding_carry_cex_cex"
instruments = ["binance:usdm:BTC-USDT-PERP", "okx:swap:BTC-USDT-PERP"]
sizes_usd = [100.0, 100.0]

[[strategies]]
strategy = "cex_cex"
pairs = [["binance:spot:BTC-USDT", "binance:usdm:BTC-USDT-PERP"]]
sizes_usd = [100.0]
horizon_hours = 1.0
"""
    )
    problems = problems_of(write(tmp_path, text))
    assert problems == {
        "metrics.listen": "got 'localhost:99999': port must be an integer in 0..65535",
        "strategies[2].horizon_hours": "missing: funding_carry_cex_cex counts funding settlements over a horizon",
        "strategies[2].sizes_usd": "got [100.0, 100.0]: duplicate sizes",
        "strategies[2].instruments[1]": "got 'okx:swap:BTC-USDT-PERP': not streamed by any [[feeds]] entry",
        "strategies[3].horizon_hours": "got 1.0: cex_cex has no holding horizon",
        "strategies[3].pairs[0]": "legs must be the same kind, got spot and perp",
    }


def test_bad_symbol_unknown_venue_and_constraints_file(tmp_path: Path) -> None:
    """An unparseable symbol, an unknown venue key in vip_tier and a missing constraints file."""
    text = VALID.replace('symbols = ["BTC-USDT"]', 'symbols = ["BTCUSDT"]', 1)
    problems = problems_of(write(tmp_path, text.replace('file = "constraints.json"', 'file = "nope.json"')))
    missing = str(tmp_path.resolve() / "nope.json")
    assert problems == {
        "feeds[0].symbols[0]": "got 'BTCUSDT': expected BASE-QUOTE, BASE-QUOTE-PERP or BASE-QUOTE-YYMMDD",
        "constraints.file": f"got {missing!r}: file not found",
        # ...and what follows from the symbol no feed now streams:
        "strategies[0].instruments[1]": "got 'binance:spot:BTC-USDT': not streamed by any [[feeds]] entry",
        "strategies[1].pairs[0][1]": "got 'binance:spot:BTC-USDT': not streamed by any [[feeds]] entry",
    }
    problems = problems_of(
        write(tmp_path, text.replace("[constraints]", '[constraints]\nvip_tier = { binanse = "VIP1" }'))
    )
    assert problems == {
        "constraints.vip_tier.binanse": ("unknown key: expected one of 'binance', 'bybit', 'okx', 'kraken', 'huobi'"),
        # [[feeds]] is sound on its own, so its checks still run next to a broken [constraints].
        "feeds[0].symbols[0]": "got 'BTCUSDT': expected BASE-QUOTE, BASE-QUOTE-PERP or BASE-QUOTE-YYMMDD",
        "strategies[0].instruments[1]": "got 'binance:spot:BTC-USDT': not streamed by any [[feeds]] entry",
        "strategies[1].pairs[0][1]": "got 'binance:spot:BTC-USDT': not streamed by any [[feeds]] entry",
    }


def test_webhook_problems_are_precise_and_never_quote_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline secrets are refused, a missing env var is named (not its value), URLs are never echoed."""
    monkeypatch.delenv("ARBSCAN_TEST_KEY")
    token_url = "https://hooks.slack.com/services/T000/B000/SUPERSECRETTOKEN"
    text = (
        VALID
        + f"""
[[webhooks]]
name = "chat"
format = "slack"
url = "http://hooks.example.com/{token_url}"
secret = "inline-key-value"

[[webhooks]]
name = "tg"
format = "telegram"
url = "{token_url}"
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert dict(info.value.problems) == {
        "webhooks[0].secret_env": "the environment variable it names is unset or empty",
        "webhooks[1].secret": (
            "an inline secret is refused: use secret_env or secret_file (or set allow_inline_secret = true)"
        ),
        "webhooks[1].url": (
            "plain http is allowed for loopback hosts only: use https (value hidden: webhook URLs carry tokens)"
        ),
        "webhooks[2].telegram_chat_id": "required by format = 'telegram' and only by it",
    }
    message = str(info.value)
    assert "SUPERSECRETTOKEN" not in message
    assert "inline-key-value" not in message

    # Structural problems of a webhook: a secret-bearing key's value is hidden even when its type is wrong.
    text = VALID.replace('name = "ops"', 'name = "Bad Name"\nrate_limit_per_min = 0\nsecret = 12345678')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    problems = dict(info.value.problems)
    assert problems["webhooks[0].rate_limit_per_min"] == "got 0: expected int >= 1"
    assert problems["webhooks[0].name"].startswith("got 'Bad Name': expected str matching regex")
    assert problems["webhooks[0].secret"] == "got <hidden>: expected str"
    assert "12345678" not in str(info.value)


def test_a_webhook_given_in_the_wrong_shape_is_quoted_without_its_secrets(tmp_path: Path) -> None:
    """[webhooks] (a table, for [[webhooks]]) or a bare URL string where a webhook table belongs: the value
    quoted in the message must not carry the URL or the key (the message reaches the terminal and, on a
    reload, the log)."""
    text = VALID.replace("[[webhooks]]", "[webhooks]").replace(
        'url = "http://127.0.0.1:9/hook"', 'url = "http://127.0.0.1:9/hook?t=TOKENTOKEN"\nsecret = "inline-key-value"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    problems = dict(info.value.problems)
    assert problems["webhooks"].startswith("got {'name': 'ops', 'url': '<hidden>'")
    assert problems["webhooks"].endswith(": expected an array")
    bare = 'webhooks = ["https://hooks.slack.com/T/B/TOKENTOKEN"]\n' + VALID.split("[[webhooks]]", maxsplit=1)[0]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bare))
    assert dict(info.value.problems)["webhooks[0]"] == "got a str: expected a table"
    for message in (str(info.value), repr(info.value.problems)):
        assert "TOKENTOKEN" not in message and "inline-key-value" not in message
    # The URL for the whole list, and a key typed into the field that names its environment variable.
    scalar = 'webhooks = "https://hooks.slack.com/T/B/TOKENTOKEN"\n' + VALID.split("[[webhooks]]", maxsplit=1)[0]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, scalar))
    assert dict(info.value.problems)["webhooks"] == "got a str: expected an array"
    assert "TOKENTOKEN" not in str(info.value)
    typed = VALID.replace('secret_env = "ARBSCAN_TEST_KEY"', 'secret_env = "2b5eb11e0d4bb4d9-key"')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, typed))
    assert dict(info.value.problems)["webhooks[0].secret_env"].startswith("got <hidden>: expected str matching")
    assert "2b5eb11e" not in str(info.value)
    # A key shaped like a variable's name, and a URL typed where its file's path belongs: named, not quoted
    # (the message reaches the terminal and, on a reload, the log).
    typed = VALID.replace('secret_env = "ARBSCAN_TEST_KEY"', 'secret_env = "Kx7mQ2pL9vR4tY8wZ1aB3cD5"')
    typed = typed.replace('url = "http://127.0.0.1:9/hook"', 'url_file = "https://hooks.slack.com/T/B/XSECRETX"')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, typed))
    assert dict(info.value.problems) == {
        "webhooks[0].secret_env": "the environment variable it names is unset or empty",
        "webhooks[0].url_file": "the file it names cannot be read (No such file or directory)",
    }
    assert "Kx7mQ2pL9vR4tY8wZ1aB3cD5" not in str(info.value) and "XSECRETX" not in str(info.value)


def test_a_blank_inline_secret_is_refused(tmp_path: Path) -> None:
    """An inline secret of spaces would sign every alert with an empty HMAC key; env and file sources
    already refused a blank value."""
    text = VALID.replace('secret_env = "ARBSCAN_TEST_KEY"', 'secret = "   "\nallow_inline_secret = true')
    assert problems_of(write(tmp_path, text)) == {"webhooks[0].secret": "the inline value is empty"}


def test_secret_file_is_read_into_a_masked_secret(tmp_path: Path) -> None:
    """secret_file/url_file resolve relative to the config; Secret and WebhookConfig never print values."""
    (tmp_path / "key").write_text("file-key-123456\n")
    (tmp_path / "url").write_text("https://hooks.slack.com/services/T1/B1/TOKENTOKEN\n")
    text = VALID.replace(
        'url = "http://127.0.0.1:9/hook"\nsecret_env = "ARBSCAN_TEST_KEY"',
        'url_file = "url"\nsecret_file = "key"\nformat = "slack"',
    )
    config = load_config(write(tmp_path, text))
    webhook = resolve_webhook(config.webhooks[0])
    assert webhook.secret == Secret("file-key-123456")
    assert webhook.secret is not None and webhook.secret.reveal() == "file-key-123456"
    assert webhook.url.reveal() == "https://hooks.slack.com/services/T1/B1/TOKENTOKEN"
    for text_form in (repr(webhook), str(webhook.url), repr(webhook.secret), repr(config), repr(config.webhooks[0])):
        assert "TOKENTOKEN" not in text_form and "file-key" not in text_form


def test_inline_url_is_hidden_from_repr(tmp_path: Path) -> None:
    """An inline URL (which may carry a token) does not appear in the config's repr."""
    config = load_config(write(tmp_path, VALID.replace("http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook?t=zz99")))
    assert "zz99" not in repr(config)
    assert "url=<hidden>" in repr(config.webhooks[0])


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    """A TOML syntax error gives the line; a missing file says so; both are ConfigError (exit code 2)."""
    problems = problems_of(write(tmp_path, "[daemon\nstate_dir = 1\n"))
    assert problems["(file)"].startswith("TOML syntax error: ")
    assert "line 1" in problems["(file)"]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems == [("(file)", "not found")]
    assert info.value.exit_code == 2


def test_walker_agrees_with_msgspec_on_a_valid_file(tmp_path: Path) -> None:
    """What the every-problem walker accepts is exactly what msgspec builds (same structs, same values)."""
    import tomllib

    path = write(tmp_path, VALID)
    raw = tomllib.loads(path.read_text())
    direct = msgspec.convert(raw, Config, strict=True)
    loaded = load_config(path)
    assert loaded.engine == direct.engine
    assert loaded.strategies == direct.strategies
    assert loaded.feeds == direct.feeds
    assert loaded.webhooks[0].on == direct.webhooks[0].on


def test_reload_keeps_the_old_config_on_error_and_reports_changes(tmp_path: Path) -> None:
    """A broken new file leaves the old config in force; a good one reports sections and restart-only keys."""
    path = write(tmp_path, VALID)
    current = load_config(path)
    path.write_text(VALID.replace("fsync_every = 10", "fsync_every = 0"))
    result = reload_config(path, current)
    assert not result.ok
    assert result.config is current
    assert result.error is not None
    assert result.error.problems == [("daemon.journal.fsync_every", "got 0: expected int >= 1")]

    path.write_text(VALID.replace('state_dir = "var"', 'state_dir = "var2"') + "\n[engine]\nhysteresis_band_bps = 3\n")
    result = reload_config(path, current)
    assert result.ok
    assert result.config.engine.hysteresis_band_bps == 3.0
    assert result.changed == ("daemon", "engine")
    assert result.restart_required == ("daemon.state_dir",)


def test_example_config_documents_every_key_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/arbscan.example.toml validates in place (next to the shipped constraints template), every key named."""
    example = ROOT / "config" / "arbscan.example.toml"
    monkeypatch.setenv("ARBSCAN_OPS_WEBHOOK_KEY", "ops-key-123456")
    monkeypatch.setenv("ARBSCAN_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    config = load_config(example)
    assert config.constraints.file == str(ROOT / "config" / "execution_constraints.json")
    assert len(config.strategies) == 3
    assert [w.name for w in config.webhooks] == ["ops", "slack"]

    text = example.read_text()
    undocumented = []
    stack: list[type[msgspec.Struct]] = [Config]
    while stack:
        struct = stack.pop()
        for field in msgspec.structs.fields(struct):
            if not re.search(rf"(^|[\s.\[]){field.name}( =|\]| =)", text, re.M):
                undocumented.append(f"{struct.__name__}.{field.name}")
            stack.extend(_structs_in(field.type))
    assert undocumented == []


def _structs_in(tp: object) -> list[type[msgspec.Struct]]:
    from typing import get_args

    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return [tp]
    return [s for arg in get_args(tp) for s in _structs_in(arg)]


def test_strategy_leg_and_funding_assumption_rules(tmp_path: Path) -> None:
    """cex_dex keys, instruments forming no pair, non-perp or duplicate assumptions, duplicate webhooks."""
    text = (
        VALID
        + """
[[strategies]]
strategy = "cex_dex"
instruments = ["binance:spot:BTC-USDT"]
sizes_usd = [100.0]
passive_leg = 1

[[strategies]]
strategy = "funding_carry_cex_cex"
instruments = ["binance:usdm:BTC-USDT-PERP", "bybit:linear:BTC-USDT-PERP", "binance:spot:BTC-USDT"]
sizes_usd = [100.0]
horizon_hours = 24
dex_pool = "uniswap_v2:x"

[[strategies]]
strategy = "cex_cex"
instruments = ["binance:spot:BTC-USDT"]
pairs = [["binance:spot:BTC-USDT", "okx:spot:BTC-USDT"]]
sizes_usd = [100.0]

[[funding_assumptions]]
instrument = "binance:spot:BTC-USDT"
rate = 0.0
reason = "not a perp"

[[funding_assumptions]]
instrument = "binance:usdm:BTC-USDT-PERP"
rate = 0.0002
reason = "twice"

[[webhooks]]
name = "ops"
url_file = "missing-url"
format = "discord"
"""
    )
    problems = problems_of(write(tmp_path, text))
    assert problems == {
        "strategies[2].strategy": "cex_dex needs DEX pool quotes, and no feed of this daemon supplies them yet",
        "strategies[2].dex_pool": "missing: required by cex_dex",
        "strategies[2].passive_leg": "got 1: the DEX leg is a swap (always taker), so passive_leg must be 0",
        "strategies[3].dex_pool": "got 'uniswap_v2:x': only cex_dex takes dex_pool",
        "strategies[3].instruments[2]": "got 'binance:spot:BTC-USDT': forms no valid funding_carry_cex_cex pair",
        "strategies[4]": "give exactly one of instruments (every valid pair) or pairs (explicit legs)",
        "funding_assumptions[1].instrument": (
            "got 'binance:spot:BTC-USDT': funding applies to perpetuals (-PERP) only"
        ),
        "funding_assumptions[2].instrument": (
            "got 'binance:usdm:BTC-USDT-PERP': a second assumption for the same instrument"
        ),
        "webhooks[1].name": "got 'ops': duplicate webhook name",
        "webhooks[1].url_file": "the file it names cannot be read (No such file or directory)",
    }


def test_duplicate_candidates_are_config_errors_with_the_key_path(tmp_path: Path) -> None:
    """Two entries (or two pairs of one entry) describing the same candidate: a ConfigError per repeat."""
    text = VALID.replace(
        "[[funding_assumptions]]",
        """[[strategies]]
strategy = "cex_cex"
pairs = [["bybit:linear:BTC-USDT-PERP", "binance:usdm:BTC-USDT-PERP"], ["okx:spot:BTC-USDT", "binance:spot:BTC-USDT"]]
sizes_usd = [500.0, 1000.0]

[[funding_assumptions]]""",
    )
    problems = problems_of(write(tmp_path, text))
    assert problems == {
        "strategies[2].pairs[1]": (
            "duplicate of candidate cex_cex:forward:okx:spot:BTC-USDT|binance:spot:BTC-USDT:1000 "
            "(from strategies[1].pairs[0])"
        )
    }
    same_entry = VALID.replace(
        'pairs = [["okx:spot:BTC-USDT", "binance:spot:BTC-USDT"]]',
        'pairs = [["okx:spot:BTC-USDT", "binance:spot:BTC-USDT"], ["okx:spot:BTC-USDT", "binance:spot:BTC-USDT"]]',
    )
    problems = problems_of(write(tmp_path, same_entry))
    assert list(problems) == ["strategies[1].pairs[1]"]
    assert problems["strategies[1].pairs[1]"].startswith("duplicate of candidate cex_cex:forward:okx:spot:BTC-USDT|")


def test_candidate_ids_spell_every_digit_of_a_size(tmp_path: Path) -> None:
    """Sizes 1234567 and 1234568 are two candidates (``:g`` made both 1.23457e+06: a false duplicate); whole
    sizes keep the ids they had (1000), a fraction is spelt out."""
    text = VALID.replace("sizes_usd = [1000.0]", "sizes_usd = [1000.0, 2500.5, 1234567.0, 1234568.0]", 1)
    config = load_config(write(tmp_path, text))
    ids = [c.id for c in build_candidates(config) if c.strategy.value == "cex_cex"]
    assert [i.rsplit(":", 1)[1] for i in ids] == ["1000", "2500.5", "1234567", "1234568"]


def test_reload_lists_every_kept_key_that_changed_as_restart_required(tmp_path: Path) -> None:
    """[daemon], [metrics] and [logging] keys are kept until a restart: each changed one is reported."""
    path = write(tmp_path, VALID)
    current = load_config(path)
    path.write_text(
        VALID.replace("fsync_every = 10", "fsync_every = 20\nrotate_bytes = 8192")
        + '\n[metrics]\nper_candidate_labels = true\n\n[logging]\nlevel = "debug"\n'
    )
    result = reload_config(path, current)
    assert result.ok
    assert result.restart_required == (
        "daemon.journal.fsync_every",
        "daemon.journal.rotate_bytes",
        "metrics.per_candidate_labels",
        "logging.level",
    )


def test_keys_that_nothing_reads_are_unknown_keys(tmp_path: Path) -> None:
    """engine.max_book_age_ms and strategies[].gas_usd were accepted and ignored: now refused by name."""
    text = VALID.replace('direction = "forward"', 'direction = "forward"\ngas_usd = 4.0') + (
        "\n[engine]\nmax_book_age_ms = 2000\n"
    )
    problems = problems_of(write(tmp_path, text))
    assert set(problems) == {"strategies[1].gas_usd", "engine.max_book_age_ms"}
    assert all(reason.startswith("unknown key") for reason in problems.values())


def test_legs_quoted_in_anything_but_dollars_are_refused(tmp_path: Path) -> None:
    """Sizes, limits and costs are USD amounts spent in the pair's quote: an ETH-BTC leg would spend $1,000 as
    1,000 BTC and compare BTC with USD limits. Every form of leg list is checked, each with its key path."""
    text = (
        VALID
        + """
[[strategies]]
strategy = "cex_cex"
pairs = [["binance:spot:ETH-BTC", "okx:spot:ETH-BTC"]]
sizes_usd = [1000.0]

[[strategies]]
strategy = "cex_cex"
instruments = ["binance:spot:ETH-BTC", "okx:spot:ETH-BTC"]
sizes_usd = [1000.0]

[[strategies]]
strategy = "cex_dex"
instruments = ["binance:spot:ETH-BTC"]
dex_pool = "uniswap_v2:x"
sizes_usd = [1000.0]
"""
    )
    problems = problems_of(write(tmp_path, text))
    quoted = (
        "is quoted in BTC: sizes, limits and costs are USD amounts spent in the quote, so the quote must be USD "
        "or a dollar stablecoin (BUSD, DAI, FDUSD, PYUSD, TUSD, USD, USDC, USDP, USDT)"
    )
    assert {key: why for key, why in problems.items() if "quoted in" in why} == {
        "strategies[2].pairs[0][0]": f"got 'binance:spot:ETH-BTC': binance:spot:ETH-BTC {quoted}",
        "strategies[2].pairs[0][1]": f"got 'okx:spot:ETH-BTC': okx:spot:ETH-BTC {quoted}",
        "strategies[3].instruments[0]": f"got 'binance:spot:ETH-BTC': binance:spot:ETH-BTC {quoted}",
        "strategies[3].instruments[1]": f"got 'okx:spot:ETH-BTC': okx:spot:ETH-BTC {quoted}",
        "strategies[4].instruments[0]": f"got 'binance:spot:ETH-BTC': binance:spot:ETH-BTC {quoted}",
    }


def test_urls_that_cannot_be_connected_to_are_refused_at_load(tmp_path: Path) -> None:
    """A broken IPv6 host or a port that is not one: refused with the key path (the daemon used to start and
    die at connect with a traceback, or retry a webhook forever); a webhook URL's value stays hidden."""
    text = (
        VALID.replace('market = "linear"', 'market = "linear"\nws_url = "ws://[::1/stream"', 1)
        .replace(
            'market = "spot"\nsymbols = ["BTC-USDT"]',
            'market = "spot"\nsymbols = ["BTC-USDT"]\nrest_url = "https://127.0.0.1:abc"',
            1,
        )
        .replace('url = "http://127.0.0.1:9/hook"', 'url = "http://127.0.0.1:99999/hook?t=TOKENTOKEN"', 1)
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert dict(info.value.problems) == {
        "feeds[0].rest_url": (
            "got 'https://127.0.0.1:abc': not a URL (Port could not be cast to integer value as 'abc')"
        ),
        "feeds[2].ws_url": "got 'ws://[::1/stream': not a URL (Invalid IPv6 URL)",
        "webhooks[0].url": "not a URL (a bad host or port) (value hidden: webhook URLs carry tokens)",
    }
    assert "TOKENTOKEN" not in str(info.value)
    # The parser's own words quote what follows a colon: a token typed after one must not reach the message.
    leaky = VALID.replace(
        'url = "http://127.0.0.1:9/hook"', 'url = "https://api.telegram.org:bot123:SECRETSECRET/send"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, leaky))
    assert "SECRETSECRET" not in str(info.value) and "bot123" not in str(info.value)


def test_a_held_strategy_on_a_perpetual_no_funding_reaches_is_refused(tmp_path: Path) -> None:
    """Binance COIN-M funding is not streamed here: a basis on its perpetual would be funding_unknown for as
    long as the daemon runs. Refused with the strategy's key path, unless an assumption states the rate."""
    feeds = '[[feeds]]\nvenue = "binance"\nmarket = "coinm"\nsymbols = ["BTC-USD-PERP"]\n\n'
    feeds += '[[feeds]]\nvenue = "kraken"\nmarket = "spot"\nsymbols = ["BTC-USD"]\n\n'
    basis = '[[strategies]]\nstrategy = "perp_spot_basis"\n'
    basis += (
        'pairs = [["kraken:spot:BTC-USD", "binance:coinm:BTC-USD-PERP"]]\nsizes_usd = [1000.0]\nhorizon_hours = 8\n\n'
    )
    text = VALID.replace("[constraints]", feeds + "[constraints]", 1)
    text = text.replace("[[funding_assumptions]]", basis + "[[funding_assumptions]]", 1)
    problems = problems_of(write(tmp_path, text))
    assert problems == {
        "strategies[2]": (
            "binance:coinm:BTC-USD-PERP: no funding stream of binance coinm here: state its rate in "
            "[[funding_assumptions]]"
        )
    }
    stated = (
        text
        + '\n[[funding_assumptions]]\ninstrument = "binance:coinm:BTC-USD-PERP"\nrate = 0.0001\nreason = "no stream"\n'
    )
    assert load_config(write(tmp_path, stated)).strategies[2].strategy.value == "perp_spot_basis"


def test_feeds_of_a_market_the_venue_lacks_and_malformed_symbols_are_refused_at_load(tmp_path: Path) -> None:
    """kraken/usdm passed the load (and a reload), and failed only at the next start, naming neither file nor
    key; a lower-case symbol subscribed the same book again under another key, and BTC- an empty quote."""
    text = VALID.replace('symbols = ["BTC-USDT"]', 'symbols = ["BTC-USDT", "btc-usdt", "BTC-"]', 1) + (
        '\n[[feeds]]\nvenue = "kraken"\nmarket = "usdm"\nsymbols = ["BTC-USDT-PERP"]\n'
    )
    problems = problems_of(write(tmp_path, text))
    upper = "base and quote are upper-case letters and digits (BASE-QUOTE)"
    assert problems == {
        "feeds[0].symbols[1]": f"got 'btc-usdt': {upper}",
        "feeds[0].symbols[2]": f"got 'BTC-': {upper}",
        "feeds[4].market": "got 'usdm': kraken has no such market here (spot)",
    }


def test_errors_of_the_constraints_keys_name_the_config_file(tmp_path: Path) -> None:
    """constraints.vip_tier and constraints.file are keys of the TOML file: their errors name it (they named
    the constraints JSON, where no such key is), and the reason names the JSON."""
    from rules.template import template_document, to_json
    from scanner.runtime import load_effective_constraints

    path = write(
        tmp_path,
        VALID.replace('file = "constraints.json"', 'file = "constraints.json"\nvip_tier = { binance = "VIP99" }'),
    )
    constraints = tmp_path / "constraints.json"
    constraints.write_bytes(to_json(template_document()))
    with pytest.raises(ConfigError) as info:
        load_effective_constraints(load_config(path), config_path=path)
    assert info.value.path == str(path)
    ((key, why),) = info.value.problems
    assert key == "constraints.vip_tier.binance"
    assert why.startswith(f"got 'VIP99': no fee table of binance in {constraints} has this tier (tiers: ")
    config = load_config(write(tmp_path, VALID, "ok.toml"))
    constraints.write_bytes(to_json(template_document()))  # write() put an empty document back
    constraints.unlink()  # gone between the load and the read (a reload racing a deploy)
    with pytest.raises(ConfigError) as info:
        load_effective_constraints(config, config_path=path)
    assert info.value.path == str(path)
    assert info.value.problems == [
        ("constraints.file", f"got {str(constraints)!r}: cannot be read (No such file or directory)")
    ]
