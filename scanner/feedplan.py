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

Venue symbols come from each venue's registry entry (``entry.venue_symbol``); protocols get their
instrument terms (contract sizes, funding intervals) as live views of an
:class:`~feeds.metadata.InstrumentCatalog`. :func:`check_metadata` refuses to start a feed of contracts
(OKX swaps and futures, Binance COIN-M) whose instrument the loaded metadata does not list: without its
contract size every depth would be off by that factor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import feeds.replay.csvbook  # noqa: F401  (registers huobi/spot, reachable only as the csv-replay series)
from feeds.binance.funding import usdm_funding_protocol
from feeds.errors import UnknownInstrument
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.metadata import InstrumentCatalog
from feeds.metadata_loader import has_source
from feeds.protocol import Channel, Subscription, VenueProtocol
from feeds.venues import NO_TERMS, Endpoints, InstrumentTerms, VenueEntry, feed_key, get_entry
from scanner.config import Config, FeedConfig
from scanner.errors import ConfigError

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
    feed_index: int = 0  # which [[feeds]] entry
    metadata: bool = False  # load this (venue, market)'s instrument metadata from rest_url (not a csv-replay)


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


def _symbol(entry: VenueEntry, instrument: InstrumentId, index: int) -> str:
    try:
        return entry.venue_symbol(instrument)
    except UnknownInstrument as exc:
        raise ConfigError("(config)", [(f"feeds[{index}].symbols", str(exc))]) from None


def _terms(catalog: InstrumentCatalog | None, venue: Venue, market: Market, strict: bool) -> InstrumentTerms:
    if catalog is None:
        return InstrumentTerms(strict=strict) if strict else NO_TERMS
    return InstrumentTerms(catalog.spec_view(venue, market), catalog.interval_view(venue, market), strict)


def plan_feeds(
    config: Config,
    *,
    catalog: InstrumentCatalog | None = None,
    strict: bool = False,
    endpoints_hook: EndpointsHook | None = None,
    protocol_hook: ProtocolHook | None = None,
    label: str = LIVE,
) -> list[FeedPlan]:
    """The feeds of ``config``. ``catalog``: instrument metadata for the protocols (live views);
    ``strict``: a contract book without metadata is an error (the daemon, once metadata is loaded)."""
    plans: list[FeedPlan] = []
    for index, feed in enumerate(config.feeds):
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
        symbols = {i: _symbol(entry, i, index) for i in instruments}
        hooked = protocol_hook(feed, endpoints) if protocol_hook is not None else None
        terms = _terms(catalog, feed.venue, feed.market, strict)
        if hooked is not None:
            protocol, feed_label, endpoints = hooked
            subs = tuple(Subscription(symbols[i], Channel.BOOK) for i in instruments)
        else:
            protocol, feed_label = entry.protocol(endpoints, terms), label
            subs = tuple(
                Subscription(symbols[i], channel)
                for i in instruments
                for channel in (
                    *_book_channels(feed.venue),
                    *((Channel.FUNDING,) if _funding_inline(feed.venue, feed.market, i) else ()),
                )
            )
        name = f"{feed.venue}:{feed.market}"
        metadata = hooked is None and has_source(feed.venue, feed.market)
        plans.append(
            FeedPlan(
                name,
                feed.venue,
                feed.market,
                feed_label,
                protocol,
                subs,
                endpoints.ws,
                endpoints.rest,
                instruments,
                index,
                metadata,
            )
        )
        perps = tuple(i for i in instruments if i.kind is Kind.PERP)
        if hooked is None and feed.venue is Venue.BINANCE and feed.market is Market.USDM and perps:
            market_url = endpoints.extra.get("market")
            if market_url:
                funding = usdm_funding_protocol(terms.funding_intervals_ms, ws_url=market_url, rest_url=endpoints.rest)
                plans.append(
                    FeedPlan(
                        f"{name}/market",
                        feed.venue,
                        feed.market,
                        feed_label,
                        funding,
                        tuple(Subscription(symbols[i], Channel.FUNDING) for i in perps),
                        market_url,
                        endpoints.rest,
                        perps,
                        index,
                    )
                )
    return plans


def unreachable_feeds(config: Config) -> list[tuple[str, str]]:
    """(key path, reason) of each [[feeds]] entry no live venue serves (huobi: only the demo's csv-replay),
    unless its ws_url names a replay. ``arbscan run`` refuses them: planned, they would retry a placeholder
    address for ever."""
    return [
        (
            f"feeds[{index}].venue",
            f"got {str(feed.venue)!r}: {feed.venue}:{feed.market} has no live feed, only the demo's csv-replay",
        )
        for index, feed in enumerate(config.feeds)
        if not get_entry(feed.venue, feed.market).live and not feed.ws_url
    ]


def feed_labels(plans: Sequence[FeedPlan]) -> list[str]:
    """Each plan's ``feed`` metric label: its name, with ``#<[[feeds]] index>`` where two entries share it."""
    names = Counter(plan.name for plan in plans)
    return [plan.name if names[plan.name] == 1 else f"{plan.name}#{plan.feed_index}" for plan in plans]


def check_metadata(plans: list[FeedPlan], catalog: InstrumentCatalog, source: str) -> None:
    """Every contract-quoted instrument of a metadata-loading feed must be in ``catalog`` (ConfigError: 2)."""
    problems: list[tuple[str, str]] = []
    for plan in plans:
        entry = get_entry(plan.venue, plan.market)
        if not plan.metadata or not entry.contract_quoted:
            continue
        for instrument in plan.instruments:
            symbol = entry.venue_symbol(instrument)
            if catalog.by_symbol(plan.venue, plan.market, symbol) is None:
                problems.append(
                    (
                        f"feeds[{plan.feed_index}].symbols",
                        f"{plan.venue}/{plan.market} {instrument.symbol} (venue symbol {symbol}): the venue's "
                        f"instrument metadata does not list it, so its contract size is unknown "
                        f"({plan.venue}/{plan.market} books are quoted in contracts)",
                    )
                )
    if problems:
        raise ConfigError(source, problems)


def instrument_keys(config: Config) -> dict[InstrumentId, str]:
    """Every streamed instrument and the feed key its updates arrive under."""
    return {i: feed_key(i) for i in config.instruments()}


def keys_by_plan(plans: list[FeedPlan]) -> Mapping[str, FeedPlan]:
    return {feed_key(i): p for p in plans for i in p.instruments}
