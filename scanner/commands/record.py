"""`arbscan record`: capture a venue's live frames (and the REST snapshots fetched) for later replay.

Writes ``<out>/<symbol>_<YYYYMMDD>.gz`` in the hftbacktest line format (``<receive ns> <raw frame>``),
one file per symbol and UTC day (see :mod:`feeds.recorder`): ``verify-books``, the replay exchange and
the stress runs read it as it is. Runs until interrupted or for ``--duration`` seconds. The URLs default
to the venue's real ones; point them at ``arbscan replay`` to try it offline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
import time
from pathlib import Path

from feeds.errors import LocalProtocolError, RecordingError
from feeds.feed import FeedConfig, VenueFeed
from feeds.instruments import Market, Venue
from feeds.protocol import Channel, Subscription
from feeds.recorder import FLUSH_EVERY_S, Recorder
from feeds.rest import RestClient
from feeds.venues import Endpoints, VenueEntry, get_entry
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
        default=None,
        help="comma-separated channels to record: book, top, funding (default: book, and top where the venue "
        "has a top-of-book channel: Binance's bookTicker)",
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
    if args.channels is None:
        args.channels = "book,top" if _has_top(args.venue, args.market) else "book"
    try:
        channels = [Channel(name.strip()) for name in args.channels.split(",") if name.strip()]
    except ValueError:
        print(f"arbscan record: --channels {args.channels!r}: expected book, top or funding", file=sys.stderr)
        return 2
    if not channels:
        print("arbscan record: --channels names no channel", file=sys.stderr)
        return 2
    if args.duration is not None and not 0 < args.duration < math.inf:  # also refuses nan
        print(f"arbscan record: --duration {args.duration}: must be a number of seconds > 0", file=sys.stderr)
        return 2
    if not 1 <= args.max_venue_ahead_s <= 86_400:  # also refuses nan
        print(f"arbscan record: --max-venue-ahead-s {args.max_venue_ahead_s}: must be 1 to 86400", file=sys.stderr)
        return 2
    configure_logging(level=args.log_level)
    try:
        recorder = Recorder(args.out)
    except RecordingError as exc:
        print(f"arbscan record: --out {exc}", file=sys.stderr)
        return 2
    try:  # today's files, checked (a cut-short end repaired) before connecting, not at the first frame
        recorder.prepare(symbol.upper() for symbol in args.symbols)
    except RecordingError as exc:
        print(f"arbscan record: {exc}", file=sys.stderr)
        return 2
    outcome = asyncio.run(_record(args, channels, recorder))
    if isinstance(outcome, str):  # refused before recording anything
        print(f"arbscan record: {outcome}", file=sys.stderr)
        return 2
    stats = recorder.stats
    print(
        f"arbscan record: {stats.frames} frames and {stats.snapshots} snapshots in {stats.files} file(s) "
        f"under {args.out}" + (f"; {stats.repaired} cut-short file(s) repaired first" if stats.repaired else ""),
        file=sys.stderr,
    )
    if outcome:
        print(f"arbscan record: every book was abandoned: {'; '.join(outcome)}", file=sys.stderr)
        return 1
    return 0


def _has_top(venue: Venue, market: Market) -> bool:
    """Whether the venue's market has a top-of-book channel."""
    entry = get_entry(venue, market)
    return _refused(entry, entry.endpoints, [Subscription("BTCUSDT", Channel.TOP)]) is None


def _refused(entry: VenueEntry, endpoints: Endpoints, subscriptions: list[Subscription]) -> str | None:
    """Why the venue's protocol refuses to subscribe these (a channel it lacks), or None: asked offline of a
    throwaway instance, whose request ids stay unused (a live feed refuses them only once connected)."""
    try:
        entry.protocol(endpoints).subscribe(subscriptions)
    except LocalProtocolError as exc:
        return str(exc)
    return None


async def _record(args: argparse.Namespace, channels: list[Channel], recorder: Recorder) -> str | list[str]:
    """Record until the duration ends, SIGTERM/SIGINT, or every book is abandoned. Returns a reason it could
    not start (str), else the abandoned books' reasons (empty: it ended as asked)."""
    entry = get_entry(args.venue, args.market)
    endpoints = Endpoints(args.ws_url or entry.endpoints.ws, args.rest_url or entry.endpoints.rest)
    protocol = entry.protocol(endpoints)
    subscriptions = [Subscription(symbol.upper(), channel) for symbol in args.symbols for channel in channels]
    refused = _refused(entry, endpoints, subscriptions)  # said before connecting
    if refused is not None:
        return refused
    config = FeedConfig(ws_url=endpoints.ws, rest_url=endpoints.rest, max_venue_ahead_s=args.max_venue_ahead_s)
    # SIGTERM (systemd, docker) and SIGINT end the recording like the duration does: the files are closed
    # (a gzip file left unclosed reads back as truncated).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with recorder:
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
                return str(exc)
            abandoned: list[str] = []
            running = asyncio.create_task(feed.run(), name="record feed")
            watching = asyncio.create_task(_flush_and_watch(recorder, feed, stop, abandoned), name="record flush")
            stopping = asyncio.create_task(stop.wait(), name="record stop")
            try:
                await asyncio.wait({running, stopping}, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (running, watching, stopping):
                    task.cancel()
                await asyncio.gather(running, watching, stopping, return_exceptions=True)
            if not running.cancelled() and running.exception() is not None:
                raise running.exception()  # type: ignore[misc]  # the feed's own error (the CLI reports it)
        return abandoned


async def _flush_and_watch(recorder: Recorder, feed: VenueFeed, stop: asyncio.Event, abandoned: list[str]) -> None:
    """Flush every FLUSH_EVERY_S (a quiet feed writes nothing that would), and stop once every book is abandoned:
    its frames could never be replayed or verified without a snapshot."""
    while True:
        await asyncio.sleep(min(FLUSH_EVERY_S, 1.0))
        if feed.syncs and all(key in feed.failed for key in feed.syncs):
            abandoned.extend(f"{key}: {feed.failed[key]}" for key in sorted(feed.syncs))
            stop.set()
            return
        if time.monotonic() - recorder.last_flush >= FLUSH_EVERY_S:
            recorder.flush()
