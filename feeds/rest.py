"""REST calls for the feeds: one shared aiohttp session per process, each call paid from a venue's weight budget.

Every REST request a feed makes (depth snapshots above all) goes through :meth:`RestClient.fetch`, which
first takes the request's weight from the venue's :class:`~feeds.budget.WindowBudget` (queueing in FIFO
order when the budget is spent), then performs the call on the one :class:`aiohttp.ClientSession`, and maps
the outcome onto :mod:`feeds.errors`:

=====================================  ==========================================================
HTTP 429 / 418 (Binance ban)           :class:`RateLimited` with ``Retry-After``; the budget pauses
HTTP 5xx, timeouts, transport errors   :class:`ConnectionLost` (retryable)
other HTTP 4xx                         :class:`VenueRejected` (not retried blindly)
=====================================  ==========================================================

A venue that reports the weight its IP has used (Binance: ``X-MBX-USED-WEIGHT-1M`` on every answer) is
believed when it says more than we counted: another process on the same IP, or a weight priced low,
then tightens the budget (:meth:`~feeds.budget.WindowBudget.observe_used`) before a 429 does.

A feed never awaits this inside frame handling: it runs in the feed's own snapshot tasks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import structlog

from feeds.backoff import retry_after_seconds
from feeds.budget import BudgetRegistry, WindowBudget
from feeds.errors import ConnectionLost, LocalProtocolError, RateLimited, VenueRejected
from feeds.protocol import RestRequest

# Without a Retry-After header: 429 means "slow down" (Binance: back off at least a minute), 418 means the
# IP is already banned (Binance bans last minutes to days; the header normally says how long).
log = structlog.get_logger("feeds.rest")

DEFAULT_RETRY_AFTER_S = {429: 60.0, 418: 120.0}
# Used-weight headers by the window they count (seconds), for the budgets with that window.
USED_WEIGHT_HEADERS = {60.0: "X-MBX-USED-WEIGHT-1M"}


@dataclass(frozen=True, slots=True)
class RestResponse:
    """A successful (2xx) answer: raw body and the local monotonic receive time."""

    status: int
    body: bytes
    recv_ns: int
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestConfig:
    total_timeout_s: float = 10.0  # one request, connect to last byte
    connect_timeout_s: float = 5.0
    max_body_bytes: int = 32 * 1024 * 1024  # a 5000-level Binance snapshot is ~250 kB
    user_agent: str = "arbscan"

    def __post_init__(self) -> None:
        if self.total_timeout_s <= 0 or self.connect_timeout_s <= 0 or self.max_body_bytes <= 0:
            raise ValueError(f"invalid REST config: {self}")


class RestClient:
    """The process's REST client. Use as ``async with RestClient() as rest:``.

    ``budgets`` hands out the per-venue budgets (``rest.budgets.get("binance:spot:rest", limit=6000,
    window_s=60)``); every feed of a venue must use the same one, since the venue counts weight per IP.
    """

    def __init__(self, config: RestConfig | None = None, *, budgets: BudgetRegistry | None = None) -> None:
        self.config = config or RestConfig()
        self.budgets = budgets or BudgetRegistry()
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.failures = 0
        self.weight_corrections = 0  # answers whose used-weight header said more than our budget had counted
        self.bad_weight_headers = 0

    async def __aenter__(self) -> RestClient:
        if self._session is not None:
            raise LocalProtocolError("RestClient entered twice")
        cfg = self.config
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=cfg.total_timeout_s, sock_connect=cfg.connect_timeout_s),
            headers={"User-Agent": cfg.user_agent},
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise LocalProtocolError("RestClient used outside `async with`")
        return self._session

    async def fetch(self, base_url: str, request: RestRequest, *, budget: WindowBudget, venue: str) -> RestResponse:
        """Perform ``request`` against ``base_url`` once, after paying its weight. Raises feeds errors."""
        session = self.session
        url = base_url.rstrip("/") + request.path
        await budget.acquire(request.weight, label=f"{request.path}?{_query(request.params)}")
        self.requests += 1
        try:
            async with session.request(request.method, url, params=request.params) as resp:
                body = await _read_capped(resp.content, self.config.max_body_bytes + 1)
                recv_ns = time.monotonic_ns()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                header = USED_WEIGHT_HEADERS.get(budget.window_s)
                used = resp.headers.get(header) if header is not None else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failures += 1
            raise ConnectionLost(f"{venue}: {request.method} {url}: {type(exc).__name__}: {exc}") from exc
        if used is not None:
            self._observe_used(budget, venue, header, used)
        if 200 <= status < 300:
            if len(body) > self.config.max_body_bytes:
                self.failures += 1
                raise VenueRejected(venue, f"{url}: body larger than {self.config.max_body_bytes} bytes", status=status)
            return RestResponse(status, body, recv_ns, url)
        self.failures += 1
        detail = f"{request.method} {url}: {body[:200].decode('utf-8', 'replace')}"
        if status in DEFAULT_RETRY_AFTER_S:
            wait = retry_after_seconds(retry_after) or DEFAULT_RETRY_AFTER_S[status]
            budget.pause_for(wait)  # everyone queued on this venue waits too: never hammer a limiter
            raise RateLimited(venue, retry_after_s=wait)
        if status >= 500:
            raise ConnectionLost(f"{venue}: HTTP {status} from {detail}")
        raise VenueRejected(venue, detail, status=status)


    def _observe_used(self, budget: WindowBudget, venue: str, header: str | None, value: str) -> None:
        if not value.isdigit():
            self.bad_weight_headers += 1
            if self.bad_weight_headers == 1:
                log.warning("bad used-weight header", venue=venue, header=header, value=value[:40])
            return
        # Wall clock on purpose: the venue counts calendar minutes (the budget's own ages stay monotonic).
        extra = budget.observe_used(int(value), window_elapsed_s=time.time() % budget.window_s)
        if extra:
            self.weight_corrections += 1
            n = self.weight_corrections
            if n <= 10 or n & (n - 1) == 0:  # visible, never a flood
                log.warning("venue counts more weight", venue=venue, budget=budget.name, extra=extra, count=n)


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes. (``StreamReader.read(n)`` returns what is buffered, up to n: a
    body larger than one chunk would come back cut short.)"""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())
