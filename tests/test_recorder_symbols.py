"""The recorder names files after venue symbols that are not file-name safe (Kraken ``XBT/USD``)."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from feeds.kraken.protocol import KrakenProtocol
from feeds.recorder import Recorder
from feeds.recordings import open_recordings
from tests.venue_fixtures import KRAKEN_WS, messages

WALL_NS = 1_618_678_134_000_000_000  # 2021-04-17, the capture's day


def test_kraken_frame_with_a_slash_symbol_is_recorded_and_read_back(tmp_path: Path) -> None:
    """A recorded XBT/CHF book frame goes to one file in the folder; reading it back names XBT/CHF."""
    frame = next(m for _, m in messages(KRAKEN_WS) if m.startswith(b"[") and m.endswith(b'"XBT/CHF"]'))
    received = KrakenProtocol("wss://ws.kraken.com").receive(frame, 5)
    assert received.updates and received.updates[0].key == "kraken:spot:XBT/CHF"
    out = tmp_path / "rec"
    with Recorder(out, wall_clock=lambda: WALL_NS) as recorder:
        # Received now: the recorder writes wall time as its offset plus the monotonic receive time, so a
        # fixed receive time would land on the day before once this host had been up past 16:48 of a day.
        recorder.frame_tap(frame, time.monotonic_ns(), received)
        assert recorder.stats.frames == 1
        (path,) = recorder.paths
    assert path.parent == out and path.name == "xbt%2Fchf_20210417.gz"
    with gzip.open(path, "rb") as f:
        stamp, _, body = f.read().rstrip(b"\n").partition(b" ")
    assert body == frame and int(stamp) > 0
    (recording,) = open_recordings([out]).recordings
    assert recording.symbol == "XBT/CHF"
    assert [f.payload for f in recording.frames()] == [frame]
