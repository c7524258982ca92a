"""The loopback replay exchange: recorded venue traffic served in each venue's own wire protocol.

``ReplayExchange`` (``feeds.replay.exchange``) is generic; each venue teaches it its wire through a small
plugin (``feeds.replay.plugin``), registered when its module is imported below.
"""

from __future__ import annotations

from feeds.replay import binance as _binance  # noqa: F401  (registers the Binance plugin)
from feeds.replay import bybit as _bybit  # noqa: F401  (registers the Bybit plugin)
from feeds.replay import kraken as _kraken  # noqa: F401  (registers the Kraken plugin)
from feeds.replay import okx as _okx  # noqa: F401  (registers the OKX plugin)
from feeds.replay.exchange import ReplayConfig, ReplayExchange, ReplayStats, ServedSnapshot
from feeds.replay.faults import FaultHandle, Faults
from feeds.replay.plugin import ReplayPlugin, SessionReply, SnapshotQuery, WireSession, register_plugin

__all__ = [
    "FaultHandle",
    "Faults",
    "ReplayConfig",
    "ReplayExchange",
    "ReplayPlugin",
    "ReplayStats",
    "ServedSnapshot",
    "SessionReply",
    "SnapshotQuery",
    "WireSession",
    "register_plugin",
]
