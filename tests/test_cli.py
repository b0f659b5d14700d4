"""The `waypost` command end to end: real subprocesses, a real data directory."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from waypost.message import ContentType, Envelope, Message, ObjectKind, Recipient
from waypost.nexthop import parse_next_hop
from waypost.service import prepare_data_dir
from waypost.smtp.auth import AuthUsers
from waypost.store.base import NewMessage
from waypost.store.database import Database
from waypost.x400.report_maker import RecipientFate, build_report

MESSAGE = b"From: alice@example.org\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nHi Bob.\r\n"


def waypost(
    *args: str, stdin: bytes = b"", cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
        [sys.executable, "-m", "waypost.cli.main", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "waypost.toml"
    config.write_text(
        '[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        "[smtp]\nlisten = []\n[x400]\nlisten = []\n"
        '[local]\ndomains = ["localhost", "example.net"]\n'
        "[queue]\npoll_interval = 0.2\nmin_backoff = 1\nmax_backoff = 2\n"
        '[[route]]\nmatch = "remote.example"\nnext_hop = "smtp:[127.0.0.1]:2526"\n' + extra
    )
    return config


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def submit(
    tmp_path: Path,
    config: Path,
    *rcpts: str,
    sender: str = "alice@example.org",
    priority: str = "normal",
) -> int:
    result = waypost(
        "submit",
        "-c",
        str(config),
        "--create",
        "--priority",
        priority,
        "-",
        "--from",
        sender,
        *(arg for rcpt in rcpts for arg in ("--to", rcpt)),
        stdin=MESSAGE,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[2])


def test_help_for_every_verb(tmp_path: Path) -> None:
    top = waypost("--help", cwd=tmp_path)
    assert top.returncode == 0 and "Exit codes" in top.stdout
    for verb in (
        "serve",
        "check",
        "submit",
        "queue",
        "route",
        "events",
        "config",
        "queue list",
        "queue show",
        "queue hold",
        "config check",
    ):
        result = waypost(*verb.split(), "--help", cwd=tmp_path)
        assert result.returncode == 0, (verb, result.stderr)
        assert "usage: waypost" in result.stdout


def test_bad_usage_and_bad_config_are_clear(tmp_path: Path) -> None:
    result = waypost("queue", "frobnicate", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[queue]\nmin_backof = 3\n")
    result = waypost("config", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 78
    assert "queue.min_backof" in result.stderr and "min_backoff" in result.stderr
    result = waypost("queue", "list", "-c", str(bad), cwd=tmp_path)
    assert result.returncode == 78 and "queue.min_backof" in result.stderr
    result = waypost("queue", "list", "-c", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert result.returncode == 78 and "does not exist" in result.stderr
    for r in (result,):
        no_traceback(r)


def test_serve_logs_a_bad_config_as_event_1100(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[queue]\nmin_backof = 3\n")
    result = waypost("serve", "-c", str(bad), cwd=tmp_path)
    assert result.returncode == 78
    assert f"ERROR 1100 config: Configuration {bad}: queue.min_backof: unknown key" in result.stderr
    unreadable = tmp_path / "not-utf8.toml"
    unreadable.write_bytes(b"\xff\n")
    result = waypost("serve", "-c", str(unreadable), cwd=tmp_path)
    assert result.returncode == 78
    assert f"1100 config: Configuration {unreadable}: (the whole file): not UTF-8" in result.stderr
    no_traceback(result)


def test_submit_then_queue_commands(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = submit(tmp_path, config, "bob@localhost", "x@remote.example")
    second = submit(tmp_path, config, "carol@remote.example")
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o711

    listing = waypost("queue", "list", "-c", str(config), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "x@remote.example" in listing.stdout and "smtp:[127.0.0.1]:2526" in listing.stdout
    assert "-- 3 recipients" in listing.stdout

    shape = waypost("queue", "list", "--shape", "-c", str(config), cwd=tmp_path)
    lines = {line.split()[0]: line.split()[1:] for line in shape.stdout.splitlines()[1:]}
    assert lines["smtp:[127.0.0.1]:2526"][0] == "2" and lines["local"][0] == "1"
    assert lines["TOTAL"][:2] == ["3", "3"]  # all younger than 5 minutes

    urgent = submit(tmp_path, config, "dan@remote.example", priority="urgent")
    by_priority = waypost("queue", "list", "--shape", "priority", "-c", str(config), cwd=tmp_path)
    assert [line.split()[:2] for line in by_priority.stdout.splitlines()[1:]] == [
        ["urgent", "1"],
        ["normal", "3"],
        ["TOTAL", "4"],
    ]
    only = waypost("queue", "list", "--priority", "urgent", "-c", str(config), cwd=tmp_path)
    assert "dan@remote.example" in only.stdout and "-- 1 recipients" in only.stdout
    shown = waypost("queue", "show", str(urgent), "-c", str(config), cwd=tmp_path)
    assert "Priority:       urgent" in shown.stdout
    typo = waypost("queue", "list", "--priority", "high", "-c", str(config), cwd=tmp_path)
    assert typo.returncode == 2 and "unknown priority 'high'" in typo.stderr
    waypost("queue", "delete", str(urgent), "-c", str(config), cwd=tmp_path)

    show = waypost("queue", "show", str(first), "-c", str(config), cwd=tmp_path)
    assert show.returncode == 0
    assert "Originator:     alice@example.org" in show.stdout
    assert "Subject: hello" in show.stdout and "bob@localhost" in show.stdout

    hold = waypost("queue", "hold", str(second), "-c", str(config), cwd=tmp_path)
    assert hold.returncode == 0 and "1 recipients changed" in hold.stdout
    held = waypost("queue", "list", "--state", "held", "-c", str(config), cwd=tmp_path)
    assert "carol@remote.example" in held.stdout and "-- 1 recipients" in held.stdout
    release = waypost("queue", "release", "--all", "-c", str(config), cwd=tmp_path)
    assert "1 recipients changed" in release.stdout

    bounce = waypost("queue", "bounce", str(second), "-c", str(config), cwd=tmp_path)
    assert bounce.returncode == 0
    failed = waypost("queue", "list", "--state", "failed", "-c", str(config), cwd=tmp_path)
    assert "carol@remote.example" in failed.stdout and "returned to the sender" in failed.stdout

    delete = waypost("queue", "delete", str(first), "-c", str(config), cwd=tmp_path)
    assert delete.returncode == 0 and "2 recipients changed" in delete.stdout
    missing = waypost("queue", "show", str(first), "-c", str(config), cwd=tmp_path)
    assert missing.returncode == 1 and f"no message {first}" in missing.stderr
    no_traceback(missing)


def test_submit_refuses_bad_and_unroutable_addresses(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    def submit_to(recipient: str) -> subprocess.CompletedProcess[str]:
        args = ("submit", "-c", str(config), "--create", "--from", "a@b", "--to", recipient)
        return waypost(*args, stdin=MESSAGE, cwd=tmp_path)

    bad = submit_to("not an address")
    assert bad.returncode == 1 and "recipient 'not an address'" in bad.stderr
    unroutable = submit_to("x@nowhere.example")
    assert unroutable.returncode == 1 and "no route" in unroutable.stderr
    for r in (bad, unroutable):
        no_traceback(r)
    assert (
        not (tmp_path / "data" / "mta.db").exists()
        or "-- 0 recipients" in waypost("queue", "list", "-c", str(config), cwd=tmp_path).stdout
    )


def test_route_explains(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=Acme/"\nnext_hop = "x400:ACME-MTA"\n'
        '[[x400.peer]]\nname = "ACME-MTA"\naddress = "127.0.0.1:10102"\n',
    )
    result = waypost(
        "route",
        "-c",
        str(config),
        "bob@localhost",
        "a@remote.example",
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "bob@localhost: local" in result.stdout
    assert "a@remote.example: smtp:[127.0.0.1]:2526" in result.stdout
    assert "x400:ACME-MTA" in result.stdout
    none = waypost("route", "-c", str(config), "a@elsewhere.example", cwd=tmp_path)
    assert none.returncode == 1 and "NO ROUTE" in none.stdout


def test_events_catalogue_and_docs_agree(tmp_path: Path) -> None:
    result = waypost("events", "--json", cwd=tmp_path)
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["id"] for e in entries} >= {1002, 1201, 1600}
    markdown = waypost("events", "--markdown", cwd=tmp_path).stdout
    docs = Path(__file__).parent.parent / "docs" / "events.md"
    assert docs.read_text() == markdown, "docs/events.md is stale: waypost events --markdown"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    config = write_config(tmp_path)
    yield tmp_path, config


def start_serve(tmp_path: Path, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, and its stderr; a serve that does not stop is killed (never left running)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("waypost serve did not stop on SIGTERM") from None
    return err


def wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def maildir_files(tmp_path: Path, user: str) -> list[Path]:
    new = tmp_path / "data" / "maildir" / user / "new"
    return sorted(new.iterdir()) if new.exists() else []


def test_serve_delivers_submitted_mail_and_stops_cleanly(served: tuple[Path, Path]) -> None:
    tmp_path, config = served
    proc = start_serve(tmp_path, config)
    try:
        for _ in range(3):
            submit(tmp_path, config, "bob@localhost")
        wait_for(lambda: len(maildir_files(tmp_path, "bob")) == 3)
        second = start_serve(tmp_path, config)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 75 and "already using" in err
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert "1000 system: Waypost" in err and "1001 system: Waypost stopped cleanly" in err
    assert (tmp_path / "data" / "waypost.pid").read_text() == ""
    body = maildir_files(tmp_path, "bob")[0].read_bytes()
    assert b"Delivered-To: bob@localhost" in body and b"Hi Bob." in body


def test_unclean_stop_runs_the_checker_and_quarantines(served: tuple[Path, Path]) -> None:
    tmp_path, config = served
    # Two messages for a remote hop where nothing listens: they stay queued.
    submit(tmp_path, config, "x@remote.example")
    bad = submit(tmp_path, config, "y@remote.example")
    proc = start_serve(tmp_path, config)
    pid_file = tmp_path / "data" / "waypost.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=30)
    with sqlite3.connect(tmp_path / "data" / "mta.db") as conn:
        conn.execute("UPDATE recipients SET rcpt_index = 9 WHERE message_id = ?", (bad,))
    proc = start_serve(tmp_path, config)
    try:
        wait_for(lambda: _quarantined(tmp_path) == 1)
        time.sleep(0.5)
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert "1002 system: The previous run" in err
    assert "1300 check: Checking MTA database" in err
    check = waypost("check", "-c", str(config), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def _quarantined(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "mta.db") as conn:
        return int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])


def test_queue_commands_carry_on_over_damaged_rows(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids = [submit(tmp_path, config, f"u{i}@remote.example") for i in range(4)]
    with sqlite3.connect(tmp_path / "data" / "mta.db") as conn:
        conn.execute(
            "UPDATE messages SET envelope = 'not a blob', received_at = 'soon' WHERE id = ?",
            (ids[0],),
        )
        conn.execute(
            "UPDATE recipients SET due_at = 'never', attempts = -3, state = 'bogus' "
            "WHERE message_id = ?",
            (ids[1],),
        )
        conn.execute("UPDATE messages SET size = 'big', expires_at = 1e300 WHERE id = ?", (ids[2],))
        conn.execute("DELETE FROM content WHERE message_id = ?", (ids[3],))
    for args in (
        ("queue", "list"),
        ("queue", "list", "--shape"),
        *(("queue", "show", str(i)) for i in ids),
    ):
        result = waypost(*args, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        no_traceback(result)
    listing = waypost("queue", "list", "-c", str(config), cwd=tmp_path).stdout
    assert "bogus" in listing and "-- 4 recipients" in listing
    show = waypost("queue", "show", str(ids[0]), "-c", str(config), cwd=tmp_path).stdout
    assert "DOES NOT DECODE" in show
    assert (
        "MISSING" in waypost("queue", "show", str(ids[3]), "-c", str(config), cwd=tmp_path).stdout
    )
    check = waypost("check", "-c", str(config), cwd=tmp_path)
    assert check.returncode == 1
    repaired = waypost("check", "--repair", "-c", str(config), cwd=tmp_path)
    assert repaired.returncode == 3, repaired.stdout + repaired.stderr
    assert waypost("check", "-c", str(config), cwd=tmp_path).returncode == 0


def test_password_hash_makes_a_line_the_users_file_accepts(tmp_path: Path) -> None:
    result = waypost("password-hash", "alice", stdin=b"s3cret\n", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("alice:scrypt$")
    users_file = tmp_path / "users"
    users_file.write_text(result.stdout)
    users = AuthUsers.load(users_file)
    assert users.verify("alice", "s3cret")
    assert not users.verify("alice", "wrong") and not users.verify("bob", "s3cret")
    assert "s3cret" not in result.stdout


def test_submit_x400_text_becomes_a_p22_ipm_shown_by_queue_show(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[x400.peer]]\nname = "ACME-MTA"\naddress = "127.0.0.1:10102"\n'
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=Acme/"\nnext_hop = "x400:ACME-MTA"\n',
    )
    result = waypost(
        "submit",
        "-c",
        str(config),
        "--create",
        "-",
        "--subject",
        "Quarterly figures",
        "--from",
        "c=GB;a= ;p=Waypost;s=Smith;g=Alice",
        "--to",
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Jones/",
        stdin=b"Dear Jones,\nthe figures.\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "(/C=GB/ADMD= /PRMD=Waypost/;" in result.stdout  # an X.400 MTS identifier
    message_id = result.stdout.split()[2]
    show = waypost("queue", "show", message_id, "-c", str(config), cwd=tmp_path).stdout
    assert "Content type:   builtin:22" in show
    assert "Subject:        Quarterly figures" in show
    assert "Originator:     /C=GB/ADMD= /PRMD=Waypost/S=Smith/G=Alice/" in show
    assert "To:             /C=GB/ADMD= /PRMD=Acme/O=Sales/S=Jones/" in show
    assert "Body parts:     ia5-text" in show
    assert "x400:ACME-MTA" in show
    assert "Trace:          /C=ZZ/ADMD= /PRMD=WAYPOST/" in show  # the submitting domain's
    mixed = waypost(
        "submit",
        "-c",
        str(config),
        "--from",
        "/C=GB/ADMD= /PRMD=W/S=A/",
        "--to",
        "bob@localhost",
        stdin=b"x",
        cwd=tmp_path,
    )
    assert mixed.returncode == 1 and "MIXER" in mixed.stderr
    no_traceback(mixed)


def test_queue_show_reads_x400_reports_and_probes(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[x400.peer]]\nname = "ACME-MTA"\naddress = "127.0.0.1:10102"\n'
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=Acme/"\nnext_hop = "x400:ACME-MTA"\n',
    )
    smith, jones = "/C=GB/ADMD= /PRMD=Acme/S=Smith/", "/C=GB/ADMD= /PRMD=Acme/S=Jones/"
    subject = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=Acme/;m-1",
        originator=smith,
        recipients=[Recipient(address=jones, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    report = build_report(
        subject=subject,
        content=b"",
        outcomes=[RecipientFate(rcpt_index=0, delivered=False, detail="5.1.1 no such", when=1e9)],
        received_at=1e9,
        domain="/C=GB/ADMD= /PRMD=W/",
        now=1e9,
    )
    probe = msgspec.structs.replace(subject, object_kind=ObjectKind.PROBE, content_length=77)
    prepare_data_dir(str(tmp_path / "data"))
    db = Database.open(tmp_path / "data" / "mta.db")
    try:
        with db.transaction():
            report_id = db.enqueue(
                NewMessage(message=report, next_hops=[parse_next_hop("x400:ACME-MTA")]), 1, 60
            )
            probe_new = NewMessage(
                message=Message(envelope=probe, content=b""),
                next_hops=[parse_next_hop("x400:ACME-MTA")],
            )
            probe_id = db.enqueue(probe_new, 1, 60)
    finally:
        db.close()
    show = waypost("queue", "show", str(report_id), "-c", str(config), cwd=tmp_path).stdout
    assert "X.400 object:   report" in show
    assert "Subject:        /C=GB/ADMD= /PRMD=Acme/;m-1" in show
    assert f"{jones}: non-delivered: unable-to-transfer / unrecognised-OR-name" in show
    assert "(5.1.1 no such)" in show
    show = waypost("queue", "show", str(probe_id), "-c", str(config), cwd=tmp_path).stdout
    assert "X.400 object:   probe" in show and "Content length: 77 bytes" in show


def test_check_exits_with_the_code_it_prints(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    prepare_data_dir(str(tmp_path / "data"))
    (tmp_path / "data" / "mta.db").write_bytes(b"not a database, " * 512)
    result = waypost("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("(exit code 4)"), result.stdout
    no_traceback(result)


MIXER_CONFIG = (
    '[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
    '[x400]\nlisten = []\nglobal_domain = "/C=ZZ/ADMD= /PRMD=Waypost/"\n'
    '[local]\noraddresses = ["/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/"]\n'
    '[mixer]\nenabled = true\ndomain = "gw.example"\n'
    'oraddress = "/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/"\n'
    '[[mixer.mapping]]\noraddress = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/"\n'
    'domain = "sales.example"\n'
    '[[route]]\nmatch = "sales.example"\nnext_hop = "gateway:mixer"\n'
    '[[route]]\nmatch = "remote.example"\nnext_hop = "smtp:[127.0.0.1]:2526"\n'
)


def write_mixer_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "waypost.toml"
    config.write_text(MIXER_CONFIG + extra)
    return config


def test_route_explains_each_mapping_of_the_gateway(tmp_path: Path) -> None:
    config = write_mixer_config(tmp_path)
    smith = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Smith/G=Jo/"
    result = waypost(
        "route",
        "-c",
        str(config),
        "Jo.Smith@sales.example",
        '"/G=Jo/S=Smith/O=Sales/PRMD=Waypost/ADMD= /C=ZZ/"@gw.example',
        "/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/DDA:RFC-822=bob(a)remote.example/",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The table entry, the gateway's local-part fallback and its RFC-822 DDA fallback.
    assert f"the gateway maps it to {smith}\n    by table: domain → O/R prefix" in out
    assert f"the gateway maps it to {smith}\n    by gateway domain: the local part" in out
    assert "mixer.domain 'gw.example' matches (exact)" in out
    assert f"then {smith}: local" in out
    assert "the gateway maps it to bob@remote.example\n    by gateway O/R address" in out
    assert "then bob@remote.example: smtp:[127.0.0.1]:2526" in out


def test_config_check_names_a_bad_mapping_entry(tmp_path: Path) -> None:
    config = write_mixer_config(
        tmp_path,
        '[[mixer.mapping]]\noraddress = "/C=ZZ/ADMD= /PRMD=Waypost/S=Smith/"\n'
        'domain = "smith.example"\n',
    )
    result = waypost("config", "check", "-c", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "mixer.mapping[1]" in result.stdout + result.stderr
    assert "only C, ADMD, PRMD, O and OU" in result.stdout + result.stderr
    no_traceback(result)
