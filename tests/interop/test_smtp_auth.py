"""STARTTLS, AUTH and relay control, with swaks as the client and smtp-sink as the next hop."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from interop_helpers import (
    RawSmtp,
    SmtpSink,
    Waypost,
    require_swaks_tls,
    swaks,
    users_file,
    wait_for,
    waypost_received,
)

pytestmark = pytest.mark.interop

USER, PASSWORD = "carol", "S3cret-Pass-ph4se"
WRONG = "Wr0ng-Guess-XYZZY"


@pytest.fixture
def tls_relay(
    tmp_path: Path,
    certificate: tuple[Path, Path],
    make_waypost: Callable[..., Waypost],
    make_sink: Callable[..., SmtpSink],
) -> tuple[Waypost, SmtpSink]:
    """Waypost with STARTTLS and AUTH, relaying nothing without AUTH, `*` going to a sink."""
    require_swaks_tls()
    cert, key = certificate
    users = users_file(tmp_path / "users", {USER: PASSWORD})
    sink = make_sink()
    wp = make_waypost(
        settings={
            "smtp": {
                "tls_cert": str(cert),
                "tls_key": str(key),
                "auth_users": str(users),
                "relay_networks": [],
            }
        },
        routes=[("*", sink.next_hop)],
    )
    return wp, sink


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_no_auth_without_tls(tls_relay: tuple[Waypost, SmtpSink]) -> None:
    wp, sink = tls_relay
    result = swaks(
        wp.port,
        "--from",
        "alice@localhost",
        "--to",
        "x@remote.example",
        "--auth",
        "PLAIN",
        "--au",
        USER,
        "--ap",
        PASSWORD,
    )
    assert result.returncode != 0, result.stdout
    ehlo = result.stdout.split(" -> EHLO")[1].split(" -> ")[0]
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo, ehlo
    assert "did not advertise" in result.stdout + result.stderr
    with RawSmtp(wp.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.command("EHLO client.test")[0] == 250
        code, text = raw.command(f"AUTH PLAIN {plain(USER, PASSWORD)}")
        assert code == 538 and text.startswith("5.7.11"), (code, text)
        # Still not authenticated: relaying is refused.
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250
        code, text = raw.command("RCPT TO:<x@remote.example>")
        assert code == 554 and text.startswith("5.7.1"), (code, text)
    assert sink.dumps() == []
    assert PASSWORD not in wp.stderr


def test_starttls_and_auth_plain_relay(tls_relay: tuple[Waypost, SmtpSink]) -> None:
    wp, sink = tls_relay
    result = swaks(
        wp.port,
        "--tls",
        "--auth",
        "PLAIN",
        "--au",
        USER,
        "--ap",
        PASSWORD,
        "--from",
        "alice@localhost",
        "--to",
        "x@remote.example",
        "--header",
        "Subject: over TLS",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    transcript = result.stdout
    after_tls = transcript.split("=== TLS started")[1]
    assert "AUTH PLAIN LOGIN" in after_tls and "STARTTLS" not in after_tls.split("AUTH ")[0]
    assert "235 2.7.0" in transcript
    wp.wait_queue_empty()
    (dump,) = sink.messages()
    assert dump.rcpt_args[0].split()[0] == "<x@remote.example>"
    msg = dump.message()
    assert msg["Subject"] == "over TLS"
    (received,) = waypost_received(msg)
    assert " with ESMTPSA " in received, received
    assert "TLSv1." in received, received
    assert PASSWORD not in wp.stderr


def test_wrong_password_is_535_and_logged_without_the_password(
    tls_relay: tuple[Waypost, SmtpSink],
) -> None:
    wp, sink = tls_relay
    result = swaks(
        wp.port,
        "--tls",
        "--auth",
        "PLAIN",
        "--au",
        USER,
        "--ap",
        WRONG,
        "--from",
        "alice@localhost",
        "--to",
        "x@remote.example",
    )
    assert result.returncode != 0
    # swaks marks a failure reply "<**", or "<~*" inside TLS.
    assert re.search(r"^<~\* 535 5\.7\.8 ", result.stdout, re.MULTILINE), result.stdout
    (line,) = wp.wait_event(1708)
    assert USER in line and "PLAIN" in line
    log = wp.stderr
    for secret in (WRONG, plain(USER, WRONG), base64.b64encode(WRONG.encode()).decode()):
        assert secret not in log, f"{secret!r} is in the log"
    assert sink.dumps() == []
    assert "-- 0 recipients" in wp.queue_list()


def test_starttls_and_auth_login_relay(tls_relay: tuple[Waypost, SmtpSink]) -> None:
    wp, sink = tls_relay
    result = swaks(
        wp.port,
        "--tls",
        "--auth",
        "LOGIN",
        "--au",
        USER,
        "--ap",
        PASSWORD,
        "--from",
        "alice@localhost",
        "--to",
        "y@remote.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0" in result.stdout
    wait_for(sink.messages, 15, "the message at the sink")
    (dump,) = sink.messages()
    assert dump.rcpt_args[0].split()[0] == "<y@remote.example>"
    (received,) = waypost_received(dump.message())
    assert " with ESMTPSA " in received
    wp.wait_queue_empty()


@pytest.mark.parametrize("default_route", [False, True], ids=["no-default", "default-route"])
def test_no_open_relay(
    make_waypost: Callable[..., Waypost],
    make_sink: Callable[..., SmtpSink],
    default_route: bool,
) -> None:
    sink = make_sink()
    routes = [("routed.example", sink.next_hop)]
    if default_route:
        routes.append(("*", sink.next_hop))
    wp = make_waypost(settings={"smtp": {"relay_networks": []}}, routes=routes)
    for refused in ("x@elsewhere.example", "x@sub.routed.example"):
        result = swaks(wp.port, "--from", "alice@src.example", "--to", refused)
        assert result.returncode != 0, result.stdout
        assert "<** 554 5.7.1" in result.stdout, result.stdout
    for accepted in ("bob@localhost", "x@routed.example"):
        result = swaks(wp.port, "--from", "alice@src.example", "--to", accepted)
        assert result.returncode == 0, result.stdout + result.stderr
    wp.wait_queue_empty()
    assert len(wp.maildir("bob")) == 1
    recipients = [r.split()[0] for d in sink.dumps() for r in d.rcpt_args]
    assert recipients == ["<x@routed.example>"]
    assert len(wp.events(1701)) == 2
    assert len(wp.events(1700)) == 2


def test_commands_pipelined_after_starttls_are_discarded(
    tls_relay: tuple[Waypost, SmtpSink],
) -> None:
    """CVE-2011-0411: plaintext injected behind STARTTLS must not run inside TLS."""
    wp, _ = tls_relay
    with RawSmtp(wp.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.command("EHLO client.test")[0] == 250
        raw.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
        assert raw.reply()[0] == 220
        raw.sock = ssl_client().wrap_socket(raw.sock)
        code, text = raw.command("EHLO client.test")
        assert code == 250 and "AUTH PLAIN LOGIN" in text.splitlines(), text
        code, text = raw.command("RCPT TO:<bob@localhost>")
        assert code == 503, f"the injected MAIL FROM ran: {code} {text}"
    assert any("after STARTTLS discarded" in line for line in wp.events(1703))


def test_auth_user_name_cannot_forge_log_lines(tls_relay: tuple[Waypost, SmtpSink]) -> None:
    wp, _ = tls_relay
    forged = "2026-01-01T00:00:00.000Z CRITICAL 1000 system: FORGED by a client"
    with RawSmtp(wp.port) as raw:
        assert raw.reply()[0] == 220
        raw.command("EHLO client.test")
        assert raw.command("STARTTLS")[0] == 220
        raw.sock = ssl_client().wrap_socket(raw.sock)
        raw.command("EHLO client.test")
        user = "x\r\n" + forged
        code, _ = raw.command("AUTH PLAIN " + plain(user, "guess"))
        assert code == 535
    wp.wait_event(1708)
    lines = wp.stderr.splitlines()
    assert not any(ln.startswith(forged) for ln in lines), "a client wrote a line of the log"


def ssl_client() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
    return context
