"""Per-venue request and connection budgets, as data (what :class:`feeds.budget.WindowBudget` enforces).

The websocket limits of one connection live with the protocol (:class:`feeds.protocol.ConnectionLimits`);
these are the limits a venue counts per IP across connections: REST request weight and connection
attempts. Venues not listed get :data:`CONSERVATIVE`, slow enough for any venue we know.
"""

from __future__ import annotations

from dataclasses import dataclass

from feeds.instruments import Market, Venue


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """At most ``limit`` units in any ``window_s`` seconds."""

    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0:
            raise ValueError(f"budget {self.limit}/{self.window_s}s: limit and window must be positive")


@dataclass(frozen=True, slots=True)
class VenueBudgets:
    rest: BudgetSpec  # REST request weight (each request costs its documented weight)
    connect: BudgetSpec  # websocket connection attempts
    # The venue counts these per IP across all its markets (OKX, Bybit): every market's feeds share one
    # budget, named by the venue. Else per market (Binance spot and futures are separate hosts and limits).
    per_ip: bool = False

    def prefix(self, venue: Venue, market: Market) -> str:
        """The budgets' name prefix: ``okx`` for a venue counted per IP, else ``binance:spot``."""
        return f"{venue}" if self.per_ip else f"{venue}:{market}"


CONSERVATIVE = VenueBudgets(rest=BudgetSpec(300, 60.0), connect=BudgetSpec(30, 300.0))

_BUDGETS: dict[tuple[Venue, Market], VenueBudgets] = {
    # Spot: 6000 request weight per minute per IP; 300 connection attempts per 5 minutes (BN-SPOT-WS).
    (Venue.BINANCE, Market.SPOT): VenueBudgets(rest=BudgetSpec(6000, 60.0), connect=BudgetSpec(300, 300.0)),
    # USD-M and COIN-M: 2400 request weight per minute; connections as spot (the futures docs give no
    # separate figure, so the spot limit is the cautious reading).
    (Venue.BINANCE, Market.USDM): VenueBudgets(rest=BudgetSpec(2400, 60.0), connect=BudgetSpec(300, 300.0)),
    (Venue.BINANCE, Market.COINM): VenueBudgets(rest=BudgetSpec(2400, 60.0), connect=BudgetSpec(300, 300.0)),
}


def venue_budgets(venue: Venue, market: Market) -> VenueBudgets:
    return _BUDGETS.get((venue, market), CONSERVATIVE)


def register_budgets(venue: Venue, market: Market, budgets: VenueBudgets) -> None:
    """Add or replace a venue's budgets (venue plugins call this at import)."""
    _BUDGETS[(venue, market)] = budgets
