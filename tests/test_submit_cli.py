"""`waypost submit` end to end: where the message comes from, who it goes to, and which MTA
database it lands in, whatever the directory it is run from."""

from __future__ import annotations

from pathlib import Path

from test_cli import MESSAGE, no_traceback, waypost, write_config


def queued_id(result: object) -> str:
    stdout = getattr(result, "stdout", "")
    assert stdout.startswith("queued as "), (stdout, getattr(result, "stderr", ""))
    return str(stdout.split()[2])


def test_the_file_after_to_is_the_message_not_a_recipient(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    message = tmp_path / "msg.txt"
    message.write_bytes(b"Subject: from a file\r\n\r\nThe file's text.\r\n")
    args = ("submit", "-c", str(config), "--from", "alice@example.org")
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
