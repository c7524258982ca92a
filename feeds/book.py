"""An L2 order book: levels, top of book, depth walk, versions and ages.

Each side's levels are a :class:`feeds.levels.Side`: every level (price -> quantity) plus a sorted window
of the *best* prices only, so that reading the top is an index and an update near the top moves few
elements, while a diff deep in a book of thousands of levels (Binance USD-M BTC holds ~5,000 a side)
touches the levels alone. The window holds the best :data:`WINDOW` prices, give or take: it is cut back
when grown past twice that, refilled when shrunk below a quarter of it, and widened to the whole side by a
walk or read past it (rare: a decision walks a few levels). The side, its walk included, is compiled
(``feeds/_levels.c``: levels as doubles in its own hash table) with ``feeds/_levels_py.py`` as its
reference.

Quantities are the venue's native units (base units, or contracts for contract venues); the depth walk
converts to base and quote units with the instrument's contract type, so rules always see base/quote.

Top-of-book overlay (Binance ``bookTicker``): a ticker whose ``update_id`` is newer than the last applied
diff replaces the top of that side until a diff at or past that id arrives. While the overlay is active,
reads of the best price return the ticker's price and quantity, and the depth walk consumes the ticker's
level first, then only book levels strictly worse than it (anything better has been taken, or the ticker
would show it). A ticker at or behind the book's id is ignored for reads: the diffs already contain it.

Walk-relevant versions (the engine's skip): besides :attr:`OrderBook.version` (every change), each side
has a version (:attr:`OrderBook.walk_versions`, bid then ask) that moves only when a change could alter
a depth walk made on it since the version last moved. The book keeps a per-side *watermark*: the deepest
level any such walk consumed, and the largest quantity a walk that stopped *at* that level needed from
it (a walk that ran out of levels, or found none, marks the whole side). A change is relevant when it
touches a level better than the watermark, or the watermark level itself leaving less than was needed
there; a ticker overlay that moves a side's effective top price, a truncation reaching the watermark,
:meth:`OrderBook.clear` and a change of the book's state (ok / empty / crossed, read from both tops)
are too. A relevant change bumps the version and resets the watermark: every walk made before it is
invalidated by the new version already, so only walks made after it need protecting. Hence a walk made
when a side's walk version was V returns the same fill (same amount) as long as the version is still V,
and a quantity change at the top of the book that still covers every walk's need moves nothing.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec

from feeds.instruments import ContractType

# A side's levels, window and walk: compiled at install, or its Python reference (feeds.levels says which).
from feeds.levels import Side as LevelSide
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
# A walk stopping inside a level records what it needed from it with this much to spare, so that the
# float rounding of the need can only make a change look relevant, never hide one.
_NEED_MARGIN = 1.0 + 1e-9
_OK, _EMPTY, _CROSSED = 0, 1, 2  # the book's state, read from both effective tops
WINDOW = 128  # best prices per side kept sorted (module docstring)
_MAX_WALKS_KEPT = 64  # walks remembered per side between two bumps (OrderBook.walk)
_KIND = {ContractType.BASE: 0, ContractType.LINEAR: 1, ContractType.INVERSE: 2}  # LevelSide.walk's kind


class OrderBook:
    """One instrument's book on one venue. Not thread-safe; owned by its sync state machine."""

    __slots__ = (
        "_ask_mark",
        "_ask_need",
        "_asks",
        "_bid_mark",
        "_bid_need",
        "_bids",
        "_kind",
        "_overlay_ask",
        "_overlay_bid",
        "_overlay_id",
        "_raw",
        "_state",
        "_walks",
        "contract_size",
        "contract_type",
        "key",
        "last_id",
        "recv_ns",
        "venue_ms",
        "version",
        "walk_versions",
        "window",
    )

    def __init__(
        self,
        key: str,
        *,
        contract_type: ContractType = ContractType.BASE,
        contract_size: float = 1.0,
        keep_raw: bool = False,
        window: int = WINDOW,
    ) -> None:
        if window < 4:
            raise ValueError(f"window must be at least 4 levels, got {window}")
        self.key = key
        self.window = window
        self.contract_type = contract_type
        self.contract_size = contract_size
        self._kind = _KIND[contract_type]  # what a quantity is, for the walk
        self._bids = LevelSide(False, window)
        self._asks = LevelSide(True, window)  # keys are -price: the best is the largest key either way
        # price -> exact (price, qty) strings, for venues whose checksum needs them
        self._raw: tuple[dict[float, RawLevel], dict[float, RawLevel]] | None = ({}, {}) if keep_raw else None
        self._overlay_id = -1
        self._overlay_bid: Level | None = None
        self._overlay_ask: Level | None = None
        self.last_id = -1  # venue update id of the last applied update
        self.version = 0  # incremented on every applied change
        self.venue_ms = 0  # the latest venue time of the updates applied (never goes back; kept over a resync)
        self.recv_ns = 0  # local monotonic receive time of the last applied update
        # Deepest walked level per side, in key space (bids: price, asks: -price; better = larger key).
        self._bid_mark = _UNMARKED
        self._ask_mark = _UNMARKED
        # What a walk stopping at the watermark level needed from it (native units, _NEED_MARGIN added).
        self._bid_need = 0.0
        self._ask_need = 0.0
        # [bid, ask]: each moves when a change could alter a walk of that side (module docstring). A list,
        # so that the engine's per-update check is one index per leg.
        self.walk_versions = [0, 0]
        self._state = _EMPTY
        # Per side, the walks made since its version last moved: (by base, amount) -> Fill. Candidates of
        # the same size walk the same side alike (a basis and a cex_cex candidate on one pair), so the
        # second walk is a lookup; a bump clears the side's entries, which also keeps the dict small.
        self._walks: tuple[dict[tuple[bool, float], Fill], dict[tuple[bool, float], Fill]] = ({}, {})

    # ---- mutation (called by feeds.sync only) ----------------------------------------------------

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        if self._raw is not None:
            self._raw[0].clear()
            self._raw[1].clear()
        self._overlay_id = -1
        self._overlay_bid = self._overlay_ask = None
        self.last_id = -1
        self.version += 1
        self._state = _EMPTY
        self._bump(True)
        self._bump(False)

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
        """Set each level to its absolute quantity (0 removes it) and advance the book's id.

        The per-level loops are the cost of a diff (Binance: ~50 levels a frame, up to ~1,200, most of
        them deep in the book): each side's runs compiled, on doubles (``feeds/_levels.c``;
        :data:`feeds.levels.LEVELS_LOOP`), with :mod:`feeds._levels_py` as its reference. It also says whether
        the side's changes reach its walks (the best changed level against the walks' watermark).
        """
        if bids and self._bids.apply(bids, self._bid_mark, self._bid_need):
            self._bump(True)
        if asks and self._asks.apply(asks, self._ask_mark, self._ask_need):  # the mark in key space (-price)
            self._bump(False)
        if self._raw is not None:
            self._apply_raw(self._raw[0], bids, raw_bids)
            self._apply_raw(self._raw[1], asks, raw_asks)
        self.last_id = last_id
        # Never back: a ticker may have stamped the book later than this diff (USD-M bookTicker runs ahead),
        # and a candidate's market time (funding settlements, dwell; scanner.reuse's holds) must not go back.
        if venue_ms > self.venue_ms:  # noqa: PLR1730 (a compare costs less than a max() call, per diff)
            self.venue_ms = venue_ms
        self.recv_ns = recv_ns
        self.version += 1
        if last_id >= self._overlay_id and self._overlay_bid is not None:
            self._release_overlay()
        self._restate()

    def _release_overlay(self) -> None:
        # Walks read the book's own top again: the same walk only if it equals the overlay's level.
        overlay_bid, overlay_ask = self._overlay_bid, self._overlay_ask
        self._overlay_bid = self._overlay_ask = None
        self._top_moved(True, overlay_bid, self.best_bid())
        self._top_moved(False, overlay_ask, self.best_ask())

    def drop_overlay(self) -> None:
        """Forget the ticker overlay before a diff reaches it (:meth:`feeds.sync.BookSync.on_top`: one no diff
        reaches is not the venue's top). Walks read the book's own levels again, and tickers behind the dropped
        one's id are taken again."""
        if self._overlay_bid is None:
            return
        self._release_overlay()
        self._overlay_id = -1
        self.version += 1
        self._restate()

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
        # The hot path of every ticker: the old effective tops and the new state are read inline.
        old_bid = self._overlay_bid
        if old_bid is None:
            old_bid = self._bids.best()
        old_ask = self._overlay_ask
        if old_ask is None:
            old_ask = self._asks.best()
        if old_bid != bid and self._bid_mark != _UNMARKED:
            self._top_moved(True, old_bid, bid)
        if old_ask != ask and self._ask_mark != _UNMARKED:
            self._top_moved(False, old_ask, ask)
        self._overlay_id = update_id
        self._overlay_bid = bid
        self._overlay_ask = ask
        if venue_ms > self.venue_ms:  # noqa: PLR1730 (a compare costs less than a max() call, per ticker)
            self.venue_ms = venue_ms
        self.recv_ns = recv_ns
        self.version += 1
        bid_price, ask_price = bid[0], ask[0]
        if math.isnan(bid_price) or math.isnan(ask_price):
            state = _EMPTY
        else:
            state = _CROSSED if bid_price >= ask_price else _OK
        if state != self._state:
            self._state = state
            self.walk_versions[0] += 1
            self.walk_versions[1] += 1
        return True

    def _top_moved(self, bid_side: bool, old: Level | None, new: Level | None) -> None:
        """The effective top of a side went from ``old`` to ``new``: bump its walk version if a walk may differ.

        The same price with a new quantity is a change of that one level (relevant like any level); a new
        price changes which levels a walk sees (relevant to any walk made on the side).
        """
        if old == new:
            return
        mark = self._bid_mark if bid_side else self._ask_mark
        if mark == _UNMARKED:
            return
        if old is None or new is None or old[0] != new[0]:
            self._bump(bid_side)
            return
        key = new[0] if bid_side else -new[0]
        if key > mark or (key == mark and new[1] < (self._bid_need if bid_side else self._ask_need)):
            self._bump(bid_side)

    def _bump(self, bid_side: bool) -> None:
        """A change relevant to the walks made on a side: new walk version, and the watermark starts over."""
        if bid_side:
            self.walk_versions[0] += 1
            self._bid_mark, self._bid_need = _UNMARKED, 0.0
            self._walks[0].clear()
        else:
            self.walk_versions[1] += 1
            self._ask_mark, self._ask_need = _UNMARKED, 0.0
            self._walks[1].clear()

    def _restate(self) -> None:
        """Recompute the book's state from both effective tops; a change moves both walk versions.

        The state (ok / empty / crossed) is the one thing a decision reads from the side a leg does not
        walk, so folding its rare changes into the walk versions keeps the engine's check one int per leg.
        """
        bid, ask = self.best_bid_price(), self.best_ask_price()
        state = _EMPTY if math.isnan(bid) or math.isnan(ask) else _CROSSED if bid >= ask else _OK
        if state != self._state:
            self._state = state
            self.walk_versions[0] += 1
            self.walk_versions[1] += 1

    def overlay(self) -> tuple[int, Level, Level] | None:
        """The active ticker overlay as (update id, bid, ask), or None."""
        if self._overlay_bid is None or self._overlay_ask is None:
            return None
        return self._overlay_id, self._overlay_bid, self._overlay_ask

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (Kraken: the book is the subscribed depth)."""
        for bid_side in (True, False):
            removed = (self._bids if bid_side else self._asks).truncate(depth)  # worst first
            if not removed:
                continue
            if (removed[-1] >= self._bid_mark) if bid_side else (-removed[-1] >= self._ask_mark):
                self._bump(bid_side)
            if self._raw is not None:
                raw = self._raw[0 if bid_side else 1]
                for price in removed:
                    raw.pop(price, None)
        self._restate()

    # ---- reads (cheap; the evaluator calls them after every update) ------------------------------

    def best_bid(self) -> Level | None:
        if self._overlay_bid is not None:
            return self._overlay_bid
        return self._bids.best()

    def best_ask(self) -> Level | None:
        if self._overlay_ask is not None:
            return self._overlay_ask
        return self._asks.best()

    def best_bid_price(self) -> float:
        """Best bid price, or nan for an empty side."""
        if self._overlay_bid is not None:
            return self._overlay_bid[0]
        return self._bids.best_price()

    def best_ask_price(self) -> float:
        """Best ask price, or nan for an empty side."""
        if self._overlay_ask is not None:
            return self._overlay_ask[0]
        return self._asks.best_price()

    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (a broken book, never a market state)."""
        bid, ask = self.best_bid_price(), self.best_ask_price()
        return bid >= ask  # nan compares False: an empty side is not crossed

    def depth(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)

    def levels(self, side: Side, n: int | None = None) -> list[Level]:
        """The best ``n`` book levels of a side, best first (the overlay is not applied)."""
        return (self._bids if side is Side.BID else self._asks).levels(n or 0)

    def raw_levels(self, side: Side, n: int) -> list[RawLevel]:
        """Exact venue strings of the best ``n`` levels, best first (checksum venues only)."""
        if self._raw is None:
            raise ValueError(f"{self.key}: this book does not keep exact strings")
        raw = self._raw[0] if side is Side.BID else self._raw[1]
        return [raw[price] for price, _ in self.levels(side, n)]

    def walk_version(self, side: Side) -> int:
        """The walk-relevant version of ``side`` (see the module docstring)."""
        return self.walk_versions[0] if side is Side.BID else self.walk_versions[1]

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
        made = self._walks[0 if bid_side else 1]
        fill = made.get((by_base, target))
        if fill is None:  # else the same walk was made since the side last moved: the same fill
            if len(made) >= _MAX_WALKS_KEPT:
                made.clear()  # a quiet side walked for ever new amounts (a second leg's base): stay small
            fill = made[(by_base, target)] = self._walk(bid_side, by_base, target)
        return fill

    def set_contract_terms(self, contract_type: ContractType, contract_size: float) -> None:
        """Change what a level's quantity means (metadata loaded after the book was made): every walk differs."""
        if (contract_type, contract_size) != (self.contract_type, self.contract_size):
            self.contract_type, self.contract_size = contract_type, contract_size
            self._kind = _KIND[contract_type]
            self._bump(True)
            self._bump(False)

    def _walk(self, bid_side: bool, by_base: bool, target: float) -> Fill:
        if bid_side:
            side, overlay = self._bids, self._overlay_bid
        else:
            side, overlay = self._asks, self._overlay_ask
        if overlay is None and not side:
            self._mark(bid_side, _ALL, math.inf)  # any level that appears changes this walk
            return _EMPTY_FILL
        # The overlay level first, then only book levels strictly worse than it (feeds/_levels_py.py).
        vwap, base, quote, top, used, complete, key, need = side.walk(
            overlay, by_base, target, self._kind, self.contract_size
        )
        # A walk that stopped inside a level marks it with what it needed; one that ran out marks the whole
        # side (key -inf, need inf): a level added anywhere would be walked.
        self._mark(bid_side, key, need)
        return Fill(vwap, base, quote, top, used, complete)

    def _mark(self, bid_side: bool, key: float, need: float) -> None:
        """Record a walk that stopped at ``key`` (key space) needing ``need`` (native units) of that level.

        The watermark is the deepest stop of the walks since the last bump; at an equal depth, the
        largest need.
        """
        need *= _NEED_MARGIN
        if bid_side:
            mark, old_need = self._bid_mark, self._bid_need
        else:
            mark, old_need = self._ask_mark, self._ask_need
        if key < mark:
            mark, old_need = key, need
        elif key == mark and need > old_need:
            old_need = need
        else:
            return
        if bid_side:
            self._bid_mark, self._bid_need = mark, old_need
        else:
            self._ask_mark, self._ask_need = mark, old_need

    def age_ns(self, now_ns: int) -> int:
        """Nanoseconds since the last applied update (local monotonic clock)."""
        return now_ns - self.recv_ns
