"""`arbscan verify-books`: not implemented yet."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("verify-books", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: _todo())


def _todo() -> int:
    raise SystemExit("arbscan verify-books: not implemented yet")
