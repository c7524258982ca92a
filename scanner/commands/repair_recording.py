"""`arbscan repair-recording FILE...`: finish gzip recordings a killed writer left cut short.

A recorder killed before it closed its files (SIGKILL, a power loss) leaves each gzip file without its end:
verify-books and the replay refuse it whole ("corrupt or truncated"). This keeps every whole line and
rewrites the file as complete (:func:`feeds.recorder.repair_tail`, the same repair ``arbscan record`` does
before appending to a same-day file). A file damaged anywhere but at its end is refused and left as it is:
what follows the damage may be intact. Exit 0 when every file is complete (repaired or already), 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feeds.errors import RecordingError
from feeds.recorder import repair_tail


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "repair-recording",
        help="finish gzip recordings a killed recorder left cut short (whole lines kept)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="gzip recording files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    code = 0
    for path in args.files:
        if not path.is_file():
            print(f"arbscan repair-recording: {path}: not a file", file=sys.stderr)
            code = 2
            continue
        try:
            dropped = repair_tail(path)
        except RecordingError as exc:
            print(f"arbscan repair-recording: {exc}", file=sys.stderr)
            code = 2
            continue
        if dropped is None:
            print(f"{path}: complete, nothing to do")
        else:
            print(f"{path}: repaired: its cut-short end finished, every whole line kept ({dropped} bytes dropped)")
    return code
