"""Micro-benchmark of ``rules.evaluate``: evaluations per second per strategy, against reading the books.

    python -m bench.rules_micro [--n 20000] [--repeat 5] [--json]

For each strategy it times, on the same books in the same run:

* ``tob``: the bare cost of reading every leg's top of book (``best_bid_price`` + ``best_ask_price``);
* ``walks``: the two depth walks a decision needs, alone;
* ``evaluate``: the whole decision (walks, fees, funding, limits, reasons, the Decision struct);
* ``own``: ``evaluate`` minus ``walks``, what the evaluator itself costs (the walks are ``feeds.book``'s).

Books are real REST snapshots from ``data/`` (Binance spot and USD-M BTCUSDT, hftbacktest, 2024-08-08;
Binance and Huobi LINKUSDT, defi-arbitrage, 2021-08-20), loaded through ``OrderBook.apply``. Two
stand-ins, named in the output: the Binance USD-M book also serves as the Bybit perp of the carry
(the cost does not depend on the venue name), and the cex_dex pool is a constant-product pool priced
near the Binance spot book. Huobi has no documented fee table, so the bench adds a 20/20 bps one.
Best of ``--repeat`` runs; the machine is shared, so read ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from feeds.book import OrderBook, Side
from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.recordings import rest_snapshot_book
from feeds.updates import FundingSource, FundingUpdate
from rules import (
    BasisDirection,
    Candidate,
    CexCexCandidate,
    CexDexCandidate,
    ConstantProductPool,
    Constraints,
    FeeTable,
    FeeTier,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
    evaluate,
    template_document,
)
from scanner.market import StaticMarket

DATA = Path(__file__).resolve().parent.parent / "data"
HOUR_MS = 3_600_000

BTC_SPOT = InstrumentId(Venue.BINANCE, Market.SPOT, "BTC", "USDT", Kind.SPOT)
BTC_USDM = InstrumentId(Venue.BINANCE, Market.USDM, "BTC", "USDT", Kind.PERP)
BTC_BYBIT = InstrumentId(Venue.BYBIT, Market.LINEAR, "BTC", "USDT", Kind.PERP)
LINK_BINANCE = InstrumentId(Venue.BINANCE, Market.SPOT, "LINK", "USDT", Kind.SPOT)
LINK_HUOBI = InstrumentId(Venue.HUOBI, Market.SPOT, "LINK", "USDT", Kind.SPOT)


def _csv_book(path: Path, recv_ns: int) -> OrderBook:
    with path.open() as f:
        row = next(csv.DictReader(f))
    book = OrderBook(path.name)
    book.apply(
        [(float(row[f"b{i}"]), float(row[f"bv{i}"])) for i in range(1, 11)],
        [(float(row[f"a{i}"]), float(row[f"av{i}"])) for i in range(1, 11)],
        last_id=1,
        venue_ms=0,
        recv_ns=recv_ns,
    )
    return book


def setup() -> tuple[StaticMarket, Constraints, dict[str, Candidate], int, int]:
    now_ns = time.monotonic_ns()
    spot, _ = rest_snapshot_book(DATA / "hftbacktest" / "spot" / "btcusdt_20240808.gz", recv_ns=now_ns)
    usdm, _ = rest_snapshot_book(DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz", recv_ns=now_ns)
    link_b = _csv_book(DATA / "defi-arbitrage" / "orderbook_bnc.csv", now_ns)
    link_h = _csv_book(DATA / "defi-arbitrage" / "orderbook_hb.csv", now_ns)
    now_ms = 1_723_161_256_501
    mid = (spot.best_bid_price() + spot.best_ask_price()) / 2
    market = StaticMarket(
        books={BTC_SPOT: spot, BTC_USDM: usdm, BTC_BYBIT: usdm, LINK_BINANCE: link_b, LINK_HUOBI: link_h},
        fundings={
            BTC_USDM: FundingUpdate("b", 0.0001, 8 * HOUR_MS, 1_723_161_600_000, source=FundingSource.ASSUMED),
            BTC_BYBIT: FundingUpdate("y", 0.0003, 4 * HOUR_MS, 1_723_161_600_000, source=FundingSource.ASSUMED),
        },
        pools={"pool": ConstantProductPool("uniswap_v2", 500.0, 500.0 * mid * 1.002, 30.0, 4.0, now_ns)},
    )
    huobi = FeeTable(
        venue="huobi",
        market="spot",
        tier="bench",
        tiers=[FeeTier(name="bench", maker_bps=20.0, taker_bps=20.0, confirmed=False)],
        source="template",
        as_of="2026-08-21",
        reference="bench-only assumption",
    )
    document = template_document()
    constraints = Constraints(msgspec.structs.replace(document, fees=[*document.fees, huobi]), origin="bench")
    day = 24 * HOUR_MS
    candidates: dict[str, Candidate] = {
        "cex_cex": CexCexCandidate(id="cc", buy=LINK_HUOBI, sell=LINK_BINANCE, size_usd=2_000.0),
        "cex_cex (deeper walk)": CexCexCandidate(id="cd", buy=LINK_HUOBI, sell=LINK_BINANCE, size_usd=10_000.0),
        "perp_spot_basis": PerpSpotBasisCandidate(
            id="b", spot=BTC_SPOT, perp=BTC_USDM, size_usd=10_000.0, horizon_ms=day
        ),
        "perp_spot_basis (reverse)": PerpSpotBasisCandidate(
            id="r",
            spot=BTC_SPOT,
            perp=BTC_USDM,
            size_usd=10_000.0,
            horizon_ms=day,
            direction=BasisDirection.SHORT_SPOT_LONG_PERP,
        ),
        "funding_carry_cex_cex": FundingCarryCandidate(
            id="f", long_perp=BTC_USDM, short_perp=BTC_BYBIT, size_usd=10_000.0, horizon_ms=day
        ),
        "cex_dex": CexDexCandidate(id="d", cex=BTC_SPOT, pool="pool", size_usd=10_000.0),
    }
    return market, constraints, candidates, now_ns, now_ms


def _best_ns(fn: Callable[[], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def run(n: int, repeat: int) -> list[dict[str, object]]:
    market, constraints, candidates, now_ns, now_ms = setup()
    results = []
    for name, cand in candidates.items():
        books = [market.books[i] for i in cand.instruments]
        first = books[0]
        second = books[1] if len(books) > 1 else None
        size = cand.size_usd
        first_side = Side.BID if (name.endswith("(reverse)")) else Side.ASK
        other_side = Side.ASK if first_side is Side.BID else Side.BID

        def tob(books: list[OrderBook] = books) -> None:
            for _ in range(n):
                for book in books:
                    book.best_bid_price()
                    book.best_ask_price()

        def walks(
            first: OrderBook = first,
            second: OrderBook | None = second,
            size: float = size,
            first_side: Side = first_side,
            other_side: Side = other_side,
        ) -> None:
            for _ in range(n):
                fill = first.walk(first_side, quote=size)
                if second is not None:
                    second.walk(other_side, base=fill.base)

        def evaluations(cand: Candidate = cand) -> None:
            for _ in range(n):
                evaluate(cand, market, constraints, now_ns=now_ns, now_ms=now_ms)

        tob_ns = _best_ns(tob, n, repeat)
        walk_ns = _best_ns(walks, n, repeat)
        eval_ns = _best_ns(evaluations, n, repeat)
        decision = evaluate(cand, market, constraints, now_ns=now_ns, now_ms=now_ms)
        results.append(
            {
                "strategy": name,
                "levels_walked": [leg.levels for leg in decision.legs],
                "tob_ns": round(tob_ns, 1),
                "walks_ns": round(walk_ns, 1),
                "evaluate_ns": round(eval_ns, 1),
                "own_ns": round(eval_ns - walk_ns, 1),
                "evaluations_per_s": round(1e9 / eval_ns),
                "evaluate_over_tob": round(eval_ns / tob_ns, 1),
                "reasons": [r.value for r in decision.reasons],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules_micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="evaluations per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is kept)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = run(args.n, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"rules.evaluate micro-benchmark (python {sys.version.split()[0]}, n={args.n}, best of {args.repeat})")
    header = (
        f"{'strategy':<27}{'levels':>8}{'tob ns':>9}{'walks ns':>10}{'eval ns':>9}{'own ns':>9}"
        f"{'evals/s':>10}{'eval/tob':>10}"
    )
    print(header)
    for r in results:
        levels = "+".join(str(x) for x in r["levels_walked"])  # type: ignore[attr-defined]
        print(
            f"{r['strategy']:<27}{levels:>8}{r['tob_ns']:>9}{r['walks_ns']:>10}{r['evaluate_ns']:>9}{r['own_ns']:>9}"
            f"{r['evaluations_per_s']:>10}{r['evaluate_over_tob']:>10}"
        )
    print(
        "tob = reading every leg's best bid and ask; walks = the two depth walks alone; eval = rules.evaluate;"
        " own = eval - walks"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
