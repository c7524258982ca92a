"""What a validated config means at run time: effective constraints, funding assumptions, engine settings.

* Constraints: the ``[constraints].file`` document, with the account's fee tier per venue
  (``vip_tier``) selected in every fee table of that venue that has such a tier, then the config's
  ``strategy_leverage_overrides``, then the command line's ``--strategy-leverage-override`` (the command
  line wins). A tier named for a venue but present in none of its tables is a config error.
* Funding assumptions: ``[[funding_assumptions]]`` as :class:`~scanner.market.FundingAssumptionSpec`.
* Engine settings: ``[engine]`` hysteresis band and dwell.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from feeds.instruments import InstrumentId
from rules.candidates import Strategy
from rules.constraints import Constraints
from rules.validation import load_constraints
from scanner.config import Config
from scanner.engine import EngineSettings
from scanner.errors import ConfigError
from scanner.market import FundingAssumptionSpec

HOUR_MS = 3_600_000


def load_effective_constraints(
    config: Config, cli_overrides: Mapping[Strategy, float] | None = None, *, config_path: str | Path = "(config)"
) -> Constraints:
    """The constraints in force (see the module docstring). Raises ConstraintsError / ConfigError.

    ``config_path``: the file ``config`` was read from, named by the errors of its keys (``constraints.file``,
    ``constraints.vip_tier``); the constraints file's own errors name that file."""
    path = Path(config.constraints.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = f"got {str(path)!r}: cannot be read ({exc.strerror or exc})"
        raise ConfigError(str(config_path), [("constraints.file", why)]) from None
    constraints = load_constraints(data, str(path))
    tiers = config.constraints.vip_tier
    if tiers:
        document = constraints.document
        problems: list[tuple[str, str]] = []
        tables = list(document.fees)
        for venue, tier in tiers.items():
            hits = [i for i, t in enumerate(tables) if t.venue == venue.value and tier in {x.name for x in t.tiers}]
            if not hits:
                known = sorted({x.name for t in tables if t.venue == venue.value for x in t.tiers})
                problems.append(
                    (
                        f"constraints.vip_tier.{venue.value}",
                        f"got {tier!r}: no fee table of {venue} in {path} has this tier (tiers: "
                        f"{', '.join(known) or 'none'})",
                    )
                )
            for i in hits:
                tables[i] = msgspec.structs.replace(tables[i], tier=tier)
        if problems:
            raise ConfigError(str(config_path), problems)
        constraints = Constraints(
            msgspec.structs.replace(document, fees=tables),
            origin=constraints.origin,
            overrides={Strategy(k): v for k, v in constraints.overrides.items()},
        )
    overrides = dict(config.constraints.strategy_leverage_overrides) | dict(cli_overrides or {})
    return constraints.with_overrides(overrides) if overrides else constraints


def funding_assumptions(config: Config) -> dict[InstrumentId, FundingAssumptionSpec]:
    return {
        fa.instrument_id(): FundingAssumptionSpec(
            fa.instrument_id(), fa.rate, round(fa.interval_hours * HOUR_MS), fa.reason
        )
        for fa in config.funding_assumptions
    }


def engine_settings(config: Config) -> EngineSettings:
    return EngineSettings(
        hysteresis_band_bps=config.engine.hysteresis_band_bps,
        min_qualified_dwell_ms=config.engine.min_qualified_dwell_ms,
        recheck_ms=config.engine.recheck_ms,
        resume_grace_ms=config.engine.resume_grace_ms,
        per_candidate_labels=config.metrics.per_candidate_labels,
    )
