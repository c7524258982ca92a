"""Where an update's time goes in the in-process pipeline, and how much of the evaluation work repeats itself.

    python -m bench.breakdown [--records N] [--json]

Replays the first N records (default 60,000) through the benchmark pipeline twice, interleaved by block:
once as is, once with ``rules.evaluate`` (as the engine calls it) wrapped in a timer. Per update it
reports the decode + book share (the pipeline without candidates), the ``rules.evaluate`` share and
the engine's own share (touch, drain, candidate state, metrics, events).

It also counts **repeated decisions**: full evaluations (the engine's holds answer most wake-ups without
calling ``rules.evaluate``, :mod:`scanner.reuse`) whose numbers (reasons, gross/net bps, each leg's VWAP,
top price, filled base and book state) equal the candidate's previous decision exactly, i.e. the update
changed nothing the decision reads but the books' ages: what a finer skip could still save.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import scanner.engine
from bench.common import Timing, bench_candidates, load_timeline, publish
from bench.pipeline import Lane, _run_ours, make_pipeline
from rules.decision import Decision

DEFAULT_RECORDS = 60_000
BLOCK = 1000


def _numbers(d: Decision) -> tuple[object, ...]:
    legs = tuple((leg.vwap, leg.top_price, leg.filled_base, leg.book_state) for leg in d.legs)
    return (d.reasons, d.gross_bps, d.net_bps, d.top_gross_bps, legs)


def run(records: int) -> dict[str, Any]:
    timeline = load_timeline(records)
    plain, _ = make_pipeline(timeline, bench_candidates())
    feeds_only, _ = make_pipeline(timeline, [])
    timed_pipeline, _ = make_pipeline(timeline, bench_candidates())
    counted_pipeline, _ = make_pipeline(timeline, bench_candidates())
    real: Any = scanner.engine.evaluate
    clock = time.perf_counter_ns
    spent = [0]
    calls = [0]  # full evaluations (held and refreshed ones never call rules.evaluate)
    previous: dict[str, tuple[object, ...]] = {}
    repeats = [0]

    def timer(target: Any) -> Any:
        def timed(candidate: Any, *args: Any, **kwargs: Any) -> Decision:
            t0 = clock()
            decision = target(candidate, *args, **kwargs)
            spent[0] += clock() - t0
            calls[0] += 1
            return decision

        return timed

    timed = timer(real)

    def counted(candidate: Any, *args: Any, **kwargs: Any) -> Decision:
        decision = real(candidate, *args, **kwargs)
        numbers = _numbers(decision)
        if previous.get(candidate.id) == numbers:
            repeats[0] += 1
        previous[candidate.id] = numbers
        return decision

    # What the timer wrapper itself costs (a call, two clock reads), charged to no one.
    idle = timer(lambda *_a, **_k: None)
    t0 = clock()
    for _ in range(10_000):
        idle(None, None, None, now_ns=0, now_ms=0)
    wrapper_ns = (clock() - t0) / 10_000
    spent[0] = calls[0] = 0

    lanes = {name: Lane(name) for name in ("plain", "feeds", "timed", "counted")}
    recs = timeline.records
    for i in range(0, len(recs), BLOCK):
        chunk = recs[i : i + BLOCK]
        _run_ours(plain, chunk, lanes["plain"])
        _run_ours(feeds_only, chunk, lanes["feeds"])
        for pipeline, wrapper, lane in ((timed_pipeline, timed, "timed"), (counted_pipeline, counted, "counted")):
            scanner.engine.evaluate = wrapper  # type: ignore[assignment]
            try:
                _run_ours(pipeline, chunk, lanes[lane])
            finally:
                scanner.engine.evaluate = real
    updates = sum(1 for n in lanes["plain"].evaluations if n > 0)
    evaluations = sum(lanes["timed"].evaluations)
    total_us = Timing.of(lanes["plain"].durations).total_s * 1e6
    feeds_us = Timing.of(lanes["feeds"].durations).total_s * 1e6
    evaluate_us = spent[0] / 1e3
    timed_total_us = Timing.of(lanes["timed"].durations).total_s * 1e6
    full = calls[0]
    evaluate_us -= full * wrapper_ns / 1e3 / 2  # the clock reads inside the wrapper
    engine_us = timed_total_us - feeds_us - evaluate_us - full * wrapper_ns / 1e3
    return {
        "records": len(recs),
        "updates": updates,
        "evaluations": evaluations,
        "per_update_us": total_us / updates,
        "feeds_per_update_us": feeds_us / updates,
        "evaluate_per_update_us": evaluate_us / updates,
        "engine_per_update_us": engine_us / updates,
        "full_evaluations": full,
        "evaluate_per_full_evaluation_us": evaluate_us / full if full else 0.0,
        "engine_per_evaluation_us": engine_us / evaluations,
        "repeated_decisions": repeats[0],
        "repeated_share": repeats[0] / full if full else 0.0,
    }


def report(r: dict[str, Any]) -> None:
    total = r["feeds_per_update_us"] + r["evaluate_per_update_us"] + r["engine_per_update_us"]
    print(
        f"breakdown over {r['records']} records, {r['updates']} updates, {r['evaluations']} evaluations "
        f"({r['evaluations'] / r['updates']:.2f} per update)"
    )
    for label, key in (
        ("decode + book (+ replay glue)", "feeds_per_update_us"),
        ("rules.evaluate", "evaluate_per_update_us"),
        ("engine (state, metrics, index)", "engine_per_update_us"),
    ):
        print(f"  {label:<32} {r[key]:8.2f} us per update  ({r[key] / total:5.1%})")
    print(
        f"  {r['full_evaluations']} full evaluations ({r['full_evaluations'] / r['evaluations']:.1%}; the rest held "
        f"or refreshed): rules.evaluate {r['evaluate_per_full_evaluation_us']:.2f} us each; engine "
        f"{r['engine_per_evaluation_us']:.2f} us per evaluation of any kind"
    )
    print(
        f"  repeated decisions: {r['repeated_decisions']} of the {r['full_evaluations']} full evaluations "
        f"({r['repeated_share']:.1%}) had the same numbers as the candidate's previous decision (only book ages "
        "differed): what a finer skip could still save"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return publish(run(20_000 if args.quick else args.records), report, emit=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
