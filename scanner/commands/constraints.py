"""`arbscan constraints`: build, validate, describe and show the execution constraints.

::

    arbscan constraints template [--out FILE]     the template, built from fee tables and defaults
    arbscan constraints validate FILE             every error with its JSON path; exit 2 if any
    arbscan constraints schema [--out FILE]       the JSON Schema the file follows
    arbscan constraints show [FILE] [--json] [--resolve VENUE:MARKET:ASSET]... [--strategy-leverage-override S=M]...

Other commands that evaluate or show constraints take the same override flag and load the same way::

    from scanner.commands.constraints import add_override_argument, load_effective_constraints

    add_override_argument(parser)                       # --strategy-leverage-override, repeatable
    constraints = load_effective_constraints(args.constraints, args)   # file (or template) + overrides
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from rules.candidates import Strategy
from rules.constraints import Constraints
from rules.errors import ConstraintsError, OverrideError
from rules.model import RULE_LIMIT_FIELDS, json_schema
from rules.overrides import parse_override, parse_overrides
from rules.template import template_document, to_json
from rules.validation import VENUE_MARKETS, load_constraints, validate_document

OVERRIDE_FLAG = "--strategy-leverage-override"
TEMPLATE_ORIGIN = "<built-in template>"


# ---- helpers other commands use ---------------------------------------------------------------------


def _override_type(text: str) -> str:
    """argparse ``type=``: reject a malformed override at parse time (argparse exits 2 with the reason)."""
    try:
        parse_override(text)
    except OverrideError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.reason}") from None
    return text


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--strategy-leverage-override STRATEGY=MULTIPLIER`` flag."""
    names = ", ".join(s.value for s in Strategy)
    parser.add_argument(
        OVERRIDE_FLAG,
        dest="strategy_leverage_overrides",
        action="append",
        default=[],
        type=_override_type,
        metavar="STRATEGY=MULTIPLIER",
        help=f"replace a strategy's leverage notional multiplier for this run (repeatable; strategies: {names})",
    )


def overrides_from_args(args: argparse.Namespace) -> dict[Strategy, float]:
    """The validated overrides (:class:`OverrideError`, exit 2, if a strategy is given twice)."""
    texts: list[str] = getattr(args, "strategy_leverage_overrides", [])
    return parse_overrides(texts)


def read_constraints(path: Path | None) -> Constraints:
    """Load and validate a constraints file; ``None`` = the built-in template."""
    if path is None:
        return Constraints(template_document(), origin=TEMPLATE_ORIGIN)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConstraintsError(str(path), [("$", f"cannot read the file: {exc.strerror or exc}")]) from None
    return load_constraints(data, str(path))


def load_effective_constraints(path: Path | None, args: argparse.Namespace) -> Constraints:
    """The constraints a command runs with: the file (or the template) with the flag's overrides."""
    overrides = overrides_from_args(args)
    constraints = read_constraints(path)
    return constraints.with_overrides(overrides) if overrides else constraints


# ---- the sub-commands ---------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "constraints", help="build, validate and show execution constraints", description=__doc__.split("\n\n")[0]
    )
    actions = parser.add_subparsers(dest="constraints_command", required=True, metavar="ACTION")

    template = actions.add_parser("template", help="print the template built from fee tables and defaults")
    template.add_argument("--out", type=Path, help="write to FILE instead of standard output")
    template.set_defaults(func=_template)

    validate = actions.add_parser("validate", help="check a constraints file and list every error")
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.set_defaults(func=_validate)

    schema = actions.add_parser("schema", help="print the JSON Schema of the constraints file")
    schema.add_argument("--out", type=Path, help="write to FILE instead of standard output")
    schema.set_defaults(func=_schema)

    show = actions.add_parser("show", help="print the effective constraints after overrides")
    show.add_argument("file", type=Path, nargs="?", metavar="FILE", help="constraints file (default: the template)")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="VENUE:MARKET:ASSET",
        help="also show the limits in force for this scope and the rule each comes from (repeatable)",
    )
    add_override_argument(show)
    show.set_defaults(func=_show)


def _emit(data: bytes, out: Path | None) -> int:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise ConstraintsError(str(out), [("$", f"cannot write the file: {exc.strerror or exc}")]) from None
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _template(args: argparse.Namespace) -> int:
    return _emit(to_json(template_document()), args.out)


def schema_json() -> bytes:
    return json.dumps(json_schema(), indent=2).encode() + b"\n"


def _schema(args: argparse.Namespace) -> int:
    return _emit(schema_json(), args.out)


def _validate(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConstraintsError(str(path), [("$", f"cannot read the file: {exc.strerror or exc}")]) from None
    document, problems = validate_document(data)
    if document is None:
        raise ConstraintsError(str(path), problems)
    print(f"{path}: valid ({len(document.rules)} rules, {len(document.fees)} fee tables)")
    return 0


def _parse_scope(text: str) -> tuple[str, str, str] | str:
    """``VENUE:MARKET:ASSET`` as a scope, or why it is none (a usage error, not a constraints file's)."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        return "expected VENUE:MARKET:ASSET, e.g. binance:spot:BTC"
    venue, market = parts[0], parts[1]
    # A scope no venue has would resolve to the defaults, shown as if they applied to it.
    if venue not in VENUE_MARKETS:
        return f"unknown venue {venue!r} (known: {', '.join(VENUE_MARKETS)})"
    if market not in VENUE_MARKETS[venue]:
        return f"{venue} has no market {market!r} (known: {', '.join(sorted(VENUE_MARKETS[venue]))})"
    return venue, market, parts[2].upper()


def _show(args: argparse.Namespace) -> int:
    scopes: list[tuple[str, str, str]] = []
    for text in args.resolve:
        scope = _parse_scope(text)
        if isinstance(scope, str):
            print(f"arbscan constraints: --resolve {text}: {scope}", file=sys.stderr)
            return 2
        scopes.append(scope)
    constraints = load_effective_constraints(args.file, args)
    resolved = [constraints.rule_for(*scope) for scope in scopes]
    if args.json:
        payload: dict[str, Any] = {
            "origin": constraints.origin,
            "overrides": constraints.overrides,
            "constraints": constraints.effective_document(),
            "resolved": resolved,
        }
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(payload), indent=2) + b"\n")
        return 0
    print("\n".join(_tables(constraints, resolved)))
    return 0


# ---- tables -------------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


_SHORT = {
    "max_leverage": "max_lev",
    "equity_usd": "equity_usd",
    "max_borrow_usd": "max_borrow",
    "borrow_rate_bps_per_hour": "borrow_bph",
    "min_net_edge_bps": "min_edge",
    "max_size_usd": "max_size",
    "max_book_age_ms": "max_age_ms",
    "max_leg_skew_ms": "max_skew_ms",
}


def _tables(constraints: Constraints, resolved: list[Any]) -> list[str]:
    document = constraints.document
    overrides = constraints.overrides
    flags = " ".join(f"{OVERRIDE_FLAG} {k}={v:g}" for k, v in overrides.items()) or "none"
    lines = [f"constraints: {constraints.origin}", f"overrides: {flags}", "", "strategy leverage notional multiplier:"]
    file_values = document.strategy_leverage_notional_multiplier
    rows = []
    for strategy in Strategy:
        effective = constraints.multiplier(strategy)
        note = f"override (file: {getattr(file_values, strategy.value):g})" if strategy.value in overrides else ""
        rows.append([strategy.value, f"{effective:g}", note])
    lines += _table(["strategy", "multiplier", ""], rows)
    lines += ["", "rules (each limit comes from the most specific rule that sets it):"]
    rule_rows = [
        [rule.scope, rule.source, rule.as_of, *(_num(getattr(rule, name)) for name in RULE_LIMIT_FIELDS)]
        for rule in document.rules
    ]
    lines += _table(["scope", "source", "as_of", *(_SHORT[n] for n in RULE_LIMIT_FIELDS)], rule_rows)
    lines += ["", "fees (bps; * = the account's tier, ? = unconfirmed):"]
    fee_rows = []
    for table in document.fees:
        for tier in table.tiers:
            mark = ("*" if tier.name == table.tier else " ") + (" " if tier.confirmed else "?")
            scope = f"{table.venue}:{table.market}"
            fee_rows.append([scope, mark + tier.name, _num(tier.maker_bps), _num(tier.taker_bps), table.source])
    lines += _table(["venue:market", "tier", "maker", "taker", "source"], fee_rows)
    for rule in resolved:
        lines += ["", f"resolved {rule.key}:"]
        rows = []
        for name in RULE_LIMIT_FIELDS:
            ref = rule.provenance.get(name)
            origin = f"{ref.scope} ({ref.source}, {ref.as_of})" if ref is not None else "MISSING"
            rows.append([name, _num(getattr(rule, name)), origin])
        lines += _table(["limit", "value", "from rule"], rows)
    return lines
