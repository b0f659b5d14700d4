"""`waypost config check` finds everything `waypost serve` refuses to start on — the files
the configuration names, AUTH without TLS, the data directory — all at once, from -c,
$WAYPOST_CONFIG or a file given, and `serve` refuses the same with the same words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import no_traceback

from waypost.smtp.auth import hash_password


def waypost(
    *args: str, cwd: Path, config_env: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
        [sys.executable, "-m", "waypost.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "WAYPOST_CONFIG": config_env},
        stdin=subprocess.DEVNULL,
    )


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/install-system-tools.sh installs it)")
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}.test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


BASE = '[smtp]\nlisten = []\n[x400]\nlisten = []\n[server]\ndata_dir = "data"\n'


@pytest.mark.interop
def test_check_reports_what_serve_refuses_all_at_once(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    make_cert(etc, "a")
    make_cert(etc, "b")
    (etc / "users").write_text("alice:not-a-hash\n")
    (tmp_path / "var").write_text("a file where a directory belongs\n")
    config = etc / "waypost.toml"
    # Relative paths are the file's: run from elsewhere, they still name etc/….
    config.write_text(
        '[server]\ndata_dir = "../var/waypost"\n'
        '[smtp]\nlisten = []\ntls_cert = "a-cert.pem"\ntls_key = "b-key.pem"\n'
        'auth_users = "users"\nmax_errors = 0\n'
        '[x400]\nlisten = []\nglobal_domain = "/C=GB/PRMD=Acme/"\n'
        '[[x400.peer]]\naddress = "127.0.0.1:102"\n'  # no name: the whole array is dropped…
        '[[x400.peer]]\nname = "B-MTA"\naddress = "nowhere"\n'  # …yet this one is checked
    )
    result = waypost("config", "check", str(config), cwd=tmp_path)
    assert result.returncode == 78, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"{config}: server.data_dir: {tmp_path / 'var' / 'waypost'} cannot be used: it cannot be "
        f"made: {tmp_path / 'var'} is not a directory",
        f"{config}: smtp.max_errors: must be from 1 to 100000, not 0",
        f"{config}: smtp.tls_key: {etc / 'b-key.pem'} is not the private key of the "
        f"certificate in {etc / 'a-cert.pem'}",
        f"{config}: smtp.auth_users: {etc / 'users'}:1: bad hash for 'alice': "
        "not enough values to unpack (expected 6, got 1)",
        f"{config}: x400.global_domain: names no ADMD: write /C=../ADMD=../[PRMD=../], with "
        "ADMD= (a space) for a blank one",
        f"{config}: x400.peer[0].name: required key is missing",
        f"{config}: x400.peer[1].address: 'nowhere' is not host:port",
    ]
    # serve refuses on the same problems, each an event 1100, and starts nothing.
    (tmp_path / "var").unlink()
    served = waypost("serve", "-c", str(config), cwd=tmp_path)
    assert served.returncode == 78, served.stderr
    for line in lines[1:]:
        assert f"ERROR 1100 config: Configuration {line}" in served.stderr, served.stderr
    assert "not started: 6 problems in the configuration" in served.stderr
    assert not (tmp_path / "var").exists()
    no_traceback(result)
    no_traceback(served)


@pytest.mark.interop
def test_each_file_serve_would_refuse_is_named_by_its_key(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "a")
    encrypted = tmp_path / "encrypted-key.pem"
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(key),
            "-aes128",
            "-passout",
            "pass:x",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
    )
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret')}\n")
    cases = {
        "missing-cert": (
            f'tls_cert = "nope.pem"\ntls_key = "{key}"\n',
            "smtp.tls_cert",
            "cannot read",
        ),
        "missing-key": (
            f'tls_cert = "{cert}"\ntls_key = "nope.pem"\n',
            "smtp.tls_key",
            "cannot read",
        ),
        "key-as-cert": (
            f'tls_cert = "{key}"\ntls_key = "{key}"\n',
            "smtp.tls_cert",
            "no PEM certificate",
        ),
        "cert-as-key": (
            f'tls_cert = "{cert}"\ntls_key = "{cert}"\n',
            "smtp.tls_key",
            "no PEM private key",
        ),
        "encrypted-key": (
            f'tls_cert = "{cert}"\ntls_key = "{encrypted}"\n',
            "smtp.tls_key",
            "is encrypted",
        ),
        "auth-without-tls": (f'auth_users = "{users}"\n', "smtp.auth_users", "over TLS only"),
        "missing-users": (
            f'tls_cert = "{cert}"\ntls_key = "{key}"\nauth_users = "nobody"\n',
            "smtp.auth_users",
            "cannot read",
        ),
    }
    for name, (smtp, key_name, reason) in cases.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(BASE.replace("[smtp]\n", f"[smtp]\n{smtp}"))
        result = waypost("config", "check", str(config), cwd=tmp_path)
        assert result.returncode == 78, (name, result.stdout, result.stderr)
        assert f"{config}: {key_name}: " in result.stderr and reason in result.stderr, (
            name,
            result.stderr,
        )
        no_traceback(result)
    good = tmp_path / "good.toml"
    good.write_text(
        BASE.replace(
            "[smtp]\n", f'[smtp]\ntls_cert = "{cert}"\ntls_key = "{key}"\nauth_users = "users"\n'
        )
    )
    result = waypost("config", "check", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{good}: OK (data directory {tmp_path / 'data'})\n"


def test_check_takes_c_and_waypost_config_and_the_defaults(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[queue]\nmin_backof = 3\n")
    good = tmp_path / "good.toml"
    good.write_text(BASE)
    by_option = waypost("config", "check", "-c", str(bad), cwd=tmp_path)
    assert by_option.returncode == 78 and "queue.min_backof" in by_option.stderr
    by_env = waypost("config", "check", cwd=tmp_path, config_env=str(bad))
    assert by_env.returncode == 78 and "queue.min_backof" in by_env.stderr
    # A file given beats $WAYPOST_CONFIG, as -c does for every command.
    given = waypost("config", "check", str(good), cwd=tmp_path, config_env=str(bad))
    assert given.returncode == 0 and given.stdout.startswith(f"{good}: OK"), given.stderr
    given = waypost("config", "check", "-c", str(good), cwd=tmp_path, config_env=str(bad))
    assert given.returncode == 0, given.stderr
    missing = waypost("config", "check", "-c", str(tmp_path / "none.toml"), cwd=tmp_path)
    assert missing.returncode == 78 and "none.toml: cannot read" in missing.stderr
    for result in (by_option, by_env, missing):
        no_traceback(result)
