"""What the SMTP server answers: the `Reply` value and the catalogue of replies it uses.

Every protocol-level reply the state machine sends is named here, so the codes
can be read (and reviewed) as one table; the application reuses them too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF. Held strictly for
# what we send; the client reads servers' replies with a wider bound (MAX_RECEIVED_LINE in
# waypost.smtp.client_wire), as §4.5.3.1 asks of a receiver.
MAX_REPLY_LINE = 512


@dataclass(frozen=True, slots=True)
class Reply:
    """One server reply: `Reply(550, "5.1.1", "no such user")`.

    `status` is the RFC 3463 enhanced status code; it must be of the reply's
    own class, and is left out only for replies that carry none (the greeting,
    EHLO/HELO, 334 and 354). A `text` with newlines becomes a multi-line reply;
    it may not contain CR or other control characters.
    """

    code: int
    status: str | None
    text: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code} out of range")
        if self.status is not None:
            if not _STATUS.fullmatch(self.status):
                raise ValueError(f"bad enhanced status code {self.status!r}")
            if self.status[0] != str(self.code)[0]:
                raise ValueError(f"status {self.status} is not of the class of {self.code}")
        for line in self.text.split("\n"):
            if any(ord(c) < 32 or ord(c) == 127 for c in line):
                raise ValueError("reply text contains a control character")
            prefix = 4 + (len(self.status) + 1 if self.status else 0)
            if prefix + len(line.encode()) + 2 > MAX_REPLY_LINE:
                raise ValueError("reply line longer than 512 octets")

    def with_text(self, text: str | None) -> Reply:
        """The same code and status with another text (None keeps this one)."""
        return self if text is None else Reply(self.code, self.status, text)

    def to_bytes(self) -> bytes:
        """`NNN-status text` lines and a final `NNN status text`, each with CRLF."""
        lines = self.text.split("\n")
        prefix = f"{self.status} " if self.status else ""
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode()

    def __str__(self) -> str:
        return self.to_bytes().decode().rstrip("\r\n")


# Successes.
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
MESSAGE_OK = Reply(250, "2.0.0", "OK: message accepted")
CLOSING = Reply(221, "2.0.0", "Bye")
HELP = Reply(214, "2.0.0", "See RFC 5321; commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT")
CANNOT_VRFY = Reply(252, "2.1.5", "Cannot VRFY user, but will accept message and attempt delivery")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")

# Syntax (500/501/555) and sequence (503) errors, answered by the machine itself.
BAD_SYNTAX = Reply(500, "5.5.2", "Syntax error")
BAD_LINE_ENDING = Reply(500, "5.5.2", "Syntax error: a command line must end with CRLF")
BAD_ENCODING = Reply(500, "5.5.2", "Syntax error: command is not valid UTF-8 text")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
NO_ARGUMENTS = Reply(501, "5.5.4", "Syntax error: no arguments allowed")
HELO_SYNTAX = Reply(501, "5.5.4", "Syntax: EHLO hostname")
HELO_BAD_NAME = Reply(501, "5.5.2", "Invalid hostname")
MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
VRFY_SYNTAX = Reply(501, "5.5.4", "Syntax: VRFY address")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_PARAMETER = Reply(501, "5.5.4", "Invalid parameter")
UNKNOWN_PARAMETER = Reply(555, "5.5.4", "Parameter not recognized or not implemented")
NON_ASCII_ADDRESS = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
SEND_HELLO_FIRST = Reply(503, "5.5.1", "Send HELO/EHLO first")
SEND_EHLO_FIRST = Reply(503, "5.5.1", "Send EHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
DATA_AFTER_BDAT = Reply(503, "5.5.1", "DATA is not allowed after BDAT")
RCPT_AFTER_BDAT = Reply(503, "5.5.1", "RCPT is not allowed after BDAT")
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
IN_TRANSACTION = Reply(503, "5.5.1", "Not permitted during a mail transaction")
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
NO_SERVICE = Reply(503, "5.5.1", "No SMTP service here")

# Limits.
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
BARE_LINE_ENDING = Reply(550, "5.6.11", "bare CR or LF in message data (SMTP smuggling defence)")

# AUTH (RFC 4954).
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_NEEDS_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
AUTH_UNKNOWN_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
AUTH_BAD_RESPONSE = Reply(501, "5.5.2", "Cannot decode authentication response")
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6", "Authentication exchange line is too long")
# RFC 4954 §6: a server that requires AUTH answers MAIL with 530 5.7.0 until it is done;
# a submission server (RFC 6409 §4.3) whose AUTH needs TLS says so first (RFC 3207 §4).
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")

# The connection ends after these.
# RFC 5321 §3.8: 421 when the service must close, to a new connection or in a session.
SERVICE_UNAVAILABLE = Reply(421, "4.7.0", "Service not available, closing transmission channel")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
TOO_SLOW = Reply(421, "4.4.2", "Message transfer too slow, closing connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TOO_MANY_COMMANDS = Reply(421, "4.7.0", "Too many commands without a mail transaction, closing")
PIPELINE_OVERFLOW = Reply(421, "4.7.0", "Too much pipelined input, closing connection")
NOT_SMTP = Reply(421, "4.7.0", "Not an SMTP client, closing connection")
LOST_SYNC = Reply(421, "4.5.0", "Cannot find the end of the BDAT chunk, closing connection")

# For the application's decisions.
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, please try again later")
RECIPIENT_UNKNOWN = Reply(550, "5.1.1", "Recipient address rejected: unknown user")
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
