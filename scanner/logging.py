"""structlog for the daemon, set up as structlog's ``docs/performance.md`` recommends, with secrets redacted.

JSON lines (``orjson``) when the stream is not a terminal, the console renderer when it is; context
variables merged (bind ``venue``, ``symbol``, ``conn_id`` with ``structlog.contextvars``); levels filtered
before any processor runs; ISO-8601 UTC timestamps. Standard-library records (aiohttp, asyncio) go through
the same processors, so they are redacted and rendered alike.

Redaction runs last before rendering and covers, at any depth of the event: values of keys that name a
secret (``*secret*``, ``*key*``, ``*token*``, ``*password*``, ``*passphrase*``, ``*signature*``, ...),
credentials inside URLs (user info, secret query parameters, the token path of Slack, Discord and Telegram
webhook URLs), and every value registered with :func:`register_secret` wherever it appears (formatted
exceptions included). Level and renderer are fixed at start: changing them takes a restart.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Key names that hold secrets. Identifiers that merely end in "key" are listed in _NOT_SECRET.
_SECRET_KEY = re.compile(r"secret|key|token|passw|passphrase|signature|authorization|credential|cookie", re.I)
_NOT_SECRET = frozenset({"dedup_key", "idempotency_key", "cooldown_key", "book_key", "sort_key"})
_SECRET_QUERY = re.compile(r"(?i)^(.*(token|key|secret|sig|signature|passw|auth|credential).*)$")
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s'\"<>]+)")
# Webhook services that put the credential in the path.
_PATH_TOKEN_HOSTS = re.compile(r"(?i)^(hooks\.slack\.com|(?:\w+\.)?discord(?:app)?\.com|api\.telegram\.org)$")
_MIN_SECRET_LEN = 6  # shorter registered values would mask ordinary words

_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in any log line from now on."""
    if len(value) >= _MIN_SECRET_LEN:
        _registered.add(value)


def scrub_text(text: str) -> str:
    """``text`` with registered secrets and URL credentials replaced by ``[redacted]``."""
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL.sub(_scrub_url, text)
    return text


def _scrub_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    authority, slash, path_query = rest.partition("/")
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rsplit('@', 1)[1]}"
    host = authority.rsplit("@", 1)[-1].split(":", 1)[0]
    if _PATH_TOKEN_HOSTS.match(host):
        return f"{scheme}{authority}/{REDACTED}" if slash else f"{scheme}{authority}"
    path, qmark, query = path_query.partition("?")
    if qmark:
        params = []
        for param in query.split("&"):
            name, eq, _value = param.partition("=")
            params.append(f"{name}={REDACTED}" if eq and _SECRET_QUERY.match(name) else param)
        query = "&".join(params)
    return f"{scheme}{authority}{slash}{path}{qmark}{query}"


def is_secret_key(name: str) -> bool:
    return name not in _NOT_SECRET and _SECRET_KEY.search(name) is not None


def redact(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, strings at any depth) with secrets masked."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    # Anything else is rendered through its repr: scrub that text rather than trust the object.
    return scrub_text(repr(value))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets at any depth of the event dict."""
    return {k: REDACTED if is_secret_key(k) else redact(v) for k, v in event_dict.items()}


def _orjson_str(obj: Any, **kwargs: Any) -> str:
    return orjson.dumps(obj, **kwargs).decode()


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_HANDLER_TAG = "_arbscan_handler"


def configure_logging(
    *,
    level: str = "info",
    json: bool | Literal["auto"] = "auto",
    stream: TextIO | None = None,
    cache: bool = True,
) -> None:
    """Configure structlog and the standard library's root logger (call once at start; idempotent).

    ``cache=False`` lets tests reconfigure: cached loggers keep the configuration they were first used with.
    """
    stream = stream if stream is not None else sys.stderr
    use_json = json if isinstance(json, bool) else not _isatty(stream)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Exceptions become text before redaction, so a URL quoted in a traceback is scrubbed too.
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    buffer: BinaryIO | None = getattr(stream, "buffer", None)
    logger_factory: Callable[..., WrappedLogger]
    renderer: Processor
    if use_json and buffer is not None:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        logger_factory = structlog.BytesLoggerFactory(file=buffer)
    elif use_json:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_str)
        logger_factory = structlog.PrintLoggerFactory(file=stream)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(stream))
        logger_factory = structlog.PrintLoggerFactory(file=stream)
    structlog.configure(
        cache_logger_on_first_use=cache,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        processors=[*shared, renderer],
        logger_factory=logger_factory,
    )

    stdlib_renderer: Processor = structlog.processors.JSONRenderer(serializer=_orjson_str) if use_json else renderer
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, stdlib_renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_TAG, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
