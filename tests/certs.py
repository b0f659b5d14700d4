"""A self-signed certificate for the TLS tests, made by the openssl command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(directory: Path, common_name: str = "mx.test") -> tuple[Path, Path]:
    """(certificate, key) files in `directory`; skips the test when openssl is missing, and
    fails it in CI (WAYPOST_REQUIRE_INTEROP=1), where a TLS test must never be skipped."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing = "openssl is not installed (scripts/install-system-tools.sh installs it)"
        if os.environ.get("WAYPOST_REQUIRE_INTEROP") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
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
            f"/CN={common_name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
