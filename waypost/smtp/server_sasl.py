"""The SMTP AUTH exchange (RFC 4954) for PLAIN (RFC 4616) and LOGIN: challenges out,
credentials in. The application checks the credentials."""

from __future__ import annotations

import binascii

from waypost.smtp import server_replies as replies
from waypost.smtp.server_events import AuthRequest
from waypost.smtp.server_parse import CommandError
from waypost.smtp.server_replies import Reply

_PLAIN_CHALLENGE = Reply(334, None, "")
_LOGIN_USER = Reply(334, None, "VXNlcm5hbWU6")  # base64 "Username:"
_LOGIN_PASSWORD = Reply(334, None, "UGFzc3dvcmQ6")  # base64 "Password:"


class SaslExchange:
    """One AUTH exchange. `start` and `respond` return the next 334 challenge or, once
    the credentials are complete, an AuthRequest; a failure raises CommandError."""

    def __init__(self, mechanism: str) -> None:
        if mechanism not in ("PLAIN", "LOGIN"):
            raise ValueError(f"unsupported mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._user: str | None = None

    def start(self, initial: str | None) -> Reply | AuthRequest:
        """AUTH's initial response (`=` is an empty one), if any."""
        if initial is None:
            return _PLAIN_CHALLENGE if self.mechanism == "PLAIN" else _LOGIN_USER
        return self._step(b"" if initial == "=" else decode_base64(initial))

    def respond(self, line: bytes) -> Reply | AuthRequest:
        """The client's response line, without its CRLF."""
        if line == b"*":
            raise CommandError(replies.AUTH_CANCELLED)  # RFC 4954 §4: the client gave up
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise CommandError(replies.AUTH_BAD_RESPONSE) from None
        return self._step(decode_base64(text))

    def _step(self, response: bytes) -> Reply | AuthRequest:
        if self.mechanism == "PLAIN":
            user, password = parse_plain(response)
            return AuthRequest(mechanism="PLAIN", username=user, password=password)
        if self._user is None:
            self._user = decode_sasl_text(response)
            return _LOGIN_PASSWORD
        password = decode_sasl_text(response)
        return AuthRequest(mechanism="LOGIN", username=self._user, password=password)


def decode_base64(text: str) -> bytes:
    """Strict base64 of a SASL response."""
    if not text.isascii():
        raise CommandError(replies.AUTH_BAD_RESPONSE)
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except binascii.Error:
        raise CommandError(replies.AUTH_BAD_RESPONSE) from None


def decode_sasl_text(raw: bytes) -> str:
    """A user name or password: UTF-8 (RFC 4616), no NUL."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(replies.AUTH_BAD_RESPONSE) from None
    if "\0" in text:
        raise CommandError(replies.AUTH_BAD_RESPONSE)
    return text


def parse_plain(raw: bytes) -> tuple[str, str]:
    """RFC 4616 `authzid NUL authcid NUL passwd` → (username, password).

    An authorisation identity other than the user's own would let one user act
    as another; Waypost does not support that, so it is refused.
    """
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise CommandError(replies.AUTH_BAD_RESPONSE)
    authzid, user, password = (decode_sasl_text(p) for p in parts)
    if authzid and authzid != user:
        raise CommandError(replies.AUTH_FAILED)
    return user, password
