"""The SMTP server's settings: what it offers and its limits, with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass

from waypost.address import AddressError, parse_domain
from waypost.smtp.server_events import AUTH_MECHANISMS
from waypost.smtp.server_replies import Reply

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """What the server offers and its limits.

    `max_message_size` is 35 MiB: a 25 MiB attachment, which users expect to
    send (Gmail, Outlook), grows to about 34.6 MB in base64 with line breaks.
    `max_command_line` is 2048 (RFC 5321 §4.5.3.1.4 says 512, but ESMTP
    parameters lengthen MAIL/RCPT: ORCPT alone may be 500). `max_errors` and
    `max_commands_before_transaction` are Postfix's smtpd_hard_error_limit and
    smtpd_junk_command_limit; rejected recipients count as errors, as there.
    """

    hostname: str
    banner: str = "ESMTP Waypost"
    max_message_size: int = 35 * MIB
    max_recipients: int = 1000
    max_command_line: int = 2048
    max_errors: int = 20
    max_commands_before_transaction: int = 100
    max_pipelined_bytes: int = 1 * MIB
    pipelining: bool = True
    eight_bit_mime: bool = True
    smtputf8: bool = True
    dsn: bool = True
    chunking: bool = True
    binarymime: bool = False
    tls_available: bool = False
    allow_auth_without_tls: bool = False
    # A submission server (RFC 6409 §4.3): MAIL only after a successful AUTH.
    auth_required: bool = False
    auth_mechanisms: tuple[str, ...] = AUTH_MECHANISMS
    # The domain `RCPT TO:<Postmaster>` (no domain) is delivered at: a local domain; the
    # hostname when empty.
    postmaster_domain: str = ""

    def __post_init__(self) -> None:
        try:
            parse_domain(self.hostname)
        except AddressError as exc:
            raise ValueError(f"hostname: {exc}") from None
        if self.postmaster_domain:
            try:
                parse_domain(self.postmaster_domain)
            except AddressError as exc:
                raise ValueError(f"postmaster_domain: {exc}") from None
        for name in (
            "max_message_size",
            "max_recipients",
            "max_errors",
            "max_commands_before_transaction",
            "max_pipelined_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_command_line < 512:
            raise ValueError("max_command_line must be at least 512 (RFC 5321 §4.5.3.1.4)")
        if unknown := set(self.auth_mechanisms) - set(AUTH_MECHANISMS):
            raise ValueError(f"unsupported AUTH mechanisms {sorted(unknown)}")
        if self.auth_required and not self.auth_mechanisms:
            raise ValueError("auth_required needs at least one AUTH mechanism")
        if "\n" in self.banner:
            raise ValueError("the banner is one line")
        Reply(220, None, f"{self.hostname} {self.banner}")  # no control characters, not too long
