"""The systemd unit in packaging/: `systemd-analyze verify` and its security review accept
it, and its commands run `waypost serve` as systemd would, telling READY=1, RELOADING=1 …
READY=1 and STOPPING=1 over $NOTIFY_SOCKET (sd_notify)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from serve_process import ServeProcess

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "waypost.service"
CONFIG = ROOT / "packaging" / "waypost.toml"
LOGROTATE = ROOT / "packaging" / "logrotate" / "waypost"
INSTALLED = "/opt/waypost/bin/waypost"  # where docs/operations.md installs the command
WAIT = 30.0


def unit_settings() -> dict[str, list[str]]:
    """Each `Key=value` of the unit, every value of a key repeated."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return tool


@pytest.fixture
def unit_with_stub(tmp_path: Path) -> Path:
    """The unit as installed, its command a stub: verify checks the binary exists."""
    stub = tmp_path / "waypost"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "waypost.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(stub)))
    return unit


@pytest.mark.interop
def test_systemd_analyze_verify_accepts_the_unit(unit_with_stub: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit_with_stub)],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # not even a warning


@pytest.mark.interop
def test_the_unit_is_hardened(unit_with_stub: Path) -> None:
    """systemd's own security review rates the unit's exposure "OK" (under 2 of 10)."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(unit_with_stub)],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) < 2.0, result.stdout


def test_the_unit_asks_for_what_the_issue_and_the_docs_say() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["waypost"]
    assert unit["StateDirectory"] == ["waypost"]
    assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert unit[hardening] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    # The directories of the example configuration are the ones the unit creates.
    config = CONFIG.read_text()
    assert 'data_dir = "/var/lib/waypost"' in config
    assert 'json_file = "/var/log/waypost/events.json"' in config
    assert unit["LogsDirectory"] == ["waypost"]
    assert "/var/log/waypost/" in LOGROTATE.read_text()


# ------------------------------------------------------------------ sd_notify, for real


class NotifySocket:
    """The service manager's end of $NOTIFY_SOCKET: a unix datagram socket we bind."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.sock.settimeout(WAIT)
        self.address = address

    def next(self) -> dict[str, str]:
        """The next datagram, as its KEY=value lines."""
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            raise AssertionError("no notification from waypost serve") from None
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit sun_path (108 octets), unlike pytest's tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="wp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def installed_config(directory: Path) -> tuple[Path, int, int]:
    """packaging/waypost.toml with its directories under `directory` and loopback ports."""
    smtp, x400 = free_port(), free_port()
    text = (
        CONFIG.read_text()
        .replace("/var/lib/waypost", str(directory / "data"))
        .replace("/var/log/waypost", str(directory / "log"))
        .replace("0.0.0.0:25", f"127.0.0.1:{smtp}")
        .replace("0.0.0.0:102", f"127.0.0.1:{x400}")
    )
    path = directory / "waypost.toml"
    path.write_text(text)
    return path, smtp, x400


def command(line: str, **values: str) -> list[str]:
    """A unit's command line as this test runs it: the installed `waypost` is this
    checkout's, and $NAME is substituted as systemd does."""
    words = shlex.split(line)
    for name, value in values.items():
        words = [word.replace(f"${name}", value) for word in words]
    if words[0] == INSTALLED:
        words[:1] = [sys.executable, "-m", "waypost.cli.main"]
    return words


def test_the_units_commands_and_sd_notify(short_dir: Path) -> None:
    unit = unit_settings()
    config, smtp_port, _ = installed_config(short_dir)
    (environment,) = unit["Environment"]
    name, _, _ = environment.partition("=")
    assert name == "WAYPOST_CONFIG"
    notify = NotifySocket(str(short_dir / "notify"))
    env = {**os.environ, "WAYPOST_CONFIG": str(config), "NOTIFY_SOCKET": notify.address}
    try:
        (start,) = unit["ExecStart"]
        proc = subprocess.Popen(command(start), env=env, stderr=subprocess.PIPE)
        try:
            ready = notify.next()
            assert ready["READY"] == "1"
            assert "STATUS" in ready
            with socket.create_connection(("127.0.0.1", smtp_port), timeout=WAIT) as client:
                assert client.recv(512).startswith(b"220 ")  # READY=1 came once it listened

            (reload,) = unit["ExecReload"]
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            subprocess.run(command(reload, MAINPID=str(proc.pid)), check=True, timeout=WAIT)
            reloading = notify.next()
            assert reloading["RELOADING"] == "1"
            assert int(reloading["MONOTONIC_USEC"]) >= before
            assert notify.next()["READY"] == "1"

            proc.send_signal(signal.SIGTERM)  # the unit's KillSignal
            assert unit["KillSignal"] == ["SIGTERM"]
            assert notify.next()["STOPPING"] == "1"
            assert proc.wait(timeout=WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
        log = (short_dir / "log" / "events.json").read_text()
        assert '"name": "config-reloaded"' in log, err.decode()
    finally:
        notify.close()


def test_sd_notify_to_an_abstract_socket(short_dir: Path) -> None:
    """$NOTIFY_SOCKET starting with @ names an abstract socket (sd_notify(3))."""
    config, _, _ = installed_config(short_dir)
    notify = NotifySocket(f"@waypost-test-{os.getpid()}-{short_dir.name}")
    env = {**os.environ, "NOTIFY_SOCKET": notify.address}
    serve = [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)]
    proc = subprocess.Popen(serve, env=env, stderr=subprocess.DEVNULL)
    try:
        assert notify.next()["READY"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert notify.next()["STOPPING"] == "1"
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


# ------------------------------------------------------------------ logrotate, for real


@pytest.mark.interop
def test_logrotate_example_rotates_and_waypost_writes_to_the_new_file(tmp_path: Path) -> None:
    tool = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(tool):
        pytest.skip("logrotate not installed")
    serve = ServeProcess(tmp_path, "[smtp]\nlisten = []\n[x400]\nlisten = []\n")
    serve.start()
    try:
        # The example as installed, its paths under tmp_path; `waypost reload` stands in for
        # systemctl (docs/operations.md gives both).
        reload = f"{shlex.quote(sys.executable)} -m waypost.cli.main reload -c {serve.config}"
        text = (
            LOGROTATE.read_text()
            .replace("/var/log/waypost/", f"{serve.log.parent}/")
            .replace("systemctl reload waypost.service", reload)
        )
        text = "\n".join(line for line in text.splitlines() if " su " not in f" {line} ")
        conf = tmp_path / "logrotate.conf"
        conf.write_text(text + "\n")
        before = len(serve.events())
        result = subprocess.run(
            [tool, "--force", "--state", str(tmp_path / "state"), str(conf)],
            check=False,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert result.returncode == 0, result.stderr
        rotated = serve.log.with_name(serve.log.name + ".1")
        serve.wait_for("config-reloaded")  # in the new file
        assert serve.events()[0]["name"] == "log-reopened"
        assert len(serve.events(rotated)) == before
    finally:
        assert serve.stop() == 0
