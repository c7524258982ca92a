"""The ``arbscan`` command line.

Each sub-command lives in ``scanner/commands/<name>.py`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func(args) -> int``. Expected errors (bad input, bad config, venue trouble) reach the
user as one precise message and an exit code (2 for usage/input, 1 for runtime), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from feeds.errors import FeedError
from rules.errors import RulesError
from scanner import __version__
from scanner.errors import ScannerError

COMMANDS = ("verify_books", "record", "repair_recording", "replay", "constraints", "run", "demo", "report", "stress")


EXPECTED_ERRORS = (FeedError, ScannerError, RulesError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arbscan", description="Streaming crypto arbitrage scanner")
    parser.add_argument("--version", action="version", version=f"arbscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"scanner.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except EXPECTED_ERRORS as exc:
        print(f"arbscan {args.command}: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        return 130
    return code
