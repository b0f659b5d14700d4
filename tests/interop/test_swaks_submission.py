"""The submission ports with swaks as the client and smtp-sink as the next hop: AUTH is
required (after TLS), nothing is relayed without it, port 465's implicit TLS works, and
port 25's policy is what it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import free_port
from interop_helpers import (
    SmtpSink,
    Waypost,
    require_swaks_tls,
    swaks,
    users_file,
    waypost_received,
)

pytestmark = pytest.mark.interop

USER, PASSWORD = "dave", "An0ther-Pass-ph4se"
AUTH = ("--auth", "PLAIN", "--au", USER, "--ap", PASSWORD)
ENVELOPE = ("--from", "alice@src.example", "--to", "x@remote.example")


class Ports:
    def __init__(self) -> None:
        self.submission = free_port()
        self.submissions = free_port()


@pytest.fixture
def submission(
    tmp_path: Path,
    certificate: tuple[Path, Path],
    make_waypost: Callable[..., Waypost],
    make_sink: Callable[..., SmtpSink],
) -> tuple[Waypost, SmtpSink, Ports]:
    """Waypost with port 25's policy on wp.port (127.0.0.0/8 may relay, the default), a
    submission and a submissions port, and `*` routed to a sink."""
    require_swaks_tls()
    cert, key = certificate
    users = users_file(tmp_path / "users", {USER: PASSWORD})
    sink = make_sink()
    ports = Ports()
    wp = make_waypost(
        settings={"smtp": {"tls_cert": str(cert), "tls_key": str(key), "auth_users": str(users)}},
        routes=[("*", sink.next_hop)],
        extra=(
            f'\n[[smtp.listener]]\naddress = "127.0.0.1:{ports.submission}"\n'
            'mode = "submission"\n'
            f'\n[[smtp.listener]]\naddress = "127.0.0.1:{ports.submissions}"\n'
            'mode = "submissions"\n'
        ),
    )
    return wp, sink, ports


def test_submission_refuses_mail_without_auth(
    submission: tuple[Waypost, SmtpSink, Ports],
) -> None:
    _, sink, ports = submission
    # Over TLS but without AUTH: MAIL is refused, so nothing can be relayed, though
    # 127.0.0.1 is in relay_networks.
    result = swaks(ports.submission, "--tls", *ENVELOPE)
    assert result.returncode != 0, result.stdout
    assert "* 530 5.7.0 Authentication required" in result.stdout
    # In plaintext, AUTH is not even offered: TLS comes first.
    plain = swaks(ports.submission, *ENVELOPE)
    assert "<** 530 5.7.0 Must issue a STARTTLS command first" in plain.stdout
    ehlo = plain.stdout.split(" -> EHLO")[1].split(" -> ")[0]
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert sink.dumps() == []


def test_submission_with_starttls_and_auth_relays(
    submission: tuple[Waypost, SmtpSink, Ports],
) -> None:
    wp, sink, ports = submission
    result = swaks(ports.submission, "--tls", *AUTH, *ENVELOPE, "--header", "Subject: on 587")
    assert result.returncode == 0, result.stdout + result.stderr
    wp.wait_queue_empty()
    (dump,) = sink.messages()
    msg = dump.message()
    assert msg["Subject"] == "on 587"
    (received,) = waypost_received(msg)
    assert " with ESMTPSA " in received, received
    assert PASSWORD not in wp.stderr


def test_submissions_implicit_tls_with_auth(submission: tuple[Waypost, SmtpSink, Ports]) -> None:
    wp, sink, ports = submission
    refused = swaks(ports.submissions, "--tls-on-connect", *ENVELOPE)
    assert "* 530 5.7.0 Authentication required" in refused.stdout
    assert refused.returncode != 0
    result = swaks(
        ports.submissions, "--tls-on-connect", *AUTH, *ENVELOPE, "--header", "Subject: on 465"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "STARTTLS" not in result.stdout.split(" ~> EHLO")[1].split(" ~> ")[0]
    wp.wait_queue_empty()
    (dump,) = sink.messages()
    (received,) = waypost_received(dump.message())
    assert " with ESMTPSA " in received and "TLSv1." in received, received


def test_port_25_policy_is_unchanged(submission: tuple[Waypost, SmtpSink, Ports]) -> None:
    wp, sink, _ = submission
    # relay_networks relays without AUTH, in plaintext, as before.
    result = swaks(wp.port, *ENVELOPE, "--header", "Subject: on 25")
    assert result.returncode == 0, result.stdout + result.stderr
    wp.wait_queue_empty()
    (dump,) = sink.messages()
    (received,) = waypost_received(dump.message())
    assert " with ESMTP " in received, received
