"""The live terminal summary: qualified now, rejection counts by reason, feed health. Pure rendering.

The daemon prints it on a cadence (``arbscan demo``, ``arbscan run`` on a terminal) and once at the end;
it reads the engine's plain counters and each feed's health, never Prometheus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from scanner.engine import EngineStats


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One feed at a glance."""

    name: str  # binance:spot
    label: str  # live / replay / csv-replay
    books_live: int
    books: int
    connections: int
    messages: int
    gaps: int
    resyncs: int
    reconnects: int
    malformed: int


def _market_time(ms: int) -> str:
    if ms <= 0:
        return "-"
    secs, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac:03d} UTC"


def render(
    stats: EngineStats,
    qualified_now: dict[str, int],
    feeds: list[FeedHealth],
    *,
    strategies: list[str],
    market_ms: int,
    elapsed_s: float,
    final: bool = False,
) -> str:
    """A few lines of text (no trailing newline)."""
    title = "arbscan summary (final)" if final else "arbscan"
    lines = [f"{title}: {elapsed_s:.1f} s elapsed, market time {_market_time(market_ms)}"]
    lines.extend(
        f"  feed {f.name} [{f.label}]: books live {f.books_live}/{f.books}, connections {f.connections}, "
        f"messages {f.messages}, gaps {f.gaps}, resyncs {f.resyncs}, reconnects {f.reconnects}, "
        f"malformed {f.malformed}"
        for f in feeds
    )
    now = ", ".join(f"{s} {qualified_now.get(s, 0)}" for s in strategies)
    lines.append(f"  qualified now: {now}")
    for s in strategies:
        tally = stats.strategies.get(s)
        if tally is None:
            continue
        qualified, rejected = tally.outcomes["qualified"], tally.outcomes["rejected"]
        lines.append(f"  {s}: evaluations {qualified + rejected} (qualified {qualified}, rejected {rejected})")
        primary = sorted(((r, n) for r, n in tally.primary.items() if n), key=lambda x: -x[1])
        if primary:
            lines.append("    rejections by primary reason: " + ", ".join(f"{r} {n}" for r, n in primary))
        events = ", ".join(f"{e} {n}" for e, n in tally.events.items() if n)
        if events:
            lines.append(f"    events: {events}")
    lines.append(
        f"  updates {stats.updates}, coalesced {stats.coalesced}, evaluations {stats.evaluations}, "
        f"drains {stats.drains}"
    )
    return "\n".join(lines)
