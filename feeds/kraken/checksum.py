"""Kraken book checksum: CRC32 of the top 10 levels, unsigned (exchange-protocols.md §5).

For each of the 10 best asks (ascending), then each of the 10 best bids (descending): remove the ``.``
from price and quantity, strip leading zeros, concatenate price + quantity. The strings must be the
venue's own (v1 sends strings; v2 sends JSON numbers, which we decode as exact decimals so trailing zeros
survive). The check runs after every update of a message is applied and the book truncated to the
subscribed depth.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from feeds.book import OrderBook, Side
from feeds.updates import RawLevel

DEPTH = 10


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum_string(bids: Sequence[RawLevel], asks: Sequence[RawLevel]) -> str:
    """Asks (best first) then bids (best first), each level as stripped price + stripped quantity."""
    return "".join(_digits(p) + _digits(q) for p, q in (*asks[:DEPTH], *bids[:DEPTH]))


def crc32(text: str) -> int:
    """Unsigned CRC32 of the ASCII text (how Kraken sends it)."""
    return zlib.crc32(text.encode())


def book_checksum(book: OrderBook) -> int:
    """The checksum of a book that keeps exact strings (``OrderBook(keep_raw=True)``)."""
    return crc32(checksum_string(book.raw_levels(Side.BID, DEPTH), book.raw_levels(Side.ASK, DEPTH)))
