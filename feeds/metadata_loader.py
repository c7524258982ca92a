"""Loading instrument metadata over REST into an :class:`~feeds.metadata.InstrumentCatalog`, and refreshing it.

A thin pump around the pure parsers: each (venue, market) has a :class:`MetadataSource` that builds the
requests and decodes the replies (following Bybit's page cursor); the calls go through the shared
:class:`~feeds.rest.RestClient` and the venue's REST budget (:mod:`feeds.limits`), the same budget the
venue's feeds draw their snapshots from. :func:`refresh_forever` reloads on an interval; its owner runs it
in a TaskGroup. A failed refresh keeps the previous metadata (and is logged and counted), never empties it.

Binance USD-M states funding intervals apart from ``exchangeInfo``: ``/fapi/v1/fundingInfo`` lists the
symbols whose interval was adjusted (4 h, 1 h), every other perpetual funds every 8 h. A USD-M load
fetches both (fundingInfo from its own request pool) and gives every perpetual its interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from feeds.binance import funding as binance_funding
from feeds.binance import instruments as binance
from feeds.budget import WindowBudget
from feeds.bybit import instruments as bybit
from feeds.errors import ConnectionLost, FeedError, MalformedFrame, RateLimited, VenueRejected
from feeds.funding import DEFAULT_INTERVAL_MS
from feeds.instruments import Kind, Market, Venue
from feeds.kraken import instruments as kraken
from feeds.limits import venue_budgets
from feeds.metadata import InstrumentCatalog, InstrumentMeta, ParsedMetadata
from feeds.okx import instruments as okx
from feeds.protocol import RestRequest
from feeds.rest import RestClient

log = structlog.get_logger("feeds.metadata")

REST_URLS = {
    (Venue.BINANCE, Market.SPOT): "https://api.binance.com",
    (Venue.BINANCE, Market.USDM): "https://fapi.binance.com",
    (Venue.BINANCE, Market.COINM): "https://dapi.binance.com",
    (Venue.BYBIT, Market.SPOT): "https://api.bybit.com",
    (Venue.BYBIT, Market.LINEAR): "https://api.bybit.com",
    (Venue.BYBIT, Market.INVERSE): "https://api.bybit.com",
    (Venue.OKX, Market.SPOT): "https://www.okx.com",
    (Venue.OKX, Market.MARGIN): "https://www.okx.com",
    (Venue.OKX, Market.SWAP): "https://www.okx.com",
    (Venue.OKX, Market.FUTURES): "https://www.okx.com",
    (Venue.KRAKEN, Market.SPOT): "https://api.kraken.com",
}
MAX_PAGES = 50  # Bybit pages of 1000: far more instruments than any venue lists

#: First request, and a parser returning the page's metadata plus the next request (None on the last page).
Parse = Callable[[bytes], tuple[ParsedMetadata, RestRequest | None]]


@dataclass(frozen=True, slots=True)
class MetadataSource:
    venue: Venue
    market: Market
    first: RestRequest
    parse: Parse


def _single(parse: Callable[[bytes], ParsedMetadata]) -> Parse:
    return lambda body: (parse(body), None)


def _bybit(market: Market) -> Parse:
    def parse(body: bytes) -> tuple[ParsedMetadata, RestRequest | None]:
        page, cursor = bybit.parse_instruments(body, market)
        return page, bybit.instruments_request(market, cursor) if cursor else None

    return parse


def has_source(venue: Venue, market: Market) -> bool:
    """Does (venue, market) publish instrument metadata we load? (Huobi, options: no.)"""
    return (venue, market) in REST_URLS


def source(venue: Venue, market: Market) -> MetadataSource:
    """The metadata source of one (venue, market)."""
    if venue is Venue.BINANCE:
        request = binance.exchange_info_request(market)
        return MetadataSource(venue, market, request, _single(lambda b: binance.parse_exchange_info(b, market)))
    if venue is Venue.BYBIT:
        return MetadataSource(venue, market, bybit.instruments_request(market), _bybit(market))
    if venue is Venue.OKX:
        return MetadataSource(venue, market, okx.instruments_request(market), _single(okx.parse_instruments))
    if venue is Venue.KRAKEN and market is Market.SPOT:
        return MetadataSource(venue, market, kraken.asset_pairs_request(), _single(kraken.parse_asset_pairs))
    raise ValueError(f"no instrument metadata source for {venue}/{market}")


def rest_budget(rest: RestClient, venue: Venue, market: Market) -> WindowBudget:
    """The venue's REST budget, shared with its feeds (same name and limits as :class:`feeds.feed.VenueFeed`)."""
    budgets = venue_budgets(venue, market)
    spec = budgets.rest
    return rest.budgets.get(f"{budgets.prefix(venue, market)}:rest", limit=spec.limit, window_s=spec.window_s)


def funding_budget(rest: RestClient, venue: Venue, market: Market) -> WindowBudget:
    """Binance's fundingInfo/fundingRate pool (500 per 5 min per IP), apart from the request-weight budget."""
    return rest.budgets.get(
        f"{venue}:{market}:funding",
        limit=binance_funding.FUNDING_POOL_LIMIT,
        window_s=binance_funding.FUNDING_POOL_WINDOW_S,
    )


@dataclass(slots=True)
class LoadResult:
    instruments: list[InstrumentMeta] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    requests: int = 0
    adjusted_intervals: int = 0  # Binance USD-M: perpetuals fundingInfo lists (the others fund every 8 h)


def with_funding_info(metas: list[InstrumentMeta], listed: dict[str, int]) -> list[InstrumentMeta]:
    """Binance USD-M perpetuals with their interval: the one fundingInfo lists, else the documented 8 h."""
    return [
        dataclasses.replace(m, funding_interval_ms=listed.get(m.venue_symbol, DEFAULT_INTERVAL_MS))
        if m.instrument.kind is Kind.PERP
        else m
        for m in metas
    ]


async def load(rest: RestClient, venue: Venue, market: Market, *, base_url: str | None = None) -> LoadResult:
    """Fetch and decode every page of one (venue, market)'s metadata. Raises feeds errors."""
    src = source(venue, market)
    url = base_url or REST_URLS[(venue, market)]
    budget = rest_budget(rest, venue, market)
    result = LoadResult()
    request: RestRequest | None = src.first
    while request is not None:
        if result.requests >= MAX_PAGES:
            raise MalformedFrame(f"instrument metadata: more than {MAX_PAGES} pages", venue=venue)
        response = await rest.fetch(url, request, budget=budget, venue=str(venue))
        result.requests += 1
        page, request = src.parse(response.body)
        result.instruments.extend(page.instruments)
        result.skipped.extend(page.skipped)
    if venue is Venue.BINANCE and market is Market.USDM:
        info = binance_funding.funding_info_request()
        response = await rest.fetch(url, info, budget=funding_budget(rest, venue, market), venue=str(venue))
        result.requests += 1
        listed = binance_funding.parse_funding_info(response.body)
        result.instruments = with_funding_info(result.instruments, listed)
        result.adjusted_intervals = len(listed)
    return result


@dataclass(slots=True)
class RefreshStats:
    loads: int = 0
    failures: int = 0
    last_error: str = ""


async def refresh_once(
    catalog: InstrumentCatalog, rest: RestClient, venue: Venue, market: Market, *, base_url: str | None = None
) -> LoadResult:
    """Load one (venue, market) and install it in the catalog (an empty answer is refused, not installed)."""
    result = await load(rest, venue, market, base_url=base_url)
    if not result.instruments:
        raise MalformedFrame(f"instrument metadata of {market}: no instruments in the reply", venue=venue)
    catalog.replace(venue, market, result.instruments)
    log.info(
        "instruments loaded",
        venue=str(venue),
        market=str(market),
        count=len(result.instruments),
        skipped=len(result.skipped),
        adjusted_funding_intervals=result.adjusted_intervals,
    )
    return result


async def refresh_forever(
    catalog: InstrumentCatalog,
    rest: RestClient,
    venue: Venue,
    market: Market,
    *,
    interval_s: float = 3600.0,
    retry_s: float = 60.0,
    base_url: str | None = None,
    stats: RefreshStats | None = None,
    on_loaded: Callable[[LoadResult], None] | None = None,
    initial_delay_s: float = 0.0,
) -> None:
    """Reload on an interval until cancelled; a failure keeps the old metadata and retries sooner.

    ``initial_delay_s``: wait this long before the first load (the caller loaded at start already).
    ``on_loaded`` runs after each installed load (the daemon re-applies contract terms to its books).
    """
    stats = stats if stats is not None else RefreshStats()
    await asyncio.sleep(initial_delay_s)
    while True:
        try:
            result = await refresh_once(catalog, rest, venue, market, base_url=base_url)
        except (ConnectionLost, RateLimited, VenueRejected, MalformedFrame) as exc:
            stats.failures += 1
            stats.last_error = str(exc)
            wait = max(retry_s, exc.retry_after_s if isinstance(exc, RateLimited) else 0.0)
            log.warning("instrument refresh failed", venue=str(venue), market=str(market), error=str(exc))
            await asyncio.sleep(wait)
            continue
        except FeedError:
            raise  # our own misuse (LocalProtocolError): never retried
        stats.loads += 1
        if on_loaded is not None:
            on_loaded(result)
        await asyncio.sleep(interval_s)
