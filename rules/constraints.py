"""Effective execution constraints: rule lookup, fee tiers, leverage multipliers, overrides, overlays.

:class:`Constraints` wraps a validated :class:`~rules.model.ConstraintsFile` (load it with
:func:`rules.validation.load_constraints`) and answers the evaluator's questions:

* :meth:`Constraints.rule_for` ``(venue, market, asset)``: each limit is taken from the most specific rule
  that sets it: ``venue:market:asset`` > ``venue:market`` > ``venue`` > ``default``; at equal
  specificity an ``authenticated`` rule beats a ``template`` one. The answer says, per limit, which rule
  (scope, source, as_of) it came from, and which limits no rule sets (``constraints_missing``).
* :meth:`Constraints.fees_for` ``(venue, market)``: the account's tier of that market's fee table
  (an authenticated table replaces the template one).
* :meth:`Constraints.multiplier` ``(strategy)``: the leverage notional multiplier after overrides.

Answers are memoized: a lookup costs one dict hit after the first, so the evaluator can ask on every
book update. Instances are immutable; :meth:`Constraints.with_overrides` and :meth:`Constraints.overlay`
return new ones (the daemon swaps its reference when signed endpoints report new values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from rules.candidates import Strategy
from rules.errors import ConstraintsError
from rules.model import RULE_LIMIT_FIELDS, ConstraintsFile, FeeTable, Rule, StrategyLeverageNotionalMultiplier

_SOURCE_RANK = {"authenticated": 0, "template": 1}
_DERIVED_LIMIT = 100_000  # candidates per Constraints; far above any configuration, a guard against leaks
_T = TypeVar("_T")


class RuleRef(msgspec.Struct, frozen=True, gc=False):
    """Which rule a value came from."""

    scope: str
    source: str
    as_of: str


class ResolvedRule(msgspec.Struct, frozen=True):
    """The limits in force for one ``venue:market:asset``, each with the rule it came from.

    A limit is ``None`` when no rule sets it (it is then listed in ``missing``).
    """

    key: str
    max_leverage: float | None
    equity_usd: float | None
    max_borrow_usd: float | None
    borrow_rate_bps_per_hour: float | None
    min_net_edge_bps: float | None
    max_size_usd: float | None
    max_book_age_ms: float | None
    max_leg_skew_ms: float | None
    provenance: dict[str, RuleRef]
    missing: tuple[str, ...]


class FeeUsed(msgspec.Struct, frozen=True, gc=False):
    """The fee tier applied to one venue market."""

    venue: str
    market: str
    tier: str
    maker_bps: float
    taker_bps: float
    confirmed: bool
    source: str
    as_of: str


def _multipliers(model: StrategyLeverageNotionalMultiplier) -> dict[Strategy, float]:
    return {strategy: float(getattr(model, strategy.value)) for strategy in Strategy}


class Constraints:
    """Immutable effective constraints. Build with :func:`rules.validation.load_constraints`."""

    __slots__ = (
        "_derived",
        "_fee_cache",
        "_fees",
        "_multipliers",
        "_rule_cache",
        "_rules",
        "document",
        "origin",
        "overrides",
    )

    def __init__(
        self,
        document: ConstraintsFile,
        *,
        origin: str = "<memory>",
        overrides: Mapping[Strategy, float] | None = None,
    ) -> None:
        self.document = document
        self.origin = origin
        overrides = dict(overrides or {})
        # Shared by every decision (not copied): treat as read-only.
        self.overrides: dict[str, float] = {s.value: m for s, m in sorted(overrides.items())}
        self._multipliers = _multipliers(document.strategy_leverage_notional_multiplier) | overrides
        index: dict[tuple[str | None, str | None, str | None], list[Rule]] = {}
        for rule in document.rules:
            index.setdefault((rule.venue, rule.market, rule.asset), []).append(rule)
        for rules in index.values():
            rules.sort(key=lambda r: _SOURCE_RANK[r.source])
        self._rules = index
        fees: dict[tuple[str, str], FeeTable] = {}
        for table in sorted(document.fees, key=lambda t: -_SOURCE_RANK[t.source]):  # authenticated last: wins
            fees[(table.venue, table.market)] = table
        self._fees = fees
        self._rule_cache: dict[tuple[str, str, str], ResolvedRule] = {}
        self._fee_cache: dict[tuple[str, str], FeeUsed | None] = {}
        self._derived: dict[int, tuple[object, Any]] = {}

    # ---- questions the evaluator asks -------------------------------------------------------------

    def rule_for(self, venue: str, market: str, asset: str) -> ResolvedRule:
        key = (venue, market, asset)
        cached = self._rule_cache.get(key)
        if cached is None:
            cached = self._rule_cache[key] = self._resolve(venue, market, asset)
        return cached

    def fees_for(self, venue: str, market: str) -> FeeUsed | None:
        key = (venue, market)
        if key not in self._fee_cache:
            table = self._fees.get(key)
            self._fee_cache[key] = None if table is None else _fee_used(table)
        return self._fee_cache[key]

    def multiplier(self, strategy: Strategy) -> float:
        return self._multipliers[strategy]

    def derived(self, owner: object, build: Callable[..., _T], *args: object) -> _T:
        """A value derived from these constraints for ``owner`` (a candidate), built once as ``build(*args)``.

        The evaluator keeps each candidate's rule and fee lookups here, so they live exactly as long as
        the constraints they came from. Keyed by identity (the owner is kept alive with its value, so an
        id is never reused while its entry exists); bounded, cleared when full. ``build`` takes its inputs
        as ``args`` so that a hit (every evaluation but the first) allocates no closure.
        """
        entry = self._derived.get(id(owner))
        if entry is not None and entry[0] is owner:
            return entry[1]  # type: ignore[no-any-return]  # build's _T, stored as Any (typing.cast is a call)
        if len(self._derived) >= _DERIVED_LIMIT:
            self._derived.clear()
        value = build(*args)
        self._derived[id(owner)] = (owner, value)
        return value

    # ---- derived constraints ----------------------------------------------------------------------

    def with_overrides(self, overrides: Mapping[Strategy, float]) -> Constraints:
        """The same constraints with these strategy multipliers replaced (validated by rules.overrides)."""
        merged = {Strategy(k): v for k, v in self.overrides.items()} | dict(overrides)
        return Constraints(self.document, origin=self.origin, overrides=merged)

    def overlay(self, rules: Iterable[Rule] = (), fees: Iterable[FeeTable] = ()) -> Constraints:
        """Add values read from signed endpoints (borrow limits and rates, fee tiers).

        Every overlaid rule and table must have ``source="authenticated"`` and pass the checks a constraints
        file's values pass (finite numbers within their bounds, scopes, tiers: :func:`rules.validation.check_overlay`);
        otherwise :class:`ConstraintsError` lists every problem. An authenticated rule replaces
        an earlier authenticated rule of the same scope; template rules stay underneath, so a field the
        authenticated rule does not set still comes from the template. An authenticated fee table
        replaces the template table of its venue market.
        """
        from rules.validation import check_overlay  # noqa: PLC0415 (rules.validation builds Constraints)

        new_rules, new_fees = list(rules), list(fees)
        problems = check_overlay(new_rules, new_fees)
        problems += [
            (f"overlay.rules[{i}].source", f"must be 'authenticated', got {r.source!r}")
            for i, r in enumerate(new_rules)
            if r.source != "authenticated"
        ]
        problems += [
            (f"overlay.fees[{i}].source", f"must be 'authenticated', got {t.source!r}")
            for i, t in enumerate(new_fees)
            if t.source != "authenticated"
        ]
        if problems:
            raise ConstraintsError("overlay", problems)
        replaced_rules = {(r.venue, r.market, r.asset) for r in new_rules}
        replaced_fees = {(t.venue, t.market) for t in new_fees}
        kept_rules = [
            r
            for r in self.document.rules
            if not (r.source == "authenticated" and (r.venue, r.market, r.asset) in replaced_rules)
        ]
        kept_fees = [
            t for t in self.document.fees if not (t.source == "authenticated" and (t.venue, t.market) in replaced_fees)
        ]
        document = msgspec.structs.replace(self.document, rules=kept_rules + new_rules, fees=kept_fees + new_fees)
        return Constraints(document, origin=self.origin, overrides={Strategy(k): v for k, v in self.overrides.items()})

    def effective_document(self) -> ConstraintsFile:
        """The document with overrides folded into the multipliers (what ``constraints show`` prints)."""
        multipliers = StrategyLeverageNotionalMultiplier(**{s.value: m for s, m in self._multipliers.items()})
        return msgspec.structs.replace(self.document, strategy_leverage_notional_multiplier=multipliers)

    # ---- lookup ----------------------------------------------------------------------------------------

    def _resolve(self, venue: str, market: str, asset: str) -> ResolvedRule:
        chain: list[Rule] = []
        for scope in ((venue, market, asset), (venue, market, None), (venue, None, None), (None, None, None)):
            chain.extend(self._rules.get(scope, ()))
        values: dict[str, float | None] = {}
        provenance: dict[str, RuleRef] = {}
        for name in RULE_LIMIT_FIELDS:
            values[name] = None
            for rule in chain:
                value = getattr(rule, name)
                if value is not None:
                    values[name] = float(value)
                    provenance[name] = RuleRef(rule.scope, rule.source, rule.as_of)
                    break
        missing = tuple(name for name in RULE_LIMIT_FIELDS if values[name] is None)
        return ResolvedRule(key=f"{venue}:{market}:{asset}", provenance=provenance, missing=missing, **values)


def _fee_used(table: FeeTable) -> FeeUsed | None:
    tier = next((t for t in table.tiers if t.name == table.tier), None)  # validation rejects a missing tier
    if tier is None:
        return None
    return FeeUsed(
        venue=table.venue,
        market=table.market,
        tier=tier.name,
        maker_bps=tier.maker_bps,
        taker_bps=tier.taker_bps,
        confirmed=tier.confirmed,
        source=table.source,
        as_of=table.as_of,
    )
