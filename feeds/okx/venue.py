"""OKX in the venue registry (:mod:`feeds.venues`): entries, recording detection, REST budgets.

One OKX public connection carries books of every instrument type and every book key names its own market
(``okx:spot:BTC-USDT``, ``okx:swap:BTC-USD-SWAP``), so every OKX entry builds the same protocol; the
entry's market only names the connection. A recording is detected by its cryptofeed name (``OKX``), its
websocket host, or its frames (``{"arg":{"channel":"books"...``, ``"funding-rate"``: our own recorder
writes no URL), and is reported under the market of its first book (SWAP when it has none).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import msgspec

from feeds.instruments import Market, Venue
from feeds.limits import BudgetSpec, VenueBudgets, register_budgets
from feeds.okx.protocol import BOOK_CHANNELS, PUBLIC_URL, REST_URL, OkxProtocol
from feeds.okx.symbols import market_of, parse_symbol, venue_symbol
from feeds.protocol import VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, Recording
from feeds.updates import book_key
from feeds.venues import (
    Endpoints,
    InstrumentTerms,
    ProtocolFactory,
    SymbolParsing,
    VenueEntry,
    register_detector,
    register_venue,
)

MARKETS = (Market.SPOT, Market.MARGIN, Market.SWAP, Market.FUTURES, Market.OPTION)
CONTRACT_MARKETS = (Market.SWAP, Market.FUTURES, Market.OPTION)  # quoted in contracts of ctVal
_HOSTS = ("ws.okx.com", "wspap.okx.com", "ws.okex.com")
# REST: market data 20-40 requests per 2 s per IP depending on the endpoint (books: 40/2 s); one budget
# of 20 per 2 s respects all of them. Connections: 3 per second per IP.
BUDGETS = VenueBudgets(rest=BudgetSpec(20, 2.0), connect=BudgetSpec(3, 1.0), per_ip=True)


class _Push(msgspec.Struct):
    class _Arg(msgspec.Struct):
        channel: str
        instId: str = ""

    arg: _Arg | None = None


_push = msgspec.json.Decoder(_Push)


def _factory(market: Market) -> ProtocolFactory:
    def make(endpoints: Endpoints, terms: InstrumentTerms) -> VenueProtocol:
        return OkxProtocol(market, specs=terms.specs, strict_specs=terms.strict)

    return make


def _parsing(market: Market) -> SymbolParsing:
    return lambda inst_id: parse_symbol(inst_id, market)


def snapshot_key(frame: RecordedFrame) -> str | None:
    """A recorded ``GET /api/v5/market/books?instId=`` answer is that book's snapshot; metadata is not.

    In our recorder's layout (hftbacktest: one file per instrument, no URL) a REST record is the file's book
    snapshot: the recorder writes nothing else bare."""
    if not frame.url:
        return book_key(Venue.OKX, market_of(frame.symbol), frame.symbol) if frame.symbol else None
    parts = urlsplit(frame.url)
    if not parts.path.endswith("/market/books"):
        return None
    inst_id = parse_qs(parts.query).get("instId", [""])[0]
    return book_key(Venue.OKX, market_of(inst_id), inst_id) if inst_id else None


def detect(recording: Recording, sample: list[RecordedFrame]) -> tuple[Venue, Market] | None:
    named = recording.exchange in ("OKX", "OKEX") or any(
        f.kind is FrameKind.OPENED and (urlsplit(f.url).hostname or "") in _HOSTS for f in sample
    )
    funding = False
    for frame in sample:
        if frame.kind is not FrameKind.WS or not frame.payload.startswith(b'{"arg":{"channel":"'):
            continue
        try:
            arg = _push.decode(frame.payload).arg
        except msgspec.DecodeError:
            continue
        if arg is not None and arg.channel in BOOK_CHANNELS and arg.instId:
            return Venue.OKX, market_of(arg.instId)
        funding = funding or (arg is not None and arg.channel == "funding-rate")
    return (Venue.OKX, Market.SWAP) if named or funding else None


def register() -> None:
    for market in MARKETS:
        register_venue(
            VenueEntry(
                Venue.OKX,
                market,
                Endpoints(PUBLIC_URL, REST_URL),
                _factory(market),
                snapshot_key,
                naming=venue_symbol,
                parsing=_parsing(market),
                contract_quoted=market in CONTRACT_MARKETS,
            )
        )
        register_budgets(Venue.OKX, market, BUDGETS)
    register_detector(detect)


register()
