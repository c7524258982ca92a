"""Instrument metadata the daemon tests serve from a replay exchange: the REAL recorded metadata answers
(cryptofeed ``EXCH.0``: Binance spot and USD-M ``exchangeInfo``, OKX ``instruments``), and Binance's
``fundingInfo``, of which no recording exists: the public sample exchange-protocols.md §2.3 cites
(asterdex/api-docs issue 1), one 4 h and one 8 h symbol, in the documented layout."""

from __future__ import annotations

from feeds.instruments import Venue
from feeds.recorded_metadata import RestKey, read_rest_bodies, rest_key
from tests.venue_fixtures import BINANCE_FUTURES_META, BINANCE_META, OKX_META

BINANCE_FUNDING_INFO = (
    b'[{"symbol":"BLZUSDT","adjustedFundingRateCap":"0.03000000","adjustedFundingRateFloor":"-0.03000000",'
    b'"fundingIntervalHours":4,"disclaimer":false},{"symbol":"GTCUSDT","adjustedFundingRateCap":"0.03000000",'
    b'"adjustedFundingRateFloor":"-0.03000000","fundingIntervalHours":8,"disclaimer":false}]'
)
FUNDING_INFO_KEY = rest_key(Venue.BINANCE, "/fapi/v1/fundingInfo", ())


def recorded_metadata(*, funding_info: bytes | None = BINANCE_FUNDING_INFO) -> dict[RestKey, bytes]:
    """What a replay exchange answers to metadata requests (``ReplayExchange(rest_bodies=...)``)."""
    bodies = read_rest_bodies([BINANCE_META, BINANCE_FUTURES_META, OKX_META])
    if funding_info is not None:
        bodies[FUNDING_INFO_KEY] = funding_info
    return bodies
