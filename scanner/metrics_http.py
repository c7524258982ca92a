"""The Prometheus endpoint: ``GET /metrics`` of one registry, served by aiohttp on the daemon's event loop.

Bind to loopback by default (``127.0.0.1:9464``); port 0 picks a free port (:attr:`MetricsServer.port`
says which, for tests and the demo). Scrapes run on the event loop: collecting is a few hundred
microseconds, shorter than any frame burst.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scanner.errors import ScannerError


class MetricsServer:
    """``await server.start()`` … ``await server.stop()``."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, *, before_scrape: Callable[[], None] | None = None
    ) -> None:
        self.registry = registry
        self.before_scrape = before_scrape  # brings counters kept outside Prometheus up to date
        self.host = host
        self.requested_port = port
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.host}:{self.requested_port}"
            raise ScannerError(f"metrics.listen {where}: cannot listen: {exc.strerror or exc}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.before_scrape is not None:
            self.before_scrape()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="arbscan: metrics at /metrics\n")
