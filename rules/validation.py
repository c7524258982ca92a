"""Loading a constraints document and reporting *every* error with its JSON path.

msgspec stops at the first error; a user fixing a file wants them all. So the document is parsed
(stdlib ``json``, to catch duplicate keys and give line:column on syntax errors), then walked against
the msgspec type information of :class:`~rules.model.ConstraintsFile` (the same types the decoder and
the JSON Schema use, so they cannot drift), then checked for what a schema cannot say (scope shape,
venue/market pairs, duplicate scopes, the selected fee tier). Only a document with no problem at all
becomes a :class:`~rules.constraints.Constraints`. Paths look like ``$.rules[2].max_leverage``.

This module reads no files: callers pass the bytes and a name for messages.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import msgspec.inspect as mi

from rules.constraints import Constraints
from rules.errors import ConstraintsError
from rules.model import AMM_MARKET, AS_OF_PATTERN, ASSET_PATTERN, DEX_VENUES, ConstraintsFile, FeeTable, Rule

Problems = list[tuple[str, str]]

# Which markets each venue has (a rule or fee table for "binance:linear" is a typo, not a scope).
VENUE_MARKETS: dict[str, frozenset[str]] = {
    "binance": frozenset({"spot", "usdm", "coinm"}),
    "bybit": frozenset({"spot", "linear", "inverse"}),
    "okx": frozenset({"spot", "swap", "futures", "option", "margin"}),
    "kraken": frozenset({"spot"}),
    "huobi": frozenset({"spot"}),
    **{dex: frozenset({AMM_MARKET}) for dex in DEX_VENUES},
}

_PATTERN_MEANING = {
    AS_OF_PATTERN: "must be an ISO-8601 date (2026-08-21) or date-time with offset (2026-08-21T09:30:00Z)",
    ASSET_PATTERN: "must be 1-20 upper-case letters or digits (BTC, 1000PEPE)",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALTERNATION = re.compile(r"^\^\(([^()]*)\)\$$")


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers keys it saw more than once."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    seen: list[str] = []
    for key, value in pairs:
        if key in obj:
            seen.append(key)
        obj[key] = value
    obj.duplicates = tuple(seen)
    return obj


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key)}]"


def validate_document(data: bytes | str) -> tuple[ConstraintsFile | None, Problems]:
    """Parse and check a constraints document. Returns the model (if valid) and every problem found."""
    try:
        raw = json.loads(data, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, [("$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [("$", f"not valid JSON: {exc}")]
    problems: Problems = []
    _check(raw, mi.type_info(ConstraintsFile), "$", problems)
    _check_semantics(raw, problems)
    if problems:
        return None, _in_document_order(problems)
    try:
        return msgspec.convert(raw, ConstraintsFile), []
    except msgspec.ValidationError as exc:  # the walk above should have caught it: report, do not crash
        return None, [("$", str(exc))]


def _in_document_order(problems: Problems) -> Problems:
    """Group problems by item (``rules[2]`` before ``rules[10]``); keys keep the order they were found in."""
    rank: dict[str, int] = {}
    for path, _ in problems:
        for token in re.split(r"[.\[\]]+", path):
            if token:
                rank.setdefault(token, len(rank))

    def key(problem: tuple[str, str]) -> list[int]:
        return [int(t) if t.isdigit() else rank[t] for t in re.split(r"[.\[\]]+", problem[0]) if t]

    return sorted(problems, key=key)


def load_constraints(data: bytes | str, origin: str) -> Constraints:
    """A :class:`Constraints` from document bytes, or :class:`ConstraintsError` listing every problem."""
    document, problems = validate_document(data)
    if document is None:
        raise ConstraintsError(origin, problems)
    return Constraints(document, origin=origin)


def check_overlay(rules: Sequence[Rule], fees: Sequence[FeeTable]) -> Problems:
    """Every problem of rules and fee tables built in code (signed-endpoint values), as a file's are checked.

    A struct built in code skips msgspec's bounds (``Meta`` applies when decoding), so a NaN rate or a
    negative limit would reach the evaluator; here they meet the same checks as a document's values.
    Paths look like ``overlay.rules[0].borrow_rate_bps_per_hour``.
    """
    problems: Problems = []
    raw_rules = [msgspec.to_builtins(r) for r in rules]
    raw_fees = [msgspec.to_builtins(t) for t in fees]
    for i, raw in enumerate(raw_rules):
        _check(raw, mi.type_info(Rule), child("overlay.rules", i), problems)
    for i, raw in enumerate(raw_fees):
        _check(raw, mi.type_info(FeeTable), child("overlay.fees", i), problems)
    _check_rules(raw_rules, problems, "overlay.rules")
    _check_fees(raw_fees, problems, "overlay.fees")
    return _in_document_order(problems)


# ---- structural walk over msgspec type info -----------------------------------------------------------


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check(value: Any, t: mi.Type, path: str, problems: Problems) -> None:
    if isinstance(t, mi.Metadata):
        _check(value, t.type, path, problems)
    elif isinstance(t, mi.UnionType):
        _check_union(value, t, path, problems)
    elif isinstance(t, mi.StructType):
        _check_struct(value, t, path, problems)
    elif isinstance(t, mi.ListType):
        if not isinstance(value, list):
            problems.append((path, f"expected an array, got {_json_type(value)}"))
            return
        if t.min_length is not None and len(value) < t.min_length:
            problems.append((path, f"needs at least {t.min_length} item(s), got {len(value)}"))
        for i, item in enumerate(value):
            _check(item, t.item_type, child(path, i), problems)
    elif isinstance(t, mi.FloatType | mi.IntType):
        _check_number(value, t, path, problems)
    elif isinstance(t, mi.StrType):
        _check_str(value, t, path, problems)
        if t.pattern == AS_OF_PATTERN and isinstance(value, str) and re.search(AS_OF_PATTERN, value):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                problems.append((path, f"{value!r} is not a real date"))
    elif isinstance(t, mi.BoolType):
        if not isinstance(value, bool):
            problems.append((path, f"expected true or false, got {_describe(value)}"))
    elif isinstance(t, mi.LiteralType):
        if type(value) not in (int, str) or value not in t.values:
            allowed = ", ".join(json.dumps(v) for v in sorted(t.values, key=str))
            problems.append((path, f"must be one of {allowed}, got {_describe(value)}"))
    elif isinstance(t, mi.NoneType):
        if value is not None:
            problems.append((path, f"expected null, got {_describe(value)}"))
    elif not isinstance(t, mi.AnyType):
        raise TypeError(f"validation does not support {t!r}")  # a model change needs a walker change


def _check_union(value: Any, t: mi.UnionType, path: str, problems: Problems) -> None:
    options = [o for o in t.types if not isinstance(o, mi.NoneType)]
    if value is None and len(options) < len(t.types):
        return
    if len(options) != 1:
        raise TypeError(f"validation supports only 'X | None' unions, not {t!r}")
    _check(value, options[0], path, problems)


def _check_struct(value: Any, t: mi.StructType, path: str, problems: Problems) -> None:
    if not isinstance(value, dict):
        problems.append((path, f"expected an object, got {_json_type(value)}"))
        return
    problems.extend((child(path, key), "key given more than once") for key in getattr(value, "duplicates", ()))
    fields = {f.encode_name: f for f in t.fields}
    for key in value:
        if key not in fields and t.forbid_unknown_fields:
            problems.append((child(path, key), f"unknown key (allowed: {', '.join(fields)})"))
    for name, field in fields.items():
        if name in value:
            _check(value[name], field.type, child(path, name), problems)
        elif field.required:
            problems.append((child(path, name), "required key is missing"))


def _check_number(value: Any, t: mi.FloatType | mi.IntType, path: str, problems: Problems) -> None:
    is_int = isinstance(t, mi.IntType)
    if isinstance(value, bool) or not isinstance(value, int | float) or (is_int and not isinstance(value, int)):
        problems.append((path, f"expected {'an integer' if is_int else 'a number'}, got {_describe(value)}"))
        return
    if not math.isfinite(value):
        problems.append((path, f"must be finite, got {value}"))
        return
    for bound, holds, word in (
        (t.gt, operator.gt, ">"),
        (t.ge, operator.ge, ">="),
        (t.lt, operator.lt, "<"),
        (t.le, operator.le, "<="),
    ):
        if bound is not None and not holds(value, bound):
            problems.append((path, f"must be {word} {bound:g}, got {value:g}"))


def _check_str(value: Any, t: mi.StrType, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append((path, f"expected a string, got {_describe(value)}"))
        return
    if t.min_length is not None and len(value) < t.min_length:
        problems.append((path, f"must have at least {t.min_length} character(s)"))
    if t.max_length is not None and len(value) > t.max_length:
        problems.append((path, f"must have at most {t.max_length} characters, got {len(value)}"))
    if t.pattern is not None and not re.search(t.pattern, value):
        choices = _ALTERNATION.match(t.pattern)
        if choices:
            problems.append((path, f"unknown value {value!r} (known: {', '.join(choices.group(1).split('|'))})"))
        elif t.pattern in _PATTERN_MEANING:
            problems.append((path, f"{_PATTERN_MEANING[t.pattern]}, got {value!r}"))
        else:
            problems.append((path, f"{value!r} does not match the pattern {t.pattern}"))


# ---- what a schema cannot say -------------------------------------------------------------------------


def _check_semantics(raw: Any, problems: Problems) -> None:
    if not isinstance(raw, dict):
        return
    rules = raw.get("rules")
    if isinstance(rules, list):
        _check_rules(rules, problems)
    fees = raw.get("fees")
    if isinstance(fees, list):
        _check_fees(fees, problems)


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _check_pair(venue: str | None, market: str | None, path: str, problems: Problems) -> None:
    if venue in VENUE_MARKETS and market is not None and market not in VENUE_MARKETS[venue]:
        known = ", ".join(sorted(VENUE_MARKETS[venue]))
        problems.append((child(path, "market"), f"{venue} has no market {market!r} (known: {known})"))


def _check_rules(rules: list[Any], problems: Problems, prefix: str = "$.rules") -> None:
    seen: dict[tuple[str | None, ...], int] = {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        path = child(prefix, i)
        venue, market, asset = _text(rule, "venue"), _text(rule, "market"), _text(rule, "asset")
        if rule.get("market") is not None and rule.get("venue") is None:
            problems.append((child(path, "market"), "a market scope needs a venue"))
        if rule.get("asset") is not None and rule.get("market") is None:
            problems.append((child(path, "asset"), "an asset scope needs a market (venue:market:asset)"))
        _check_pair(venue, market, path, problems)
        key = (venue, market, asset, _text(rule, "source"))
        if key in seen:
            scope = ":".join(p for p in key[:3] if p) or "default"
            problems.append((path, f"same scope ({scope}) and source as $.rules[{seen[key]}]"))
        else:
            seen[key] = i


def _check_fees(fees: list[Any], problems: Problems, prefix: str = "$.fees") -> None:
    seen: dict[tuple[str | None, ...], int] = {}
    for i, table in enumerate(fees):
        if not isinstance(table, dict):
            continue
        path = child(prefix, i)
        venue, market = _text(table, "venue"), _text(table, "market")
        _check_pair(venue, market, path, problems)
        tiers = table.get("tiers")
        names = [t.get("name") for t in tiers if isinstance(t, dict)] if isinstance(tiers, list) else []
        for j, name in enumerate(names):
            if name in names[:j]:
                problems.append((child(child(child(path, "tiers"), j), "name"), f"tier {name!r} is listed twice"))
        tier = table.get("tier")
        if isinstance(tier, str) and isinstance(tiers, list) and tier not in names:
            known = ", ".join(str(n) for n in names)
            problems.append((child(path, "tier"), f"{tier!r} is not one of this table's tiers ({known})"))
        key = (venue, market, _text(table, "source"))
        if key in seen:
            problems.append((path, f"same venue market ({venue}:{market}) and source as $.fees[{seen[key]}]"))
        else:
            seen[key] = i
