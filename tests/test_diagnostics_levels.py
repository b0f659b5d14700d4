"""Diagnostics-logging levels per category, set in the configuration and changed at run
time by a reload, on a real `waypost serve`: at maximum the SMTP protocol trace is
written (without the password of an AUTH command), at none a category's information goes
quiet while the others go on."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port
from serve_process import WAIT, ServeProcess

from waypost.smtp.server_protocol import traced_command


def config(port: int, categories: str) -> str:
    # Right after ServeProcess's [log] table: these keys belong to it.
    return (
        f"categories = {{ {categories} }}\n"
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\n'
        '[local]\ndomains = ["levels.test"]\n'
    )


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[tuple[ServeProcess, int]]:
    port = free_port()
    serve = ServeProcess(tmp_path, config(port, ""))
    serve.start()
    try:
        yield serve, port
    finally:
        serve.stop()


def send(port: int, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.sendmail(f"a{n}@levels.test", [f"b{n}@levels.test"], f"Subject: {n}\r\n\r\nhi\r\n")


def since(serve: ServeProcess, seen: int, name: str) -> list[dict[str, Any]]:
    return [e for e in serve.events()[seen:] if e["name"] == name]


def test_levels_changed_by_a_reload_take_effect_at_once(mta: tuple[ServeProcess, int]) -> None:
    serve, port = mta
    seen = len(serve.events())
    send(port, 1)
    serve.wait_for("delivered", after=seen)
    assert since(serve, seen, "smtp-trace") == []  # info: no trace
    assert since(serve, seen, "message-queued")

    outcome = serve.reload(config(port, 'smtp = "maximum", queue = "none"'))
    assert outcome["name"] == "config-reloaded"
    assert "log.categories" in outcome["fields"]["changed"]
    seen = len(serve.events())
    send(port, 2)
    serve.wait_for("delivered", after=seen)  # the delivery category is still at info
    trace = [
        (e["fields"]["direction"], e["fields"]["line"]) for e in since(serve, seen, "smtp-trace")
    ]
    assert ("<", "mail FROM:<a2@levels.test> size=18") in trace  # as smtplib writes it
    assert ("<", "rcpt TO:<b2@levels.test>") in trace
    assert ("<", "(content, 18 octets)") in trace
    assert (">", "250 2.0.0 Ok: queued as 2") in trace
    assert trace[0] == (">", "220 reload.test ESMTP Waypost")  # the greeting first
    assert since(serve, seen, "message-queued") == []  # queue at none: information dropped

    outcome = serve.reload(config(port, ""))
    assert outcome["name"] == "config-reloaded"
    seen = len(serve.events())
    send(port, 3)
    serve.wait_for("delivered", after=seen)
    assert since(serve, seen, "smtp-trace") == []
    assert since(serve, seen, "message-queued")


def test_a_bad_level_is_refused_with_its_key(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, config(free_port(), 'smtp = "loud"'))
    done = serve.cli("config", "check")
    assert done.returncode == 78
    assert "log.categories" in done.stderr + done.stdout


def test_the_trace_leaves_out_what_authenticates() -> None:
    assert traced_command(b"AUTH PLAIN AGFubgBzZWNyZXQ=") == (
        "AUTH PLAIN (initial response not written)"
    )
    assert traced_command(b"auth login") == "auth login"
    assert traced_command(b"MAIL FROM:<a@b>") == "MAIL FROM:<a@b>"
    assert traced_command(b"NOOP \xff") == "NOOP \\xff"
    assert traced_command(b"X" * 600).endswith("… (600 octets)")
