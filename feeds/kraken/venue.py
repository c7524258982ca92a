"""Kraken spot in the venue registry (:mod:`feeds.venues`).

The real endpoint is v2 (``wss://ws.kraken.com/v2``); recordings and the loopback replay of them speak v1
(:class:`feeds.kraken.protocol.KrakenProtocol` sends by endpoint and understands both on receipt).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from feeds.instruments import Market, Venue
from feeds.kraken.protocol import KrakenProtocol
from feeds.kraken.symbols import instrument_id, venue_symbol
from feeds.kraken.v2 import URL
from feeds.limits import BudgetSpec, VenueBudgets, register_budgets
from feeds.protocol import VenueProtocol
from feeds.recordings import FrameKind, RecordedFrame, Recording
from feeds.venues import Endpoints, InstrumentTerms, VenueEntry, register_detector, register_venue

REST_URL = "https://api.kraken.com"
_HOSTS = ("ws.kraken.com", "beta-ws.kraken.com")
_V1_BOOK = re.compile(rb'^\[\d+,\{.*\},"book-\d+","[A-Z0-9]+/[A-Z0-9]+"\]$', re.DOTALL)
# [?] Kraken's public REST limit is a decaying counter (about 1 request per second sustained); its
# websocket connection-attempt limit is not documented in our sources: both are cautious guesses.
BUDGETS = VenueBudgets(rest=BudgetSpec(1, 1.0), connect=BudgetSpec(10, 60.0))


def _make(endpoints: Endpoints, terms: InstrumentTerms) -> VenueProtocol:
    return KrakenProtocol(endpoints.ws)


def snapshot_key(frame: RecordedFrame) -> str | None:
    return None  # books start from the websocket snapshot


def detect(recording: Recording, sample: list[RecordedFrame]) -> tuple[Venue, Market] | None:
    if recording.exchange == "KRAKEN":
        return Venue.KRAKEN, Market.SPOT
    for frame in sample:
        if frame.kind is FrameKind.OPENED and (urlsplit(frame.url).hostname or "") in _HOSTS:
            return Venue.KRAKEN, Market.SPOT
        # No URL (our own recorder's files): v1 book frames name their channel, v2 pushes their channel.
        if frame.kind is FrameKind.WS and (
            _V1_BOOK.match(frame.payload) is not None or frame.payload.startswith(b'{"channel":"book","type":"')
        ):
            return Venue.KRAKEN, Market.SPOT
    return None


def register() -> None:
    register_venue(
        VenueEntry(
            Venue.KRAKEN,
            Market.SPOT,
            Endpoints(URL, REST_URL),
            _make,
            snapshot_key,
            naming=venue_symbol,
            parsing=instrument_id,
        )
    )
    register_budgets(Venue.KRAKEN, Market.SPOT, BUDGETS)
    register_detector(detect)


register()
