"""`waypost-sendmail -bs`: SMTP on standard input and output (as Postfix's sendmail -bs),
for mail libraries that submit this way; each message goes through the maildrop.

The SMTP dialogue is the server's own sans-I/O machine; only the transport differs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from waypost.config import Config
from waypost.local_submit.dropfile import DropEnvelope
from waypost.smtp.server_events import (
    NEED_DATA,
    ConnectionClosed,
    MailFrom,
    MessageData,
    RcptTo,
    Reset,
)
from waypost.smtp.server_protocol import ServerConnection
from waypost.smtp.server_replies import Reply
from waypost.smtp.server_settings import ServerSettings

Submit = Callable[[DropEnvelope, bytes, Config], None]
CheckRecipient = Callable[[str, Config], str]
TEMPFAIL = 75  # EX_TEMPFAIL, for a failure the error class below cannot say


def converse(config: Config, submit: Submit, check_recipient: CheckRecipient) -> int:
    """Serve one SMTP session on stdin/stdout; 0 once the client quits or the input ends.

    `submit` and `check_recipient` raise an exception with an `exit_code` (sysexits):
    75 becomes a 451 reply (try again), anything else a 550/554."""
    smtp = config.smtp
    conn = ServerConnection(
        ServerSettings(
            hostname=config.server.hostname,
            banner="ESMTP Waypost (sendmail -bs)",
            max_message_size=smtp.max_message_size,
            max_recipients=smtp.max_recipients,
            dsn=False,
            chunking=False,
            tls_available=False,
            auth_mechanisms=(),
        )
    )
    out = sys.stdout.buffer
    out.write(conn.greeting())
    sender = ""
    recipients: list[str] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            out.write(conn.data_to_send())
            out.flush()
            conn.receive_data(os.read(sys.stdin.fileno(), 65536))
        elif isinstance(event, MailFrom):
            sender = str(event.reverse_path) if event.reverse_path is not None else ""
            recipients = []
            conn.accept(event)
        elif isinstance(event, RcptTo):
            try:
                recipients.append(check_recipient(str(event.path), config))
            except Exception as exc:
                conn.reject(event, Reply(550, "5.1.1", _one_line(exc)))
            else:
                conn.accept(event)
        elif isinstance(event, MessageData):
            envelope = DropEnvelope(recipients=recipients, sender=sender)
            try:
                submit(envelope, event.content, config)
            except Exception as exc:
                code = getattr(exc, "exit_code", TEMPFAIL)
                reply = Reply(451, "4.3.0", _one_line(exc)) if code == TEMPFAIL else None
                conn.reject(event, reply or Reply(554, "5.6.0", _one_line(exc)))
            else:
                conn.accept(event, "OK: queued")
        elif isinstance(event, Reset):
            sender, recipients = "", []
        elif isinstance(event, ConnectionClosed):
            out.write(conn.data_to_send())
            out.flush()
            return 0


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return "".join(c for c in text if c.isprintable())[:400] or "refused"
