"""What ``rules`` reads: read-only views of books, funding and DEX quotes.

These are :class:`typing.Protocol` types, satisfied structurally: ``feeds.book.OrderBook`` is a
:class:`BookView` (its ``walk`` returns ``feeds.book.Fill``, a :class:`FillView`), and
``feeds.updates.FundingUpdate`` is a :class:`FundingView`. ``rules`` never imports ``feeds.book``: the
depth walk takes a side token (``feeds.book.Side.ASK`` to buy, ``Side.BID`` to sell) that the
:class:`MarketView` supplies as ``ask_side`` / ``bid_side``. The daemon's market view is therefore a
few lines::

    class LiveMarket:                      # scanner/, which may import feeds.book
        bid_side = Side.BID
        ask_side = Side.ASK

        def book(self, instrument): return self._books.get(instrument)     # the live OrderBook
        def funding(self, instrument): return self._funding.get(instrument)  # latest FundingUpdate
        def dex(self, pool): return self._pools.get(pool)                  # ConstantProductPool | QuotedSwap

Books are read in place (top of book, one walk per leg), never copied.

DEX quotes are plain frozen values (the DEX feed comes later; the math and its input are here):
:class:`ConstantProductPool` (reserves and fee tier, Uniswap v2 math) or :class:`QuotedSwap` (a router's
amount-out for a given amount-in). Both carry the gas cost of the swap in USD and a receive time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from feeds.instruments import InstrumentId
from feeds.updates import FundingSource


@runtime_checkable
class FillView(Protocol):
    """Result of a depth walk (``feeds.book.Fill``). ``complete`` False = the side ran out."""

    @property
    def vwap(self) -> float: ...
    @property
    def base(self) -> float: ...
    @property
    def quote(self) -> float: ...
    @property
    def top_price(self) -> float: ...
    @property
    def levels(self) -> int: ...
    @property
    def complete(self) -> bool: ...


@runtime_checkable
class BookView(Protocol):
    """Read-only order book (``feeds.book.OrderBook``). Prices ``nan`` for an empty side."""

    @property
    def recv_ns(self) -> int: ...  # local monotonic receive time of the last applied update
    @property
    def venue_ms(self) -> int: ...
    @property
    def version(self) -> int: ...
    def best_bid_price(self) -> float: ...
    def best_ask_price(self) -> float: ...
    def walk(self, consume: Any, *, base: float | None = None, quote: float | None = None) -> FillView: ...


@runtime_checkable
class FundingView(Protocol):
    """A perpetual's funding state (``feeds.updates.FundingUpdate``).

    ``rate`` is the decimal rate for one interval (0.0001 = 1 bp, paid by longs to shorts when positive),
    ``interval_ms`` the venue's interval for this symbol, ``next_funding_ms`` the next settlement in venue
    epoch ms, ``source`` whether it is live, polled or assumed.
    """

    @property
    def rate(self) -> float: ...
    @property
    def interval_ms(self) -> int: ...
    @property
    def next_funding_ms(self) -> int: ...
    @property
    def source(self) -> FundingSource: ...


@dataclass(frozen=True, slots=True)
class ConstantProductPool:
    """A constant-product (x·y = k) pool, in the CEX instrument's base/quote units (decimals applied).

    ``fee_bps`` is the pool's fee tier taken from the input amount (Uniswap v2: 30 bps);
    ``gas_usd`` the cost of one swap transaction; ``recv_ns`` the monotonic time this state was received.
    """

    venue: str
    base_reserve: float
    quote_reserve: float
    fee_bps: float
    gas_usd: float
    recv_ns: int

    @classmethod
    def from_raw(
        cls,
        *,
        venue: str,
        reserve0: int,
        reserve1: int,
        decimals0: int,
        decimals1: int,
        base_is_token0: bool,
        fee_bps: float,
        gas_usd: float,
        recv_ns: int,
    ) -> ConstantProductPool:
        """From on-chain integer reserves (``getReserves()``) and token decimals."""
        r0 = reserve0 / 10**decimals0
        r1 = reserve1 / 10**decimals1
        base, quote = (r0, r1) if base_is_token0 else (r1, r0)
        return cls(
            venue=venue, base_reserve=base, quote_reserve=quote, fee_bps=fee_bps, gas_usd=gas_usd, recv_ns=recv_ns
        )


@dataclass(frozen=True, slots=True)
class QuotedSwap:
    """A router's quote: swapping ``amount_in`` returns ``amount_out`` (fees included in ``amount_out``).

    ``sell_base`` True: base in, quote out; False: quote in, base out. ``fee_bps`` is the pool fee inside
    the quote, used only to show it as a fee (0 if unknown: then it stays inside the price). A quote covers
    at most its own size: a larger need is ``insufficient_depth``; a smaller one uses the quote's average
    price (a smaller swap never gets a worse price on an AMM).
    """

    venue: str
    sell_base: bool
    amount_in: float
    amount_out: float
    fee_bps: float
    gas_usd: float
    recv_ns: int


DexQuote = ConstantProductPool | QuotedSwap


class MarketView(Protocol):
    """Everything ``rules.evaluate`` reads. Return ``None`` for an instrument you have no state for."""

    @property
    def bid_side(self) -> Any: ...  # the token BookView.walk takes to consume bids (sell)
    @property
    def ask_side(self) -> Any: ...  # ... and asks (buy)
    def book(self, instrument: InstrumentId) -> BookView | None: ...
    def funding(self, instrument: InstrumentId) -> FundingView | None: ...
    def dex(self, pool: str) -> DexQuote | None: ...
