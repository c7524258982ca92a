"""Exceptions raised by ``feeds``.

The tree separates "the venue or the input misbehaved" from "we misused our own code"::

    FeedError                      base of everything raised on purpose by feeds/
    ├── RemoteProtocolError        the venue (or a recording) sent something we cannot accept
    │   ├── MalformedFrame         not JSON, wrong types, unknown stream: counted, never fatal
    │   ├── SequenceGap            a book's update ids do not chain: resync that symbol only
    │   ├── ChecksumMismatch       a venue checksum disagrees with our book: resync that symbol
    │   └── VenueRejected          an explicit error reply (subscribe refused, REST 4xx)
    ├── ConnectionLost             transport failure; retryable by the connection runner
    ├── RateLimited                a request/connection budget said no; wait, never hammer
    ├── RecordingError             a recording file is unreadable, unknown or corrupt (file, line)
    ├── UnknownInstrument          an instrument a venue has no name (or no metadata) for: bad input
    └── LocalProtocolError         our bug: an illegal state transition, a misuse of an API

Exceptions carry fields (venue, symbol, file, line, ...), not only a message, so the CLI and the
metrics can report them precisely. ``exit_code`` is what the CLI exits with when one reaches it:
2 for bad input or usage, 1 for a runtime failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    import msgspec

    #: A frame's sample: its bytes or text, or a venue's undecoded payload.
    Sample: TypeAlias = bytes | str | msgspec.Raw


class FeedError(Exception):
    """Base class of every exception ``feeds`` raises on purpose."""

    exit_code = 1


class RemoteProtocolError(FeedError):
    """The remote side (venue, replay peer or recording) violated its protocol."""


class MalformedFrame(RemoteProtocolError):
    """A frame could not be decoded or does not match the venue schema.

    ``key`` names the book whose snapshot or diff the frame was, where the protocol knows it: its changes
    are lost, and where the venue's ids would not show it the feed resyncs that book
    (:meth:`feeds.sync.BookSync.lose_update`).
    """

    def __init__(self, reason: str, *, venue: str = "", sample: Sample = b"", key: str = "") -> None:
        self.reason = reason
        self.venue = venue
        self.key = key
        # Bytes, or any buffer (msgspec.Raw: a venue's undecoded payload); only the head is kept.
        self.sample = sample.encode()[:200] if isinstance(sample, str) else bytes(memoryview(sample)[:200])
        super().__init__(f"{venue or 'feed'}: malformed frame: {reason}")

    def in_frame(self, frame: Sample) -> MalformedFrame:
        """The same refusal with the whole frame as its sample: raised deep (a level check), where only the
        book was known, and re-raised where the frame is."""
        return MalformedFrame(self.reason, venue=self.venue, sample=frame, key=self.key)


class SequenceGap(RemoteProtocolError):
    """Update ids of a book stream do not chain; the book must be rebuilt."""

    def __init__(self, key: str, *, expected: int, got: int) -> None:
        self.key = key
        self.expected = expected
        self.got = got
        super().__init__(f"{key}: sequence gap: expected {expected}, got {got}")


class ChecksumMismatch(RemoteProtocolError):
    """The venue's book checksum disagrees with the local book."""

    def __init__(self, key: str, *, expected: int, computed: int) -> None:
        self.key = key
        self.expected = expected
        self.computed = computed
        super().__init__(f"{key}: checksum mismatch: venue {expected}, ours {computed}")


class VenueRejected(RemoteProtocolError):
    """The venue answered a request of ours with an explicit error."""

    def __init__(self, venue: str, detail: str, *, status: int | None = None) -> None:
        self.venue = venue
        self.detail = detail
        self.status = status
        super().__init__(f"{venue}: rejected ({status}): {detail}" if status else f"{venue}: rejected: {detail}")


class ConnectionLost(FeedError):
    """The transport failed; the connection runner may retry with backoff."""


class RateLimited(FeedError):
    """A request or connection budget is exhausted; retry after ``retry_after_s``."""

    def __init__(self, venue: str, *, retry_after_s: float) -> None:
        self.venue = venue
        self.retry_after_s = retry_after_s
        super().__init__(f"{venue}: rate limited, retry after {retry_after_s:.1f}s")


class RecordingError(FeedError):
    """A recording cannot be read: unknown format, corrupt line, missing snapshot."""

    exit_code = 2

    def __init__(self, path: str, reason: str, *, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class UnknownInstrument(FeedError):
    """An instrument the venue cannot name, or whose metadata the venue does not list (bad input → 2)."""

    exit_code = 2

    def __init__(self, instrument: str, reason: str) -> None:
        self.instrument = instrument
        self.reason = reason
        super().__init__(f"{instrument}: {reason}")


class ListenError(FeedError):
    """A local server (the replay exchange) cannot listen where it was told to: an input error."""

    exit_code = 2

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {address}: {reason}")


class LocalProtocolError(FeedError):
    """Our own code broke a rule (illegal state transition, API misuse). Never retried."""
