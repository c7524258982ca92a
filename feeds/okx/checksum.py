"""OKX v5 order-book checksum: CRC32 of the top 25 levels, signed int32 (exchange-protocols.md §4.2).

The string interleaves ``bid1px:bid1sz:ask1px:ask1sz:bid2px:...`` using the price and size strings
exactly as the venue sent them ("0.5000" stays "0.5000"); where one side is shorter its missing entries
are skipped. Deprecated in production since 2026-06-23 (the field is then always 0 and not checked), but
every older capture carries it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import zip_longest

from feeds.book import OrderBook, Side
from feeds.updates import RawLevel

DEPTH = 25


def checksum_string(bids: Sequence[RawLevel], asks: Sequence[RawLevel]) -> str:
    """The colon-joined string of the best 25 bids and asks (best first), interleaved."""
    parts: list[str] = []
    for bid, ask in zip_longest(bids[:DEPTH], asks[:DEPTH]):
        if bid is not None:
            parts += bid
        if ask is not None:
            parts += ask
    return ":".join(parts)


def signed_crc32(text: str) -> int:
    """zlib CRC32 of the UTF-8 text as a signed 32-bit integer (how OKX sends it)."""
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def book_checksum(book: OrderBook) -> int:
    """The checksum of a book that keeps exact strings (``OrderBook(keep_raw=True)``)."""
    return signed_crc32(checksum_string(book.raw_levels(Side.BID, DEPTH), book.raw_levels(Side.ASK, DEPTH)))
