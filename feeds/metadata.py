"""Instrument metadata of every venue in one catalog, and exact contract arithmetic.

Each venue's REST metadata (exchangeInfo, instruments, instruments-info, AssetPairs) is decoded by a pure
parser in ``feeds/<venue>/instruments.py`` into :class:`InstrumentMeta`: the shared
:class:`feeds.instruments.InstrumentSpec` (floats, what books and rules read) plus the exact decimal
strings it came from, so that contract-size conversions are exact (OKX swaps and futures are quoted in
contracts: 3 contracts of 0.01 BTC are exactly 0.03 BTC, never 0.030000000000000002).

:class:`InstrumentCatalog` maps venue symbols and canonical :class:`InstrumentId` to metadata; a refresh
replaces one (venue, market) at a time, so readers never see a half-loaded venue. Loading over REST lives
in :mod:`feeds.metadata_loader`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from feeds.book import OrderBook
from feeds.errors import MalformedFrame
from feeds.instruments import ContractType, InstrumentId, InstrumentSpec, Market, Venue


@dataclass(frozen=True, slots=True)
class InstrumentMeta:
    """One instrument's metadata: the float spec plus the exact decimals behind it.

    ``contract_size`` is base units per contract (LINEAR), quote units per contract (INVERSE) or 1 (BASE).
    ``funding_interval_ms`` is set where the venue's metadata states it (Bybit ``fundingInterval``).
    ``aliases`` are further venue names of the same book (Kraken v1 ``XBT/USD`` is v2 ``BTC/USD``).
    """

    spec: InstrumentSpec
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)
    funding_interval_ms: int | None = None
    active: bool = True
    aliases: tuple[str, ...] = ()

    @property
    def instrument(self) -> InstrumentId:
        return self.spec.instrument

    @property
    def venue_symbol(self) -> str:
        return self.spec.venue_symbol


@dataclass(frozen=True, slots=True)
class ParsedMetadata:
    """What a metadata parser found: instruments, and the rows it left out with the reason."""

    instruments: list[InstrumentMeta]
    skipped: list[str] = field(default_factory=list)  # "SYMBOL: reason"


def decimal(text: object, *, venue: str, what: str) -> Decimal:
    """An exact decimal from a venue's string (or int); anything else is a malformed response."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise MalformedFrame(f"{what}: {text!r} is not a decimal string", venue=venue)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedFrame(f"{what}: {text!r} is not a decimal", venue=venue) from None
    if not value.is_finite() or value < 0:
        raise MalformedFrame(f"{what}: {text!r} is not a finite non-negative decimal", venue=venue)
    return value


def make_meta(
    instrument: InstrumentId,
    venue_symbol: str,
    *,
    tick: Decimal,
    lot: Decimal,
    min_notional: Decimal = Decimal(0),
    contract_type: ContractType = ContractType.BASE,
    contract_size: Decimal = Decimal(1),
    funding_interval_ms: int | None = None,
    active: bool = True,
    aliases: tuple[str, ...] = (),
) -> InstrumentMeta:
    """Build the float spec from the exact values (one place converts)."""
    if contract_type is not ContractType.BASE and contract_size <= 0:
        raise MalformedFrame(f"{venue_symbol}: contract size {contract_size} must be positive", venue=instrument.venue)
    spec = InstrumentSpec(
        instrument=instrument,
        venue_symbol=venue_symbol,
        tick_size=float(tick),
        lot_size=float(lot),
        min_notional=float(min_notional),
        contract_type=contract_type,
        contract_size=float(contract_size),
    )
    return InstrumentMeta(spec, tick, lot, min_notional, contract_size, funding_interval_ms, active, aliases)


# ---- exact contract arithmetic ------------------------------------------------------------------------


def to_base(meta: InstrumentMeta, quantity: Decimal, price: Decimal) -> Decimal:
    """Book quantity (base units, or contracts) → base units, exactly. ``price`` matters for inverse."""
    kind = meta.spec.contract_type
    if kind is ContractType.BASE:
        return quantity
    if kind is ContractType.LINEAR:
        return quantity * meta.contract_size
    if price <= 0:
        raise ValueError(f"{meta.venue_symbol}: inverse conversion needs a positive price, got {price}")
    return quantity * meta.contract_size / price


def to_quote(meta: InstrumentMeta, quantity: Decimal, price: Decimal) -> Decimal:
    """Book quantity → quote units (notional), exactly."""
    if meta.spec.contract_type is ContractType.INVERSE:
        return quantity * meta.contract_size
    return to_base(meta, quantity, price) * price


def to_contracts(meta: InstrumentMeta, base: Decimal, price: Decimal) -> Decimal:
    """Base units → book quantity (contracts for contract venues), exactly; not rounded to the lot."""
    kind = meta.spec.contract_type
    if kind is ContractType.BASE:
        return base
    if kind is ContractType.LINEAR:
        return base / meta.contract_size
    return base * price / meta.contract_size


def round_to_lot(meta: InstrumentMeta, quantity: Decimal) -> Decimal:
    """Round a quantity down to a whole number of lots (what an order could actually be)."""
    if meta.lot_size == 0:
        return quantity
    return (quantity // meta.lot_size) * meta.lot_size


# ---- the catalog --------------------------------------------------------------------------------------


class InstrumentCatalog:
    """Metadata of every loaded venue, by venue symbol and by canonical id."""

    __slots__ = ("_by_id", "_by_symbol", "_loaded")

    def __init__(self) -> None:
        self._by_symbol: dict[tuple[Venue, Market, str], InstrumentMeta] = {}
        self._by_id: dict[InstrumentId, InstrumentMeta] = {}
        self._loaded: dict[tuple[Venue, Market], list[InstrumentMeta]] = {}

    def replace(self, venue: Venue, market: Market, metas: Iterable[InstrumentMeta]) -> None:
        """Install a fresh load of one (venue, market), dropping what the previous load had."""
        fresh = list(metas)
        for old in self._loaded.get((venue, market), []):
            for name in (old.venue_symbol, *old.aliases):
                self._by_symbol.pop((venue, market, name), None)
            self._by_id.pop(old.instrument, None)
        for meta in fresh:
            for name in (meta.venue_symbol, *meta.aliases):
                self._by_symbol[(venue, market, name)] = meta
            self._by_id[meta.instrument] = meta
        self._loaded[(venue, market)] = fresh

    def by_symbol(self, venue: Venue, market: Market, venue_symbol: str) -> InstrumentMeta | None:
        return self._by_symbol.get((venue, market, venue_symbol))

    def by_id(self, instrument: InstrumentId) -> InstrumentMeta | None:
        return self._by_id.get(instrument)

    def by_key(self, key: str) -> InstrumentMeta | None:
        """Metadata of a book key ``venue:market:SYMBOL`` (the key feeds use)."""
        venue, market, symbol = key.split(":", 2)
        return self._by_symbol.get((Venue(venue), Market(market), symbol))

    def specs(self, venue: Venue, market: Market) -> dict[str, InstrumentSpec]:
        """Venue symbol → spec of one loaded (venue, market), aliases included (what protocols take)."""
        out: dict[str, InstrumentSpec] = {}
        for meta in self._loaded.get((venue, market), []):
            for name in (meta.venue_symbol, *meta.aliases):
                out[name] = meta.spec
        return out

    def funding_intervals(self, venue: Venue, market: Market) -> dict[str, int]:
        """Venue symbol → funding interval (ms) where the metadata states one."""
        return {
            m.venue_symbol: m.funding_interval_ms
            for m in self._loaded.get((venue, market), [])
            if m.funding_interval_ms is not None
        }

    def spec_view(self, venue: Venue, market: Market) -> LiveSpecs:
        """Venue symbol → spec of (venue, market) as this catalog has it *now* (refreshes show through)."""
        return LiveSpecs(self, venue, market)

    def interval_view(self, venue: Venue, market: Market) -> LiveIntervals:
        """Venue symbol → funding interval (ms) as this catalog has it now, where the metadata states one."""
        return LiveIntervals(self, venue, market)

    def apply_contract_terms(self, book: OrderBook) -> bool:
        """Give an existing book its instrument's contract terms (books made before metadata loaded).

        OKX swaps and futures are quoted in contracts whose size differs per instrument; a book created
        without metadata would walk contracts as base units. True if the book's instrument is known.
        """
        meta = self.by_key(book.key)
        if meta is None:
            return False
        book.set_contract_terms(meta.spec.contract_type, meta.spec.contract_size)
        return True

    def loaded(self) -> list[tuple[Venue, Market]]:
        return list(self._loaded)

    def __iter__(self) -> Iterator[InstrumentMeta]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


class LiveSpecs(Mapping[str, InstrumentSpec]):
    """A read-only view of one (venue, market)'s specs in a catalog: what protocols are given, so that a
    refresh reaches them without rebuilding. Always truthy: ``specs or {}`` must keep the view."""

    __slots__ = ("_catalog", "_market", "_venue")

    def __init__(self, catalog: InstrumentCatalog, venue: Venue, market: Market) -> None:
        self._catalog, self._venue, self._market = catalog, venue, market

    def __getitem__(self, symbol: str) -> InstrumentSpec:
        meta = self._catalog.by_symbol(self._venue, self._market, symbol)
        if meta is None:
            raise KeyError(symbol)
        return meta.spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.specs(self._venue, self._market))

    def __len__(self) -> int:
        return len(self._catalog.specs(self._venue, self._market))

    def __bool__(self) -> bool:
        return True


class LiveIntervals(Mapping[str, int]):
    """A read-only view of one (venue, market)'s funding intervals in a catalog (see :class:`LiveSpecs`)."""

    __slots__ = ("_catalog", "_market", "_venue")

    def __init__(self, catalog: InstrumentCatalog, venue: Venue, market: Market) -> None:
        self._catalog, self._venue, self._market = catalog, venue, market

    def __getitem__(self, symbol: str) -> int:
        meta = self._catalog.by_symbol(self._venue, self._market, symbol)
        if meta is None or meta.funding_interval_ms is None:
            raise KeyError(symbol)
        return meta.funding_interval_ms

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.funding_intervals(self._venue, self._market))

    def __len__(self) -> int:
        return len(self._catalog.funding_intervals(self._venue, self._market))

    def __bool__(self) -> bool:
        return True
