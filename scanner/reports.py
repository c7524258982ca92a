"""Reports from the journal: a shortlist of qualified opportunities, a rejection summary, per-candidate state.

Pure: journal events in (:class:`scanner.journal.JournalEvent`), a :class:`Report` out, rendered as a
markdown dashboard or JSON. The journal holds *events* (transitions and changes of primary reason), not
every evaluation: rejection counts here are "how often a candidate moved to this reason", which is what
explains behaviour over time; evaluation counts live in the metrics.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from rules.reasons import Reason
from scanner.journal import JournalEvent


@dataclass(frozen=True, slots=True)
class ShortlistRow:
    """One ``qualified`` event: the opportunity and the numbers that qualified it."""

    venue_ts_ms: int | None
    candidate_id: str
    strategy: str
    size_usd: float | None
    gross_bps: float | None
    fees_bps: float | None
    funding_bps: float | None
    borrow_bps: float | None
    net_bps: float | None
    min_net_edge_bps: float | None
    funding_source: str | None
    seq: int


@dataclass(slots=True)
class CandidateRow:
    """What the journal says about one candidate (dedup key)."""

    candidate_id: str
    strategy: str
    events: int = 0
    qualified: int = 0
    last_event: str = ""
    last_reason: str | None = None
    best_net_bps: float | None = None


@dataclass(slots=True)
class Report:
    journal: str
    events: int = 0
    first_local_ms: int | None = None
    last_local_ms: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # strategy -> event -> n
    shortlist: list[ShortlistRow] = field(default_factory=list)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # strategy -> primary reason -> n
    candidates: list[CandidateRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)

_NOT_WATCHED = Reason.NOT_WATCHED.value  # an episode the daemon stopped watching: no market reason


def _num(decision: dict[str, Any], key: str) -> float | None:
    value = decision.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def build_report(
    events: Iterable[JournalEvent], *, journal: str = "", top: int = 20, problems: Iterable[str] = ()
) -> Report:
    report = Report(journal=journal, problems=list(problems))
    counts: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    candidates: dict[str, CandidateRow] = {}
    shortlist: list[ShortlistRow] = []
    for event in events:
        decision: dict[str, Any] = event.decision if isinstance(event.decision, dict) else {}
        strategy = str(decision.get("strategy", "?"))
        kind = event.kind.value
        report.events += 1
        if report.first_local_ms is None:
            report.first_local_ms = event.local_ts_ms
        report.last_local_ms = event.local_ts_ms
        counts.setdefault(strategy, Counter())[kind] += 1
        primary = decision.get("primary_reason")
        if kind != "qualified" and isinstance(primary, str) and primary != _NOT_WATCHED:
            reasons.setdefault(strategy, Counter())[primary] += 1  # the market's reasons, not the daemon's
        row = candidates.get(event.dedup_key)
        if row is None:
            row = candidates[event.dedup_key] = CandidateRow(
                str(decision.get("candidate_id", event.dedup_key)), strategy
            )
        row.events += 1
        row.last_event = kind
        row.last_reason = primary if isinstance(primary, str) else None
        if kind == "qualified":
            row.qualified += 1
            net = _num(decision, "net_bps")
            if net is not None and (row.best_net_bps is None or net > row.best_net_bps):
                row.best_net_bps = net
            shortlist.append(
                ShortlistRow(
                    venue_ts_ms=event.venue_ts_ms,
                    candidate_id=row.candidate_id,
                    strategy=strategy,
                    size_usd=_num(decision, "size_usd"),
                    gross_bps=_num(decision, "gross_bps"),
                    fees_bps=_num(decision, "fees_bps"),
                    funding_bps=_num(decision, "funding_bps"),
                    borrow_bps=_num(decision, "borrow_bps"),
                    net_bps=net,
                    min_net_edge_bps=_num(decision, "min_net_edge_bps"),
                    funding_source=decision.get("funding_source")
                    if isinstance(decision.get("funding_source"), str)
                    else None,
                    seq=event.seq,
                )
            )
    shortlist.sort(key=lambda r: -(r.net_bps if r.net_bps is not None else -math.inf))
    report.shortlist = shortlist[:top]
    report.counts = {s: dict(sorted(c.items())) for s, c in sorted(counts.items())}
    report.reasons = {s: dict(c.most_common()) for s, c in sorted(reasons.items())}
    report.candidates = sorted(candidates.values(), key=lambda r: (r.strategy, -r.qualified, r.candidate_id))
    return report


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}"


def _f(value: float | None, fmt: str = "+.2f") -> str:
    return "-" if value is None else format(value, fmt)


def _cell(text: str) -> str:
    """Candidate ids contain ``|`` (and a journal's strings may): escaped, or the table splits there."""
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    """A table cell's code span: fenced by one backtick more than the longest run inside (a backtick in the
    text would end a one-backtick span early), padded where the text starts or ends with one."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def render_markdown(report: Report) -> str:
    """The dashboard: counts, shortlist, rejection reasons, candidates."""
    out = [
        "# arbscan report",
        "",
        f"Journal `{report.journal}`: {report.events} events, written "
        f"{_ts(report.first_local_ms)} .. {_ts(report.last_local_ms)} UTC.",
        "",
        "## Events by strategy",
        "",
        "| strategy | qualified | disqualified | rejected (reason changes) |",
        "|---|---:|---:|---:|",
    ]
    for strategy, counts in report.counts.items():
        n_q, n_d, n_r = (counts.get(k, 0) for k in ("qualified", "disqualified", "rejected"))
        out.append(f"| {_cell(strategy)} | {n_q} | {n_d} | {n_r} |")
    out += ["", f"## Shortlist: best qualified opportunities (top {len(report.shortlist)})", ""]
    if report.shortlist:
        out += [
            "| market time (UTC) | candidate | size USD | gross | fees | funding | borrow | net bps | min "
            "| funding source |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in report.shortlist:
            out.append(
                f"| {_ts(r.venue_ts_ms)} | {_code(r.candidate_id)} | {_f(r.size_usd, ',.0f')} | {_f(r.gross_bps)} | "
                f"{_f(r.fees_bps)} | {_f(r.funding_bps)} | {_f(r.borrow_bps)} | **{_f(r.net_bps)}** | "
                f"{_f(r.min_net_edge_bps, '.2f')} | {_cell(r.funding_source or '-')} |"
            )
    else:
        out.append("No candidate qualified.")
    out += ["", "## Rejections by primary reason (rejected and disqualified events, not `not_watched` closes)", ""]
    for strategy, reasons in report.reasons.items():
        total = sum(reasons.values())
        parts = ", ".join(f"{reason} {n} ({n / total:.0%})" for reason, n in reasons.items())
        out.append(f"- **{strategy}**: {parts}")
    out += [
        "",
        "## Candidates",
        "",
        "| candidate | events | qualified | last event | last reason | best net bps |",
        "|---|---:|---:|---|---|---:|",
    ]
    for c in report.candidates:
        out.append(
            f"| {_code(c.candidate_id)} | {c.events} | {c.qualified} | {_cell(c.last_event)} | "
            f"{_cell(c.last_reason or '-')} | "
            f"{_f(c.best_net_bps)} |"
        )
    if report.problems:
        out += ["", "## Journal problems", ""] + [f"- {p}" for p in report.problems]
    return "\n".join(out) + "\n"
