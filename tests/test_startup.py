"""`waypost serve` that cannot start: it says what and where (the address, the directory),
exits with the documented code, and leaves the pid file as a clean stop does, so that the
next start neither reports an unclean stop nor repairs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port
from test_cli import no_traceback, start_serve, stop, wait_for, waypost


def serve_once(config: Path, cwd: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    """A serve expected to give up at start-up (killed after 60 s if it does not)."""
    return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
        [*prefix, sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )


def write(tmp_path: Path, smtp: str, data_dir: str = "data") -> Path:
    config = tmp_path / "waypost.toml"
    config.write_text(
        f'[server]\nhostname = "mx.test"\ndata_dir = "{data_dir}"\n'
        f"[smtp]\nlisten = [{smtp}]\n[x400]\nlisten = []\n[queue]\npoll_interval = 0.2\n"
    )
    return config


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def assert_starts_cleanly(tmp_path: Path, config: Path, port: int) -> None:
    """The next start: no unclean stop reported, no check run."""
    proc = start_serve(tmp_path, config)
    try:
        wait_for(lambda: listening(port))
        time.sleep(0.5)  # its signal handlers are set just after the listeners start
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert "1000 system: Waypost" in err
    assert "1002" not in err and "did not stop cleanly" not in err, err
    assert "1300 check" not in err, err


def test_a_busy_port_is_named_and_leaves_no_unclean_stop(tmp_path: Path) -> None:
    port = free_port()
    config = write(tmp_path, f'"127.0.0.1:{port}"')
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        result = serve_once(config, tmp_path)
    finally:
        holder.close()
    assert result.returncode == 1, result.stderr
    address = f"127.0.0.1:{port}"
    assert f"CRITICAL 1601 interface: Cannot listen on {address} (smtp)" in result.stderr
    assert f"waypost serve: cannot listen on {address} (smtp): EADDRINUSE" in result.stderr
    assert (tmp_path / "data" / "waypost.pid").read_text() == ""
    no_traceback(result)
    assert_starts_cleanly(tmp_path, config, port)


def test_a_missing_certificate_stops_the_start_before_anything_is_touched(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write(tmp_path, f'"127.0.0.1:{port}"')
    broken = tmp_path / "broken.toml"
    broken.write_text(
        config.read_text().replace("[smtp]\n", '[smtp]\ntls_cert = "gone.pem"\ntls_key = "k.pem"\n')
    )
    result = serve_once(broken, tmp_path)
    assert result.returncode == 78, result.stderr
    assert f"smtp.tls_cert: cannot read {tmp_path / 'gone.pem'}: No such file" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing opened, nothing to repair
    no_traceback(result)
    assert_starts_cleanly(tmp_path, config, port)


def test_a_file_in_place_of_the_data_dir_is_named_with_event_1005_and_exit_76(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").write_text("not a directory\n")
    result = serve_once(write(tmp_path, ""), tmp_path)
    assert result.returncode == 76, result.stderr
    data_dir = tmp_path / "data"
    assert (
        f"CRITICAL 1005 system: Data directory {data_dir} cannot be used: it is not a directory"
        in result.stderr
    )
    assert f"waypost serve: the data directory {data_dir} cannot be used" in result.stderr
    assert "1003" not in result.stderr and "carries on" not in result.stderr
    no_traceback(result)


def test_a_read_only_data_dir_is_named_with_event_1005_and_exit_76(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    config = write(tmp_path, "")
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # Root writes in any directory: make it a read-only mount, as the report had it.
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        prefix = ("unshare", "-m", "sh", "-c", script, str(data_dir))
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"running as root without a mount namespace: {probe.stderr!r}")
        reason = "it is on a read-only file system"
    else:
        data_dir.chmod(0o500)
        reason = f"uid {os.geteuid()} may not write in it"
    try:
        result = serve_once(config, tmp_path, *prefix)
        # Without a mount namespace to run it in, config check says the same beforehand.
        check = None if prefix else waypost("config", "check", str(config), cwd=tmp_path)
    finally:
        data_dir.chmod(0o700)
    assert result.returncode == 76, result.stderr
    assert f"1005 system: Data directory {data_dir} cannot be used: {reason}" in result.stderr
    assert "1003" not in result.stderr and "OSError" not in result.stderr
    no_traceback(result)
    if check is not None:
        assert check.returncode == 78 and reason in check.stderr, check.stderr


def test_a_check_after_an_unclean_stop_that_fails_leaves_the_stop_unclean(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "waypost.pid").write_text("4242\n")  # a run that was killed
    (data_dir / "mta.db").write_bytes(b"not a database, " * 512)
    result = serve_once(write(tmp_path, ""), tmp_path)
    assert result.returncode == 76, result.stderr
    assert "1002 system: The previous run (pid 4242) did not stop cleanly" in result.stderr
    # Nothing was repaired: the next start must check again, not take the stop as clean.
    assert (data_dir / "waypost.pid").read_text().strip() != ""
    no_traceback(result)


def test_check_refuses_to_run_beside_serve_when_the_database_is_elsewhere(
    tmp_path: Path,
) -> None:
    (tmp_path / "db").mkdir()
    port = free_port()
    config = write(tmp_path, f'"127.0.0.1:{port}"')
    config.write_text(config.read_text() + '[store]\npath = "db/mta.db"\n')
    proc = start_serve(tmp_path, config)
    try:
        wait_for(lambda: listening(port))
        check = waypost("check", "-c", str(config), cwd=tmp_path)
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"Waypost (pid {proc.pid}) is running on {tmp_path / 'db' / 'mta.db'}" in check.stderr
