"""Candidates are validated once, at construction; rules stays pure (no feeds.book, sync or scanner import)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from feeds.instruments import InstrumentId, Kind, Market, Venue
from rules import (
    CandidateError,
    CexCexCandidate,
    CexDexCandidate,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
    Reason,
    Rule,
    evaluate,
)
from scanner.market import StaticMarket
from tests.rules_fixtures import (
    BIN_ETH,
    BIN_PERP,
    BIN_SPOT,
    BYBIT_PERP,
    HOUR_MS,
    MS,
    OKX_SPOT,
    book,
    template,
)

ETH_BTC = InstrumentId(Venue.BINANCE, Market.SPOT, "ETH", "BTC", Kind.SPOT)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CexCexCandidate(id="a", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=0.0), "size_usd must be a positive"),
        (lambda: CexCexCandidate(id="a", buy=BIN_SPOT, sell=BIN_SPOT, size_usd=1.0), "the same instrument"),
        (lambda: CexCexCandidate(id="a", buy=BIN_SPOT, sell=BIN_ETH, size_usd=1.0), "legs trade different pairs"),
        (lambda: CexCexCandidate(id="", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1.0), "id must not be empty"),
        (
            lambda: CexCexCandidate(id="a", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1.0, passive_leg=2),
            "passive_leg must be 0..1",
        ),
        (
            lambda: PerpSpotBasisCandidate(id="a", spot=BIN_PERP, perp=BIN_PERP, size_usd=1.0, horizon_ms=HOUR_MS),
            "spot leg binance:usdm:BTC-USDT-PERP must be a spot instrument",
        ),
        (
            lambda: PerpSpotBasisCandidate(id="a", spot=BIN_SPOT, perp=BIN_PERP, size_usd=1.0, horizon_ms=0),
            "horizon_ms must be > 0",
        ),
        (
            lambda: FundingCarryCandidate(id="a", long_perp=BIN_PERP, short_perp=BIN_SPOT, size_usd=1.0, horizon_ms=1),
            "short leg binance:spot:BTC-USDT must be a perp instrument",
        ),
        (
            lambda: CexDexCandidate(id="a", cex=BIN_ETH, pool="p", size_usd=1.0, passive_leg=1),
            "passive_leg must be 0..0",
        ),
        (
            lambda: CexCexCandidate(id="a", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=1.0, rebalance_cost_usd=-1.0),
            "rebalance_cost_usd must be >= 0",
        ),
        (
            lambda: CexCexCandidate(id="a", buy=ETH_BTC, sell=replace(ETH_BTC, venue=Venue.OKX), size_usd=1.0),
            "binance:spot:ETH-BTC is quoted in BTC: sizes, limits and costs are USD amounts",
        ),
        (lambda: CexDexCandidate(id="a", cex=ETH_BTC, pool="p", size_usd=1.0), "is quoted in BTC"),
        (
            lambda: PerpSpotBasisCandidate(
                id="a",
                spot=ETH_BTC,
                perp=replace(ETH_BTC, market=Market.USDM, kind=Kind.PERP),
                size_usd=1.0,
                horizon_ms=HOUR_MS,
            ),
            "binance:spot:ETH-BTC is quoted in BTC",
        ),
        (
            lambda: FundingCarryCandidate(
                id="a", long_perp=replace(BIN_PERP, quote="BTC"), short_perp=BYBIT_PERP, size_usd=1.0, horizon_ms=1
            ),
            "binance:usdm:BTC-BTC-PERP is quoted in BTC",
        ),
    ],
)
def test_malformed_candidates_are_rejected_at_construction(build, message):
    """A candidate from a bad config fails once, with its id and the reason (exit code 2)."""
    with pytest.raises(CandidateError, match=message) as err:
        build()
    assert err.value.exit_code == 2


def test_carry_between_two_venues_is_a_valid_candidate():
    """Two perps of the same base on two venues."""
    c = FundingCarryCandidate(id="fc", long_perp=BIN_PERP, short_perp=BYBIT_PERP, size_usd=1.0, horizon_ms=HOUR_MS)
    assert c.instruments == (BIN_PERP, BYBIT_PERP) and c.strategy == "funding_carry_cex_cex"


def test_lookups_follow_the_constraints_object():
    """A candidate's memoized rule lookups belong to one Constraints: an overlay is seen at once."""
    market = StaticMarket(
        books={BIN_SPOT: book([(99.0, 5.0)], [(100.0, 5.0)]), OKX_SPOT: book([(102.0, 5.0)], [(103.0, 5.0)])}
    )
    cand = CexCexCandidate(id="c", buy=BIN_SPOT, sell=OKX_SPOT, size_usd=100.0)
    base = template()
    assert evaluate(cand, market, base, now_ns=2_000 * MS, now_ms=0).min_net_edge_bps == 5.0
    strict = base.overlay(rules=[Rule(venue="okx", min_net_edge_bps=500.0, source="authenticated", as_of="2026-08-21")])
    d = evaluate(cand, market, strict, now_ns=2_000 * MS, now_ms=0)
    assert d.min_net_edge_bps == 500.0 and Reason.BELOW_MIN_EDGE in d.reasons
    assert evaluate(cand, market, base, now_ns=2_000 * MS, now_ms=0).min_net_edge_bps == 5.0


def test_rules_imports_no_book_sync_io_or_scanner_module():
    """Importing and using rules pulls in neither feeds.book/sync/connection nor scanner nor asyncio."""
    code = (
        "import sys, rules, rules.evaluate, rules.validation, rules.template; "
        "bad = [m for m in sys.modules if m in ('feeds.book', 'feeds.sync', 'feeds.connection', 'asyncio', 'socket')"
        " or m.startswith('scanner')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
