"""The execution constraints file (v1): one frozen, strict msgspec model.

This module is the single source of truth for the file format: the decoder, the every-error validator
(:mod:`rules.validation`) and the committed JSON Schema (``config/execution_constraints.schema.json``,
:func:`json_schema`) are all derived from these types, so they cannot disagree. Unknown keys are errors.

Units: fees and edges in basis points (1 bp = 0.01 %), money in USD, ages in milliseconds. Fee bps are
what the account *pays* (a negative maker fee is a rebate). OKX's fee endpoint reports the opposite
sign; whoever overlays authenticated OKX fees must negate them first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from feeds.instruments import Market, Venue

SCHEMA_ID = "https://arbscan.invalid/schemas/execution_constraints.v1.json"


class DexVenue(StrEnum):
    """The DEX names a rule may be scoped to (a DEX pool leg looks up ``<dex>:amm:<base>``)."""

    UNISWAP_V2 = "uniswap_v2"
    UNISWAP_V3 = "uniswap_v3"


DEX_VENUES: tuple[str, ...] = tuple(d.value for d in DexVenue)
AMM_MARKET = "amm"  # the market name of every DEX pool leg
RULE_VENUES: tuple[str, ...] = (*(v.value for v in Venue), *DEX_VENUES)
RULE_MARKETS: tuple[str, ...] = (*(m.value for m in Market), AMM_MARKET)
FEE_VENUES: tuple[str, ...] = tuple(v.value for v in Venue)
FEE_MARKETS: tuple[str, ...] = tuple(m.value for m in Market)


def _one_of(names: tuple[str, ...]) -> str:
    return "^(" + "|".join(names) + ")$"


Source = Literal["template", "authenticated"]
AS_OF_PATTERN = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$"
ASSET_PATTERN = r"^[A-Z0-9]{1,20}$"
AsOf = Annotated[
    str,
    Meta(
        pattern=AS_OF_PATTERN,
        description="When the values were true: ISO-8601 date, or date-time with a UTC offset.",
    ),
]
RuleVenue = Annotated[str, Meta(pattern=_one_of(RULE_VENUES), description="A CEX venue or a DEX name.")]
RuleMarket = Annotated[str, Meta(pattern=_one_of(RULE_MARKETS), description="A venue market, or 'amm' for DEX pools.")]
FeeVenue = Annotated[str, Meta(pattern=_one_of(FEE_VENUES))]
FeeMarket = Annotated[str, Meta(pattern=_one_of(FEE_MARKETS))]
Asset = Annotated[str, Meta(pattern=ASSET_PATTERN, description="Base asset, upper case (BTC, ETH, 1000PEPE).")]
Bps = Annotated[float, Meta(ge=-10_000.0, le=10_000.0)]
Multiplier = Annotated[float, Meta(gt=0.0, le=1_000.0)]


_MaxLeverage = Annotated[float, Meta(gt=0.0, description="Highest leverage_used allowed on this scope.")]
_EquityUsd = Annotated[float, Meta(gt=0.0, description="Capital allocated to this scope (USD).")]
_MaxBorrowUsd = Annotated[float, Meta(ge=0.0, description="Largest borrow allowed (USD).")]
_BorrowRate = Annotated[float, Meta(ge=0.0, description="Borrow interest, bps of the borrowed notional per hour.")]
_MinNetEdge = Annotated[float, Meta(ge=-10_000.0, le=10_000.0, description="Smallest net edge (bps) to qualify.")]
_MaxSize = Annotated[float, Meta(gt=0.0, description="Candidates are evaluated at most at this size (USD).")]
_MaxBookAge = Annotated[float, Meta(gt=0.0, description="Books older than this (monotonic ms) are stale.")]
_MaxLegSkew = Annotated[float, Meta(ge=0.0, description="Largest gap between the legs' book receive times (ms).")]


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Limits for one scope. A missing (null) field inherits from the next less specific rule.

    Scope: ``venue`` + ``market`` + ``asset`` > ``venue`` + ``market`` > ``venue`` > default (no venue).
    ``market`` needs ``venue``; ``asset`` needs ``market``. Each field is looked up on its own, so a
    ``binance:spot:BTC`` rule that only sets ``max_borrow_usd`` keeps every other limit of ``binance:spot``.
    """

    venue: RuleVenue | None = None
    market: RuleMarket | None = None
    asset: Asset | None = None
    max_leverage: _MaxLeverage | None = None
    equity_usd: _EquityUsd | None = None
    max_borrow_usd: _MaxBorrowUsd | None = None
    borrow_rate_bps_per_hour: _BorrowRate | None = None
    min_net_edge_bps: _MinNetEdge | None = None
    max_size_usd: _MaxSize | None = None
    max_book_age_ms: _MaxBookAge | None = None
    max_leg_skew_ms: _MaxLegSkew | None = None
    source: Source
    as_of: AsOf
    note: str = ""

    @property
    def scope(self) -> str:
        return scope_name(self.venue, self.market, self.asset)


RULE_LIMIT_FIELDS: tuple[str, ...] = (
    "max_leverage",
    "equity_usd",
    "max_borrow_usd",
    "borrow_rate_bps_per_hour",
    "min_net_edge_bps",
    "max_size_usd",
    "max_book_age_ms",
    "max_leg_skew_ms",
)


def scope_name(venue: str | None, market: str | None, asset: str | None) -> str:
    """``binance:spot:BTC``, ``binance:spot``, ``binance`` or ``default``."""
    parts = [p for p in (venue, market, asset) if p is not None]
    return ":".join(parts) if parts else "default"


class FeeTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One fee tier (maker/taker in bps paid; negative = rebate)."""

    name: Annotated[str, Meta(min_length=1, max_length=32)]
    maker_bps: Bps
    taker_bps: Bps
    confirmed: bool = msgspec.field(default=True)


class FeeTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A venue market's fee tiers and the account's tier (``tier`` must name one of ``tiers``)."""

    venue: FeeVenue
    market: FeeMarket
    tier: Annotated[str, Meta(min_length=1, max_length=32, description="The account's tier.")]
    tiers: Annotated[list[FeeTier], Meta(min_length=1)]
    source: Source
    as_of: AsOf
    reference: str = ""


class StrategyLeverageNotionalMultiplier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``required_notional_usd = size_usd × multiplier(strategy)``; ``leverage_used = required / equity``."""

    cex_cex: Multiplier = 1.0
    cex_dex: Multiplier = 1.0
    funding_carry_cex_cex: Multiplier = 2.0
    perp_spot_basis: Multiplier = 1.25


class ConstraintsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """arbscan execution constraints, version 1."""

    schema_ref: str | None = msgspec.field(default=None, name="$schema")
    version: Literal[1]
    strategy_leverage_notional_multiplier: StrategyLeverageNotionalMultiplier = msgspec.field(
        default_factory=StrategyLeverageNotionalMultiplier
    )
    rules: list[Rule]
    fees: list[FeeTable]


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`ConstraintsFile`, as committed in ``config/``."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **msgspec.json.schema(ConstraintsFile),
    }
    return schema
