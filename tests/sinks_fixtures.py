"""Helpers for the sink tests (journal, outbox, alerts): a real webhook receiver and polling with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aiohttp import web

from scanner.alerts import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from scanner.config import WebhookConfig
from tests.conftest import timeout

KEY = "receiver-hmac-key-0123456789"


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after a deadline scaled by ARBSCAN_TESTS_TIMEOUT_FACTOR."""
    deadline = time.monotonic() + timeout(seconds)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout(seconds):.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Delivery:
    path: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    signature_ok: bool | None  # None: the request was not signed


@dataclass
class Receiver:
    """A real aiohttp webhook receiver on 127.0.0.1 that checks HMAC signatures and records what it got.

    ``statuses`` is consumed one answer per request (then 200); ``stop()``/``start()`` take the listening
    socket down and up again on the same port.
    """

    key: bytes = KEY.encode()
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    echo_path: bool = False  # a refusal answers "Cannot POST <path?query>", as Express does
    retry_after: str | None = None
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str = "hook", query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        signature = request.headers.get(SIGNATURE_HEADER)
        stamp = request.headers.get(TIMESTAMP_HEADER)
        ok = None if signature is None else stamp is not None and verify(self.key, stamp, raw, signature)
        status = self.statuses.pop(0) if self.statuses else 200
        if 200 <= status < 300:
            self.deliveries.append(Delivery(request.path, orjson.loads(raw), raw, dict(request.headers), ok))
        headers = {"Retry-After": self.retry_after} if self.retry_after and status == 429 else {}
        refusal = f"Cannot POST {request.path_qs}" if self.echo_path else "no"
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else refusal)

    def keys(self) -> list[str]:
        return [d.headers[IDEMPOTENCY_HEADER] for d in self.deliveries]


def webhook(name: str, url: str, **overrides: Any) -> WebhookConfig:
    """A webhook config validated the way load_config validates it."""
    raw: dict[str, Any] = {"name": name, "url": url, "secret_env": "ARBSCAN_TEST_WEBHOOK_KEY"}
    raw.update(overrides)
    return msgspec.convert(raw, WebhookConfig, strict=True)


class Decision(msgspec.Struct, frozen=True):
    """Stands in for rules' decision (opaque to the sinks): a struct with floats, NaN and an enum-like str."""

    strategy: str
    candidate_id: str
    net_bps: float
    size_usd: float
    slippage_bps: float
    funding_source: str | None = None
    primary_reason: str | None = None
