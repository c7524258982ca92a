"""A decision: the outcome of one evaluation, with every number that led to it.

Everything is in basis points of the **reference notional** ``notional_usd`` (the buy leg's filled quote
amount, i.e. base quantity × buy VWAP), unless the name says ``_usd`` or ``_ms``. Amounts are computed
in USD first and converted once (``bps = usd / notional_usd × 10⁴``), so the legs' USD numbers add up.

The identity ``net_bps = gross_bps − fees_bps + funding_bps − borrow_bps`` holds exactly (it is how
``net_bps`` is computed), with ``fees_bps = trading + rebalance + gas``. Numbers that could not be
computed (no book, no fee table) are NaN, encoded as ``null`` in JSON; a reason then says why.

Decisions are msgspec structs: ``msgspec.json.encode(decision)`` (or :meth:`Decision.to_json`) is the
journal line; the constraint provenance (:class:`~rules.constraints.ResolvedRule`) is shared between
decisions, not copied.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import msgspec

from rules.constraints import FeeUsed, ResolvedRule
from rules.fees import LiquidityRole
from rules.reasons import Outcome, Reason


class BookState(StrEnum):
    """What a leg's market state was when read (anything but ``ok`` is ``book_not_ready``)."""

    OK = "ok"
    MISSING = "missing"  # no book / no DEX quote in the market view
    EMPTY = "empty"  # a side of the book has no level
    CROSSED = "crossed"  # best bid >= best ask: a broken book
    UNUSABLE = "unusable"  # a DEX quote with invalid numbers or for the other direction


class FundingLeg(msgspec.Struct, frozen=True, gc=False):
    """Funding of one perp leg over the horizon (``funding_usd`` > 0 = received)."""

    rate: float
    interval_ms: int
    next_funding_ms: int
    settlements: int
    source: str
    position: str  # "long" pays a positive rate, "short" receives it
    funding_usd: float


class LegResult(msgspec.Struct, frozen=True):
    name: str  # buy/sell, spot/perp, long/short, cex/dex
    instrument: str  # canonical id, or "<dex>:amm:<pool>"
    venue: str
    market: str
    symbol: str
    side: str  # "buy" or "sell"
    vwap: float  # ex-fee execution price
    top_price: float
    filled_base: float
    filled_quote: float  # base × vwap: this leg's notional
    levels: int
    complete: bool | None  # None: not walked (no usable book, or nothing to match)
    book_state: BookState
    book_age_ms: float
    max_book_age_ms: float | None
    liquidity_role: LiquidityRole
    fee_bps: float  # per fill, on this leg's notional
    fee_fills: int  # 1 (one-shot) or 2 (entry + exit)
    fee_usd: float
    fee_table: FeeUsed | None
    equity_usd: float | None
    leverage_used: float
    max_leverage: float | None
    rule: ResolvedRule | None
    funding: FundingLeg | None = None


class Decision(msgspec.Struct, frozen=True):
    strategy: str
    candidate_id: str
    outcome: Outcome
    primary_reason: Reason | None
    reasons: tuple[Reason, ...]
    direction: str | None
    fee_profile: str
    size_usd_requested: float
    size_usd: float  # after the max_size_usd cap
    size_capped: bool
    notional_usd: float  # reference notional: bps are of this
    base_qty: float
    horizon_ms: int
    legs: tuple[LegResult, ...]
    gross_bps: float  # (sell VWAP − buy VWAP) / buy VWAP
    top_gross_bps: float  # the same at the top of book
    slippage_bps: float  # top_gross − gross: what walking the depth cost
    trading_fees_bps: float
    rebalance_bps: float
    gas_bps: float
    fees_bps: float  # trading + rebalance + gas
    funding_bps: float
    funding_source: str | None  # least trustworthy funding source used (assumed < rest < live)
    borrow_usd: float
    max_borrow_usd: float | None
    borrow_rate_bps_per_hour: float | None
    borrow_bps: float
    edge_bps: float  # gross + funding (the edge before costs)
    after_fees_bps: float  # gross − fees + funding
    net_bps: float  # gross − fees + funding − borrow
    net_usd: float
    min_net_edge_bps: float | None  # strictest over the legs
    leverage_used: float  # of the binding leg (highest used/max)
    max_leverage: float | None
    leverage_notional_multiplier: float
    leverage_notional_usd: float  # size_usd × multiplier
    leg_skew_ms: float
    max_leg_skew_ms: float | None
    overrides: dict[str, float]
    now_ms: int

    @property
    def qualified(self) -> bool:
        return self.outcome is Outcome.QUALIFIED

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def to_dict(self) -> dict[str, Any]:
        """Exactly what the JSON line holds (lists, ``None`` for NaN)."""
        result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(self))
        return result

    @classmethod
    def from_dict(cls, obj: object) -> Decision:
        """The decision a JSON line (:meth:`to_dict`, a journal line's ``decision``) holds; ValueError says
        what does not fit. A ``null`` where a plain float belongs is the NaN it was written from."""
        try:
            return msgspec.convert(_nan_for_null(obj, msgspec.inspect.type_info(cls)), cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None


def _nan_for_null(value: object, kind: msgspec.inspect.Type) -> object:
    """``value`` with every ``None`` in a place typed plain ``float`` replaced by NaN (JSON has no NaN)."""
    if value is None:
        return math.nan if isinstance(kind, msgspec.inspect.FloatType) else None
    if isinstance(kind, msgspec.inspect.UnionType):  # T | None: the struct or float inside, if any
        inner = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        return _nan_for_null(value, inner[0]) if len(inner) == 1 else value
    if isinstance(kind, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in kind.fields}
        return {k: _nan_for_null(v, fields[k]) if k in fields else v for k, v in value.items()}
    if isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(value, list):
        return [_nan_for_null(v, kind.item_type) for v in value]
    return value
