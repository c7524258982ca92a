"""``arbscan stress``: the same recorded data under several leverage scenarios, compared side by side.

The recordings are replayed in-process (:class:`scanner.pipeline.ReplayPipeline`: the feeds' protocol and
sync code, no sockets) once, and every scenario has its own engine over the *same* books, so the only
difference between scenario columns is the constraints. A scenario replaces strategy leverage notional
multipliers::

    arbscan stress --scenario base --scenario "levered=perp_spot_basis:8,cex_cex:4"

Without ``--scenario``: the configured multipliers times 1, 2 and 5. ``--strategy-leverage-override``
applies to every scenario first (a scenario's own values win). Candidates, fee profile, engine settings
and funding assumptions come from ``--config`` (default: the demo's), recordings from ``--recordings``
(default: the demo's recordings; ``.csv`` files are read as csv-replay series).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from feeds.instruments import Kind
from feeds.recordings import Recording, open_recordings
from feeds.replay import csvbook
from rules.candidates import HELD_STRATEGIES, Strategy
from rules.constraints import Constraints
from rules.errors import OverrideError
from rules.overrides import multiplier_problem, parse_overrides
from scanner.candidates import build_candidates
from scanner.commands.demo import BINANCE_DATA, CSV_DATA, DEMO_CONFIG
from scanner.commands.run import add_override_argument
from scanner.config import load_config
from scanner.engine import Engine
from scanner.errors import ScannerError
from scanner.pipeline import ReplayPipeline
from scanner.runtime import engine_settings, funding_assumptions, load_effective_constraints

DEFAULT_FACTORS = (1.0, 2.0, 5.0)
LEVERAGE = "leverage_limit_exceeded"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("stress", help="replay recorded data under leverage scenarios and compare them")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, metavar="FILE", help="default: config/demo.toml")
    parser.add_argument("--recordings", type=Path, nargs="+", metavar="PATH", help="default: the demo's recordings")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME[=STRATEGY:MULTIPLIER,...]",
        help="a scenario (repeatable); NAME alone is the configured multipliers",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_override_argument(parser)
    parser.set_defaults(func=run)


class RecordingsError(ScannerError):
    """``--recordings`` that cannot drive a replay (usage error): none found, or none the candidates read."""

    exit_code = 2


class ScenarioError(ScannerError):
    """A malformed ``--scenario`` (usage error)."""

    exit_code = 2

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"--scenario {text!r}: {reason}")


def parse_scenario(text: str) -> tuple[str, dict[Strategy, float]]:
    """``"levered=perp_spot_basis:8,cex_cex:4"`` → ``("levered", {...})``; ``"base"`` → ``("base", {})``."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not name:
        raise ScenarioError(text, "a scenario needs a name: NAME or NAME=STRATEGY:MULTIPLIER,...")
    if not sep:
        return name, {}
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise ScenarioError(text, "expected STRATEGY:MULTIPLIER after '='")
    try:
        return name, parse_overrides(item.replace(":", "=", 1) for item in items)
    except OverrideError as exc:
        raise ScenarioError(text, exc.reason) from None


def scenarios_of(args: argparse.Namespace, base: Constraints) -> dict[str, Constraints]:
    if not args.scenario:
        # Bounded as a typed one is: a factor of a large --strategy-leverage-override may pass the bound a
        # multiplier may have (x5 of 300 is 1500): refused the same way.
        defaults: dict[str, Constraints] = {}
        for factor in DEFAULT_FACTORS:
            name = f"x{factor:g}"
            overrides = {s: base.multiplier(s) * factor for s in Strategy}
            for multiplier in overrides.values():
                problem = multiplier_problem(multiplier, repr(multiplier))
                if problem is not None:
                    raise ScenarioError(name, f"the default scenario {name}: {problem}")
            defaults[name] = base.with_overrides(overrides)
        return defaults
    out: dict[str, Constraints] = {}
    for text in args.scenario:
        name, overrides = parse_scenario(text)
        if name in out:
            raise ScenarioError(text, f"scenario {name!r} is given twice")
        out[name] = base.with_overrides(overrides) if overrides else base
    return out


def _recordings(paths: list[Path] | None) -> list[Recording]:
    if not paths:
        return [*open_recordings(BINANCE_DATA).recordings, *csvbook.recordings(CSV_DATA)]
    # Each file once: a path given twice, or a recording inside a folder also given, would replay its records
    # twice. CSV series are told by the name as given (a link's target may have none) and are never found by
    # walking a folder, so only the other paths are covered by a folder given with them.
    csv = list({p.resolve(): p for p in paths if p.suffix == ".csv"}.values())
    resolved = {p.resolve(): p for p in paths if p.suffix != ".csv"}
    others = [p for r, p in resolved.items() if not any(o != r and o in r.parents for o in resolved)]
    found = [*(open_recordings(others).recordings if others else []), *csvbook.recordings(csv)]
    if not found:
        raise RecordingsError(f"--recordings {' '.join(map(str, paths))}: no recording found")
    return found


def summarize(engines: dict[str, Engine], constraints: dict[str, Constraints]) -> dict[str, dict[str, object]]:
    """Per scenario and strategy: multiplier, evaluations, outcomes, alerts, leverage rejections, reasons."""
    out: dict[str, dict[str, object]] = {}
    for name, engine in engines.items():
        per: dict[str, object] = {}
        for strategy, tally in sorted(engine.stats.strategies.items()):
            evaluations = sum(tally.outcomes.values())
            if not evaluations:
                continue
            per[strategy] = {
                "multiplier": constraints[name].multiplier(Strategy(strategy)),
                "evaluations": evaluations,
                "qualified_evaluations": tally.outcomes["qualified"],
                "alerts": tally.events["qualified"],
                "leverage_limit_exceeded": tally.reasons[LEVERAGE],
                "primary": {r: n for r, n in sorted(tally.primary.items(), key=lambda x: -x[1]) if n},
            }
        out[name] = per
    return out


def render_text(summary: dict[str, dict[str, object]]) -> str:
    lines = [
        "scenario / strategy: multiplier, evaluations, qualified, alerts, leverage_limit_exceeded; primary reasons"
    ]
    for name, per in summary.items():
        for strategy, row in per.items():
            assert isinstance(row, dict)
            primary = ", ".join(f"{r} {n}" for r, n in row["primary"].items())
            lines.append(
                f"{name:>10} {strategy:<22} x{row['multiplier']:<6g} evaluations {row['evaluations']:>8}  "
                f"qualified {row['qualified_evaluations']:>6}  alerts {row['alerts']:>4}  "
                f"leverage_limit_exceeded {row[LEVERAGE]:>8}  [{primary}]"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cli = parse_overrides(args.strategy_leverage_override)
    for text in args.scenario:
        parse_scenario(text)  # every scenario is validated before the (long) replay starts
    config = load_config(args.config)
    base = load_effective_constraints(config, cli, config_path=args.config)
    scenarios = scenarios_of(args, base)
    candidates = build_candidates(config)
    # A replay streams no funding: a held strategy's perpetual needs a stated rate, or every decision would be
    # funding_unknown (the daemon streams some markets' funding; this replay none).
    stated = funding_assumptions(config)
    unstated = sorted(
        {
            str(i)
            for c in candidates
            if c.strategy in HELD_STRATEGIES
            for i in c.instruments
            if i.kind is Kind.PERP and i not in stated
        }
    )
    if unstated:
        raise RecordingsError(
            f"{args.config}: the replay streams no funding: state a rate in [[funding_assumptions]] for "
            f"{', '.join(unstated)}"
        )
    recordings = _recordings(args.recordings)
    pipeline = ReplayPipeline(
        recordings,
        candidates,
        base,
        assumptions=stated,
        settings=engine_settings(config),
        scenarios=scenarios,
    )
    read = {f"{i.venue}:{i.market}" for c in candidates for i in c.instruments}
    replayed = {pipeline.source_of(index) for index in range(len(recordings))}
    if not read & replayed:
        raise RecordingsError(
            f"the recordings ({', '.join(sorted(replayed))}) carry no book the config's candidates read "
            f"({', '.join(sorted(read))}): every decision would be book_not_ready"
        )
    records = pipeline.run()
    if not any(i in pipeline.books for c in candidates for i in c.instruments):
        raise RecordingsError(
            f"the recordings carry no book of the instruments the config's candidates read "
            f"({', '.join(sorted({str(i) for c in candidates for i in c.instruments}))})"
        )
    summary = summarize(pipeline.engines, scenarios)
    if args.format == "json":
        body = {"records": records, "scenarios": summary}
        sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        sys.stdout.flush()
    else:
        print(f"{records} records replayed once; {len(scenarios)} scenarios on the same books")
        print(render_text(summary))
    return 0
