"""The peer: cryptofeed 2.4.1 fed the same recorded Binance frames offline, through its own message handlers.

cryptofeed is installed in the bench environment only (``requirements/bench.txt``); nothing outside
``bench/`` imports it. One :class:`cryptofeed.exchanges.Binance` (spot) and one
:class:`cryptofeed.exchanges.BinanceFutures` (USD-M) feed, each subscribed to ``L2_BOOK`` and ``TICKER``
for BTC-USDT and ETH-USDT, get every recorded ``@depth`` and ``@bookTicker`` frame through
``message_handler(msg, conn, timestamp)``, exactly as its websocket connection would hand them over.

Its I/O is replaced by recordings, never by our code:

* symbol metadata: cryptofeed's own recorded ``exchangeInfo`` answers (``data/cryptofeed/BINANCE.0`` and
  ``BINANCE_FUTURES.0``) go through its own ``_parse_symbol_data`` into its symbol table;
* the REST depth snapshot it fetches on the first diff of a book (``_snapshot`` → ``http_conn.read``)
  is answered with the snapshot recorded in the same hftbacktest capture.

Its Binance handlers cannot parse raw ``@trade`` frames (``'trade'`` is not an event it knows: it logs
"Unexpected message"), so it is fed, and compared on, the depth and bookTicker frames only.

Two callback modes:

* ``count``: the L2_BOOK and TICKER callbacks only count (parse + book maintenance);
* ``bbo``: the L2_BOOK callback reads the best bid and ask after every book update, what a scanner needs
  (its SortedDict re-sorts a side on that read).

The handlers are coroutines that never suspend here (the snapshot answer is immediate), so each frame is
driven to completion with ``coroutine.send(None)``: no event-loop overhead is charged to the peer.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.common import ROOT, RecordedFrame, Timeline

CF_DATA = ROOT / "data" / "cryptofeed"


def drive(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine that must not suspend (offline handlers); raise if it does."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("a cryptofeed handler suspended: the offline peer must never wait")


def _recorded_exchange_info(path: Path) -> Any:
    """cryptofeed's own recorded ``exchangeInfo`` body (``<url> -> <epoch>: <json>``)."""
    from yapic import json

    with path.open("rb") as f:
        for line in f:
            url, sep, rest = line.partition(b" -> ")
            if sep and url.endswith(b"/exchangeInfo"):
                return json.loads(rest.partition(b": ")[2])
    raise SystemExit(f"bench: no exchangeInfo record in {path}")


class _RecordedSnapshots:
    """Stands in for cryptofeed's ``HTTPAsyncConn``: depth requests get the recorded REST snapshot."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.requests: list[str] = []

    async def read(self, address: str, **_kwargs: Any) -> bytes:
        symbol = parse_qs(urlsplit(address).query)["symbol"][0]
        self.requests.append(symbol)
        return self.bodies[symbol]

    async def close(self) -> None:
        return None


class CryptofeedPeer:
    """Both Binance feeds of cryptofeed in one callback mode; :meth:`handler_for` routes a recording's frames."""

    def __init__(self, timeline: Timeline, mode: str) -> None:
        if mode not in ("count", "bbo"):
            raise ValueError(f"mode must be count or bbo, got {mode!r}")
        from cryptofeed.defines import BINANCE, BINANCE_FUTURES, L2_BOOK, TICKER
        from cryptofeed.exchanges import Binance, BinanceFutures
        from cryptofeed.symbols import Symbols

        logging.getLogger("feedhandler").setLevel(logging.ERROR)
        recorded = ((BINANCE, Binance, "BINANCE.0"), (BINANCE_FUTURES, BinanceFutures, "BINANCE_FUTURES.0"))
        for exchange, cls, name in recorded:
            if not Symbols.populated(exchange):
                symbols, info = cls._parse_symbol_data(_recorded_exchange_info(CF_DATA / name))
                Symbols.set(exchange, symbols, info)
        self.mode = mode
        self.book_updates = 0
        self.tickers = 0
        self.best: dict[str, tuple[Decimal, Decimal]] = {}
        book_cb = self._book_bbo if mode == "bbo" else self._book_count
        callbacks = {L2_BOOK: book_cb, TICKER: self._ticker}
        self.spot = Binance(
            symbols=["BTC-USDT", "ETH-USDT"], channels=[L2_BOOK, TICKER], callbacks=callbacks, depth_interval="100ms"
        )
        self.futures = BinanceFutures(
            symbols=["BTC-USDT-PERP", "ETH-USDT-PERP"], channels=[L2_BOOK, TICKER], callbacks=callbacks
        )
        snapshots: dict[str, dict[str, bytes]] = {"spot": {}, "usdm": {}}
        for _index, frame, cls_ in timeline.records:
            if cls_ == "rest":
                market = "usdm" if "/usdm/" in frame.source else "spot"
                snapshots[market].setdefault(frame.symbol, frame.payload)
        self.spot.http_conn = _RecordedSnapshots(snapshots["spot"])
        self.futures.http_conn = _RecordedSnapshots(snapshots["usdm"])
        # recording index -> the feed that handles it (by the recording's folder)
        self._by_index = {
            i: (self.futures if "/usdm/" in str(r.paths[0]) else self.spot) for i, r in enumerate(timeline.recordings)
        }

    def handler_for(self, index: int) -> Any:
        return self._by_index[index].message_handler

    def feed(self, index: int, frame: RecordedFrame) -> None:
        """Hand one websocket frame to the feed of its recording (receive time in epoch seconds)."""
        drive(self._by_index[index].message_handler(frame.payload, None, frame.recv_ns / 1e9))

    async def _book_count(self, book: Any, receipt_timestamp: float) -> None:
        self.book_updates += 1

    async def _book_bbo(self, book: Any, receipt_timestamp: float) -> None:
        self.book_updates += 1
        sides = book.book
        bids, asks = sides.bids, sides.asks
        if len(bids) and len(asks):
            self.best[book.symbol] = (bids.index(0)[0], asks.index(0)[0])

    async def _ticker(self, ticker: Any, receipt_timestamp: float) -> None:
        self.tickers += 1

    def top_of_books(self) -> dict[str, tuple[float, float]]:
        """Best bid and ask of every book cryptofeed holds, by our book key (``binance:spot:BTCUSDT``)."""
        out = {}
        for market, feed in (("spot", self.spot), ("usdm", self.futures)):
            for symbol, book in feed._l2_book.items():
                bids, asks = book.book.bids, book.book.asks
                if len(bids) and len(asks):
                    venue_symbol = feed.std_symbol_to_exchange_symbol(symbol)
                    out[f"binance:{market}:{venue_symbol}"] = (float(bids.index(0)[0]), float(asks.index(0)[0]))
        return out

    def snapshot_requests(self) -> list[str]:
        return [*self.spot.http_conn.requests, *self.futures.http_conn.requests]
