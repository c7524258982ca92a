"""`arbscan verify-books PATH...`: rebuild every book in recordings offline and report it as JSON lines.

One object per book (keys ``venue, market, symbol, frames, diffs_applied, snapshots, gaps, resyncs,
crossed, checksum_ok, checksum_failed, ticker_agree, ticker_disagree, ticker_unreached, best_bid, best_ask,
ok``), then
``{"total": {...}, "ok": ...}``. Exit 0 only if every book is ok; 2 for unreadable input (the file and line
are named) or when frames could not be decoded; 1 when some book is not ok.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from feeds.instruments import Market, Venue
from feeds.verify import verify_paths

_SHOWN_BAD_RECORDS = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "verify-books",
        help="rebuild the books in recordings with the live sync code and report them",
        description=(
            "Rebuild every book in the given recordings (files or folders; hftbacktest and cryptofeed formats) "
            "with the same protocol and sync code the daemon runs, and print one JSON line per book plus a total. "
            "A book is ok when it ends live, built from a snapshot, with no gap, crossed state, checksum "
            "failure or ticker disagreement."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders")
    parser.add_argument("--venue", type=Venue, choices=list(Venue), help="force the venue (default: detected)")
    parser.add_argument("--market", type=Market, choices=list(Market), help="force the market (default: detected)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = verify_paths(args.paths, venue=args.venue, market=args.market)
    for path in report.skipped:
        print(f"arbscan verify-books: skipped {path}: not a recording", file=sys.stderr)
    out = sys.stdout.buffer
    for line in report.lines():
        out.write(orjson.dumps(line) + b"\n")
    out.flush()
    if not report.books:
        print("arbscan verify-books: no book found in the given recordings", file=sys.stderr)
        return 1
    if report.bad_count:
        for bad in report.bad_records[:_SHOWN_BAD_RECORDS]:
            print(f"arbscan verify-books: {bad}", file=sys.stderr)
        more = report.bad_count - min(len(report.bad_records), _SHOWN_BAD_RECORDS)
        if more > 0:
            print(f"arbscan verify-books: ... and {more} more malformed frames", file=sys.stderr)
        return 2
    return 0 if report.ok else 1
