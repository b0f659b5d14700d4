"""SIGHUP reloads a running `waypost serve` (real processes and sockets): a transaction or a
P1 transfer in progress completes, the new routes and limits apply to the next connection,
a configuration that cannot be used is refused with the old one left in force, the log is
reopened for logrotate, and `waypost reload` finds the process by its pid file."""

from __future__ import annotations

import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from p1_client import P1Client
from serve_process import ServeProcess

from waypost.message import ContentType, Envelope, Recipient
from waypost.osi.stack import (
    AssociationSettings,
    Mode,
    Open,
    Refused,
    Release,
    Released,
    Transfer,
    TransferConfirmed,
)
from waypost.smtp.auth import hash_password
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_bind import MTABind, encode_bind
from waypost.x400.p1_objects import encode_stored

pytestmark = pytest.mark.timeout(120)

PEER = "PEER-MTA"


def smtp_toml(port: int, *, max_recipients: int = 100, domains: str = '"localhost"') -> str:
    return (
        f'[local]\ndomains = [{domains}]\nmaildir = "data/maildir"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nmax_recipients = {max_recipients}\n'
        "[x400]\nlisten = []\n"
        "[queue]\npoll_interval = 0.1\n"
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path, smtp_toml(free_port()))
    yield proc
    if proc.alive():
        proc.stop()


def start_smtp(serve: ServeProcess, **settings: object) -> int:
    port = free_port()
    serve.write_config(smtp_toml(port, **settings))  # type: ignore[arg-type]
    serve.start()
    return port


def maildir_files(serve: ServeProcess) -> list[Path]:
    return sorted((serve.data_dir / "maildir").glob("*/new/*"))


def test_sighup_reloads_instead_of_ending_the_process(serve: ServeProcess) -> None:
    serve.start()
    toml = serve.config.read_text().split("[local]", 1)[1]
    outcome = serve.reload("[local]" + toml)
    assert outcome["name"] == "config-reloaded"
    assert outcome["fields"]["changed"] == "nothing"
    assert serve.alive()
    assert serve.stop() == 0
    # A clean stop: the pid file is emptied, so the next start checks nothing.
    assert (serve.data_dir / "waypost.pid").read_text() == ""
    assert "unclean" not in serve.stderr


def test_sighup_during_data_the_message_is_accepted_and_the_new_limits_apply_next(
    serve: ServeProcess,
) -> None:
    port = start_smtp(serve, max_recipients=100)
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("client.test")
    assert client.mail("alice@example.org")[0] == 250
    assert client.rcpt("bob@localhost")[0] == 250
    assert client.rcpt("carol@localhost")[0] == 250
    assert client.docmd("DATA")[0] == 354
    client.send(b"Subject: mid-reload\r\n\r\nfirst half\r\n")
    # Mid-DATA: one recipient per message from now on, and a new local domain.
    outcome = serve.reload(smtp_toml(port, max_recipients=1, domains='"localhost", "new.test"'))
    assert outcome["name"] == "config-reloaded", outcome
    assert set(outcome["fields"]["changed"].split(", ")) == {
        "local.domains",
        "smtp.max_recipients",
    }
    client.send(b"second half\r\n.\r\n")
    code, text = client.getreply()
    assert code == 250, text
    # The connection in progress keeps the settings it began with: two recipients again.
    assert client.mail("alice@example.org")[0] == 250
    assert client.rcpt("bob@localhost")[0] == 250
    assert client.rcpt("carol@localhost")[0] == 250
    client.rset()
    client.quit()
    serve.wait_for(lambda e: e["name"] == "delivered" and "carol" in e["fields"]["recipient"])
    (delivered,) = {f.read_bytes() for f in maildir_files(serve) if "bob" in str(f)}
    assert b"first half\nsecond half\n" in delivered

    # The next connection is judged by the new configuration.
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as fresh:
        fresh.ehlo("client.test")
        assert fresh.mail("alice@example.org")[0] == 250
        assert fresh.rcpt("dave@new.test")[0] == 250  # refused before: no route
        assert fresh.rcpt("bob@localhost")[0] == 452  # 4.5.3 too many recipients
        assert fresh.data(b"Subject: after\r\n\r\nafter\r\n")[0] == 250
    serve.wait_for(lambda e: e["name"] == "delivered" and "dave@new.test" in str(e["fields"]))
    assert serve.stop() == 0


def test_a_new_route_is_refused_before_the_reload(serve: ServeProcess) -> None:
    """The counterpart of the test above: without the reload, new.test has no route."""
    port = start_smtp(serve)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("alice@example.org")
        assert client.rcpt("dave@new.test")[0] == 550


def test_an_invalid_configuration_is_refused_and_the_old_one_stays(
    serve: ServeProcess, tmp_path: Path
) -> None:
    port = start_smtp(serve, max_recipients=1)
    good = serve.config.read_text().split("[local]", 1)[1]

    outcome = serve.reload(smtp_toml(port, max_recipients=0))
    assert outcome["name"] == "config-reload-refused"
    assert outcome["fields"]["key"] == "smtp.max_recipients"
    assert outcome["fields"]["reason"]

    # A file the schema accepts but that cannot be used: the certificate is missing.
    missing = tmp_path / "missing.pem"
    broken = smtp_toml(port, max_recipients=5).replace(
        "[smtp]\n", f'[smtp]\ntls_cert = "{missing}"\ntls_key = "{missing}"\n'
    )
    outcome = serve.reload(broken)
    assert outcome["name"] == "config-reload-refused"
    assert "smtp.tls" in outcome["fields"]["key"]
    assert str(missing) in outcome["fields"]["reason"]

    outcome = serve.reload("this is = not TOML [")
    assert outcome["name"] == "config-reload-refused"

    # Still up, under the first configuration: one recipient, no STARTTLS.
    assert serve.alive()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        client.mail("alice@example.org")
        assert client.rcpt("bob@localhost")[0] == 250
        assert client.rcpt("carol@localhost")[0] == 452
    # Corrected, it is taken.
    assert serve.reload("[local]" + good)["name"] == "config-reloaded"
    assert serve.stop() == 0


def test_keys_that_need_a_restart_keep_their_value(serve: ServeProcess, tmp_path: Path) -> None:
    port = start_smtp(serve)
    other_port = free_port()
    toml = smtp_toml(other_port).replace('maildir = "data/maildir"', 'maildir = "data/elsewhere"')
    outcome = serve.reload(toml)
    assert outcome["name"] == "config-reloaded"
    held = {
        e["fields"]["key"]: e["fields"]
        for e in serve.events()
        if e["name"] == "config-needs-restart"
    }
    assert set(held) == {"smtp.listen", "local.maildir"}
    assert held["smtp.listen"]["old"] == f'["127.0.0.1:{port}"]'
    assert held["smtp.listen"]["new"] == f'["127.0.0.1:{other_port}"]'
    # The old address still answers, the new one is not opened.
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.noop()[0] == 250
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", other_port)):
        pass
    assert serve.stop() == 0


def test_the_log_file_is_reopened_on_reload(serve: ServeProcess) -> None:
    """logrotate renames the file, then asks for a reload: new lines go to a new file."""
    serve.start()
    rotated = serve.log.with_name("events.json.1")
    serve.log.rename(rotated)
    before = len(serve.events(rotated))
    serve.signal(signal.SIGHUP)
    serve.wait_for("config-reloaded")  # in the new file
    names = [e["name"] for e in serve.events()]
    assert names[0] == "log-reopened"
    assert serve.stop() == 0
    assert [e["name"] for e in serve.events()][-1] == "service-stopped"
    assert len(serve.events(rotated)) == before  # the rotated file got nothing more


def test_reload_command(serve: ServeProcess) -> None:
    result = serve.cli("reload")
    assert result.returncode == 1
    assert "not running" in result.stderr
    serve.start()
    result = serve.cli("reload")
    assert result.returncode == 0, result.stderr
    assert f"pid {serve.proc.pid}" in result.stdout  # type: ignore[union-attr]
    serve.wait_for("config-reloaded")
    assert serve.stop() == 0
    result = serve.cli("reload")
    assert result.returncode == 1
    assert "not running" in result.stderr


# ------------------------------------------------------------------------------- X.400


def x400_toml(port: int, password: str) -> str:
    return (
        '[local]\noraddresses = ["/C=GB/ADMD= /PRMD=B/"]\nx400_store = "data/x400store"\n'
        "[smtp]\nlisten = []\n"
        f'[x400]\nlisten = ["127.0.0.1:{port}"]\nmta_name = "WAYPOST-MTA"\n'
        f'[[x400.peer]]\nname = "{PEER}"\naddress = "127.0.0.1:1"\n'
        f'peer_password = "{password}"\n'
        "[queue]\npoll_interval = 0.1\n"
    )


def p1_message(n: int) -> bytes:
    jones = "/C=GB/ADMD= /PRMD=B/S=Jones/"
    smith = "/C=GB/ADMD= /PRMD=A/S=Smith/"
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;reload-{n}",
        originator=smith,
        recipients=[Recipient(address=jones, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    content = build_ipm(
        originator=smith,
        recipients=[jones],
        subject="across a reload",
        text="x" * 20000,
        ipm_id=f"ipm-{n}",
    )
    return encode_stored(envelope, content)


def p1_client(port: int, password: str) -> P1Client:
    settings = AssociationSettings(checkpoint_size=0)
    return P1Client(port, Mode.NORMAL_1988, settings, name=PEER, password=password, timeout=30)


def test_sighup_during_an_x400_transfer_the_association_completes(serve: ServeProcess) -> None:
    port = free_port()
    serve.write_config(x400_toml(port, "old-secret"))
    serve.start()
    client = p1_client(port, "old-secret")
    try:
        client.open()
        data = client.assoc.send(Transfer(apdu=p1_message(1)))
        half = len(data) // 2
        client.raw(data[:half])
        # Mid-transfer: the peer's password changes.
        outcome = serve.reload(x400_toml(port, "new-secret"))
        assert outcome["name"] == "config-reloaded"
        assert outcome["fields"]["changed"] == "x400.peer"
        client.raw(data[half:])
        client.until(TransferConfirmed)
        client.send(Release())
        client.until(Released)
    finally:
        client.close()
    serve.wait_for(lambda e: e["name"] == "delivered" and "Jones" in e["fields"]["recipient"])
    assert sorted((serve.data_dir / "x400store").glob("*/new/*"))

    # The next association is bound under the new configuration.
    refused = p1_client(port, "old-secret")
    try:
        bind = encode_bind(MTABind(name=PEER, password="old-secret"))
        refused.send(Open(bind_argument=bind))
        assert any(isinstance(e, Refused) for e in refused.until(None))
    finally:
        refused.close()
    accepted = p1_client(port, "new-secret")
    try:
        accepted.open()
        accepted.send(Transfer(apdu=p1_message(2)))
        accepted.until(TransferConfirmed)
        accepted.send(Release())
        accepted.until(Released)
    finally:
        accepted.close()
    assert not [e for e in serve.events() if e["name"] == "x400-association-aborted"]
    assert serve.stop() == 0


def test_a_log_file_that_cannot_be_opened_refuses_the_reload(
    serve: ServeProcess, tmp_path: Path
) -> None:
    port = start_smtp(serve, max_recipients=1)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    seen = len(serve.events())
    head = f'[server]\nhostname = "reload.test"\ndata_dir = "{serve.data_dir}"\n'
    serve.config.write_text(
        head + f'[log]\njson_file = "{blocker}/events.json"\n' + smtp_toml(port, max_recipients=5)
    )
    serve.signal(signal.SIGHUP)
    outcome = serve.wait_for("config-reload-refused", after=seen)  # still in the old file
    assert outcome["fields"]["key"] == "log.json_file"
    assert str(blocker) in outcome["fields"]["reason"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("alice@example.org")
        assert client.rcpt("bob@localhost")[0] == 250
        assert client.rcpt("carol@localhost")[0] == 452  # max_recipients is still 1
    assert serve.stop() == 0


# ------------------------------------------------------- certificate and users file renewed


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_client(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client.starttls(context=context)
    client.ehlo("client.test")
    return client


def served_certificate(client: smtplib.SMTP) -> bytes:
    assert isinstance(client.sock, ssl.SSLSocket)
    der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


@pytest.mark.interop
def test_a_renewed_certificate_and_users_file_apply_to_the_next_connection(
    serve: ServeProcess, tmp_path: Path
) -> None:
    """As certbot renews: new files at the same paths, then a reload (nothing in the
    configuration file changes)."""
    old_cert, old_key = make_certificate(tmp_path, "one.test")
    new_cert, new_key = make_certificate(tmp_path, "two.test")
    cert, key, users = tmp_path / "live.crt", tmp_path / "live.key", tmp_path / "users"
    shutil.copy(old_cert, cert)
    shutil.copy(old_key, key)
    users.write_text(f"alice:{hash_password('first')}\n")
    port = free_port()
    toml = smtp_toml(port).replace(
        "[smtp]\n", f'[smtp]\ntls_cert = "{cert}"\ntls_key = "{key}"\nauth_users = "{users}"\n'
    )
    serve.write_config(toml)
    serve.start()
    before = tls_client(port)
    assert served_certificate(before) == der(old_cert)
    before.login("alice", "first")

    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    users.write_text(f"alice:{hash_password('second')}\n")
    outcome = serve.reload(toml)
    assert outcome["name"] == "config-reloaded"
    assert outcome["fields"]["changed"] == "nothing"

    after = tls_client(port)
    assert served_certificate(after) == der(new_cert)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        after.login("alice", "first")
    after.login("alice", "second")
    after.quit()
    # The connection from before the reload carries on with what it negotiated.
    assert before.mail("alice@example.org")[0] == 250
    assert before.rcpt("bob@localhost")[0] == 250
    assert before.data(b"Subject: still here\r\n\r\nok\r\n")[0] == 250
    before.quit()
    assert serve.stop() == 0
