"""`waypost mailbox list/show`: reading back what a real `waypost serve` delivered into the
Maildirs and the X.400 store (P1 files decoded: envelope, IPM heading and text, reports)."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import (
    maildir_files,
    no_traceback,
    start_serve,
    stop,
    submit,
    wait_for,
    waypost,
    write_config,
)

from waypost.delivery.x400_store import mailbox_name

LOCAL_X400 = (
    '[local]\ndomains = ["localhost"]\noraddresses = ["/C=GB/ADMD= /PRMD=Waypost/"]\n'
    'x400_mailboxes = ["/C=GB/ADMD= /PRMD=Waypost/S=Smith/G=Alice/", '
    '"/C=GB/ADMD= /PRMD=Waypost/S=Jones/"]\n'
)
ALICE = "/C=GB/ADMD= /PRMD=Waypost/S=Smith/G=Alice/"
JONES = "/C=GB/ADMD= /PRMD=Waypost/S=Jones/"
NOBODY = "/C=GB/ADMD= /PRMD=Waypost/S=Nobody/"


def config_with_x400(tmp_path: Path) -> Path:
    # write_config's [local] is replaced by one that also delivers O/R addresses here.
    config = write_config(tmp_path)
    text = config.read_text().replace('[local]\ndomains = ["localhost", "example.net"]\n', "")
    config.write_text(text + LOCAL_X400)
    return config


def x400_submit(tmp_path: Path, config: Path, recipient: str) -> None:
    result = waypost(
        "submit",
        "-c",
        str(config),
        "-",
        "--subject",
        "Quarterly figures",
        "--from",
        ALICE,
        "--to",
        recipient,
        stdin=b"Dear Jones,\nthe figures.\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def p1_files(tmp_path: Path, oraddress: str) -> list[Path]:
    new = tmp_path / "data" / "x400store" / mailbox_name(oraddress) / "new"
    return sorted(new.iterdir()) if new.exists() else []


def test_mailbox_list_and_show_read_maildirs_and_the_x400_store(tmp_path: Path) -> None:
    config = config_with_x400(tmp_path)
    proc = start_serve(tmp_path, config)
    try:
        submit(tmp_path, config, "bob@localhost")
        x400_submit(tmp_path, config, JONES)
        x400_submit(tmp_path, config, NOBODY)  # no such mailbox: a report comes back to Alice
        wait_for(lambda: len(p1_files(tmp_path, JONES)) == 1 and p1_files(tmp_path, ALICE))
        wait_for(lambda: maildir_files(tmp_path, "bob"))
    finally:
        stop(proc)

    def run(*args: str) -> str:
        result = waypost("mailbox", *args, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        no_traceback(result)
        return result.stdout

    boxes = run("list")
    assert "maildir       1      0  bob" in boxes
    assert f"x400          1      0  {mailbox_name(JONES)}" in boxes
    assert f"x400          1      0  {mailbox_name(ALICE)}" in boxes
    assert "-- 3 mailboxes" in boxes

    bob = run("list", "bob")
    assert "alice@example.org" in bob and "hello" in bob
    assert "-- 1 messages in maildir mailbox bob" in bob
    (line,) = [json.loads(x) for x in run("list", "bob", "--json").splitlines()]
    assert line["from"] == "alice@example.org" and line["subject"] == "hello"
    message = run("show", line["id"])
    assert "Delivered-To: bob@localhost" in message and message.endswith("Hi Bob.\n")

    # The X.400 mailbox by its O/R address, in either text form.
    jones = run("list", JONES)
    assert ALICE in jones and "Quarterly figures" in jones
    (ipm,) = [
        json.loads(x) for x in run("list", "c=GB;a= ;p=Waypost;s=Jones", "--json").splitlines()
    ]
    shown = run("show", ipm["id"])
    assert f"Originator:     {ALICE}" in shown and f"Recipient:      {JONES}" in shown
    assert "Content type:   builtin:22" in shown
    assert "Subject:        Quarterly figures" in shown
    assert "[body part 1: ia5-text]\nDear Jones,\nthe figures.\n" in shown
    document = json.loads(run("show", ipm["id"], "--json"))
    assert document["ipm"]["subject"] == "Quarterly figures" and document["recipients"] == [JONES]
    by_path = run("show", ipm["path"])  # a file's path works too
    assert "Quarterly figures" in by_path

    # The non-delivery report in Alice's mailbox says what became of Nobody.
    (report,) = [json.loads(x) for x in run("list", ALICE, "--json").splitlines()]
    assert report["subject"].startswith("report on ")
    shown = run("show", report["id"])
    assert "X.400 object:   report" in shown
    assert f"{NOBODY}: non-delivered: " in shown
    assert (
        json.loads(run("show", report["id"], "--json"))["report"]["recipients"][0]["address"]
        == NOBODY
    )


def test_mailbox_errors_are_named(tmp_path: Path) -> None:
    config = config_with_x400(tmp_path)
    empty = waypost("mailbox", "list", "-c", str(config), cwd=tmp_path)
    assert empty.returncode == 0 and "-- 0 mailboxes" in empty.stdout
    missing = waypost("mailbox", "list", "carol", "-c", str(config), cwd=tmp_path)
    assert missing.returncode == 1 and "no mailbox 'carol'" in missing.stderr
    unknown = waypost("mailbox", "show", "123.M1P1Q1.mx.test", "-c", str(config), cwd=tmp_path)
    assert unknown.returncode == 1 and "no delivered message" in unknown.stderr
    escape = waypost("mailbox", "show", "..", "-c", str(config), cwd=tmp_path)
    assert escape.returncode == 1
    garbage = tmp_path / "data" / "x400store" / "box" / "new" / "1.M1P1Q1.mx.test.p1"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x30\x03\x02\x01")  # truncated BER
    listed = waypost("mailbox", "list", "box", "-c", str(config), cwd=tmp_path)
    assert listed.returncode == 0 and "(unreadable)" in listed.stdout
    broken = waypost("mailbox", "show", "1.M1P1Q1.mx.test.p1", "-c", str(config), cwd=tmp_path)
    assert broken.returncode == 1 and "is not a readable P1 object" in broken.stderr
    for result in (missing, unknown, escape, listed, broken):
        no_traceback(result)


def test_help_for_the_new_commands(tmp_path: Path) -> None:
    for verb in ("mailbox", "mailbox list", "mailbox show", "queue list", "queue delete"):
        result = waypost(*verb.split(), "--help", cwd=tmp_path)
        assert result.returncode == 0, (verb, result.stderr)
        assert "usage: waypost" in result.stdout
