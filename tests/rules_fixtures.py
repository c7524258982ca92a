"""Helpers for the rules tests: real OrderBooks, instruments, funding, constraints."""

from __future__ import annotations

from pathlib import Path

from feeds.book import OrderBook
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.updates import FundingSource, FundingUpdate
from rules.constraints import Constraints
from rules.model import ConstraintsFile, FeeTable, FeeTier, Rule
from rules.template import template_document

DATA = Path(__file__).resolve().parent.parent / "data"
HOUR_MS = 3_600_000
MS = 1_000_000  # ns per ms

BIN_SPOT = InstrumentId(Venue.BINANCE, Market.SPOT, "BTC", "USDT", Kind.SPOT)
BIN_PERP = InstrumentId(Venue.BINANCE, Market.USDM, "BTC", "USDT", Kind.PERP)
OKX_SPOT = InstrumentId(Venue.OKX, Market.SPOT, "BTC", "USDT", Kind.SPOT)
BYBIT_SPOT = InstrumentId(Venue.BYBIT, Market.SPOT, "BTC", "USDT", Kind.SPOT)
BYBIT_PERP = InstrumentId(Venue.BYBIT, Market.LINEAR, "BTC", "USDT", Kind.PERP)
OKX_PERP = InstrumentId(Venue.OKX, Market.SWAP, "BTC", "USDT", Kind.PERP)
BIN_ETH = InstrumentId(Venue.BINANCE, Market.SPOT, "ETH", "USDT", Kind.SPOT)


def book(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]], *, recv_ns: int = 1_000 * MS, key: str = "t"
) -> OrderBook:
    """A book with these levels (applied through the real OrderBook.apply)."""
    ob = OrderBook(key)
    ob.apply(bids, asks, last_id=1, venue_ms=0, recv_ns=recv_ns)
    return ob


def funding(
    rate: float, *, interval_h: float, next_ms: int, source: FundingSource = FundingSource.ASSUMED
) -> FundingUpdate:
    return FundingUpdate(
        key="t", rate=rate, interval_ms=int(interval_h * HOUR_MS), next_funding_ms=next_ms, source=source
    )


def template() -> Constraints:
    return Constraints(template_document(), origin="template")


def simple_constraints(
    *,
    fees: dict[tuple[str, str], tuple[float, float]] | None = None,
    min_edge: float = 0.0,
    max_size: float = 1e9,
    equity: float = 1e6,
    max_leverage: float = 3.0,
    max_age_ms: float = 1_000.0,
    max_skew_ms: float = 500.0,
    max_borrow: float = 1e9,
    borrow_rate: float = 0.0,
    extra_rules: tuple[Rule, ...] = (),
    omit: tuple[str, ...] = (),
) -> Constraints:
    """One default rule (minus the limits in ``omit``) and flat fee tables {(venue, market): (maker, taker)}."""
    fees = fees if fees is not None else {}
    limits = {
        "max_leverage": max_leverage,
        "equity_usd": equity,
        "max_borrow_usd": max_borrow,
        "borrow_rate_bps_per_hour": borrow_rate,
        "min_net_edge_bps": min_edge,
        "max_size_usd": max_size,
        "max_book_age_ms": max_age_ms,
        "max_leg_skew_ms": max_skew_ms,
    }
    default = Rule(
        **{name: (None if name in omit else value) for name, value in limits.items()},
        source="template",
        as_of="2026-01-01",
    )
    tables = [
        FeeTable(
            venue=venue,
            market=market,
            tier="t",
            tiers=[FeeTier(name="t", maker_bps=maker, taker_bps=taker)],
            source="template",
            as_of="2026-01-01",
        )
        for (venue, market), (maker, taker) in fees.items()
    ]
    document = ConstraintsFile(version=1, rules=[default, *extra_rules], fees=tables)
    return Constraints(document, origin="test")
