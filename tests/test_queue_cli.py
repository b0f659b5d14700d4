"""`waypost queue …` for people and scripts, end to end over real subprocesses: pipes to
`head`, -c before the verb, filters, totals, JSON, ids from standard input, --body, and
the audit trail of operator actions in the configured event log."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import MESSAGE, no_traceback, submit, waypost, write_config

from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.service import prepare_data_dir
from waypost.store.base import NewMessage
from waypost.store.database import Database
from waypost.x400.ipm import build_ipm

LOGGED = '[log]\njson_file = "data/events.jsonl"\n'


def enqueue(tmp_path: Path, envelope: Envelope, content: bytes, hop: str = "local") -> int:
    """A message put in the queue directly, as the intake would."""
    prepare_data_dir(str(tmp_path / "data"))
    db = Database.open(str(tmp_path / "data" / "mta.db"))
    try:
        with db.transaction():
            hops = [parse_next_hop(hop)] * len(envelope.recipients)
            new = NewMessage(message=Message(envelope=envelope, content=content), next_hops=hops)
            return db.enqueue(new, 1e9, 1e9)
    finally:
        db.close()


def many_recipients(tmp_path: Path, count: int) -> int:
    envelope = Envelope(
        mts_id="many@mx.test",
        originator="alice@example.org",
        recipients=[Recipient(address=f"user{i}@localhost") for i in range(count)],
    )
    return enqueue(tmp_path, envelope, MESSAGE)


def audit_lines(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "data" / "events.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if r["id"] == 1403]


def user_name() -> str:
    """Who the audit event names: the user, and under sudo who asked for it."""
    name = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0 and os.environ.get("SUDO_USER"):
        name += f" (sudo by {os.environ['SUDO_USER']})"
    return name


def test_a_pipe_to_head_ends_quietly(tmp_path: Path) -> None:
    # Far more than a pipe holds (64 KiB), so the writer meets the closed pipe for sure.
    config = write_config(tmp_path)
    many_recipients(tmp_path, 3000)
    for listing, reader in (
        (["queue", "list"], ["head", "-2"]),
        (["queue", "list", "--json"], ["head", "-c", "1000"]),  # one line per message
    ):
        writer = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli.main", *listing, "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "WAYPOST_CONFIG": ""},
        )
        assert writer.stdout is not None and writer.stderr is not None
        head = subprocess.run(reader, stdin=writer.stdout, capture_output=True, check=True)
        writer.stdout.close()
        error = writer.stderr.read().decode()
        writer.stderr.close()
        status = writer.wait(timeout=60)
        assert len(head.stdout.splitlines()) == 2 or len(head.stdout) == 1000
        assert error == "", error  # no event 1003, no BrokenPipeError, no traceback
        assert status == 141  # as a Unix tool killed by SIGPIPE: 128 + 13


def test_config_option_before_the_verb(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message_id = submit(tmp_path, config, "bob@localhost")
    before = waypost("-c", str(config), "queue", "list", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert "bob@localhost" in before.stdout
    # After the verb wins over before it, as the later option does in most tools.
    missing = str(tmp_path / "missing.toml")
    both = waypost("-c", missing, "queue", "show", str(message_id), "-c", str(config), cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    wrong = waypost("--config", missing, "queue", "list", cwd=tmp_path)
    assert wrong.returncode == 78 and "missing.toml does not exist" in wrong.stderr


def test_unknown_state_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    submit(tmp_path, config, "bob@localhost")
    result = waypost("queue", "list", "--state", "defered", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown state 'defered'" in result.stderr and "deferred" in result.stderr
    assert "held" in result.stderr and result.stdout == ""
    no_traceback(result)


def test_limit_prints_the_true_total(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    many_recipients(tmp_path, 7)
    result = waypost("queue", "list", "--limit", "3", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("@localhost") == 3
    assert result.stdout.rstrip().endswith("-- 3 of 7 recipients shown")
    whole = waypost("queue", "list", "--limit", "10", "-c", str(config), cwd=tmp_path)
    assert whole.stdout.rstrip().endswith("-- 7 recipients")
    negative = waypost("queue", "list", "--limit", "-1", "-c", str(config), cwd=tmp_path)
    assert negative.returncode == 2 and "invalid count '-1'" in negative.stderr


def test_filters_by_sender_recipient_age_and_state(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    old = enqueue(
        tmp_path,
        Envelope(
            mts_id="old@mx.test",
            originator="carol@partner.example",
            recipients=[Recipient(address="bob@localhost"), Recipient(address="eve@localhost")],
        ),
        MESSAGE,
    )  # arrived in 2001: older than anything
    new = submit(tmp_path, config, "dave@localhost", sender="alice@example.org")

    def ids(*options: str) -> set[int]:
        result = waypost("queue", "list", "--json", *options, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return {json.loads(line)["id"] for line in result.stdout.splitlines()}

    assert ids() == {old, new}
    assert ids("--sender", "carol@partner.example") == {old}
    assert ids("--sender", "CAROL@Partner.Example") == {old}  # addresses compare without case
    assert ids("--sender", "@partner.example") == {old}
    assert ids("--sender", "carol@*") == {old}
    assert ids("--sender", "carol") == set()  # the whole address, not a part of it
    assert ids("--recipient", "dave@localhost") == {new}
    assert ids("--recipient", "?ve@localhost") == {old}
    assert ids("--older-than", "2d") == {old}
    assert ids("--younger-than", "1h") == {new}
    assert ids("--older-than", "5m", "--recipient", "dave@localhost") == set()
    assert ids("--state", "queued") == {old, new}
    assert ids("--state", "held") == set()
    bad = waypost("queue", "list", "--older-than", "3 fortnights", "-c", str(config), cwd=tmp_path)
    assert bad.returncode == 2 and "invalid age '3 fortnights'" in bad.stderr
    text = waypost("queue", "list", "--recipient", "eve@localhost", "-c", str(config), cwd=tmp_path)
    assert "eve@localhost" in text.stdout and "bob@localhost" not in text.stdout
    assert "-- 1 recipients" in text.stdout


def test_json_list_and_show(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = submit(tmp_path, config, "bob@localhost", "u1@remote.example")
    second = submit(tmp_path, config, "carol@localhost")
    listing = waypost("queue", "list", "--json", "-c", str(config), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [m["id"] for m in lines] == [first, second]  # one object per message
    message = lines[0]
    assert message["sender"] == "alice@example.org" and message["size"] > 0
    assert isinstance(message["arrival_time"], float)
    assert [r["address"] for r in message["recipients"]] == ["bob@localhost", "u1@remote.example"]
    recipient = message["recipients"][1]
    assert recipient["state"] == "queued" and recipient["next_hop"] == "smtp:[127.0.0.1]:2526"
    assert recipient["attempts"] == 0 and recipient["last_error"] is None
    show = waypost("queue", "show", str(first), "--json", "-c", str(config), cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    document = json.loads(show.stdout)
    assert document["id"] == first and document["state"] == "active"
    assert document["content_type"] == "rfc5322" and document["object_kind"] == "message"
    assert "Subject: hello" in document["headers"]
    assert len(document["recipients"]) == 2


def test_action_ids_from_standard_input(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOGGED)
    keep = submit(tmp_path, config, "bob@localhost", sender="alice@example.org")
    drop = [submit(tmp_path, config, "bob@localhost", sender="spam@bad.example") for _ in "ab"]
    listing = waypost(
        "queue", "list", "--json", "--sender", "@bad.example", "-c", str(config), cwd=tmp_path
    )
    deleted = waypost(
        "queue", "delete", "-", "-c", str(config), stdin=listing.stdout.encode(), cwd=tmp_path
    )
    assert deleted.returncode == 0, deleted.stderr
    assert "delete: 2 recipients changed" in deleted.stdout
    remaining = waypost("queue", "list", "--json", "-c", str(config), cwd=tmp_path)
    assert [json.loads(line)["id"] for line in remaining.stdout.splitlines()] == [keep]
    # Plain numbers too, one or several to a line, as `jq .id` or `awk` print them.
    held = waypost(
        "queue", "hold", "-", "-c", str(config), stdin=f"{keep}\n".encode(), cwd=tmp_path
    )
    assert held.returncode == 0 and "hold: 1 recipients changed" in held.stdout
    assert audit_lines(tmp_path)[0]["fields"]["ids"] == f"{drop[0]},{drop[1]}"  # type: ignore[index]
    bad = waypost("queue", "release", "-", "-c", str(config), stdin=b"7\nbob\n", cwd=tmp_path)
    assert bad.returncode == 2 and "line 2: 'bob' is not a message id" in bad.stderr
    no_traceback(bad)
    assert len(audit_lines(tmp_path)) == 2  # the refused command changed nothing, logged nothing
    # A pipeline whose first command found nothing is not an error, and logs nothing.
    for action in ("delete", "reroute"):
        empty = waypost("queue", action, "-", "-c", str(config), stdin=b"", cwd=tmp_path)
        assert empty.returncode == 0 and "no message ids on standard input" in empty.stdout
    assert len(audit_lines(tmp_path)) == 2


@pytest.mark.parametrize("action", ["hold", "release", "retry", "bounce", "reroute", "delete"])
def test_every_action_is_an_audit_event_in_the_event_log(tmp_path: Path, action: str) -> None:
    config = write_config(tmp_path, LOGGED)
    ids = [submit(tmp_path, config, "bob@localhost") for _ in "ab"]
    if action == "release":
        waypost("queue", "hold", "--all", "-c", str(config), cwd=tmp_path)
        (tmp_path / "data" / "events.jsonl").unlink()
    result = waypost("queue", action, *map(str, ids), "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1403" not in result.stderr  # the terminal is not the audit trail when a log is set
    (record,) = audit_lines(tmp_path)
    uid = os.getuid()
    assert record["fields"] == {
        "user": user_name(),
        "uid": uid,
        "action": action,
        "ids": f"{ids[0]},{ids[1]}",
        "count": 2,
    }
    assert record["severity"] == "INFO" and record["name"] == "queue-admin"
    everything = waypost("queue", action, "--all", "-c", str(config), cwd=tmp_path)
    assert everything.returncode == 0, everything.stderr
    assert audit_lines(tmp_path)[-1]["fields"]["ids"] == "all"  # type: ignore[index]


def test_the_audit_trail_is_kept_whatever_the_log_level(tmp_path: Path) -> None:
    """`[log] level = "warning"` thins the MTA's own events, never the operators' actions."""
    config = write_config(tmp_path, LOGGED + 'level = "warning"\n')
    message_id = submit(tmp_path, config, "bob@localhost")
    result = waypost("queue", "hold", str(message_id), "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (record,) = audit_lines(tmp_path)
    assert record["fields"]["action"] == "hold"  # type: ignore[index]
    log = (tmp_path / "data" / "events.jsonl").read_text().splitlines()
    assert all(json.loads(line)["severity"] != "INFO" or '"id": 1403' in line for line in log)


def test_without_an_event_log_the_action_is_on_the_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message_id = submit(tmp_path, config, "bob@localhost")
    result = waypost("queue", "hold", str(message_id), "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"INFO 1403 queue: Operator {user_name()} (uid {os.getuid()})" in result.stderr
    assert f"ran hold on message ids {message_id}: 1 recipients changed" in result.stderr


def test_an_unwritable_event_log_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[log]\njson_file = "no/such/dir/events.jsonl"\n')
    message_id = submit(tmp_path, config, "bob@localhost")
    result = waypost("queue", "hold", str(message_id), "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cannot write the event log" in result.stderr and "no/such/dir" in result.stderr
    assert "1403 queue: Operator" in result.stderr  # it is still recorded somewhere
    no_traceback(result)


@pytest.mark.skipif(os.getuid() != 0, reason="only root creates a log another user owns")
def test_sudo_and_a_log_created_by_root_stays_the_mta_users(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOGGED)
    message_id = submit(tmp_path, config, "bob@localhost")
    mta_user = 65534  # the MTA's own user and group (any ids that are not root's)
    os.chown(tmp_path / "data", mta_user, mta_user)
    result = subprocess.run(
        [sys.executable, "-m", "waypost.cli.main", "queue", "hold", str(message_id)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "WAYPOST_CONFIG": str(config), "SUDO_USER": "alice"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = tmp_path / "data" / "events.jsonl"
    assert (log.stat().st_uid, log.stat().st_gid) == (mta_user, mta_user)
    (record,) = audit_lines(tmp_path)
    assert record["fields"]["user"] == "root (sudo by alice)"  # type: ignore[index]


def test_show_body_prints_the_content(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message_id = submit(tmp_path, config, "bob@localhost")
    body = waypost("queue", "show", str(message_id), "--body", "-c", str(config), cwd=tmp_path)
    assert body.returncode == 0, body.stderr
    assert body.stdout.startswith("Received: ") and body.stdout.endswith("\nHi Bob.\n")
    assert "MTS identifier" not in body.stdout


def test_show_body_decodes_an_ipm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    jones = "/C=GB/ADMD= /PRMD=Acme/S=Jones/"
    smith = "/C=GB/ADMD= /PRMD=Acme/S=Smith/"
    content = build_ipm(
        originator=smith,
        recipients=[jones],
        subject="Quarterly figures",
        text="Dear Jones,\nthe figures.\n",
        ipm_id="ipm-1",
    )
    envelope = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=Acme/;m-1",
        originator=smith,
        recipients=[Recipient(address=jones)],
        content_type=ContentType.P22,
    )
    message_id = enqueue(tmp_path, envelope, content, hop="local")
    body = waypost("queue", "show", str(message_id), "--body", "-c", str(config), cwd=tmp_path)
    assert body.returncode == 0, body.stderr
    assert "Subject:        Quarterly figures" in body.stdout
    assert f"To:             {jones}" in body.stdout
    assert "[body part 1: ia5-text]\nDear Jones,\nthe figures.\n" in body.stdout
    shown = waypost("queue", "show", str(message_id), "--json", "-c", str(config), cwd=tmp_path)
    ipm = json.loads(shown.stdout)["ipm"]
    assert ipm["subject"] == "Quarterly figures" and ipm["to"] == [jones]


def test_show_of_a_damaged_message_in_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message_id = submit(tmp_path, config, "bob@localhost")
    with sqlite3.connect(tmp_path / "data" / "mta.db") as conn:
        conn.execute("UPDATE messages SET envelope = 'x' WHERE id = ?", (message_id,))
        conn.execute("DELETE FROM content WHERE message_id = ?", (message_id,))
    shown = waypost("queue", "show", str(message_id), "--json", "-c", str(config), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert "not a blob" in document["envelope_error"] and document["content_error"] == "missing"
    body = waypost("queue", "show", str(message_id), "--body", "-c", str(config), cwd=tmp_path)
    assert body.returncode == 1 and "has no content" in body.stderr
    no_traceback(body)
