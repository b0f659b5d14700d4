"""Fixtures for the interop tests (the helpers are in interop_helpers.py).

Every test here talks to a real `waypost serve` subprocess over TCP, with the
peers PEERS.md describes (Postfix's smtp-sink and smtp-source, swaks, openssl).
A missing tool skips the test, which WAYPOST_REQUIRE_INTEROP=1 (CI) turns into a
failure. Processes are stopped by their PID, never by name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_helpers import HOSTNAME, SmtpSink, Waypost, require_tool, stop_all


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is an interop test (the modules say so too)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture
def make_waypost(tmp_path: Path) -> Iterator[Callable[..., Waypost]]:
    """`make_waypost(settings=..., routes=..., extra=...)` starts one; all stop at teardown."""
    started: list[Waypost] = []

    def make(**kwargs: Any) -> Waypost:
        wp = Waypost(tmp_path / f"waypost{len(started)}", **kwargs)
        started.append(wp)
        return wp.start()

    yield make
    stop_all(started)


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., SmtpSink]]:
    """`make_sink(*options)` starts an smtp-sink; all are stopped at teardown."""
    sinks: list[SmtpSink] = []

    def make(*options: str) -> SmtpSink:
        sink = SmtpSink(tmp_path / f"sink{len(sinks)}")
        sinks.append(sink)
        return sink.start(*options)

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for CN=mx.test, made by openssl."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOSTNAME}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return cert, key
