"""`arbscan record`: capture a venue's live frames (and the REST snapshots fetched) for later replay.

Writes ``<out>/<symbol>_<YYYYMMDD>.gz`` in the hftbacktest line format (``<receive ns> <raw frame>``),
one file per symbol and UTC day (see :mod:`feeds.recorder`): ``verify-books``, the replay exchange and
the stress runs read it as it is. Runs until interrupted or for ``--duration`` seconds. The URLs default
to the venue's real ones; point them at ``arbscan replay`` to try it offline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from feeds.errors import LocalProtocolError
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.recorder import Recorder, RecorderStats
from feeds.rest import RestClient
from feeds.venues import Endpoints, get_entry
from scanner.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "record",
        help="record a venue's live frames and REST snapshots (hftbacktest format, gzip, daily files)",
        description=(
            "Record live websocket frames and the REST depth snapshots the sync fetches, one gzip file per "
            "symbol and UTC day (<out>/<symbol>_<YYYYMMDD>.gz, lines '<receive ns> <raw frame>'), readable by "
            "verify-books and replay."
        ),
    )
    parser.add_argument("--venue", type=Venue, choices=list(Venue), required=True)
    parser.add_argument("--market", type=Market, choices=list(Market), required=True)
    parser.add_argument("--symbols", nargs="+", required=True, metavar="SYMBOL", help="venue symbols, e.g. BTCUSDT")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the daily files")
    parser.add_argument(
        "--channels",
        default="book,top",
        help="comma-separated channels to record: book, top, funding (default: book,top)",
    )
    parser.add_argument("--ws-url", help="websocket base URL (default: the venue's)")
    parser.add_argument("--rest-url", help="REST base URL (default: the venue's)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until interrupted)")
    parser.add_argument(
        "--max-venue-ahead-s",
        type=float,
        default=300.0,
        metavar="S",
        help="refuse (and resync on) updates stamped more than this far ahead of this host's clock, 1 to 86400 "
        "(as [[feeds]] max_venue_ahead_s; default 300); the frames are recorded either way",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        channels = [Channel(name.strip()) for name in args.channels.split(",") if name.strip()]
    except ValueError:
        print(f"arbscan record: --channels {args.channels!r}: expected book, top or funding", file=sys.stderr)
        return 2
    if not channels:
        print("arbscan record: --channels names no channel", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print(f"arbscan record: --duration {args.duration}: must be > 0", file=sys.stderr)
        return 2
    if not 1 <= args.max_venue_ahead_s <= 86_400:  # also refuses nan
        print(f"arbscan record: --max-venue-ahead-s {args.max_venue_ahead_s}: must be 1 to 86400", file=sys.stderr)
        return 2
    configure_logging(level=args.log_level)
    stats = asyncio.run(_record(args, channels))
    print(
        f"arbscan record: {stats.frames} frames and {stats.snapshots} snapshots in {stats.files} file(s) "
        f"under {args.out}",
        file=sys.stderr,
    )
    return 0


async def _record(args: argparse.Namespace, channels: list[Channel]) -> RecorderStats:
    entry = get_entry(args.venue, args.market)
    endpoints = Endpoints(args.ws_url or entry.endpoints.ws, args.rest_url or entry.endpoints.rest)
    protocol = entry.protocol(endpoints)
    subscriptions = [Subscription(symbol.upper(), channel) for symbol in args.symbols for channel in channels]
    config = FeedConfig(ws_url=endpoints.ws, rest_url=endpoints.rest, max_venue_ahead_s=args.max_venue_ahead_s)
    with Recorder(args.out) as recorder:
        async with RestClient() as rest:
            try:
                feed = VenueFeed(
                    protocol,
                    subscriptions,
                    rest=rest,
                    config=config,
                    frame_tap=recorder.frame_tap,
                    snapshot_tap=recorder.snapshot_tap,
                    name=f"record {args.venue}:{args.market}",
                )
            except LocalProtocolError as exc:  # e.g. a channel the venue's market does not have
                raise SystemExit(f"arbscan record: {exc}") from None
            try:
                async with asyncio.timeout(args.duration):
                    await feed.run()
            except TimeoutError:
                pass
        return recorder.stats
