"""Memory of the demo configuration: ``arbscan demo --speed max`` in a child process, its peak RSS.

    python -m bench.demo_rss [--json]

The demo is the daemon with ``config/demo.toml`` (real feed clients, books, rules, engine, journal,
metrics) plus the two loopback replay exchanges it starts in the same process. The peak resident set
size comes from the kernel's accounting of the child (``os.wait4`` → ``ru_maxrss``); ``/proc`` is also
sampled every :data:`SAMPLE_S` seconds while it runs, to tell the running footprint from short peaks
(the median and the 95th percentile of the samples).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import ROOT, publish

SAMPLE_S = 0.05
TIMEOUT_S = 240.0


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def measure(speed: str = "max") -> dict[str, Any]:
    # ``python -m scanner`` from the checkout being benchmarked (sys.path[0] is the working directory): the
    # venv's ``arbscan`` script runs whatever tree is installed in it, which may be another checkout.
    command = [sys.executable, "-m", "scanner"]
    with tempfile.TemporaryDirectory(prefix="arbscan-bench-demo-") as state:
        args = [*command, "demo", "--speed", speed, "--state-dir", state]
        started = time.perf_counter()
        child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples: list[float] = []
        rusage = None
        status = 0
        while True:
            pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
            if pid == child.pid:
                break
            sample = _rss_mb(child.pid)
            if sample is not None:
                samples.append(sample)
            if time.perf_counter() - started > TIMEOUT_S:
                child.kill()
                _, status, rusage = os.wait4(child.pid, 0)
                break
            time.sleep(SAMPLE_S)
        child.returncode = os.waitstatus_to_exitcode(status)
        output = child.stdout.read() if child.stdout is not None else ""
        seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} exited {child.returncode}:\n{output[-2000:]}")
    samples.sort()
    return {
        "command": " ".join(["arbscan", "demo", "--speed", speed]),
        "seconds": seconds,
        "peak_rss_mb": rusage.ru_maxrss / 1024.0 if rusage is not None else float("nan"),
        "median_rss_mb": statistics.median(samples) if samples else float("nan"),
        "p95_rss_mb": samples[int(0.95 * (len(samples) - 1))] if samples else float("nan"),
        "samples": len(samples),
        "journal_line": next((line for line in output.splitlines() if line.startswith("journal:")), ""),
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"demo configuration ({r['command']}, {r['seconds']:.0f} s): peak RSS {r['peak_rss_mb']:.0f} MB; "
        f"sampled every {SAMPLE_S * 1000:.0f} ms: median {r['median_rss_mb']:.0f} MB, p95 {r['p95_rss_mb']:.0f} MB"
    )
    if r["journal_line"]:
        print(f"  demo's {r['journal_line']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_rss", description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", default="max", help="the demo's --speed (default max)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # Stopped by python -m bench (its time budget spent): unwind, so the demo's state folder is removed.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    return publish(measure(args.speed), report, emit=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
