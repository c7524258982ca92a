"""`arbscan replay PATH...`: serve recordings on loopback in each venue's wire protocol.

Prints one JSON line per mounted venue and market with the base URLs to give a client (``ws``, ``rest``
and any extra ``routes`` by name: USD-M's ``market``), then plays the timeline. When it is exhausted it
prints ``{"finished": true, ...}`` and keeps serving the final books over REST until interrupted
(``--exit-when-finished`` stops instead).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys

import orjson

from feeds.instruments import Market, Venue
from feeds.replay import ReplayConfig, ReplayExchange
from scanner.logging import configure_logging


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text.rstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'max', or a factor such as 1, 10 or 10x") from None
    if not 0 < value < math.inf:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: the speed must be a finite number > 0")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="serve recordings on loopback as the venues would (websocket + REST)",
        description=(
            "Serve recorded frames on 127.0.0.1 in each venue's own wire protocol: subscribe messages, "
            "combined-stream URLs and the REST depth endpoint answered from the recording."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders")
    parser.add_argument("--speed", type=_speed, default=1.0, help="1 (recorded pace), N or Nx, or max (default: 1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--venue", type=Venue, choices=list(Venue), help="force the venue (default: detected)")
    parser.add_argument("--market", type=Market, choices=list(Market), help="force the market (default: detected)")
    parser.add_argument("--max-frames", type=int, help="play only the first N records")
    parser.add_argument("--start-grace", type=float, default=1.0, help="seconds from first subscription to start")
    parser.add_argument(
        "--snapshot-wait",
        type=float,
        default=5.0,
        help="seconds the clock waits at a recorded snapshot for a buffering client to ask for it (0: never)",
    )
    parser.add_argument("--exit-when-finished", action="store_true", help="exit once the recordings are played")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"arbscan replay: --port {args.port}: expected 0..65535", file=sys.stderr)
        return 2
    try:
        config = ReplayConfig(
            host=args.host,
            port=args.port,
            speed=args.speed,
            venue=args.venue,
            market=args.market,
            max_frames=args.max_frames,
            start_grace_s=args.start_grace,
            snapshot_wait_s=args.snapshot_wait,
            close_on_finish=args.exit_when_finished,
        )
    except ValueError as exc:
        print(f"arbscan replay: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=args.log_level)
    asyncio.run(_serve(args.paths, config, exit_when_finished=args.exit_when_finished))
    return 0


async def _serve(paths: list[str], config: ReplayConfig, *, exit_when_finished: bool) -> None:
    out = sys.stdout.buffer
    async with ReplayExchange(paths, config=config) as exchange:
        for venue, market in exchange.mounts():
            ep = exchange.endpoints(venue, market)
            # Extra routes under their own key: USD-M's is named "market", which must not replace the market.
            line = {"venue": venue, "market": market, "ws": ep.ws, "rest": ep.rest, "routes": dict(ep.extra)}
            out.write(orjson.dumps(line) + b"\n")
        out.flush()
        await exchange.wait_finished()
        out.write(orjson.dumps(exchange.status()) + b"\n")
        out.flush()
        if not exit_when_finished:
            await asyncio.Event().wait()  # keep serving the final books until interrupted
