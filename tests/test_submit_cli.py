"""`waypost submit` end to end: where the message comes from, who it goes to, and which MTA
database it lands in, whatever the directory it is run from."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import MESSAGE, no_traceback, waypost, write_config


def queued_id(result: object) -> str:
    stdout = getattr(result, "stdout", "")
    assert stdout.startswith("queued as "), (stdout, getattr(result, "stderr", ""))
    return str(stdout.split()[2])


def test_the_file_after_to_is_the_message_not_a_recipient(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message = tmp_path / "msg.txt"
    message.write_bytes(b"Subject: from a file\r\n\r\nThe file's text.\r\n")
    args = ("submit", "-c", str(config), "--create", "--from", "alice@example.org")
    from_file = waypost(
        *args, "--to", "bob@localhost", "--to", "carol@localhost", str(message), cwd=tmp_path
    )
    assert from_file.returncode == 0, from_file.stderr
    show = waypost("queue", "show", queued_id(from_file), "-c", str(config), cwd=tmp_path)
    assert "bob@localhost" in show.stdout and "carol@localhost" in show.stdout
    assert "msg.txt" not in show.stdout
    assert "Subject: from a file" in show.stdout

    from_stdin = waypost(*args, "--to", "bob@localhost", "-", stdin=MESSAGE, cwd=tmp_path)
    assert from_stdin.returncode == 0, from_stdin.stderr
    show = waypost("queue", "show", queued_id(from_stdin), "-c", str(config), cwd=tmp_path)
    assert "Subject: hello" in show.stdout and "bob@localhost" in show.stdout
    assert "-" not in [line.strip() for line in show.stdout.splitlines()]

    # An old habit, --to with two addresses, is a usage error, never a recipient named "x.txt".
    two = waypost(*args, "--to", "bob@localhost", "carol@localhost", "x.txt", cwd=tmp_path)
    assert two.returncode == 2 and "unrecognized arguments" in two.stderr
    no_traceback(two)


def run_waypost(
    *args: str, cwd: Path, env: dict[str, str], prefix: tuple[str, ...] = (), stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
        [*prefix, sys.executable, "-m", "waypost.cli.main", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env=env,
    )


def queued_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_submit_from_anywhere_uses_one_data_dir_and_refuses_a_missing_database(
    tmp_path: Path,
) -> None:
    """No configuration file: the embedded defaults' data directory is absolute, the same
    from every working directory, and a first submission must ask for it to be made."""
    env = {k: v for k, v in os.environ.items() if k != "WAYPOST_CONFIG"}
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # Root's default is /var/lib/waypost: the child sees a directory of ours there.
        varlib = tmp_path / "varlib"
        varlib.mkdir()
        prefix = ("unshare", "-m", "sh", "-c", 'mount --bind "$0" /var/lib && exec "$@"')
        prefix += (str(varlib),)
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"running as root without a mount namespace: {probe.stderr!r}")
        shown, data_dir = Path("/var/lib/waypost"), varlib / "waypost"
    else:
        env["XDG_STATE_HOME"] = str(tmp_path / "state")
        shown = data_dir = tmp_path / "state" / "waypost"
    args = ("submit", "--from", "alice@example.org", "--to", "bob@localhost", "-")

    refused = run_waypost(*args, cwd=here, env=env, prefix=prefix, stdin=MESSAGE)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"no MTA database at {shown / 'mta.db'}" in refused.stderr
    assert "--create" in refused.stderr
    no_traceback(refused)
    assert not data_dir.exists()

    created = run_waypost(
        *args[:1], "--create", *args[1:], cwd=here, env=env, prefix=prefix, stdin=MESSAGE
    )
    assert created.returncode == 0, created.stderr
    later = run_waypost(*args, cwd=there, env=env, prefix=prefix, stdin=MESSAGE)
    assert later.returncode == 0, later.stderr
    assert queued_count(data_dir / "mta.db") == 2
    # Nothing was made in either working directory.
    assert list(here.iterdir()) == [] and list(there.iterdir()) == []


def test_a_relative_data_dir_is_the_config_files_whatever_the_working_directory(
    tmp_path: Path,
) -> None:
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    config = write_config(etc)  # data_dir = "data"
    env = {**os.environ, "WAYPOST_CONFIG": "../etc/waypost.toml"}
    args = ("submit", "--from", "alice@example.org", "--to", "bob@localhost")
    refused = run_waypost(*args, cwd=elsewhere, env=env, stdin=MESSAGE)
    assert refused.returncode == 1
    assert f"no MTA database at {etc / 'data' / 'mta.db'}" in refused.stderr
    assert str(config) in refused.stderr or "../etc/waypost.toml" in refused.stderr
    made = run_waypost(*args, "--create", cwd=elsewhere, env=env, stdin=MESSAGE)
    assert made.returncode == 0, made.stderr
    assert queued_count(etc / "data" / "mta.db") == 1
    assert list(elsewhere.iterdir()) == []


def test_submit_across_the_gateway_routes_to_it_both_ways(tmp_path: Path) -> None:
    from test_cli import write_mixer_config  # noqa: PLC0415

    config = write_mixer_config(tmp_path)
    smith = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Smith/G=Jo/"
    mail = waypost(
        "submit",
        "-c",
        str(config),
        "--create",
        "--from",
        "bob@remote.example",
        "--to",
        smith,
        "-",
        stdin=MESSAGE,
        cwd=tmp_path,
    )
    assert mail.returncode == 0, mail.stderr
    show = waypost("queue", "show", queued_id(mail), "-c", str(config), cwd=tmp_path)
    # An RFC 5322 message for an O/R address is converted by the gateway on the way.
    assert "gateway:mixer" in show.stdout and smith in show.stdout

    ipm = waypost(
        "submit",
        "-c",
        str(config),
        "--from",
        smith,
        "--to",
        "bob@remote.example",
        "--subject",
        "to the mail side",
        "-",
        stdin=b"Hello Bob\n",
        cwd=tmp_path,
    )
    assert ipm.returncode == 0, ipm.stderr
    show = waypost("queue", "show", queued_id(ipm), "-c", str(config), cwd=tmp_path)
    assert "gateway:mixer" in show.stdout and "bob@remote.example" in show.stdout
    assert "to the mail side" in show.stdout

    plain = write_config(tmp_path / "plain" if (tmp_path / "plain").mkdir() is None else tmp_path)
    refused = waypost(
        "submit",
        "-c",
        str(plain),
        "--create",
        "--from",
        smith,
        "--to",
        "bob@localhost",
        "-",
        stdin=b"Hello\n",
        cwd=tmp_path,
    )
    assert refused.returncode != 0 and "[mixer] enabled = true" in refused.stderr
    no_traceback(refused)
