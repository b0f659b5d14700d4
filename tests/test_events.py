"""The event catalogue and its two output forms."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from waypost import events


def test_catalogue_is_consistent() -> None:
    entries = list(events.catalogue())
    assert len({e.id for e in entries}) == len(entries)
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.template and e.action, e.name
        assert e.name == e.name.lower() and " " not in e.name
        # A template renders with every field it names.
        rendered = e.render({f: f"<{f}>" for f in e.fields()})
        assert "?>" not in rendered


def test_emit_text_and_json_lines(tmp_path: Path) -> None:
    terminal = io.StringIO()
    json_file = tmp_path / "events.jsonl"
    events.configure_logging(level="INFO", json_file=str(json_file), stream=terminal)
    try:
        events.emit(events.OBJECT_QUARANTINED, kind="message", object_id=7, reason="bad index")
        events.emit(events.DELIVERED, message_id=1, recipient="a@b", next_hop="local")
    finally:
        for handler in logging.getLogger("waypost").handlers:
            handler.flush()
    lines = terminal.getvalue().splitlines()
    assert lines[0].endswith("ERROR 1201 store: Bad message 7 moved to quarantine: bad index")
    records = [json.loads(x) for x in json_file.read_text().splitlines()]
    assert records[0]["id"] == 1201 and records[0]["name"] == "object-quarantined"
    assert records[0]["category"] == "store" and records[0]["severity"] == "ERROR"
    assert records[0]["fields"] == {"kind": "message", "object_id": 7, "reason": "bad index"}
    assert records[1]["message"] == "Message 1 delivered to a@b via local"
    events.configure_logging(level="WARNING", stream=io.StringIO())


def test_level_filters_and_missing_fields_do_not_fail() -> None:
    terminal = io.StringIO()
    events.configure_logging(level="WARNING", stream=terminal)
    events.emit(events.DELIVERED, message_id=1, recipient="a@b", next_hop="local")
    events.emit(events.RECIPIENT_FAILED, message_id=1)
    out = terminal.getvalue()
    assert "delivered" not in out
    assert "Message 1 to <recipient?> failed permanently: <error?>" in out


def test_docs_list_every_event() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "events.md").read_text()
    for e in events.catalogue():
        assert f"| {e.id} | {e.name} |" in docs
