"""structlog setup: JSON off a TTY, console on a real pseudo-terminal, context, levels, and redaction."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from scanner.logging import REDACTED, configure_logging, redact, register_secret, scrub_text


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(handler, "_arbscan_handler", False):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_iso_utc_time_context_and_level_filter() -> None:
    """Off a TTY: one orjson line per event, ISO UTC timestamp, bound context merged, debug filtered out."""
    stream = io.StringIO()
    configure_logging(level="info", json="auto", stream=stream, cache=False)
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(venue="binance", conn_id=3)
    log.debug("hidden")
    log.info("book_live", symbol="BTC-USDT", depth=1000)
    [line] = json_lines(stream)
    timestamp = line.pop("timestamp")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", timestamp)
    assert line == {
        "venue": "binance",
        "conn_id": 3,
        "symbol": "BTC-USDT",
        "depth": 1000,
        "event": "book_live",
        "level": "info",
    }


def test_console_renderer_on_a_real_terminal() -> None:
    """On a TTY (a real pseudo-terminal here) the console renderer is used, not JSON."""
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", buffering=1, closefd=False) as tty:
            assert tty.isatty()
            configure_logging(level="info", json="auto", stream=tty, cache=False)
            structlog.get_logger("t").warning("feed_down", venue="okx", password="hunter2hunter2")
        output = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "feed_down" in output
    assert "venue" in output and "okx" in output
    assert not output.lstrip().startswith("{")
    assert "hunter2" not in output
    assert REDACTED in output


def test_redaction_of_secret_keys_at_any_depth() -> None:
    """Values under secret-looking keys are masked at any depth; dedup/idempotency keys are not secrets."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, cache=False)
    structlog.get_logger("t").info(
        "config_loaded",
        api_key="AKIA1234",
        webhook={"name": "ops", "secret": "s3cr3t", "headers": [{"Authorization": "Bearer abc"}]},
        passphrase="pp",
        signature="sha256=ff",
        access_token="tok",
        dedup_key="cex_cex:forward:x",
        idempotency_key="ev.ops",
    )
    [line] = json_lines(stream)
    assert line["api_key"] == REDACTED
    assert line["webhook"] == {"name": "ops", "secret": REDACTED, "headers": [{"Authorization": REDACTED}]}
    assert (line["passphrase"], line["signature"], line["access_token"]) == (REDACTED, REDACTED, REDACTED)
    assert line["dedup_key"] == "cex_cex:forward:x"
    assert line["idempotency_key"] == "ev.ops"


def test_redaction_of_credentials_inside_urls() -> None:
    """User info, secret query parameters and the token path of chat webhook URLs are masked in any text."""
    assert scrub_text("GET https://u:pw@api.example.com/v1?symbol=BTC&apiKey=abc&signature=ff done") == (
        f"GET https://{REDACTED}@api.example.com/v1?symbol=BTC&apiKey={REDACTED}&signature={REDACTED} done"
    )
    assert scrub_text("post to https://hooks.slack.com/services/T0/B0/XXXX failed") == (
        f"post to https://hooks.slack.com/{REDACTED} failed"
    )
    assert scrub_text("https://discord.com/api/webhooks/123/abcdef") == f"https://discord.com/{REDACTED}"
    assert scrub_text("https://api.telegram.org/bot123:AAE/sendMessage") == f"https://api.telegram.org/{REDACTED}"
    assert scrub_text("wss://stream.binance.com:9443/stream?streams=btcusdt@depth") == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@depth"
    )


def test_registered_secret_is_masked_everywhere_including_tracebacks() -> None:
    """A registered value is scrubbed from messages, values, objects' reprs and formatted exceptions."""
    register_secret("my-hmac-key-987")
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, cache=False)
    log = structlog.get_logger("t")
    try:
        raise ValueError("bad key my-hmac-key-987")
    except ValueError:
        log.exception("failed my-hmac-key-987", detail=("x", "my-hmac-key-987"))
    [line] = json_lines(stream)
    assert "my-hmac-key-987" not in stream.getvalue()
    assert line["event"] == f"failed {REDACTED}"
    assert line["detail"] == ["x", REDACTED]
    assert f"ValueError: bad key {REDACTED}" in line["exception"]


def test_standard_library_records_are_rendered_and_redacted() -> None:
    """aiohttp/asyncio records (stdlib logging) come out as the same JSON, with the logger name, redacted."""
    stream = io.StringIO()
    configure_logging(level="info", json=True, stream=stream, cache=False)
    logging.getLogger("aiohttp.client").info("retrying %s", "https://x.example/?token=abc123")
    logging.getLogger("asyncio").debug("filtered out")
    [line] = json_lines(stream)
    line.pop("timestamp")
    assert line == {
        "event": f"retrying https://x.example/?token={REDACTED}",
        "logger": "aiohttp.client",
        "level": "info",
    }


def test_redact_leaves_plain_values_alone() -> None:
    """Numbers, booleans, None and ordinary strings pass through unchanged."""
    value = {"n": 1, "f": 2.5, "b": True, "none": None, "s": "BTC-USDT", "l": [1, "a"]}
    assert redact(value) == value
