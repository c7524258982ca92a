"""Recording readers (hftbacktest, cryptofeed), grouping, venue detection and corrupt input."""

from __future__ import annotations

import gzip
import itertools
import shutil
from pathlib import Path

import pytest

from feeds.errors import RecordingError
from feeds.instruments import Market, Venue
from feeds.recordings import FrameKind, RecordedFrame, Recording, open_recordings
from feeds.venues import detect, get_entry
from tests.binance_fixtures import (
    CF_SPOT_HTTP,
    CF_SPOT_WS,
    CF_USDM_WS,
    CRYPTOFEED,
    HFT,
    SPOT_BTC_0808,
    SPOT_BTC_0809,
    USDM_BTC,
    hft_lines,
)


def test_hftbacktest_records():
    """Each line becomes a WS record; the bare snapshot line is a REST record; the symbol comes from the name."""
    (rec,) = open_recordings([USDM_BTC]).recordings
    assert (rec.format, rec.symbol, rec.paths) == ("hftbacktest", "BTCUSDT", (USDM_BTC,))
    frames = rec.frames()
    first = next(frames)
    assert first == RecordedFrame(
        1723161255030314667, FrameKind.WS, "", hft_lines(USDM_BTC)[0][1], str(USDM_BTC), 1, "BTCUSDT"
    )
    snapshot = next(f for f in frames if f.kind is FrameKind.REST)
    assert (snapshot.recv_ns, snapshot.line, snapshot.symbol) == (1723161255319702566, 55, "BTCUSDT")
    assert snapshot.payload.startswith(b'{"lastUpdateId":5123107852948,"E":1723161256501')


def test_day_files_are_one_stream_in_date_order():
    """``_20240808`` then ``_20240809``: one recording, read in date order, line numbers per file."""
    recordings = open_recordings([SPOT_BTC_0809, SPOT_BTC_0808]).recordings  # given out of order
    assert len(recordings) == 1
    (rec,) = recordings
    assert rec.paths == (SPOT_BTC_0808, SPOT_BTC_0809)
    frames = list(rec.frames())
    n0808 = len(hft_lines(SPOT_BTC_0808))
    assert len(frames) == n0808 + len(hft_lines(SPOT_BTC_0809))
    last, first_next = frames[n0808 - 1], frames[n0808]
    assert (last.source, last.line) == (str(SPOT_BTC_0808), n0808)
    assert (first_next.source, first_next.line, first_next.recv_ns) == (str(SPOT_BTC_0809), 1, 1723161600001658384)
    assert sum(f.kind is FrameKind.REST for f in frames) == 1


def test_folder_groups_streams_per_symbol_and_market():
    recordings = open_recordings([HFT]).recordings
    assert [(r.paths[0].parent.name, r.symbol, len(r.paths)) for r in recordings] == [
        ("spot", "BTCUSDT", 2),
        ("spot", "ETHUSDT", 2),
        ("usdm", "BTCUSDT", 1),
        ("usdm", "ETHUSDT", 1),
    ]


def test_gzip_members_split_mid_line_read_the_same(tmp_path):
    """A file written as several gzip members (an appending recorder), split inside a line, reads the same."""
    raw = b"".join(line + b"\n" for line in gzip.decompress(SPOT_BTC_0808.read_bytes()).splitlines()[:3000])
    source = tmp_path / "whole" / "btcusdt_20240808.gz"
    source.parent.mkdir()
    source.write_bytes(gzip.compress(raw))
    cuts = [0, 1, 4097, len(raw) // 2 + 13, len(raw) - 5, len(raw)]
    target = tmp_path / "btcusdt_20240808.gz"
    with target.open("wb") as f:
        for a, b in itertools.pairwise(cuts):
            f.write(gzip.compress(raw[a:b]))
    (original,) = open_recordings([source]).recordings
    (rebuilt,) = open_recordings([target]).recordings
    assert [(f.recv_ns, f.kind, f.payload, f.line) for f in rebuilt.frames()] == [
        (f.recv_ns, f.kind, f.payload, f.line) for f in original.frames()
    ]


def test_cryptofeed_capture_merges_rest_and_metadata_by_time():
    """The ws capture is one recording; REST snapshots and metadata of the same exchange merge in by time."""
    (rec,) = open_recordings([CF_SPOT_WS]).recordings
    assert rec.format == "cryptofeed"
    assert rec.exchange == "BINANCE"
    assert rec.companions == (CRYPTOFEED / "BINANCE.0", CF_SPOT_HTTP)
    frames = list(rec.frames())
    assert [f.kind for f in frames[:6]] == [
        FrameKind.REST,  # exchangeInfo (BINANCE.0 line 1)
        FrameKind.CONFIG,
        FrameKind.OPENED,
        FrameKind.WS,  # first NKNUSDT diff
        FrameKind.REST,  # the NKNUSDT snapshot fetched because of it
        FrameKind.WS,
    ]
    opened, first_ws, snapshot = frames[2], frames[3], frames[4]
    assert opened.url.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert opened.recv_ns == 1633998511159679000
    assert (first_ws.url, first_ws.recv_ns, first_ws.line) == (opened.url, 1633998512063356900, 2)
    assert first_ws.payload.startswith(b'{"stream":"nknusdt@depth@100ms"')
    assert snapshot.url == "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"
    assert (snapshot.recv_ns, snapshot.source, snapshot.line) == (1633998512320639000, str(CF_SPOT_HTTP), 1)
    assert snapshot.payload.startswith(b'{"lastUpdateId":499869752,')
    assert snapshot.header == b""
    assert [f.recv_ns for f in frames] == sorted(f.recv_ns for f in frames)
    assert sum(f.kind is FrameKind.REST for f in frames) == 5  # exchangeInfo + 4 depth snapshots


def test_cryptofeed_rest_header_suffix_is_split_off(tmp_path):
    """A REST line whose body ends in `` header: {json}`` yields the body alone and the header apart."""
    folder = tmp_path / "capture"
    folder.mkdir()
    shutil.copy(CF_SPOT_WS, folder)
    line = CF_SPOT_HTTP.read_bytes().splitlines()[0]
    (folder / "BINANCE.http.0.0").write_bytes(line + b' header: {"Content-Type": "application/json"}\n')
    (rec,) = open_recordings([folder]).recordings
    rest = next(f for f in rec.frames() if f.kind is FrameKind.REST)
    assert rest.header == b'{"Content-Type": "application/json"}'
    assert rest.payload == line.partition(b": ")[2]
    assert rest.payload.endswith(b"]]}")


def test_folder_of_everything_skips_non_recordings():
    """LICENSE and markdown are silently passed over; other unclaimed files are listed as skipped."""
    opened = open_recordings([HFT.parent])
    assert {p.name for p in opened.skipped} == {
        "orderbook_bnc.csv",
        "orderbook_hb.csv",
        *(p.name for p in (HFT.parent / "dex" / "degenbot").glob("*.json")),
    }
    ws_names = [r.paths[0].name for r in opened.recordings if r.format == "cryptofeed"]
    assert "BINANCE.ws.1.0" in ws_names
    assert "BINANCE_FUTURES.ws.1.0" in ws_names
    assert not any(name.startswith(("BINANCE.http", "BINANCE.0")) for name in ws_names)


@pytest.mark.parametrize(
    ("path", "venue", "market"),
    [
        (SPOT_BTC_0808, Venue.BINANCE, Market.SPOT),
        (USDM_BTC, Venue.BINANCE, Market.USDM),
        (CF_SPOT_WS, Venue.BINANCE, Market.SPOT),
        (CF_USDM_WS, Venue.BINANCE, Market.USDM),
    ],
)
def test_venue_detection(path, venue, market):
    (rec,) = open_recordings([path]).recordings
    entry = detect(rec)
    assert (entry.venue, entry.market) == (venue, market)


def test_detection_reads_content_not_folder_names(tmp_path):
    """Copied under neutral names, the hftbacktest files are still told apart by their frames (pu, e)."""
    for src, name in ((SPOT_BTC_0808, "a_20240808.gz"), (USDM_BTC, "b_20240808.gz")):
        shutil.copy(src, tmp_path / name)
    recordings = open_recordings([tmp_path]).recordings
    assert [(r.symbol, detect(r).market) for r in recordings] == [("A", Market.SPOT), ("B", Market.USDM)]


def test_forced_venue_and_market():
    (rec,) = open_recordings([SPOT_BTC_0808]).recordings
    assert detect(rec, venue=Venue.BINANCE, market=Market.USDM) is get_entry(Venue.BINANCE, Market.USDM)
    assert detect(rec, venue=Venue.BINANCE).market is Market.SPOT
    with pytest.raises(RecordingError, match=r"cannot recognise .* as okx"):
        detect(rec, venue=Venue.OKX)


def test_snapshot_keys_of_recorded_rest_responses():
    """Depth responses map to their book; metadata responses to nothing."""
    (rec,) = open_recordings([CF_SPOT_WS]).recordings
    entry = detect(rec)
    rest = [f for f in rec.frames() if f.kind is FrameKind.REST]
    assert [entry.snapshot_key(f) for f in rest] == [
        None,
        "binance:spot:NKNUSDT",
        "binance:spot:BLZETH",
        "binance:spot:LRCBTC",
        "binance:spot:RUNEEUR",
    ]
    (hft,) = open_recordings([USDM_BTC]).recordings
    snap = next(f for f in hft.frames() if f.kind is FrameKind.REST)
    assert detect(hft).snapshot_key(snap) == "binance:usdm:BTCUSDT"


# ---- corrupt and unknown input -----------------------------------------------------------------


def read_all(rec: Recording) -> int:
    return sum(1 for _ in rec.frames())


def test_truncated_gzip_names_file_and_line(tmp_path):
    target = tmp_path / "btcusdt_20240808.gz"
    data = SPOT_BTC_0808.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"btcusdt_20240808\.gz:\d+: corrupt or truncated file") as info:
        read_all(rec)
    assert info.value.path == str(target)
    assert info.value.line is not None
    assert info.value.line > 1000
    assert info.value.exit_code == 2


def test_hftbacktest_line_without_timestamp(tmp_path):
    lines = gzip.decompress(SPOT_BTC_0808.read_bytes()).splitlines()[:20]
    lines[6] = lines[6].partition(b" ")[2]  # drop the receive time of line 7
    target = tmp_path / "btcusdt_20240808.gz"
    target.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"btcusdt_20240808\.gz:7: expected '<receive ns> <frame>'"):
        read_all(rec)


@pytest.mark.parametrize("stamp", [b"1723161255208000000" + b"0" * 10, b"9000000000000000000", b"1723000000"])
def test_hftbacktest_receive_time_off_the_files_day(tmp_path, stamp):
    """29 digits, the year 2255 in 19 digits, 1970: verify-books said ok and a paced replay waited on it for
    years; a receive time off the file's day (its name's, ±1 day) is refused with the file and line."""
    lines = gzip.decompress(SPOT_BTC_0808.read_bytes()).splitlines()[:20]
    lines[8] = stamp + b" " + lines[8].partition(b" ")[2]
    target = tmp_path / "btcusdt_20240808.gz"
    target.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (rec,) = open_recordings([target]).recordings
    expected = rf"btcusdt_20240808\.gz:9: receive time {stamp.decode()} ns is not on the file's day 20240808"
    with pytest.raises(RecordingError, match=expected):
        read_all(rec)


def test_hftbacktest_file_named_otherwise_bounds_its_receive_times(tmp_path):
    """A file not named <symbol>_<YYYYMMDD>.gz has no day to hold its times to: they must fall between 2000 and
    a day from now (the year 2255 passed there)."""
    lines = gzip.decompress(SPOT_BTC_0808.read_bytes()).splitlines()[:20]
    lines[8] = b"9000000000000000000 " + lines[8].partition(b" ")[2]
    target = tmp_path / "capture.gz"
    target.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"capture\.gz:9: receive time 9000000000000000000 ns is not between 2000"):
        read_all(rec)


def test_hftbacktest_file_named_with_no_date_is_refused_and_closed(tmp_path):
    """btcusdt_20241340.gz: refused naming the date, and the file is not left open (a ResourceWarning, an error
    under the tests' filterwarnings)."""
    target = tmp_path / "btcusdt_20241340.gz"
    target.write_bytes(SPOT_BTC_0808.read_bytes())
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"the file name's date 20241340 is no date"):
        read_all(rec)


def test_cryptofeed_bad_timestamp(tmp_path):
    lines = CF_USDM_WS.read_bytes().splitlines()
    lines[3] = b"16269927x1.3: " + lines[3].partition(b": ")[2]
    target = tmp_path / "BINANCE_FUTURES.ws.1.0"
    target.write_bytes(b"\n".join(lines) + b"\n")
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"BINANCE_FUTURES\.ws\.1\.0:4: bad timestamp"):
        read_all(rec)


def test_cryptofeed_unrecognised_line(tmp_path):
    lines = CF_USDM_WS.read_bytes().splitlines()
    lines[9] = b"garbage " + lines[9]
    target = tmp_path / "BINANCE_FUTURES.ws.1.0"
    target.write_bytes(b"\n".join(lines) + b"\n")
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match=r"ws\.1\.0:10: unrecognised line"):
        read_all(rec)


def test_unknown_file_named_explicitly(tmp_path):
    target = tmp_path / "notes.gz"
    target.write_bytes(gzip.compress(b"hello\n"))
    with pytest.raises(RecordingError, match=r"notes\.gz: not a recording in a known format"):
        open_recordings([target])
    with pytest.raises(RecordingError, match="no such file or folder"):
        open_recordings([tmp_path / "missing"])


def test_unrecognisable_venue(tmp_path):
    """A well-formed hftbacktest file whose frames no venue claims: a clear detection error."""
    lines = [line for line in gzip.decompress(SPOT_BTC_0808.read_bytes()).splitlines() if b"@trade" in line[:60]]
    target = tmp_path / "x" / "trades_20240808.gz"
    target.parent.mkdir()
    target.write_bytes(gzip.compress(b"\n".join(lines[:10]).replace(b'{"stream":', b'{"s":') + b"\n"))
    (rec,) = open_recordings([target]).recordings
    with pytest.raises(RecordingError, match="cannot recognise the venue and market"):
        detect(rec)


def test_only_trades_falls_back_to_the_folder(tmp_path: Path):
    """With no depth or ticker frame to read, the recorder's folder name (spot/usdm) decides."""
    lines = [line for line in gzip.decompress(USDM_BTC.read_bytes()).splitlines() if b"@trade" in line[:60]]
    target = tmp_path / "usdm" / "btcusdt_20240808.gz"
    target.parent.mkdir()
    target.write_bytes(gzip.compress(b"\n".join(lines[:10]) + b"\n"))
    (rec,) = open_recordings([target]).recordings
    assert detect(rec).market is Market.USDM
