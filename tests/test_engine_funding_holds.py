"""A held decision on two live-funded perpetuals (funding_carry_cex_cex) ends when either leg's funding
moves: the engine checks each perp's latest funding update by identity, the second as well as the first
(a mutation dropping the second check survived the replay tests, whose candidates have one perp each).

The books are built here: no recording holds two perpetuals of one asset on two venues.
"""

from __future__ import annotations

import dataclasses

from feeds.book import OrderBook
from feeds.instruments import InstrumentId
from feeds.sequencing import BybitRules
from feeds.sync import BookSync, SyncState
from feeds.updates import BookSnapshot, FundingUpdate
from rules.candidates import FundingCarryCandidate
from rules.validation import load_constraints
from scanner.engine import Engine
from scanner.market import LiveMarket, MarketClock
from tests.engine_fixtures import BTC_PERP, DEMO_CONSTRAINTS

BYBIT_PERP = InstrumentId.parse("bybit:linear:BTC-USDT-PERP")
KEYS = {BTC_PERP: "binance:usdm:BTCUSDT", BYBIT_PERP: "bybit:linear:BTCUSDT"}
HOUR_MS = 3_600_000
VENUE_MS = 1_723_161_600_000  # 2024-08-09 00:00 UTC
NOW_NS = 5_000_000_000


def live_sync(instrument: InstrumentId, bid: float, ask: float) -> BookSync:
    key = KEYS[instrument]
    sync = BookSync(OrderBook(key), BybitRules())
    bids, asks = [(bid, 5.0), (bid - 1.0, 5.0)], [(ask, 5.0), (ask + 1.0, 5.0)]
    sync.on_snapshot(BookSnapshot(key, 1, bids, asks, VENUE_MS, NOW_NS))
    assert sync.state is SyncState.LIVE
    return sync


def test_a_hold_on_two_live_funded_perps_ends_when_either_funding_moves() -> None:
    funding = {
        instrument: FundingUpdate(KEYS[instrument], rate, 8 * HOUR_MS, VENUE_MS + HOUR_MS, venue_ms=VENUE_MS)
        for instrument, rate in ((BTC_PERP, 0.0001), (BYBIT_PERP, 0.0003))
    }
    syncs = {BTC_PERP: live_sync(BTC_PERP, 60_000.0, 60_000.5), BYBIT_PERP: live_sync(BYBIT_PERP, 60_001.0, 60_001.5)}
    market = LiveMarket(syncs, funding.get, {}, MarketClock())
    carry = FundingCarryCandidate(
        id="carry", long_perp=BTC_PERP, short_perp=BYBIT_PERP, size_usd=1_000.0, horizon_ms=8 * HOUR_MS
    )
    constraints = load_constraints(DEMO_CONSTRAINTS.read_text(), str(DEMO_CONSTRAINTS))
    engine = Engine(market, constraints, keys=KEYS, candidates=[carry], clock=lambda: NOW_NS)
    engine.evaluate_all()

    def wake(instrument: InstrumentId) -> tuple[int, int]:
        engine.touch(KEYS[instrument], NOW_NS)
        assert engine.drain() == 1
        tally = engine.stats.strategies["funding_carry_cex_cex"]
        return tally.full, tally.reused

    def short_leg_rate() -> float:
        _status, decision = engine.state_of("carry")
        assert decision is not None and decision.legs[1].funding is not None
        return decision.legs[1].funding.rate

    assert short_leg_rate() == 0.0003
    assert wake(BTC_PERP) == (1, 1)  # nothing it reads moved: held
    assert wake(BYBIT_PERP) == (1, 2)
    funding[BYBIT_PERP] = dataclasses.replace(funding[BYBIT_PERP], rate=0.0004)  # the second leg's funding
    assert wake(BYBIT_PERP) == (2, 2)
    assert short_leg_rate() == 0.0004
    assert wake(BYBIT_PERP) == (2, 3)  # held again on the new update
    funding[BTC_PERP] = dataclasses.replace(funding[BTC_PERP], rate=0.00011)  # the first leg's
    assert wake(BTC_PERP) == (3, 3)
