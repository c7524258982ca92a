"""Settled funding history over REST, for every perpetual venue, through the shared REST budget.

The request builders and parsers are pure (``feeds/<venue>/funding.py``); this module pages through a time
range with them. Binance pages forward (ascending, ``startTime``), Bybit and OKX backward (newest first,
``endTime`` / ``after``). Used by reports and by the funding strategy's horizon estimate.
"""

from __future__ import annotations

from feeds.binance import funding as binance
from feeds.bybit import funding as bybit
from feeds.errors import MalformedFrame
from feeds.funding import FundingRecord
from feeds.instruments import Market, Venue
from feeds.metadata_loader import REST_URLS, funding_budget, rest_budget
from feeds.okx import funding as okx
from feeds.protocol import RestRequest
from feeds.rest import RestClient

MAX_PAGES = 100


async def _get(rest: RestClient, venue: Venue, market: Market, request: RestRequest, base_url: str | None) -> bytes:
    url = base_url or REST_URLS[(venue, market)]
    # Binance: fundingRate and fundingInfo have their own pool (500 per 5 min per IP), not the weight budget.
    budget = funding_budget(rest, venue, market) if venue is Venue.BINANCE else rest_budget(rest, venue, market)
    response = await rest.fetch(url, request, budget=budget, venue=str(venue))
    return response.body


async def fetch_history(
    rest: RestClient,
    venue: Venue,
    market: Market,
    symbol: str,
    *,
    start_ms: int,
    end_ms: int,
    base_url: str | None = None,
) -> list[FundingRecord]:
    """Every funding settled in ``[start_ms, end_ms]`` for one perpetual, oldest first, no duplicates."""
    if end_ms < start_ms:
        raise ValueError(f"funding history: end {end_ms} before start {start_ms}")
    found: dict[int, FundingRecord] = {}
    for _ in range(MAX_PAGES):
        if venue is Venue.BINANCE:
            request = binance.history_request(symbol, start_ms=start_ms, end_ms=end_ms)
            page = binance.parse_history(await _get(rest, venue, market, request, base_url), market=market)
        elif venue is Venue.BYBIT:
            request = bybit.history_request(symbol, category=str(market), end_ms=end_ms)
            page = bybit.parse_history(await _get(rest, venue, market, request, base_url), market=market)
        elif venue is Venue.OKX:
            request = okx.history_request(symbol, after_ms=end_ms + 1)
            page = okx.parse_history(await _get(rest, venue, market, request, base_url))
        else:
            raise ValueError(f"no funding history for {venue}/{market}")
        fresh = [r for r in page if start_ms <= r.funding_ms <= end_ms and r.funding_ms not in found]
        for record in fresh:
            found[record.funding_ms] = record
        if not fresh or not page:
            break
        if venue is Venue.BINANCE:
            start_ms = page[-1].funding_ms + 1  # ascending pages: continue after the newest
            if start_ms > end_ms:
                break
        else:
            end_ms = page[0].funding_ms - 1  # descending pages: continue before the oldest
            if end_ms < start_ms:
                break
    else:
        raise MalformedFrame(f"funding history {symbol}: more than {MAX_PAGES} pages", venue=venue)
    return [found[t] for t in sorted(found)]
