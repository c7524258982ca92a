"""``arbscan run --config FILE``: the always-on daemon on the venues' public feeds.

The config is validated strictly before anything starts (every problem listed, exit 2). The daemon then
runs until SIGTERM/SIGINT (exit 0 after a graceful stop); SIGHUP reloads the config. On a terminal a
short summary is printed every 30 s; under systemd the structured logs and ``/metrics`` say the same.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rules.overrides import parse_overrides
from scanner.config import load_config
from scanner.daemon import Daemon, DaemonOptions
from scanner.errors import ConfigError
from scanner.feedplan import unreachable_feeds
from scanner.logging import configure_logging

SUMMARY_INTERVAL_S = 30.0


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy-leverage-override",
        action="append",
        default=[],
        metavar="STRATEGY=MULTIPLIER",
        help="replace a strategy's leverage notional multiplier for this run (repeatable)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the scanner daemon on live venue feeds")
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="the daemon's TOML config")
    add_override_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.strategy_leverage_override)
    config = load_config(args.config)
    unreachable = unreachable_feeds(config)
    if unreachable:
        raise ConfigError(str(args.config), unreachable)
    configure_logging(level=config.logging.level, json=config.logging.json)
    options = DaemonOptions(
        config_path=args.config,
        cli_overrides=overrides,
        summary_interval_s=SUMMARY_INTERVAL_S if sys.stdout.isatty() else None,
        final_summary=sys.stdout.isatty(),
    )

    async def main() -> int:
        return await Daemon(config, options).run()

    return asyncio.run(main())
