"""The shipped constraints template (``config/execution_constraints.json``), built from code.

``arbscan constraints template`` prints exactly this; a test fails if the committed file differs.
It is deterministic (no clock): the ``as_of`` of each value is the date of the documentation it comes
from, or :data:`TEMPLATE_AS_OF` for our own defaults.

Defaults are deliberately conservative starting points, meant to be edited:

* default rule: 3× max leverage on 10,000 USD per venue market, no borrowing, 5 bps minimum net edge,
  10,000 USD maximum size, books older than 5 s are stale, legs more than 2 s apart are skewed;
* spot margin on Binance, Bybit and OKX: up to 5,000 USD borrow at 0.1 bp/hour (≈ 8.8 %/year), a
  placeholder until the signed borrow endpoints overlay the account's real limit and rate;
* Uniswap pools: a wallet holds the capital (1× leverage), pool states are refreshed per block
  (~12 s), so they are stale after 30 s.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rules.fees import DOCUMENTED_FEE_TABLES
from rules.model import AMM_MARKET, ConstraintsFile, DexVenue, Rule, StrategyLeverageNotionalMultiplier

TEMPLATE_AS_OF = "2026-08-21"
SCHEMA_FILE = "execution_constraints.schema.json"


def template_document() -> ConstraintsFile:
    rules = [
        Rule(
            max_leverage=3.0,
            equity_usd=10_000.0,
            max_borrow_usd=0.0,
            borrow_rate_bps_per_hour=0.0,
            min_net_edge_bps=5.0,
            max_size_usd=10_000.0,
            max_book_age_ms=5_000.0,
            max_leg_skew_ms=2_000.0,
            source="template",
            as_of=TEMPLATE_AS_OF,
            note="defaults for every venue market; override per venue, venue:market or venue:market:asset",
        ),
        *(
            Rule(
                venue=venue,
                market="spot",
                max_borrow_usd=5_000.0,
                borrow_rate_bps_per_hour=0.1,
                source="template",
                as_of=TEMPLATE_AS_OF,
                note="spot margin placeholder until the signed borrow endpoints overlay the account's values",
            )
            for venue in ("binance", "bybit", "okx")
        ),
        *(
            Rule(
                venue=dex.value,
                market=AMM_MARKET,
                max_leverage=1.0,
                max_book_age_ms=30_000.0,
                source="template",
                as_of=TEMPLATE_AS_OF,
                note="on-chain wallet capital, pool state per block",
            )
            for dex in DexVenue
        ),
    ]
    return ConstraintsFile(
        schema_ref=SCHEMA_FILE,
        version=1,
        strategy_leverage_notional_multiplier=StrategyLeverageNotionalMultiplier(),
        rules=rules,
        fees=list(DOCUMENTED_FEE_TABLES),
    )


def to_json(document: ConstraintsFile | dict[str, Any]) -> bytes:
    """Stable, human-editable JSON (2-space indent, newline at the end)."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
