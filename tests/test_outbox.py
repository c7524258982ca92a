"""The durable alert outbox: what survives a restart, torn lines, compaction, cooldown memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from scanner.journal import now_ms
from scanner.outbox import DEAD_NAME, LOG_NAME, Outbox, alert_id

NOW = now_ms()


def record(seq: int, event: str = "qualified", key: str = "cand", ts: int = 1_000) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"ev{seq}",
        "event": event,
        "dedup_key": key,
        "local_ts_ms": ts,
        "venue_ts_ms": ts - 3,
        "context": {},
        "decision": {"net_bps": 1.0},
    }


def test_pending_alerts_survive_a_restart_in_order_and_acks_stick(tmp_path: Path) -> None:
    """Enqueued alerts come back after reopening, FIFO per webhook; acked and dead ones do not."""
    box = Outbox.open(tmp_path)
    assert box.fresh
    for seq in (1, 2, 3):
        entries = box.record_event(record(seq), deliver=["a", "b"], skip={})
        assert [e.alert_id for e in entries] == [f"ev{seq}.a", f"ev{seq}.b"]
    box.ack("ev1.a", status=204, attempts=1)
    box.dead("ev2.a", status=400, reason="HTTP 400", attempts=1)
    box.close()

    box = Outbox.open(tmp_path)
    assert not box.fresh
    assert box.repairs == []
    assert [e.alert_id for e in box.pending("a")] == ["ev3.a"]
    assert [e.alert_id for e in box.pending("b")] == ["ev1.b", "ev2.b", "ev3.b"]
    assert box.head("b") is not None and box.head("b").event == record(1)  # type: ignore[union-attr]
    assert box.journal_seq == 3
    assert (box.depth("a"), box.depth("b"), box.depth("c")) == (1, 3, 0)
    assert sorted(box.webhooks()) == ["a", "b"]
    dead = [orjson.loads(line) for line in (tmp_path / DEAD_NAME).read_bytes().splitlines()]
    assert [(d["id"], d["status"], d["webhook"], d["event"]["seq"]) for d in dead] == [("ev2.a", 400, "a", 2)]
    box.close()


def test_cooldown_memory_and_high_water_mark_persist(tmp_path: Path) -> None:
    """The last alert time per (webhook, event, dedup key) and the journal seq survive a restart."""
    box = Outbox.open(tmp_path)
    box.record_event(record(5, ts=7_000), deliver=["a"], skip={"b": "cooldown"})
    box.record_event(record(6, "disqualified", ts=8_000), deliver=["b"], skip={})
    box.close()
    box = Outbox.open(tmp_path)
    assert box.journal_seq == 6
    assert box.last_alert_ms("a", "qualified", "cand") == 7_000
    assert box.last_alert_ms("b", "qualified", "cand") is None  # skipped: no alert, so no cooldown start
    assert box.last_alert_ms("b", "disqualified", "cand") == 8_000
    box.mark(40)
    box.close()
    assert Outbox.open(tmp_path).journal_seq == 40


def test_torn_last_line_is_moved_aside_and_the_rest_kept(tmp_path: Path) -> None:
    """A crash mid-line: the torn bytes go to a sidecar; earlier records (and the acks) are intact."""
    box = Outbox.open(tmp_path)
    box.record_event(record(1), deliver=["a"], skip={})
    box.record_event(record(2), deliver=["a"], skip={})
    box.close()
    log = tmp_path / LOG_NAME
    size = log.stat().st_size
    with log.open("ab") as f:
        f.write(b'{"op":"ack","id":"ev1.')
    box = Outbox.open(tmp_path)
    assert [p.kind for p in box.repairs] == ["torn_tail"]
    assert [e.alert_id for e in box.pending("a")] == ["ev1.a", "ev2.a"]
    assert (tmp_path / f"{LOG_NAME}.torn-{size}").read_bytes() == b'{"op":"ack","id":"ev1.'
    box.ack("ev1.a", status=200, attempts=1)
    box.close()
    assert [e.alert_id for e in Outbox.open(tmp_path).pending("a")] == ["ev2.a"]


def test_compaction_keeps_only_what_is_needed(tmp_path: Path) -> None:
    """Compaction drops settled alerts, keeps pending ones (order, enqueue time), cooldowns and the seq."""
    box = Outbox.open(tmp_path)
    for seq in range(1, 201):
        box.record_event(record(seq, key=f"c{seq % 3}", ts=NOW + seq), deliver=["a", "b"], skip={})
        if seq not in (50, 150):
            box.ack(alert_id(f"ev{seq}", "a"), status=200, attempts=1)
        box.ack(alert_id(f"ev{seq}", "b"), status=200, attempts=1)
    pending_before = box.pending("a")
    before = (tmp_path / LOG_NAME).stat().st_size
    box.compact()
    after = (tmp_path / LOG_NAME).stat().st_size
    assert after < before / 5  # settled lines gone; alert ids and cooldowns remain as one state line
    box.record_event(record(201), deliver=["a"], skip={})
    box.close()
    box = Outbox.open(tmp_path)
    assert [e.alert_id for e in box.pending("a")] == ["ev50.a", "ev150.a", "ev201.a"]
    assert [e.enqueued_ms for e in box.pending("a")[:2]] == [e.enqueued_ms for e in pending_before]
    assert box.pending("b") == []
    assert box.known("ev1.a") and box.known("ev200.b") and not box.known("ev999.a")
    assert box.journal_seq == 201
    assert box.last_alert_ms("a", "qualified", "c0") == NOW + 198
    assert box.last_alert_ms("b", "qualified", "c2") == NOW + 200
    # Cooldown memory older than any cooldown a config may set is forgotten by compaction.
    box.record_event(record(202, key="ancient", ts=NOW - 9 * 86_400_000), deliver=["b"], skip={})
    box.ack(alert_id("ev202", "b"), status=200, attempts=1)
    box.compact()
    assert box.last_alert_ms("b", "qualified", "ancient") == NOW - 9 * 86_400_000  # in memory until reopened
    box.close()
    box = Outbox.open(tmp_path)
    assert box.last_alert_ms("b", "qualified", "ancient") is None
    assert box.last_alert_ms("b", "qualified", "c2") == NOW + 200
    assert not (tmp_path / f"{LOG_NAME}.tmp").exists()


def test_ages_continue_across_a_restart(tmp_path: Path) -> None:
    """The oldest pending alert's age is measured from its enqueue, not from the restart."""
    box = Outbox.open(tmp_path)
    box.record_event(record(1), deliver=["a"], skip={})
    box.close()
    log = tmp_path / LOG_NAME
    line = orjson.loads(log.read_bytes())
    line["at_ms"] -= 120_000  # as if enqueued two minutes earlier
    log.write_bytes(orjson.dumps(line) + b"\n")
    box = Outbox.open(tmp_path)
    assert 120.0 <= box.oldest_age_s("a") < 3600.0
    assert box.oldest_age_s("nobody") == 0.0


def ops(path: Path) -> list[str]:
    return [orjson.loads(line)["op"] for line in path.read_bytes().splitlines()]


def test_a_remembered_alert_id_is_never_enqueued_again(tmp_path: Path) -> None:
    """Whatever the caller decides, an alert id enqueued before (delivered, dead or pending) is skipped as a
    duplicate, also after a reopen; another webhook, which never had it, still gets the event."""
    box = Outbox.open(tmp_path)
    box.record_event(record(1), deliver=["a"], skip={})
    box.ack("ev1.a", status=204, attempts=1)
    box.close()
    box = Outbox.open(tmp_path)
    again = dict(record(2), id="ev1")  # re-derived after the restart: same event id, new journal seq
    entries = box.record_event(again, deliver=["a", "b"], skip={"c": "cooldown"})
    assert [e.alert_id for e in entries] == ["ev1.b"]
    assert box.pending("a") == [] and box.journal_seq == 2
    last = orjson.loads((tmp_path / LOG_NAME).read_bytes().splitlines()[-1])
    assert (last["deliver"], last["skip"]) == (["b"], {"c": "cooldown", "a": "duplicate"})
    box.close()
    box = Outbox.open(tmp_path)
    assert box.record_event(dict(record(3), id="ev1"), deliver=["a", "b"], skip={}) == []
    assert [e.alert_id for e in box.pending("b")] == ["ev1.b"]
    box.close()


def test_open_compacts_and_forgets_ids_past_their_memory(tmp_path: Path) -> None:
    """On open the log is compacted: settled lines go; ids older than remember_ms are forgotten, and only
    the newest remember_ids are kept; a pending alert's id is kept whatever its age."""
    box = Outbox.open(tmp_path)
    for seq in range(1, 7):
        box.record_event(record(seq), deliver=["a"], skip={})
        if seq != 1:
            box.ack(f"ev{seq}.a", status=200, attempts=1)
    box.close()
    lines = [orjson.loads(line) for line in (tmp_path / LOG_NAME).read_bytes().splitlines()]
    for line in lines:  # ev1 (pending) and ev2 were enqueued ten days ago
        if line["op"] == "enq" and line["seq"] in (1, 2):
            line["at_ms"] -= 10 * 86_400_000
    (tmp_path / LOG_NAME).write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    assert ops(tmp_path / LOG_NAME) == ["enq"] + ["enq", "ack"] * 5

    box = Outbox.open(tmp_path, remember_ids=3)
    assert ops(tmp_path / LOG_NAME) == ["state", "enq"]  # compacted on open: the state and ev1, pending
    assert [e.alert_id for e in box.pending("a")] == ["ev1.a"]
    assert [box.known(f"ev{seq}.a") for seq in range(1, 7)] == [True, False, False, True, True, True]
    box.close()
    box = Outbox.open(tmp_path, remember_ids=3)
    assert [box.known(f"ev{seq}.a") for seq in range(1, 7)] == [True, False, False, True, True, True]
    assert box.journal_seq == 6
    box.close()
