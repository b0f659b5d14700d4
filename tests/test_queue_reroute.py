"""`waypost queue reroute` (Postfix's `postsuper -r`): queued recipients routed again through
the intake's routing after a configuration change, with an event for each change."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from test_cli import no_traceback, submit, waypost, write_config

from waypost import events
from waypost.cli.main import build_parser
from waypost.store.database import Database

OTHER = '[[route]]\nmatch = "other.example"\nnext_hop = "smtp:[127.0.0.1]:2527"\n'


def hops(db_path: Path) -> dict[str, tuple[str, str, float | None]]:
    db = Database.open(str(db_path), create_schema=False)
    try:
        rows = db.conn.execute("SELECT address, next_hop, state, due_at FROM recipients")
        return {address: (hop, state, due) for address, hop, state, due in rows}
    finally:
        db.close()


def test_reroute_follows_a_changed_configuration(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, OTHER + '[log]\njson_file = "data/events.jsonl"\n')
    first = submit(tmp_path, config, "bob@localhost", "x@remote.example")
    submit(tmp_path, config, "carol@remote.example")
    held = submit(tmp_path, config, "dave@other.example")
    assert waypost("queue", "hold", str(held), "-c", str(config), cwd=tmp_path).returncode == 0
    db_path = tmp_path / "data" / "mta.db"
    # carol's recipient was tried and deferred for an hour: re-routing makes it due now.
    db = Database.open(str(db_path), create_schema=False)
    with db.transaction():
        db.conn.execute(
            "UPDATE recipients SET state = 'deferred', due_at = ? WHERE address = ?",
            (time.time() + 3600, "carol@remote.example"),
        )
    db.close()

    # The relay moved to another port, and other.example lost its route.
    config.write_text(
        config.read_text()
        .replace("smtp:[127.0.0.1]:2526", "smtp:[127.0.0.1]:2600")
        .replace(OTHER, "")
    )
    before = time.time()
    # In this process; the events go to the configuration's event log.
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["queue", "reroute", "--all", "-c", str(config)])
    try:
        assert args.run(args) == 0
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())
    out = capsys.readouterr().out
    assert f"{first}: x@remote.example: smtp:[127.0.0.1]:2526 -> smtp:[127.0.0.1]:2600" in out
    assert "reroute: 4 recipients routed again, 3 changed" in out
    logged = [json.loads(line) for line in (tmp_path / "data" / "events.jsonl").open()]
    rerouted = [record["message"] for record in logged if record["id"] == 1406]
    assert len(rerouted) == 3, logged
    assert any(
        "dave@other.example re-routed by the operator: next hop smtp:[127.0.0.1]:2527 is now "
        "error:5.4.4 " in line
        for line in rerouted
    )
    (audit,) = [
        record for record in logged if record["id"] == 1403 and "reroute" in record["message"]
    ]
    assert audit["fields"]["action"] == "reroute" and audit["fields"]["ids"] == "all"
    assert audit["fields"]["count"] == 4

    after = hops(db_path)
    assert after["bob@localhost"][0] == "local"
    assert after["x@remote.example"][:2] == ("smtp:[127.0.0.1]:2600", "queued")
    hop, state, due = after["carol@remote.example"]
    assert (hop, state) == ("smtp:[127.0.0.1]:2600", "deferred")
    assert due is not None and before - 1 <= due <= time.time() + 1
    # Held stays held (and not due); without a route it will fail with a report.
    hop, state, due = after["dave@other.example"]
    assert hop.startswith("error:5.4.4 ") and (state, due) == ("held", None)


def test_reroute_of_named_messages_and_of_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = submit(tmp_path, config, "x@remote.example")
    second = submit(tmp_path, config, "y@remote.example")
    config.write_text(config.read_text().replace(":2526", ":2601"))
    result = waypost("queue", "reroute", str(first), "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = hops(tmp_path / "data" / "mta.db")
    assert after["x@remote.example"][0] == "smtp:[127.0.0.1]:2601"
    assert after["y@remote.example"][0] == "smtp:[127.0.0.1]:2526"  # not named: unchanged
    missing = waypost("queue", "reroute", str(second + 100), "-c", str(config), cwd=tmp_path)
    no_traceback(missing)
    assert missing.returncode == 1 and "0 recipients routed again" in missing.stdout
