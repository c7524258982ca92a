"""Bybit in the venue registry (:mod:`feeds.venues`) and its history files in :mod:`feeds.recordings`.

Entries for spot, linear and inverse (one endpoint each). A recording is Bybit when cryptofeed named it
``BYBIT`` or its websocket host is ``stream.bybit.com``; the market is the endpoint's path
(``/v5/public/linear``). Bybit history files (:mod:`feeds.bybit.history`) take the market from their path.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from feeds.bybit.history import BybitHistoryFormat, market_hint
from feeds.bybit.protocol import URLS, BybitProtocol
from feeds.bybit.symbols import venue_symbol
from feeds.instruments import Market, Venue
from feeds.limits import BudgetSpec, VenueBudgets, register_budgets
from feeds.protocol import VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, Recording, register_format
from feeds.venues import (
    Endpoints,
    InstrumentTerms,
    ProtocolFactory,
    VenueEntry,
    register_detector,
    register_venue,
)

REST_URL = "https://api.bybit.com"
_HOSTS = ("stream.bybit.com", "stream-testnet.bybit.com")
_PATH_MARKETS = {"spot": Market.SPOT, "linear": Market.LINEAR, "inverse": Market.INVERSE}
# REST: 600 requests per 5 s per IP (HTTP 403 beyond, then stop ≥ 10 min); connections: 500 per 5 min.
BUDGETS = VenueBudgets(rest=BudgetSpec(600, 5.0), connect=BudgetSpec(500, 300.0), per_ip=True)


def _factory(market: Market) -> ProtocolFactory:
    def make(endpoints: Endpoints, terms: InstrumentTerms) -> VenueProtocol:
        # Inverse contracts are 1 USD each and the tickers state the funding interval: the metadata
        # refines, it is not required.
        return BybitProtocol(market, specs=terms.specs, intervals_ms=terms.funding_intervals_ms)

    return make


def snapshot_key(frame: RecordedFrame) -> str | None:
    return None  # books start from the websocket snapshot; recorded REST bodies are metadata


def detect(recording: Recording, sample: list[RecordedFrame]) -> tuple[Venue, Market] | None:
    if recording.format == BybitHistoryFormat.name:
        hint = dict(recording.options).get("market", "")
        return (Venue.BYBIT, _PATH_MARKETS[hint]) if hint in _PATH_MARKETS else None
    for frame in sample:
        if frame.kind is FrameKind.OPENED:
            parts = urlsplit(frame.url)
            if (parts.hostname or "") in _HOSTS or recording.exchange == "BYBIT":
                market = _PATH_MARKETS.get(parts.path.rstrip("/").rsplit("/", 1)[-1])
                if market is not None:
                    return Venue.BYBIT, market
    # No URL (our own recorder's files): Bybit pushes start with their topic; the market comes from the
    # path, or from funding fields (only linear/inverse tickers have them; inverse symbols end in USD).
    pushes = [f.payload for f in sample if f.kind is FrameKind.WS and f.payload.startswith(b'{"topic":"')]
    if not pushes:
        return None
    hint = market_hint(Path(recording.paths[0]), "")
    if hint in _PATH_MARKETS:
        return Venue.BYBIT, _PATH_MARKETS[hint]
    for payload in pushes:
        if payload.startswith(b'{"topic":"tickers.') and b'"fundingRate"' in payload:
            symbol = payload[18 : payload.find(b'"', 18)]
            return Venue.BYBIT, Market.INVERSE if symbol.endswith(b"USD") else Market.LINEAR
    return None


def register() -> None:
    for market, url in URLS.items():
        register_venue(
            VenueEntry(
                Venue.BYBIT, market, Endpoints(url, REST_URL), _factory(market), snapshot_key, naming=venue_symbol
            )
        )
        register_budgets(Venue.BYBIT, market, BUDGETS)
    register_detector(detect)
    register_format(BybitHistoryFormat())


register()
