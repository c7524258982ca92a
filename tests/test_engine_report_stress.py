"""``arbscan report`` (the journal as a dashboard) and ``arbscan stress`` (scenarios on the same data)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from scanner.candidates import build_candidates
from scanner.cli import main
from scanner.config import JournalConfig
from scanner.engine import CandidateEvent, EngineSettings
from scanner.journal import JournalWriter
from scanner.metrics import Metrics
from scanner.pipeline import ReplayPipeline
from tests.engine_fixtures import CSV_FILES, csv_recordings, demo_runtime


@pytest.fixture(scope="module")
def csv_journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CandidateEvent]]:
    """A journal written by the engine over the LINK/USDT series (demo constraints, both sizes)."""
    config, constraints, _assumptions, _settings = demo_runtime()

    candidates = [c for c in build_candidates(config) if c.strategy.value == "cex_cex"]
    directory = tmp_path_factory.mktemp("report") / "journal"
    writer = JournalWriter.open(directory, JournalConfig(fsync_every=10_000), Metrics(CollectorRegistry()))
    events: list[CandidateEvent] = []

    def sink(event: CandidateEvent) -> None:
        events.append(event)
        writer.append(
            event.event.value,
            event.dedup_key,
            event.decision,
            venue_ts_ms=event.venue_ms,
            event_id=event.event_id,
            context=event.context(),
        )

    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    ReplayPipeline(csv_recordings(), candidates, constraints, settings=settings, sink=sink).run()
    writer.close()
    return directory, events


def test_report_json_matches_the_journal(csv_journal, capsys: pytest.CaptureFixture[str]) -> None:
    """Counts, the shortlist (best net first) and the reasons are those of the journal's events."""
    directory, events = csv_journal
    assert main(["report", "--journal", str(directory), "--format", "json", "--top", "5"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    qualified = [e for e in events if e.event.value == "qualified"]
    assert report["events"] == len(events)
    assert report["counts"]["cex_cex"] == {
        kind: sum(e.event.value == kind for e in events) for kind in ("disqualified", "qualified", "rejected")
    }
    nets = sorted((e.decision.net_bps for e in qualified), reverse=True)[:5]
    assert [row["net_bps"] for row in report["shortlist"]] == pytest.approx(nets)
    for row in report["shortlist"]:
        assert row["net_bps"] >= row["min_net_edge_bps"] == 1.0
        assert row["net_bps"] == pytest.approx(row["gross_bps"] - row["fees_bps"], abs=1e-9)
    not_qualified = [e for e in events if e.event.value != "qualified"]
    assert sum(report["reasons"]["cex_cex"].values()) == len(not_qualified)
    assert report["reasons"]["cex_cex"]["no_gross_edge"] == sum(
        e.decision.primary_reason == "no_gross_edge" for e in not_qualified
    )
    by_candidate = {c["candidate_id"]: c for c in report["candidates"]}
    assert sum(c["qualified"] for c in by_candidate.values()) == len(qualified)
    assert report["problems"] == []


def test_report_markdown_and_a_torn_journal(csv_journal, tmp_path: Path, capsys) -> None:
    """The dashboard escapes the `|` in candidate ids; a torn last line is reported, not fatal."""
    directory, events = csv_journal
    torn = tmp_path / "journal"
    torn.mkdir()
    for path in directory.iterdir():
        (torn / path.name).write_bytes(path.read_bytes())
    newest = sorted(torn.glob("journal-*.jsonl"))[-1]
    newest.write_bytes(newest.read_bytes() + b'{"seq": 99999, "id": "to')
    out = tmp_path / "report.md"
    assert main(["report", "--journal", str(torn), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| cex_cex |" in text and "## Shortlist" in text and "## Journal problems" in text
    assert "cex_cex:forward:binance:spot:LINK-USDT\\|huobi:spot:LINK-USDT:500" in text
    assert f"{len(events)} events" in text


def test_report_without_a_journal(tmp_path: Path, capsys) -> None:
    """No journal there: exit 2 and say where it looked."""
    assert main(["report", "--state-dir", str(tmp_path)]) == 2
    assert f"no journal files in {tmp_path / 'journal'}" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["a directory", "a missing directory"])
def test_report_out_that_cannot_be_written(csv_journal, tmp_path: Path, capsys, target: str) -> None:
    """--out naming a directory or a path under a missing one: exit 2, the file and the reason, no traceback."""
    directory, _events = csv_journal
    out = tmp_path if target == "a directory" else tmp_path / "missing" / "report.md"
    reason = "Is a directory" if target == "a directory" else "No such file or directory"
    assert main(["report", "--journal", str(directory), "--out", str(out)]) == 2
    assert f"--out {out}: cannot be written: {reason}" in capsys.readouterr().err


def test_stress_compares_scenarios_on_the_same_books(capsys: pytest.CaptureFixture[str]) -> None:
    """×16 on cex_cex: the 2,000 USD candidates (3.2× leverage > 3) are all over the limit, the 500 ones never."""
    args = ["stress", "--recordings", *map(str, CSV_FILES), "--format", "json"]
    assert main([*args, "--scenario", "base", "--scenario", "levered=cex_cex:16"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["records"] == 14_400
    base, levered = result["scenarios"]["base"]["cex_cex"], result["scenarios"]["levered"]["cex_cex"]
    assert (base["multiplier"], levered["multiplier"]) == (1.0, 16.0)
    assert base["evaluations"] == levered["evaluations"] > 0  # the same data, evaluated the same number of times
    assert base["leverage_limit_exceeded"] == 0
    assert levered["leverage_limit_exceeded"] == levered["evaluations"] // 2
    assert 0 < levered["qualified_evaluations"] < base["qualified_evaluations"]
    assert levered["alerts"] < base["alerts"]


def test_stress_rejects_a_bad_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed scenario is a usage error before any replay (exit 2)."""
    assert main(["stress", "--scenario", "x=perp_spot_basis:zero"]) == 2
    assert "--scenario 'x=perp_spot_basis:zero': multiplier 'zero' is not a number" in capsys.readouterr().err


def test_stress_replays_each_recording_once_and_refuses_recordings_that_feed_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file given twice (or inside a folder also given) is replayed once: the same records and numbers. An
    empty folder, or recordings none of the candidates reads, are usage errors (exit 2), not a table of
    book_not_ready; and a default scenario past the multiplier bound is refused as a typed one is."""
    args = ["stress", "--recordings", *map(str, CSV_FILES), "--format", "json", "--scenario", "base"]
    assert main(args) == 0
    once = orjson.loads(capsys.readouterr().out)
    assert main([*args[:2], *map(str, CSV_FILES), *args[2:]]) == 0
    twice = orjson.loads(capsys.readouterr().out)
    assert twice == once and once["records"] == 14_400
    # The folder they are in as well: CSV series are never found by walking a folder, so none is dropped.
    assert main([*args[:2], str(CSV_FILES[0].parent), *args[2:]]) == 0
    assert orjson.loads(capsys.readouterr().out) == once
    assert main(["stress", "--recordings", str(tmp_path)]) == 2
    assert f"--recordings {tmp_path.resolve()}: no recording found" in capsys.readouterr().err
    data = Path(__file__).resolve().parent.parent / "data"
    assert main(["stress", "--recordings", str(data / "cryptofeed" / "KRAKEN.ws.50.0")]) == 2
    err = capsys.readouterr().err
    assert "the recordings (kraken:spot) carry no book the config's candidates read" in err
    # The right venue and market, other symbols (NKN, BLZ, LRC, RUNE): refused once replayed.
    assert main(["stress", "--recordings", str(data / "cryptofeed" / "BINANCE.ws.1.0")]) == 2
    assert "the recordings carry no book of the instruments the config's candidates read" in capsys.readouterr().err
    # A replay streams no funding: the demo's basis without its stated rates would be funding_unknown throughout.
    config = tmp_path / "nofunding.toml"
    demo = (data.parent / "config" / "demo.toml").read_text().split("[[funding_assumptions]]", maxsplit=1)[0]
    config.write_text(
        demo.replace('file = "demo_constraints.json"', f'file = "{data.parent / "config" / "demo_constraints.json"}"')
    )
    assert main(["stress", "--config", str(config), "--recordings", *map(str, CSV_FILES)]) == 2
    err = capsys.readouterr().err
    assert (
        "the replay streams no funding: state a rate in [[funding_assumptions]] for binance:usdm:BTC-USDT-PERP" in err
    )
    assert main(["stress", "--strategy-leverage-override", "cex_cex=300", "--recordings", *map(str, CSV_FILES)]) == 2
    assert "the default scenario x5: multiplier must be <= 1000" in capsys.readouterr().err


def test_a_not_watched_close_is_an_event_of_the_report_but_no_rejection_reason(tmp_path: Path, capsys) -> None:
    """An episode the daemon stopped watching (here: every candidate removed by a reload once one is qualified)
    is counted among the disqualified events and shown as the candidate's last reason, but it is not a
    market's rejection: "Rejections by primary reason" leaves it out."""
    config, constraints, _assumptions, _settings = demo_runtime()
    candidates = [c for c in build_candidates(config) if c.strategy.value == "cex_cex"]
    writer = JournalWriter.open(tmp_path, JournalConfig(fsync_every=10_000), Metrics(CollectorRegistry()))
    events: list[CandidateEvent] = []

    def sink(event: CandidateEvent) -> None:
        events.append(event)
        writer.append(event.event.value, event.dedup_key, event.decision, venue_ts_ms=event.venue_ms,
                      event_id=event.event_id, context=event.context())  # fmt: skip

    settings = EngineSettings(hysteresis_band_bps=0.5, min_qualified_dwell_ms=1000)
    pipeline = ReplayPipeline(csv_recordings(), candidates, constraints, settings=settings, sink=sink)
    for index, frame in pipeline.merged():
        pipeline.feed(index, frame)
        if pipeline.engine.qualified_now():
            break
    open_at_reload = sum(pipeline.engine.qualified_now().values())
    pipeline.engine.set_candidates([])
    writer.close()
    closes = [e for e in events if e.decision.primary_reason == "not_watched"]
    assert len(closes) == open_at_reload >= 1
    capsys.readouterr()  # the engine's log lines so far (episode_closed)
    assert main(["report", "--journal", str(tmp_path), "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["counts"]["cex_cex"]["disqualified"] == sum(e.event.value == "disqualified" for e in events) >= 1
    reasons = report["reasons"]["cex_cex"]
    assert "not_watched" not in reasons
    assert sum(reasons.values()) == sum(e.event.value != "qualified" for e in events) - len(closes)
    rows = {c["candidate_id"]: c for c in report["candidates"]}
    for closed in closes:
        assert (rows[closed.candidate_id]["last_event"], rows[closed.candidate_id]["last_reason"]) == (
            "disqualified",
            "not_watched",
        )


def test_every_string_cell_of_the_dashboard_is_escaped() -> None:
    """A `|` in a strategy, reason, event or funding source split its row into more cells than the header
    has (only candidate ids were escaped), and a backtick in an id ended its code span early."""
    from scanner.reports import CandidateRow, Report, ShortlistRow, render_markdown

    odd_id = "a|b`c"
    report = Report(
        journal="j",
        counts={"weird|strat": {"qualified": 1}},
        shortlist=[ShortlistRow(1, odd_id, "weird|strat", 1.0, 1.0, 0.5, 0.0, 0.0, 0.5, 0.1, "assumed|x", 1)],
        candidates=[CandidateRow(odd_id, "weird|strat", 1, 1, "qualified|q", "x|y", 0.5)],
    )
    text = render_markdown(report)
    # Each table (a run of lines starting with "|"): every row has as many unescaped-pipe cells as its header.
    for table in re.findall(r"(?m)(?:^\|.*\n)+", text):
        counts = {len(re.split(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(counts) == 1, table
    assert "| weird\\|strat | 1 | 0 | 0 |" in text
    assert "| ``a\\|b`c`` | 1 | 1 | qualified\\|q | x\\|y | +0.50 |" in text
    assert "| assumed\\|x |" in text


def test_the_demo_summary_lists_every_reason_the_report_counts(csv_journal, capsys) -> None:
    """The demo's closing summary listed the 4 most common reasons only (and would count not_watched closes):
    it names every primary reason with the report's count."""
    from scanner.commands.demo import journal_report

    directory, _events = csv_journal
    assert main(["report", "--journal", str(directory), "--format", "json"]) == 0
    reasons = orjson.loads(capsys.readouterr().out)["reasons"]["cex_cex"]
    assert len(reasons) > 4
    (line,) = [line for line in journal_report(directory).splitlines() if "cex_cex moved to:" in line]
    listed = line.split("moved to: ", 1)[1].split(" (primary", 1)[0]
    assert dict((r, int(n)) for r, n in (part.rsplit(" ", 1) for part in listed.split(", "))) == reasons
