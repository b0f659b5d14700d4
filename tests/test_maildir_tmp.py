"""Files a crash left in Maildir tmp/ directories are removed at start once 36 hours old."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from helpers import running_service

from waypost import events
from waypost.delivery.maildir import MaildirStore


def _file(path: Path, age_hours: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"Subject: half a mess")
    then = time.time() - age_hours * 3600
    os.utime(path, (then, then))
    return path


def test_old_tmp_files_go_recent_ones_and_delivered_mail_stay(tmp_path: Path) -> None:
    root = tmp_path / "maildir"
    crashed = [
        _file(root / "bob" / "tmp" / "1.M1P1Q1.host", 37),
        _file(root / "carol" / "tmp" / "x", 100),
    ]
    in_progress = _file(root / "bob" / "tmp" / "2.M2P2Q2.host", 35)
    delivered = _file(root / "bob" / "new" / "3.M3P3Q3.host", 1000)
    (root / "bob" / "tmp" / "a-directory").mkdir()
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        store = MaildirStore(root)
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())
    assert [p.exists() for p in crashed] == [False, False]
    assert in_progress.exists() and delivered.exists()
    assert (root / "bob" / "tmp" / "a-directory").is_dir()
    (line,) = [x for x in terminal.getvalue().splitlines() if " 1510 delivery: " in x]
    assert f"Removed 2 files left in the tmp/ directories under {root}" in line
    # Nothing left to remove: a second look finds nothing and says nothing.
    assert store.remove_stale_tmp_files() == 0


def test_a_missing_maildir_root_is_not_an_error(tmp_path: Path) -> None:
    assert MaildirStore(tmp_path / "nowhere").remove_stale_tmp_files() == 0


async def test_the_service_cleans_both_stores_at_start(tmp_path: Path) -> None:
    left = [
        _file(tmp_path / "w" / "maildir" / "bob" / "tmp" / "1.M1P1Q1.host", 48),
        _file(tmp_path / "x400-store" / "Smith.0123456789ab" / "tmp" / "1.M1P1Q1.host.p1", 48),
    ]
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        svc = await running_service(
            tmp_path,
            f'[server]\ndata_dir = "{tmp_path / "w"}"\n'
            f'[local]\nx400_store = "{tmp_path / "x400-store"}"\n'
            "[x400]\nlisten = []\n[smtp]\nlisten = []\n",
            listen=False,
            background=False,
        )
        await svc.stop()
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())
    assert [p.exists() for p in left] == [False, False]
    assert len([x for x in terminal.getvalue().splitlines() if " 1510 delivery: " in x]) == 2
