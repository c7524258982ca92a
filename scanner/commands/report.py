"""``arbscan report``: a markdown dashboard (or JSON) of the journal: shortlist, rejections, candidates.

Reads the journal directory of a daemon (``--state-dir DIR`` → ``DIR/journal``, or ``--journal DIR``);
a torn or corrupt line is reported in the output, never fatal. Exit 2 if there is no journal there
or ``--out`` cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scanner.errors import JournalError, ScannerError
from scanner.journal import JournalReader, journal_files
from scanner.reports import build_report, render_markdown


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("report", help="shortlist, rejection summary and markdown dashboard from the journal")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=Path, metavar="DIR", help="the daemon's state directory")
    where.add_argument("--journal", type=Path, metavar="DIR", help="the journal directory itself")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="shortlist length (default 20)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    parser.set_defaults(func=run)


class _NoJournal(JournalError):
    exit_code = 2


class _BadOut(ScannerError):
    """``--out`` names a directory or a file that cannot be written (a usage error)."""

    exit_code = 2


def run(args: argparse.Namespace) -> int:
    directory: Path = args.journal or args.state_dir / "journal"
    if not directory.is_dir() or not journal_files(directory):
        raise _NoJournal(f"no journal files in {directory}")
    if args.top < 1:
        raise _NoJournal(f"--top must be >= 1, got {args.top}")
    reader = JournalReader(directory)
    events = list(reader.events())
    report = build_report(events, journal=str(directory), top=args.top, problems=[str(p) for p in reader.problems])
    data = report.to_json() if args.format == "json" else render_markdown(report).encode()
    if args.out is not None:
        try:
            args.out.write_bytes(data)
        except OSError as exc:
            raise _BadOut(f"--out {args.out}: cannot be written: {exc.strerror or exc}") from None
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
