"""Which feeds the config asks for: protocol, endpoints, subscriptions and label of each venue connection set.

One ``[[feeds]]`` entry becomes one :class:`FeedPlan` (Binance USD-M perpetuals add a second one on the
``/market`` route for their mark-price funding stream, exchange-protocols.md §2.1). Channels per venue:

=================================  ===========================================================
Binance spot                       depth diffs + bookTicker
Binance USD-M / COIN-M             depth diffs + bookTicker; USD-M perps: markPrice on ``/market``
Bybit linear / inverse perps       orderbook + tickers (funding)
OKX swaps                          books + funding-rate
others                             books only
=================================  ===========================================================

Endpoints are the venue registry's real URLs unless the config overrides them (``ws_url``/``rest_url``)
or the caller supplies replay endpoints (the demo, tests). A ``protocol_hook`` may replace the protocol
of a feed entirely: the demo uses it for the ``csv-replay`` series, which are not wire format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import feeds.bybit.venue
import feeds.kraken.venue
import feeds.okx.venue  # noqa: F401  (the imports above register those venues)
from feeds.binance.funding import usdm_funding_protocol
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.protocol import Channel, Subscription, VenueProtocol
from feeds.venues import Endpoints, get_entry
from scanner.config import Config, FeedConfig
from scanner.symbols import feed_key, venue_symbol

LIVE = "live"


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One :class:`feeds.feed.VenueFeed` to run."""

    name: str  # "binance:usdm", "binance:usdm/market"
    venue: Venue
    market: Market
    label: str  # "live", "replay", "csv-replay": shown in logs and the summary
    protocol: VenueProtocol
    subscriptions: tuple[Subscription, ...]
    ws_url: str
    rest_url: str
    instruments: tuple[InstrumentId, ...]


#: (feed entry, endpoints) -> (protocol, label, endpoints), or None to use the venue registry's protocol.
ProtocolHook = Callable[[FeedConfig, Endpoints], "tuple[VenueProtocol, str, Endpoints] | None"]
#: (venue, market) -> endpoints to use instead of the real ones (a replay exchange), or None.
EndpointsHook = Callable[[Venue, Market], "Endpoints | None"]


def _book_channels(venue: Venue) -> tuple[Channel, ...]:
    return (Channel.BOOK, Channel.TOP) if venue is Venue.BINANCE else (Channel.BOOK,)


def _funding_inline(venue: Venue, market: Market, instrument: InstrumentId) -> bool:
    """Does the book connection also carry this instrument's funding stream?"""
    if instrument.kind is not Kind.PERP:
        return False
    return (venue is Venue.BYBIT and market in (Market.LINEAR, Market.INVERSE)) or (
        venue is Venue.OKX and market is Market.SWAP
    )


def _sibling(override: str, default: str, route: str) -> str:
    """``route``'s last path segment on ``override``'s parent, when ``route`` is a sibling of ``default``."""
    default_parent, _, _ = default.rstrip("/").rpartition("/")
    route_parent, _, segment = route.rstrip("/").rpartition("/")
    if route_parent != default_parent:
        return route  # not a sibling route: nothing to derive (and no such venue today)
    return f"{override.rstrip('/').rpartition('/')[0]}/{segment}"


def plan_feeds(
    config: Config,
    *,
    endpoints_hook: EndpointsHook | None = None,
    protocol_hook: ProtocolHook | None = None,
    label: str = LIVE,
) -> list[FeedPlan]:
    plans: list[FeedPlan] = []
    for feed in config.feeds:
        entry = get_entry(feed.venue, feed.market)
        given = endpoints_hook(feed.venue, feed.market) if endpoints_hook is not None else None
        base = given or entry.endpoints
        extra = dict(base.extra)
        if feed.ws_url:
            # Other routes of the same host move with an overridden websocket URL (USD-M /public → /market),
            # so an override never leaves one connection pointing at the real venue.
            extra = {name: _sibling(feed.ws_url, base.ws, url) for name, url in extra.items()}
        endpoints = Endpoints(feed.ws_url or base.ws, feed.rest_url or base.rest, extra)
        instruments = feed.instruments()
        hooked = protocol_hook(feed, endpoints) if protocol_hook is not None else None
        if hooked is not None:
            protocol, feed_label, endpoints = hooked
            subs = tuple(Subscription(venue_symbol(i), Channel.BOOK) for i in instruments)
        else:
            protocol, feed_label = entry.protocol(endpoints), label
            subs = tuple(
                Subscription(venue_symbol(i), channel)
                for i in instruments
                for channel in (
                    *_book_channels(feed.venue),
                    *((Channel.FUNDING,) if _funding_inline(feed.venue, feed.market, i) else ()),
                )
            )
        name = f"{feed.venue}:{feed.market}"
        plans.append(
            FeedPlan(
                name, feed.venue, feed.market, feed_label, protocol, subs, endpoints.ws, endpoints.rest, instruments
            )
        )
        perps = tuple(i for i in instruments if i.kind is Kind.PERP)
        if hooked is None and feed.venue is Venue.BINANCE and feed.market is Market.USDM and perps:
            market_url = endpoints.extra.get("market")
            if market_url:
                funding = usdm_funding_protocol(ws_url=market_url, rest_url=endpoints.rest)
                plans.append(
                    FeedPlan(
                        f"{name}/market",
                        feed.venue,
                        feed.market,
                        feed_label,
                        funding,
                        tuple(Subscription(venue_symbol(i), Channel.FUNDING) for i in perps),
                        market_url,
                        endpoints.rest,
                        perps,
                    )
                )
    return plans


def instrument_keys(config: Config) -> dict[InstrumentId, str]:
    """Every streamed instrument and the feed key its updates arrive under."""
    return {i: feed_key(i) for i in config.instruments()}


def keys_by_plan(plans: list[FeedPlan]) -> Mapping[str, FeedPlan]:
    return {feed_key(i): p for p in plans for i in p.instruments}
