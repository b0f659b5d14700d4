"""What `queue show` and `mailbox show` print of fields a peer wrote: control characters
escaped, so a message cannot drive the operator's terminal."""

from __future__ import annotations

import pytest

from waypost.cli.content_view import print_summary, shown


def test_control_characters_are_escaped_and_the_rest_kept() -> None:
    assert shown("a\x1b[2Jb\rc\td") == "a\\x1b[2Jb\\rc\\td"
    assert shown("Grüße, 東京 (ok) @<>") == "Grüße, 東京 (ok) @<>"


def test_an_internet_messages_headers_are_shown_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary("internet", b"Subject: hi\x1b]0;owned\x07 there\r\nFrom: a@b\r\n\r\nbody\r\n")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "Subject: hi\\x1b]0;owned\\x07 there" in out
