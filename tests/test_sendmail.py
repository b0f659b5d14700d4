"""`waypost-sendmail` and `waypost-mailq` end to end, run as an unprivileged user against a
real `waypost serve`: the maildrop, pickup, the sockets, and the mail in the Maildirs."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from sendmail_env import Mta, make_mta, unprivileged_uid, wait_for

from waypost.cli import sendmail_cmd
from waypost.local_submit.dropfile import COMPLETE_MODE, DropEnvelope, encode

pytestmark = pytest.mark.slow


@pytest.fixture
def mta() -> Iterator[Mta]:
    mta = make_mta()
    try:
        yield mta
    finally:
        mta.stop()
        shutil.rmtree(mta.root)


@pytest.fixture
def running(mta: Mta) -> Mta:
    mta.start()
    return mta


def test_data_directory_layout_lets_users_drop_but_not_look(running: Mta) -> None:
    data = running.data
    assert stat.S_IMODE(data.stat().st_mode) == 0o711
    assert stat.S_IMODE((data / "maildrop").stat().st_mode) == 0o1733
    assert stat.S_IMODE((data / "public").stat().st_mode) == 0o711
    assert stat.S_IMODE((data / "maildrop-quarantine").stat().st_mode) == 0o700
    for socket_name in ("pickup", "showq"):
        path = data / "public" / socket_name
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
    for name in ("mta.db", "waypost.pid"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    # What the MTA makes there itself is owner-only, whatever the umask it was started with.
    assert running.sendmail("bob@localhost", stdin=b"x\n").returncode == 0
    wait_for(lambda: running.mailbox("bob"), "bob's mail")
    assert stat.S_IMODE((data / "maildir").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "maildir" / "bob").stat().st_mode) == 0o700


def test_sendmail_t_takes_to_cc_bcc_and_removes_bcc(running: Mta) -> None:
    message = (
        b"From: Cron Daemon <root@mx.test>\n"
        b"To: bob@localhost, Carol <carol@localhost>\n"
        b"Cc: dave@localhost\n"
        b"Bcc: eve@localhost,\n  frank@localhost\n"
        b"Subject: report\n\nAll well.\n.\nStill the body: -i keeps going.\n"
    )
    result = running.sendmail("-t", "-i", stdin=message)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" and result.stderr == b""  # silent, as sendmail is
    for user in ("bob", "carol", "dave", "eve", "frank"):
        wait_for(lambda user=user: running.mailbox(user), f"{user}'s mail")  # type: ignore[misc]
        (mail,) = running.mailbox(user)
        content = mail.partition(b"Received: ")[2]  # after the local delivery's own fields
        assert b"Bcc:" not in content and b"eve@" not in content and b"frank@" not in content
        assert b"Received: by mx.test (Waypost, from userid %d)" % unprivileged_uid() in mail
        assert b"Still the body: -i keeps going." in mail
        assert b"From: Cron Daemon <root@mx.test>" in mail and b"Message-ID: <" in mail
    assert os.listdir(running.data / "maildrop") == []
    log = running.stop()
    assert "1610 interface: Message 1" in log and f"by uid {unprivileged_uid()}" in log


def test_sendmail_f_with_recipients_and_the_dot_line(running: Mta) -> None:
    body = b"Subject: dots\n\nfirst\n.\nafter the dot\n"
    ended = running.sendmail("-f", "alice@example.org", "bob@localhost", stdin=body)
    assert ended.returncode == 0, ended.stderr
    wait_for(lambda: running.mailbox("bob"), "bob's mail")
    (mail,) = running.mailbox("bob")
    assert b"Return-Path: <alice@example.org>" in mail
    assert b"first\n" in mail and b"after the dot" not in mail  # without -i, "." ends it
    assert b"From: alice@example.org" in mail

    kept = running.sendmail(
        "-oi", "-falice@example.org", "-F", "Alice A", "--", "carol", stdin=body
    )
    assert kept.returncode == 0, kept.stderr
    wait_for(lambda: running.mailbox("carol"), "carol's mail")
    (mail,) = running.mailbox("carol")
    assert b"Delivered-To: carol@mx.test" in mail  # a bare name is qualified by the hostname
    assert b"first\n.\nafter the dot\n" in mail and b"From: Alice A <alice@example.org>" in mail

    # Without -f the sender is the submitting user, by the file's owner.
    running.sendmail("-i", "dave@localhost", stdin=b"no header at all\n")
    wait_for(lambda: running.mailbox("dave"), "dave's mail")
    (mail,) = running.mailbox("dave")
    login = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "")
    assert f"Return-Path: <{login}@mx.test>".encode() in mail
    assert mail.endswith(b"\n\nno header at all\n")


def test_sendmail_bs_speaks_smtp_on_stdin(running: Mta) -> None:
    session = (
        b"EHLO app.example\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\n"
        b"RCPT TO:<x@nowhere.example>\r\nDATA\r\nSubject: bs\r\n\r\n..stuffed\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<carol@localhost>\r\nDATA\r\nSubject: two\r\n\r\nx\r\n.\r\n"
        b"QUIT\r\n"
    )
    result = running.sendmail("-bs", stdin=session)
    assert result.returncode == 0, result.stderr
    codes = [line[:4] for line in result.stdout.decode().splitlines() if line[3:4] == " "]
    first = ["220 ", "250 ", "250 ", "250 ", "550 ", "354 ", "250 "]  # greeting, EHLO, …
    second = ["250 ", "250 ", "354 ", "250 ", "221 "]
    assert codes == [*first, *second], result.stdout
    assert b"550 5.1.1 recipient x@nowhere.example" in result.stdout
    wait_for(lambda: running.mailbox("bob") and running.mailbox("carol"), "both messages")
    (bob,) = running.mailbox("bob")
    assert b"Return-Path: <alice@example.org>" in bob and b"\n.stuffed\n" in bob  # unstuffed
    assert b"from userid %d" % unprivileged_uid() in bob
    (carol,) = running.mailbox("carol")
    assert b"Return-Path: <>" in carol and b"Subject: two" in carol


def test_cron_style_options_are_accepted() -> None:
    request = sendmail_cmd.parse(
        ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-odi", "-v", "root"], program="sendmail"
    )
    assert request.full_name == "CronDaemon" and not request.dot_ends
    assert request.recipients == ["root"] and request.mode == "m"
    assert sendmail_cmd.parse([], program="mailq").mode == "p"
    assert sendmail_cmd.parse(["-bp"], program="sendmail").mode == "p"


def test_refusals_name_the_problem(running: Mta) -> None:
    no_rcpt = running.sendmail(stdin=b"x\n")
    assert no_rcpt.returncode == 64 and b"no recipients" in no_rcpt.stderr
    unroutable = running.sendmail("someone@nowhere.example", stdin=b"x\n")
    assert unroutable.returncode == 67 and b"nowhere.example" in unroutable.stderr
    bad = running.sendmail("a b@localhost", stdin=b"x\n")
    assert bad.returncode == 67 and b"a b@localhost" in bad.stderr
    big = running.sendmail("-i", "bob@localhost", stdin=b"x" * 5000)
    assert big.returncode == 65 and b"larger than the limit of 4096" in big.stderr
    many = running.sendmail(*(f"u{i}@localhost" for i in range(6)), stdin=b"x\n")
    assert many.returncode == 65 and b"more than 5 recipients" in many.stderr
    unsupported = running.sendmail("-bi")
    assert unsupported.returncode == 64 and b"-bi is not supported" in unsupported.stderr
    assert os.listdir(running.data / "maildrop") == []
    assert running.mailbox("bob") == []


def test_exit_75_when_the_message_cannot_be_made_durable(mta: Mta) -> None:
    # Never started: there is no maildrop to write into.
    result = mta.sendmail("bob@localhost", stdin=b"Subject: x\n\nx\n")
    assert result.returncode == 75, result
    assert b"NOT queued" in result.stderr and b"maildrop" in result.stderr


def _drop_as_user(mta: Mta, name: str, data: bytes, mode: int = COMPLETE_MODE) -> Path:
    path = mta.data / "maildrop" / name
    path.write_bytes(data)
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, unprivileged_uid(), -1)
    return path


def test_garbage_is_quarantined_and_the_next_message_delivered(running: Mta) -> None:
    _drop_as_user(running, "1.1.garbage", b"\x00\xffnot a maildrop file at all")
    _drop_as_user(
        running,
        "1.2.badjson",
        b'WAYPOST-MAILDROP 1\n{"recipients": 7}\nhello\n',
    )
    os.symlink("/etc/passwd", running.data / "maildrop" / "1.3.symlink")
    os.mkfifo(running.data / "maildrop" / "1.4.fifo")
    linked = _drop_as_user(
        running, "1.5.linked", encode(DropEnvelope(recipients=["bob@localhost"]), b"linked\n")
    )
    os.link(linked, running.root / "second-link")
    good = running.sendmail("-i", "bob@localhost", stdin=b"Subject: after\n\ngood one\n")
    assert good.returncode == 0, good.stderr
    wait_for(lambda: running.mailbox("bob"), "bob's mail")
    (mail,) = running.mailbox("bob")
    assert b"good one" in mail
    quarantine = running.data / "maildrop-quarantine"
    wait_for(lambda: len(os.listdir(quarantine)) == 5, "five files in quarantine")
    assert os.listdir(running.data / "maildrop") == []
    assert os.path.islink(quarantine / "1.3.symlink")
    log = running.stop()
    assert log.count("1611 interface: Maildrop file") == 5, log
    assert "not a maildrop file" in log and "bad envelope" in log
    assert "not a regular file" in log and "has 2 links" in log
    assert "Traceback" not in log


def test_pickup_refuses_what_the_limits_forbid(running: Mta) -> None:
    too_many = DropEnvelope(recipients=[f"u{i}@localhost" for i in range(6)])
    _drop_as_user(running, "2.1.many", encode(too_many, b"x\n"))
    _drop_as_user(
        running, "2.2.big", encode(DropEnvelope(recipients=["bob@localhost"]), b"x" * 5000)
    )
    _drop_as_user(running, "2.3.norcpt", encode(DropEnvelope(recipients=[]), b"x\n"))
    _drop_as_user(
        running, "2.4.unroutable", encode(DropEnvelope(recipients=["x@nowhere.example"]), b"x\n")
    )
    quarantine = running.data / "maildrop-quarantine"
    wait_for(lambda: len(os.listdir(quarantine)) == 4, "four files in quarantine")
    log = running.stop()
    assert "6 recipients are over the limit of 5" in log
    assert "over the limit of 4096" in log and "no recipients" in log
    assert "no route for x@nowhere.example" in log


def _ask(mta: Mta, name: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(mta.data / "public" / "pickup"))
        sock.sendall(name.encode() + b"\n")
        return sock.makefile("rb").readline().decode().strip()


def test_the_pickup_socket_answers_what_became_of_a_file(running: Mta) -> None:
    good = encode(DropEnvelope(recipients=["bob@localhost"]), b"Subject: s\n\nx\n")
    _drop_as_user(running, "9.1.good", good)
    assert _ask(running, "9.1.good") == "queued 1"
    assert _ask(running, "9.1.good") == "queued 1"  # asked again: remembered
    _drop_as_user(running, "9.2.bad", b"junk")
    assert _ask(running, "9.2.bad").startswith("rejected not a maildrop file")
    assert _ask(running, "no-such-file") == "gone"
    assert _ask(running, "../waypost.pid") == "gone"  # a name, never a path
    assert (running.data / "waypost.pid").exists()


def test_an_unfinished_file_waits_then_is_quarantined_when_abandoned(running: Mta) -> None:
    unfinished = _drop_as_user(
        running, "3.1.writing", encode(DropEnvelope(recipients=["bob@localhost"]), b"x\n"), 0o600
    )
    # A ready file named after it is taken by a scan, which has passed the unfinished one.
    _drop_as_user(
        running, "3.2.ready", encode(DropEnvelope(recipients=["carol@localhost"]), b"ready\n")
    )
    wait_for(lambda: running.mailbox("carol"), "carol's mail")
    assert unfinished.exists()  # a writer that is still writing is waited for
    old = unfinished.stat().st_mtime - 7200
    os.utime(unfinished, (old, old))
    wait_for(lambda: not unfinished.exists(), "the abandoned file to be moved")
    assert (running.data / "maildrop-quarantine" / "3.1.writing").exists()
    assert running.mailbox("bob") == []


def test_a_message_dropped_while_the_mta_is_stopped_is_delivered_after_start(mta: Mta) -> None:
    mta.start()
    mta.stop()
    result = mta.sendmail("-i", "bob@localhost", stdin=b"Subject: later\n\nwhile stopped\n")
    assert result.returncode == 0, result.stderr
    (name,) = os.listdir(mta.data / "maildrop")
    dropped = (mta.data / "maildrop" / name).stat()
    assert dropped.st_uid == unprivileged_uid() and dropped.st_mode & 0o100  # complete
    assert mta.mailbox("bob") == []
    mta.start()
    wait_for(lambda: mta.mailbox("bob"), "bob's mail after the start")
    assert b"while stopped" in mta.mailbox("bob")[0]
    assert os.listdir(mta.data / "maildrop") == []


def test_mailq_for_users_over_the_socket_and_for_the_mta_user_directly() -> None:
    port = free_port()  # nobody listens: the message stays deferred
    mta = make_mta(f'[[route]]\nmatch = "remote.example"\nnext_hop = "smtp:[127.0.0.1]:{port}"\n')
    try:
        mta.start()
        empty = mta.mailq()
        assert empty.returncode == 0 and empty.stdout == "Mail queue is empty\n", empty
        sent = mta.sendmail(
            "-f", "alice@example.org", "x@remote.example", "y@remote.example", stdin=b"hi\n"
        )
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: "4.4.1 connect to" in mta.mailq().stdout, "the deferral")
        listing = mta.mailq()
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].startswith("-Queue ID-  --Size--")
        assert lines[1].startswith("1 ") and lines[1].endswith("alice@example.org")
        assert lines[-1] == "-- 1 Kbytes in 1 Request."
        assert any(line.strip() == "x@remote.example" for line in lines)
        assert any(line.strip() == "y@remote.example" for line in lines)
        assert any(line.startswith("(4.4.1 connect to 127.0.0.1") for line in lines)
        bp = mta.sendmail("-bp")
        assert bp.returncode == 0 and bp.stdout.decode() == listing.stdout
        mta.stop()

        # Stopped: the MTA's user reads the database itself; others are told why not.
        direct = mta.mailq(unprivileged=False)
        assert direct.returncode == 0 and direct.stdout == listing.stdout, direct.stderr
        if os.geteuid() == 0:
            refused = mta.mailq()
            assert refused.returncode == 69
            assert "not running" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        mta.stop()
        shutil.rmtree(mta.root)


def test_the_console_scripts_are_declared() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    assert scripts["waypost-sendmail"] == "waypost.cli.sendmail_cmd:main"
    assert scripts["waypost-mailq"] == "waypost.cli.sendmail_cmd:mailq_main"
    assert callable(sendmail_cmd.main) and callable(sendmail_cmd.mailq_main)
