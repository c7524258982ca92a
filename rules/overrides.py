"""``--strategy-leverage-override STRATEGY=MULTIPLIER``: parsing and validation (pure).

An override replaces one strategy's leverage notional multiplier for this run. Each is validated on
its own and the set as a whole: the strategy must be one of :class:`~rules.candidates.Strategy`, the
multiplier a finite number > 0 (and at most 1000, like the file), and a strategy may be given once.
Every failure is an :class:`~rules.errors.OverrideError` (exit code 2) quoting what was typed.
The overrides in force are carried on every decision (``Decision.overrides``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rules.candidates import Strategy
from rules.errors import OverrideError

MAX_MULTIPLIER = 1_000.0
_NAMES = ", ".join(s.value for s in Strategy)


def parse_override(text: str) -> tuple[Strategy, float]:
    """``"perp_spot_basis=1.5"`` → ``(Strategy.PERP_SPOT_BASIS, 1.5)``."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep:
        raise OverrideError(text, "expected STRATEGY=MULTIPLIER")
    try:
        strategy = Strategy(name)
    except ValueError:
        raise OverrideError(text, f"unknown strategy {name!r} (known: {_NAMES})") from None
    try:
        multiplier = float(raw)
    except ValueError:
        raise OverrideError(text, f"multiplier {raw!r} is not a number") from None
    problem = multiplier_problem(multiplier, raw)
    if problem is not None:
        raise OverrideError(text, problem)
    return strategy, multiplier


def multiplier_problem(multiplier: float, raw: str) -> str | None:
    """Why ``multiplier`` (typed as ``raw``) cannot be a leverage notional multiplier, or None."""
    if not math.isfinite(multiplier):
        return f"multiplier {raw!r} is not a finite number"
    if multiplier <= 0.0:
        return f"multiplier must be > 0, got {raw}"
    if multiplier > MAX_MULTIPLIER:
        return f"multiplier must be <= {MAX_MULTIPLIER:g}, got {raw}"
    return None


def parse_overrides(texts: Iterable[str]) -> dict[Strategy, float]:
    """All overrides of a command line; a strategy given twice is an error (which one was meant?)."""
    result: dict[Strategy, float] = {}
    for text in texts:
        strategy, multiplier = parse_override(text)
        if strategy in result:
            raise OverrideError(text, f"{strategy.value} is overridden more than once")
        result[strategy] = multiplier
    return result
