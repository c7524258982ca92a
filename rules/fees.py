"""Fee tables, tiers and profiles.

The documented tables below come from ``docs/exchange-protocols.md`` (the team's venue facts, July–Aug
2026 documentation copies); each tier says whether the number is confirmed by an official source. They
feed ``arbscan constraints template``; the account's real rates come from the signed fee endpoints
(Binance ``/api/v3/account/commission`` and ``/fapi/v1/commissionRate``, Bybit ``/v5/account/fee-rate``,
OKX ``/api/v5/account/trade-fee``) through :meth:`rules.constraints.Constraints.overlay`.

Fee profiles decide each leg's liquidity role:

* ``taker_default``: every fill is a taker fill, and the candidate's rebalance cost is charged.
* ``maker_inventory``: the candidate's passive leg is quoted as a maker, the hedge is a taker, and
  inventory is pre-positioned on both venues, so no rebalance (transfer) cost. Prices are still taken
  from the book walk: the model never assumes a queue position better than the book.

A DEX swap is always a taker; its fee is the pool's fee tier, carried by the DEX quote.
"""

from __future__ import annotations

from enum import StrEnum

from feeds.instruments import Market, Venue
from rules.model import FeeTable, FeeTier


class FeeProfile(StrEnum):
    TAKER_DEFAULT = "taker_default"
    MAKER_INVENTORY = "maker_inventory"


class LiquidityRole(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


def liquidity_role(profile: FeeProfile, leg: int, passive_leg: int, *, swap: bool = False) -> LiquidityRole:
    """The role of leg ``leg`` under ``profile`` (a DEX swap is always a taker)."""
    if profile is FeeProfile.MAKER_INVENTORY and leg == passive_leg and not swap:
        return LiquidityRole.MAKER
    return LiquidityRole.TAKER


def charges_rebalance(profile: FeeProfile) -> bool:
    """Under ``maker_inventory`` inventory is pre-positioned, so moving it back costs nothing."""
    return profile is FeeProfile.TAKER_DEFAULT


_DOC = "docs/exchange-protocols.md"


def _tiers(rows: list[tuple[str, float, float, bool]]) -> list[FeeTier]:
    return [FeeTier(name=name, maker_bps=maker, taker_bps=taker, confirmed=ok) for name, maker, taker, ok in rows]


# Bybit's table is printed "taker / maker" per product: VIP1 spot 0.0800/0.0675 = taker 8.00, maker 6.75 bps.
DOCUMENTED_FEE_TABLES: tuple[FeeTable, ...] = (
    FeeTable(
        venue=Venue.BINANCE,
        market=Market.SPOT,
        tier="regular",
        tiers=_tiers([("regular", 10.0, 10.0, True)]),
        source="template",
        as_of="2026-07-21",
        reference=f"{_DOC} §1.4: regular 0.1%/0.1% (CCXT default, binance.com posts); no official VIP table; "
        "BNB payment discount (25%) not applied",
    ),
    FeeTable(
        venue=Venue.BINANCE,
        market=Market.USDM,
        tier="regular",
        tiers=_tiers(
            [
                ("regular", 2.0, 5.0, True),
                ("VIP1", 1.6, 4.0, False),
                ("VIP2", 1.4, 3.5, False),
                ("VIP3", 1.2, 3.2, False),
                ("VIP4", 1.0, 3.0, False),
                ("VIP5", 0.8, 2.7, False),
                ("VIP6", 0.6, 2.5, False),
            ]
        ),
        source="template",
        as_of="2026-08-21",
        reference=f"{_DOC} §2.4: regular 0.02%/0.05% (CCXT); VIP rows from a third-party table [?]; "
        "BNB discount (10%) not applied",
    ),
    FeeTable(
        venue=Venue.BYBIT,
        market=Market.SPOT,
        tier="VIP0",
        tiers=_tiers(
            [
                ("VIP0", 10.0, 10.0, False),
                ("VIP1", 6.75, 8.0, False),
                ("VIP2", 6.5, 7.75, False),
                ("VIP3", 6.25, 7.5, False),
                ("VIP4", 5.0, 6.0, False),
                ("VIP5", 4.0, 5.0, False),
                ("Supreme", 3.0, 4.5, False),
            ]
        ),
        source="template",
        as_of="2026-07-24",
        reference=f"{_DOC} §3.4: Bybit help-center VIP table via a mirror domain [?]",
    ),
    FeeTable(
        venue=Venue.BYBIT,
        market=Market.LINEAR,
        tier="VIP0",
        tiers=_tiers(
            [
                ("VIP0", 2.0, 5.5, True),
                ("VIP1", 1.8, 4.0, False),
                ("VIP2", 1.6, 3.75, False),
                ("VIP3", 1.4, 3.5, False),
                ("VIP4", 1.2, 3.2, False),
                ("VIP5", 1.0, 3.2, False),
                ("Supreme", 0.0, 3.0, False),
            ]
        ),
        source="template",
        as_of="2026-07-24",
        reference=f"{_DOC} §3.4: VIP0 taker cross-checked by the official break-even formula max(taker, 0.00055); "
        "other tiers from a mirror domain [?]",
    ),
    FeeTable(
        venue=Venue.OKX,
        market=Market.SPOT,
        tier="Lv1",
        tiers=_tiers([("Lv1", 8.0, 10.0, True)]),
        source="template",
        as_of="2026-07-21",
        reference=f"{_DOC} §4.4: regular Lv1 0.080%/0.100% (okx.com/fees and its mirror agree); "
        "VIP tables disagree between the two, read the account's rate instead",
    ),
    FeeTable(
        venue=Venue.OKX,
        market=Market.SWAP,
        tier="Lv1",
        tiers=_tiers([("Lv1", 2.0, 5.0, False)]),
        source="template",
        as_of="2026-07-21",
        reference=f"{_DOC} §4.4: perpetual 0.020%/0.050% from third-party pages only [?]",
    ),
)
