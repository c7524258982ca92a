"""``python -m bench``: the whole benchmark in one run, ending with one machine-readable line.

    python -m bench [--quick] [--skip loopback,scaling]

Runs, each in its own process (so that memory and garbage collection of one never bleed into another):

1. :mod:`bench.pipeline`: the in-process pipeline, its decode floor and the cryptofeed peer, interleaved;
2. :mod:`bench.scaling`: 10, 100 and 1,000 candidates;
3. :mod:`bench.loopback`: replay exchange → websocket clients → engine at several paces;
4. :mod:`bench.demo_rss`: ``arbscan demo --speed max`` and its peak RSS (not with ``--quick``).

The last line is (one line; wrapped here)::

    pipeline_frames_per_s=N decode_floor_frames_per_s=N floor_ratio=R cryptofeed_frames_per_s=N
    vs_cryptofeed=X p99_update_to_decision_us=N peak_rss_mb=N

``floor_ratio`` = floor frames/s over pipeline frames/s (depth + bookTicker + REST frames);
``cryptofeed_frames_per_s`` is its count-only mode and ``vs_cryptofeed`` ours over it, both on the depth and
bookTicker frames (the frames both handle); ``peak_rss_mb`` is the peak RSS of the demo configuration
(``arbscan demo``: daemon and replay exchanges in one process), ``nan`` when that part did not run
(``--quick``, ``--skip demo``) or failed: no other configuration's figure stands in for it. ``--quick``
runs every part on a short slice (a smoke run: figures are indicative). The parts share a budget of
:data:`BUDGET_S` (the issue's 5 minutes, less a margin): each gets at most what is left of it.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench.common import RESULT_PREFIX, parse_result

BUDGET_S = 285.0  # the whole run, every part included (python -m bench must finish within 5 minutes)

TARGETS = {
    "floor_ratio": ("<=", 4.0),
    "vs_cryptofeed": (">=", 3.0),
    "p99_update_to_decision_us": ("<", 100.0),
    "peak_rss_mb": ("<", 150.0),
}


def run_part(module: str, args: list[str], timeout_s: float, *, required: bool = True) -> dict[str, Any] | None:
    """Run ``python -m <module> --json <args>``, echo its report, return its result.

    A failing required part stops the benchmark; an optional one is reported and skipped (None).
    """
    command = [sys.executable, "-m", module, "--json", *args]
    started = time.perf_counter()
    timeout_s = min(timeout_s, max(1.0, _DEADLINE[0] - started))
    # Its own process group: a part that times out is killed with its children (the demo part's arbscan demo
    # would otherwise run on, orphaned, and leave its state folder behind).
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                stdout, stderr = child.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                stdout, stderr = child.communicate()
            timed_out = True
    done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    if timed_out:
        message = f"bench: {' '.join(command[1:])} did not finish within {timeout_s:.0f} s"
        if required:
            raise SystemExit(message) from None
        print(f"{message}: skipped\n", flush=True)
        return None
    for line in done.stdout.splitlines():
        if not line.startswith(RESULT_PREFIX):
            print(line)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        message = f"bench: {' '.join(command[1:])} failed (exit {done.returncode})"
        if required:
            raise SystemExit(message)
        print(f"{message}: skipped\n", flush=True)
        return None
    result = parse_result(done.stdout)
    result["_seconds"] = time.perf_counter() - started
    print(f"  ({module} took {result['_seconds']:.0f} s)\n", flush=True)
    return result


_DEADLINE = [math.inf]  # perf_counter time by which every part must be done (set by main)


def verdicts(values: dict[str, float]) -> list[str]:
    lines = []
    for key, (op, target) in TARGETS.items():
        value = values[key]
        ok = value <= target if op == "<=" else value >= target if op == ">=" else value < target
        verdict = "not measured" if math.isnan(value) else "met" if ok else "NOT met"
        lines.append(f"  {key:<28} {value:>10.2f}   target {op} {target:g}   {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run on short slices")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: scaling, loopback, demo")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    quick = ["--quick"] if args.quick else []
    started = time.perf_counter()
    _DEADLINE[0] = started + BUDGET_S
    print(f"arbscan bench (python {sys.version.split()[0]}{', quick' if args.quick else ''})\n", flush=True)

    pipeline = run_part("bench.pipeline", quick, 240)
    assert pipeline is not None
    scaling = run_part("bench.scaling", quick, 180) if "scaling" not in skip else None
    loopback = run_part("bench.loopback", quick, 240) if "loopback" not in skip else None
    demo = run_part("bench.demo_rss", [], 300, required=False) if "demo" not in skip and not args.quick else None
    if demo is not None:
        rss, rss_source = demo["peak_rss_mb"], "arbscan demo --speed max"
    else:  # the target is the demo configuration's: another process's RSS would not say whether it is met
        rss, rss_source = (
            math.nan,
            "not measured (the demo part did not run); loopback client "
            + (f"{loopback['peak_rss_mb']:.0f} MB" if loopback is not None else "not run"),
        )

    values = {
        "pipeline_frames_per_s": pipeline["pipeline"]["per_s"],
        "decode_floor_frames_per_s": pipeline["floor"]["per_s"],
        "floor_ratio": pipeline["floor_ratio"],
        "cryptofeed_frames_per_s": pipeline["cryptofeed_count"]["per_s"],
        "vs_cryptofeed": pipeline["vs_cryptofeed"],
        "p99_update_to_decision_us": pipeline["update_to_decision"]["p99_us"],
        "peak_rss_mb": rss,
    }
    print("targets (one core of this machine, Binance spot + USD-M):")
    print("\n".join(verdicts(values)))
    print(f"  peak RSS measured on: {rss_source}")
    if scaling is not None:
        print(f"  scaling: per-update cost at 1000 vs 10 candidates {scaling['growth_1000_over_10']:.2f}x")
    if loopback is not None:
        onset = loopback["coalescing_onset"]
        print(
            f"  loopback: sustained {loopback['sustained_frames_per_s']:,.0f} frames/s; coalescing from pace "
            f"{onset or '(none)'}"
        )
    print(f"  total {time.perf_counter() - started:.0f} s\n")
    print(
        f"pipeline_frames_per_s={values['pipeline_frames_per_s']:.0f}"
        f" decode_floor_frames_per_s={values['decode_floor_frames_per_s']:.0f}"
        f" floor_ratio={values['floor_ratio']:.2f}"
        f" cryptofeed_frames_per_s={values['cryptofeed_frames_per_s']:.0f}"
        f" vs_cryptofeed={values['vs_cryptofeed']:.2f}"
        f" p99_update_to_decision_us={values['p99_update_to_decision_us']:.1f}"
        f" peak_rss_mb={values['peak_rss_mb']:.0f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
