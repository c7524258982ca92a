"""The venue registry: (venue, market) → how to build its protocol, its real endpoints, and how to recognise it.

Everything that must name venues to stay generic elsewhere lives here: the connection runner, the replay
exchange and ``verify-books`` look a venue up by (venue, market) or detect it from a recording, then work
only through :class:`feeds.protocol.VenueProtocol`. Venues are added with :func:`register_venue` (an
entry) and :func:`register_detector` (recognising recordings); Binance spot, USD-M and COIN-M are
registered below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from feeds.binance.protocol import (
    COINM_REST_URL,
    COINM_WS_URL,
    SPOT_REST_URL,
    SPOT_WS_URL,
    USDM_MARKET_WS_URL,
    USDM_REST_URL,
    USDM_WS_URL,
    BinanceProtocol,
)
from feeds.binance.symbols import venue_symbol as binance_symbol
from feeds.errors import RecordingError, UnknownInstrument
from feeds.instruments import InstrumentId, InstrumentSpec, Market, Venue
from feeds.protocol import VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, Recording
from feeds.updates import book_key


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Base URLs of one (venue, market). ``extra`` holds further named bases (USD-M ``market``)."""

    ws: str
    rest: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InstrumentTerms:
    """What a protocol needs from instrument metadata (:mod:`feeds.metadata`), by venue symbol.

    ``specs`` give books their contract terms (OKX swaps and futures, Binance COIN-M are quoted in
    contracts); ``funding_intervals_ms`` the listed funding interval (Binance USD-M ``fundingInfo``).
    The daemon passes live views of its catalog, so a refresh shows through. ``strict``: a contract book
    without a spec is an error rather than a book walked in base units (the daemon); offline tools
    (verify-books, the replay exchange) leave it off.
    """

    specs: Mapping[str, InstrumentSpec] = field(default_factory=dict)
    funding_intervals_ms: Mapping[str, int] = field(default_factory=dict)
    strict: bool = False


NO_TERMS = InstrumentTerms()

ProtocolFactory = Callable[[Endpoints, InstrumentTerms], VenueProtocol]
#: Canonical instrument → the venue's symbol (None: the venue has no name for it).
SymbolNaming = Callable[[InstrumentId], "str | None"]
#: Venue symbol → canonical instrument, where the symbol's shape says it (None: ask the metadata catalog).
SymbolParsing = Callable[[str], "InstrumentId | None"]
SnapshotKey = Callable[[RecordedFrame], "str | None"]
Detector = Callable[[Recording, list[RecordedFrame]], "tuple[Venue, Market] | None"]


@dataclass(frozen=True, slots=True)
class VenueEntry:
    """What the rest of the code needs to know about one (venue, market).

    ``make_protocol`` builds a protocol for the given endpoints (tests and the demo pass loopback URLs)
    and instrument terms. ``snapshot_key`` says which book a recorded REST response is a depth snapshot
    of (None for metadata such as ``exchangeInfo``); ``verify-books`` and the replay exchange use it.
    ``naming``/``parsing`` translate canonical ids to venue symbols and back: venue symbols live only in
    ``feeds/<venue>/``. ``contract_quoted``: books count contracts whose size only the instrument
    metadata states (OKX swaps/futures, Binance COIN-M), so the daemon refuses to start without it.
    ``live``: the entry's own endpoints reach the venue (False: only given endpoints, a replay, serve it).
    """

    venue: Venue
    market: Market
    endpoints: Endpoints
    make_protocol: ProtocolFactory
    snapshot_key: SnapshotKey
    naming: SymbolNaming = lambda instrument: None
    parsing: SymbolParsing = lambda symbol: None
    contract_quoted: bool = False
    live: bool = True  # False: no live venue behind ``endpoints`` (a replay-only format: huobi's csv series)

    def protocol(self, endpoints: Endpoints | None = None, terms: InstrumentTerms = NO_TERMS) -> VenueProtocol:
        return self.make_protocol(endpoints or self.endpoints, terms)

    def venue_symbol(self, instrument: InstrumentId) -> str:
        """The venue's symbol of ``instrument`` (``BTC-USDT-SWAP`` for okx:swap:BTC-USDT-PERP)."""
        if (instrument.venue, instrument.market) != (self.venue, self.market):
            raise UnknownInstrument(str(instrument), f"not an instrument of {self.venue}/{self.market}")
        symbol = self.naming(instrument)
        if symbol is None:
            raise UnknownInstrument(str(instrument), f"no venue symbol is known for this instrument on {self.venue}")
        return symbol

    def instrument_id(self, venue_symbol: str) -> InstrumentId | None:
        """The canonical id of a venue symbol when its shape says it (OKX, Kraken); otherwise None, and
        the instrument metadata (:class:`feeds.metadata.InstrumentCatalog`) is the authority."""
        return self.parsing(venue_symbol)

    def key(self, instrument: InstrumentId) -> str:
        """The book key the instrument's updates arrive under (``binance:usdm:BTCUSDT``)."""
        return book_key(self.venue, self.market, self.venue_symbol(instrument))


_ENTRIES: dict[tuple[Venue, Market], VenueEntry] = {}
_DETECTORS: list[Detector] = []


def register_venue(entry: VenueEntry) -> None:
    _ENTRIES[(entry.venue, entry.market)] = entry


def register_detector(detector: Detector) -> None:
    """Add a recording detector: it returns (venue, market) for recordings it recognises, else None."""
    _DETECTORS.append(detector)


def get_entry(venue: Venue, market: Market) -> VenueEntry:
    try:
        return _ENTRIES[(venue, market)]
    except KeyError:
        known = ", ".join(f"{v}/{m}" for v, m in _ENTRIES)
        raise RecordingError(f"{venue}/{market}", f"no such venue and market (known: {known})") from None


#: The perpetual markets whose funding the daemon streams (scanner.feedplan: Bybit's and OKX's on the book
#: connection, Binance USD-M's on its /market route). Elsewhere (Binance COIN-M) only a stated assumption
#: gives a perpetual a rate.
FUNDING_STREAMED: frozenset[tuple[Venue, Market]] = frozenset(
    {
        (Venue.BINANCE, Market.USDM),
        (Venue.BYBIT, Market.LINEAR),
        (Venue.BYBIT, Market.INVERSE),
        (Venue.OKX, Market.SWAP),
    }
)


def feed_key(instrument: InstrumentId) -> str:
    """The book key ``instrument``'s book and funding updates arrive under, named by its venue's entry."""
    return get_entry(instrument.venue, instrument.market).key(instrument)


def entries() -> list[VenueEntry]:
    return list(_ENTRIES.values())


def detect(recording: Recording, *, venue: Venue | None = None, market: Market | None = None) -> VenueEntry:
    """The venue entry of a recording: forced by ``venue``/``market`` or detected from its content.

    When only one of the two is forced, detection fills in the other and must agree with the forced one.
    """
    if venue is not None and market is not None:
        return get_entry(venue, market)
    sample = recording.sample()
    found = {hit for d in _DETECTORS if (hit := d(recording, sample)) is not None}
    if venue is not None:
        found = {hit for hit in found if hit[0] is venue}
    if market is not None:
        found = {hit for hit in found if hit[1] is market}
    if not found:
        forced = f" as {venue or ''}{'/' if venue and market else ''}{market or ''}" if venue or market else ""
        raise RecordingError(recording.name, f"cannot recognise the venue and market of this recording{forced}")
    if len(found) > 1:
        options = ", ".join(sorted(f"{v}/{m}" for v, m in found))
        raise RecordingError(recording.name, f"ambiguous recording ({options}): pass --venue and --market")
    ((v, m),) = found
    return get_entry(v, m)


# ---- Binance --------------------------------------------------------------------------------------

_BINANCE_EXCHANGES = {"BINANCE": Market.SPOT, "BINANCE_FUTURES": Market.USDM, "BINANCE_DELIVERY": Market.COINM}
_BINANCE_HOSTS = {
    "stream.binance.com": Market.SPOT,
    "data-stream.binance.vision": Market.SPOT,
    "fstream.binance.com": Market.USDM,
    "dstream.binance.com": Market.COINM,
}
_BINANCE_FOLDERS = {"spot": Market.SPOT, "usdm": Market.USDM, "coinm": Market.COINM}


def _detect_binance(recording: Recording, sample: list[RecordedFrame]) -> tuple[Venue, Market] | None:
    """Binance from the cryptofeed exchange name, the websocket host, or the frames themselves.

    Frames decide the market when names do not: a futures ``depthUpdate`` carries ``pu`` (COIN-M symbols
    have an ``_``: ``BTCUSD_PERP``), and a futures ``bookTicker`` carries ``e``; spot has neither.
    """
    if recording.exchange in _BINANCE_EXCHANGES:
        return Venue.BINANCE, _BINANCE_EXCHANGES[recording.exchange]
    for frame in sample:
        if frame.kind is FrameKind.OPENED:
            host = urlsplit(frame.url).hostname or ""
            if host in _BINANCE_HOSTS:
                return Venue.BINANCE, _BINANCE_HOSTS[host]
    envelopes = [f.payload for f in sample if f.kind is FrameKind.WS and f.payload.startswith(b'{"stream":"')]
    if not envelopes:
        return None
    for payload in envelopes:
        if b'"e":"depthUpdate"' in payload:
            if b'"pu":' not in payload:
                return Venue.BINANCE, Market.SPOT
            return Venue.BINANCE, Market.COINM if b"_" in payload.split(b"@", 1)[0] else Market.USDM
    for payload in envelopes:
        if b"@bookTicker" in payload[:64]:
            if b'"e":"bookTicker"' not in payload:
                return Venue.BINANCE, Market.SPOT
            return Venue.BINANCE, Market.COINM if b"_" in payload.split(b"@", 1)[0] else Market.USDM
    # Only trades in the sample: fall back to the folder the recorder wrote into.
    for part in reversed(Path(recording.paths[0]).parts[:-1]):
        if part.lower() in _BINANCE_FOLDERS:
            return Venue.BINANCE, _BINANCE_FOLDERS[part.lower()]
    return None


def _binance_snapshot_key(market: Market) -> SnapshotKey:
    def snapshot_key(frame: RecordedFrame) -> str | None:
        if frame.url:
            parts = urlsplit(frame.url)
            if not parts.path.endswith("/depth"):
                return None  # exchangeInfo and other metadata
            symbol = parse_qs(parts.query).get("symbol", [""])[0]
            return book_key(Venue.BINANCE, market, symbol) if symbol else None
        return book_key(Venue.BINANCE, market, frame.symbol) if frame.symbol else None

    return snapshot_key


def _binance_factory(market: Market) -> ProtocolFactory:
    def make(endpoints: Endpoints, terms: InstrumentTerms) -> VenueProtocol:
        # COIN-M books count contracts of a per-symbol USD size; spot and USD-M count base units.
        sizes = {s: spec.contract_size for s, spec in terms.specs.items()} if market is Market.COINM else None
        return BinanceProtocol(market, ws_url=endpoints.ws, rest_url=endpoints.rest, contract_sizes=sizes)

    return make


for _market, _endpoints in (
    (Market.SPOT, Endpoints(SPOT_WS_URL, SPOT_REST_URL)),
    (Market.USDM, Endpoints(USDM_WS_URL, USDM_REST_URL, {"market": USDM_MARKET_WS_URL})),
    (Market.COINM, Endpoints(COINM_WS_URL, COINM_REST_URL)),
):
    register_venue(
        VenueEntry(
            Venue.BINANCE,
            _market,
            _endpoints,
            _binance_factory(_market),
            _binance_snapshot_key(_market),
            naming=binance_symbol,
            contract_quoted=_market is Market.COINM,
        )
    )
register_detector(_detect_binance)

# Venues in their own packages register themselves (entries, detectors, formats, budgets) on import.
# (Huobi exists only as the csv-replay series: feeds.replay.csvbook registers it.)
for _plugin in ("feeds.bybit.venue", "feeds.okx.venue", "feeds.kraken.venue"):
    importlib.import_module(_plugin)
