"""An L2 order book: levels, top of book, depth walk, versions and ages.

Levels are kept in a dict (price -> quantity) plus one sorted price list per side, both sides ordered so
that the best price is at the *end* of the list (bids ascending, asks stored negated ascending). Updates
near the top of the book, the common case, then move few list elements, and reading the top is an index.

Quantities are the venue's native units (base units, or contracts for contract venues); the depth walk
converts to base and quote units with the instrument's contract type, so rules always see base/quote.

Top-of-book overlay (Binance ``bookTicker``): a ticker whose ``update_id`` is newer than the last applied
diff replaces the top of that side until a diff at or past that id arrives. While the overlay is active,
reads of the best price return the ticker's price and quantity, and the depth walk consumes the ticker's
level first, then only book levels strictly worse than it (anything better has been taken, or the ticker
would show it). A ticker at or behind the book's id is ignored for reads: the diffs already contain it.

Walk-relevant versions (the engine's skip): besides :attr:`OrderBook.version` (every change), each side
has a version that moves only when a change could alter a depth walk already made on it. The book keeps
a per-side *watermark*: the deepest level any walk consumed since the last clear (a walk that ran out of
levels, or found none, marks the whole side). :meth:`OrderBook.apply` bumps a side's walk version only
for a changed level at or better than its watermark (one comparison per level); a ticker overlay set or
cleared, a truncation reaching the watermark and :meth:`OrderBook.clear` bump too. So a walk made when a
side's walk version was V returns the same fill (same amount) as long as the version is still V.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from enum import StrEnum

import msgspec

from feeds.instruments import ContractType
from feeds.updates import Level, RawLevel


class Side(StrEnum):
    BID = "bid"
    ASK = "ask"


class Fill(msgspec.Struct, frozen=True, gc=False):
    """Result of walking one side of the book.

    ``complete`` is False when the side ran out before the requested amount ("insufficient depth");
    ``vwap``, ``base`` and ``quote`` then describe what could be filled. ``top_price`` is the best price
    of the consumed side at the time of the walk (``nan`` for an empty side).

    A frozen msgspec struct rather than a frozen dataclass: two are built per evaluation, and a frozen
    dataclass pays one ``object.__setattr__`` per field (~10x the construction cost, ``bench/RESULTS.md``).
    """

    vwap: float
    base: float
    quote: float
    top_price: float
    levels: int
    complete: bool


_NAN = float("nan")
_EMPTY_FILL = Fill(_NAN, 0.0, 0.0, _NAN, 0, False)
_UNMARKED = math.inf  # watermark of a side no walk has consumed (in key space: no level is relevant)
_ALL = -math.inf  # watermark of a side a walk consumed entirely: every level is relevant


class OrderBook:
    """One instrument's book on one venue. Not thread-safe; owned by its sync state machine."""

    __slots__ = (
        "_ask_keys",
        "_ask_mark",
        "_asks",
        "_bid_keys",
        "_bid_mark",
        "_bids",
        "_overlay_ask",
        "_overlay_bid",
        "_overlay_id",
        "_raw",
        "ask_walk_version",
        "bid_walk_version",
        "contract_size",
        "contract_type",
        "key",
        "last_id",
        "recv_ns",
        "venue_ms",
        "version",
    )

    def __init__(
        self,
        key: str,
        *,
        contract_type: ContractType = ContractType.BASE,
        contract_size: float = 1.0,
        keep_raw: bool = False,
    ) -> None:
        self.key = key
        self.contract_type = contract_type
        self.contract_size = contract_size
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # ascending: best bid last
        self._ask_keys: list[float] = []  # negated prices ascending: best ask last
        # price -> exact (price, qty) strings, for venues whose checksum needs them
        self._raw: tuple[dict[float, RawLevel], dict[float, RawLevel]] | None = ({}, {}) if keep_raw else None
        self._overlay_id = -1
        self._overlay_bid: Level | None = None
        self._overlay_ask: Level | None = None
        self.last_id = -1  # venue update id of the last applied update
        self.version = 0  # incremented on every applied change
        self.venue_ms = 0  # venue time of the last applied update
        self.recv_ns = 0  # local monotonic receive time of the last applied update
        # Deepest walked level per side, in key space (bids: price, asks: -price; better = larger key).
        self._bid_mark = _UNMARKED
        self._ask_mark = _UNMARKED
        self.bid_walk_version = 0  # moves when a change reaches the bid watermark (module docstring)
        self.ask_walk_version = 0

    # ---- mutation (called by feeds.sync only) ----------------------------------------------------

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        if self._raw is not None:
            self._raw[0].clear()
            self._raw[1].clear()
        self._overlay_id = -1
        self._overlay_bid = self._overlay_ask = None
        self.last_id = -1
        self.version += 1
        self._bid_mark = self._ask_mark = _UNMARKED
        self.bid_walk_version += 1
        self.ask_walk_version += 1

    def apply(
        self,
        bids: list[Level],
        asks: list[Level],
        *,
        last_id: int,
        venue_ms: int,
        recv_ns: int,
        raw_bids: list[RawLevel] | None = None,
        raw_asks: list[RawLevel] | None = None,
    ) -> None:
        """Set each level to its absolute quantity (0 removes it) and advance the book's id."""
        bid_map, bid_keys = self._bids, self._bid_keys
        mark = self._bid_mark
        relevant = False
        for price, qty in bids:
            if price >= mark:
                relevant = True
            if qty == 0.0:
                if bid_map.pop(price, None) is not None:
                    del bid_keys[bisect_left(bid_keys, price)]
            else:
                if price not in bid_map:
                    insort(bid_keys, price)
                bid_map[price] = qty
        if relevant:
            self.bid_walk_version += 1
        ask_map, ask_keys = self._asks, self._ask_keys
        mark = self._ask_mark
        relevant = False
        for price, qty in asks:
            if -price >= mark:
                relevant = True
            if qty == 0.0:
                if ask_map.pop(price, None) is not None:
                    del ask_keys[bisect_left(ask_keys, -price)]
            else:
                if price not in ask_map:
                    insort(ask_keys, -price)
                ask_map[price] = qty
        if relevant:
            self.ask_walk_version += 1
        if self._raw is not None:
            self._apply_raw(self._raw[0], bids, raw_bids)
            self._apply_raw(self._raw[1], asks, raw_asks)
        self.last_id = last_id
        self.venue_ms = venue_ms
        self.recv_ns = recv_ns
        self.version += 1
        if last_id >= self._overlay_id and self._overlay_bid is not None:
            # Walks read the book's own top again: the same walk only if it equals the overlay's level.
            if self._overlay_bid != self._book_top(Side.BID):
                self.bid_walk_version += 1
            if self._overlay_ask != self._book_top(Side.ASK):
                self.ask_walk_version += 1
            self._overlay_bid = self._overlay_ask = None

    @staticmethod
    def _apply_raw(raw: dict[float, RawLevel], levels: list[Level], raw_levels: list[RawLevel] | None) -> None:
        if raw_levels is None:
            raise ValueError("this book keeps exact strings: raw levels are required")
        for (price, qty), raw_level in zip(levels, raw_levels, strict=True):
            if qty == 0.0:
                raw.pop(price, None)
            else:
                raw[price] = raw_level

    def set_top(self, update_id: int, bid: Level, ask: Level, *, venue_ms: int, recv_ns: int) -> bool:
        """Overlay a newer ticker top of book. Returns False (and changes nothing) if it is not newer."""
        if update_id <= self.last_id or update_id < self._overlay_id:
            return False
        # A side whose effective top (price and quantity) is unchanged walks the same: no walk-version bump.
        if bid != (self._overlay_bid or self._book_top(Side.BID)):
            self.bid_walk_version += 1
        if ask != (self._overlay_ask or self._book_top(Side.ASK)):
            self.ask_walk_version += 1
        self._overlay_id = update_id
        self._overlay_bid = bid
        self._overlay_ask = ask
        self.venue_ms = max(self.venue_ms, venue_ms)
        self.recv_ns = recv_ns
        self.version += 1
        return True

    def _book_top(self, side: Side) -> Level | None:
        """The book's own best level of ``side`` (the overlay not applied)."""
        if side is Side.BID:
            return (self._bid_keys[-1], self._bids[self._bid_keys[-1]]) if self._bid_keys else None
        return (-self._ask_keys[-1], self._asks[-self._ask_keys[-1]]) if self._ask_keys else None

    def overlay(self) -> tuple[int, Level, Level] | None:
        """The active ticker overlay as (update id, bid, ask), or None."""
        if self._overlay_bid is None or self._overlay_ask is None:
            return None
        return self._overlay_id, self._overlay_bid, self._overlay_ask

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (Kraken: the book is the subscribed depth)."""
        for keys, levels, raw_index, sign in (
            (self._bid_keys, self._bids, 0, 1.0),
            (self._ask_keys, self._asks, 1, -1.0),
        ):
            excess = len(keys) - depth
            if excess > 0:
                if keys[excess - 1] >= (self._bid_mark if raw_index == 0 else self._ask_mark):
                    if raw_index == 0:
                        self.bid_walk_version += 1
                    else:
                        self.ask_walk_version += 1
                for k in keys[:excess]:
                    levels.pop(sign * k)
                    if self._raw is not None:
                        self._raw[raw_index].pop(sign * k, None)
                del keys[:excess]

    # ---- reads (cheap; the evaluator calls them after every update) ------------------------------

    def best_bid(self) -> Level | None:
        if self._overlay_bid is not None:
            return self._overlay_bid
        if not self._bid_keys:
            return None
        price = self._bid_keys[-1]
        return price, self._bids[price]

    def best_ask(self) -> Level | None:
        if self._overlay_ask is not None:
            return self._overlay_ask
        if not self._ask_keys:
            return None
        price = -self._ask_keys[-1]
        return price, self._asks[price]

    def best_bid_price(self) -> float:
        """Best bid price, or nan for an empty side."""
        if self._overlay_bid is not None:
            return self._overlay_bid[0]
        return self._bid_keys[-1] if self._bid_keys else _NAN

    def best_ask_price(self) -> float:
        """Best ask price, or nan for an empty side."""
        if self._overlay_ask is not None:
            return self._overlay_ask[0]
        return -self._ask_keys[-1] if self._ask_keys else _NAN

    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (a broken book, never a market state)."""
        bid, ask = self.best_bid_price(), self.best_ask_price()
        return bid >= ask  # nan compares False: an empty side is not crossed

    def depth(self) -> tuple[int, int]:
        return len(self._bid_keys), len(self._ask_keys)

    def levels(self, side: Side, n: int | None = None) -> list[Level]:
        """The best ``n`` book levels of a side, best first (the overlay is not applied)."""
        if side is Side.BID:
            keys = self._bid_keys[-n:] if n else self._bid_keys
            return [(p, self._bids[p]) for p in reversed(keys)]
        keys = self._ask_keys[-n:] if n else self._ask_keys
        return [(-k, self._asks[-k]) for k in reversed(keys)]

    def raw_levels(self, side: Side, n: int) -> list[RawLevel]:
        """Exact venue strings of the best ``n`` levels, best first (checksum venues only)."""
        if self._raw is None:
            raise ValueError(f"{self.key}: this book does not keep exact strings")
        raw = self._raw[0] if side is Side.BID else self._raw[1]
        return [raw[price] for price, _ in self.levels(side, n)]

    def walk_version(self, side: Side) -> int:
        """The walk-relevant version of ``side`` (see the module docstring)."""
        return self.bid_walk_version if side is Side.BID else self.ask_walk_version

    def walk(self, consume: Side, *, base: float | None = None, quote: float | None = None) -> Fill:
        """Walk one side from the best price until ``base`` units or ``quote`` notional is filled.

        Buying consumes :attr:`Side.ASK`, selling consumes :attr:`Side.BID`. Exactly one of ``base``
        and ``quote`` must be given and positive. The book is read in place, never copied.
        """
        if (base is None) == (quote is None):
            raise ValueError("walk() takes exactly one of base= or quote=")
        target = base if base is not None else quote
        assert target is not None
        if not target > 0.0:
            raise ValueError(f"walk() amount must be positive, got {target}")
        by_base = base is not None
        bid_side = consume is Side.BID
        if bid_side:
            keys, levels, sign, overlay = self._bid_keys, self._bids, 1.0, self._overlay_bid
        else:
            keys, levels, sign, overlay = self._ask_keys, self._asks, -1.0, self._overlay_ask
        if not keys and overlay is None:
            self._mark(bid_side, _ALL)  # any level that appears changes this walk
            return _EMPTY_FILL
        contract_type, size = self.contract_type, self.contract_size
        base_units = contract_type is ContractType.BASE
        linear = contract_type is ContractType.LINEAR
        filled_base = filled_quote = 0.0
        used = 0
        # The overlay level first, then only book levels strictly worse than it: the levels at or better
        # than the overlay price sit at the end of the sorted keys, so start below them (one bisect
        # instead of a test per level). Without an overlay, start at the best level.
        if overlay is not None:
            price, qty = overlay
            i = bisect_left(keys, sign * price)
        else:
            i = len(keys) - 1
            price = sign * keys[i]
            qty = levels[price]
        top = price
        while True:
            used += 1
            if base_units:
                level_base = qty
            elif linear:
                level_base = qty * size
            else:
                level_base = qty * size / price
            level_quote = level_base * price
            if by_base:
                remaining = target - filled_base
                if level_base >= remaining:
                    filled_quote += remaining * price
                    filled_base = target
                    self._mark(bid_side, sign * price)
                    return Fill(filled_quote / filled_base, filled_base, filled_quote, top, used, True)
            else:
                remaining = target - filled_quote
                if level_quote >= remaining:
                    filled_base += remaining / price
                    filled_quote = target
                    self._mark(bid_side, sign * price)
                    return Fill(filled_quote / filled_base, filled_base, filled_quote, top, used, True)
            filled_base += level_base
            filled_quote += level_quote
            i -= 1
            if i < 0:
                break
            price = sign * keys[i]
            qty = levels[price]
        self._mark(bid_side, _ALL)  # ran out: a level added anywhere would be walked
        vwap = filled_quote / filled_base if filled_base > 0.0 else _NAN
        return Fill(vwap, filled_base, filled_quote, top, used, False)

    def _mark(self, bid_side: bool, key: float) -> None:
        """Lower the side's watermark to ``key`` (key space) if the walk went deeper than any before."""
        if bid_side:
            self._bid_mark = min(self._bid_mark, key)
        elif key < self._ask_mark:
            self._ask_mark = key

    def age_ns(self, now_ns: int) -> int:
        """Nanoseconds since the last applied update (local monotonic clock)."""
        return now_ns - self.recv_ns
