"""The SMTP server's session phases and the table of which command is allowed in which.

Everything about command sequencing lives here (h11's `_state.py`); the
connection asks `refusal(phase, verb)` before it runs a command, and
`next_phase(phase, transition)` once a command has had its effect.
"""

from __future__ import annotations

import enum

from waypost.smtp import server_replies as replies
from waypost.smtp.server_replies import Reply


class Phase(enum.Enum):
    """Where the session is, as far as command sequencing is concerned."""

    INITIAL = "initial"  # no HELO/EHLO yet, or since STARTTLS
    READY = "ready"  # greeted, no mail transaction
    MAIL = "mail"  # sender accepted, no recipient accepted yet
    RCPT = "rcpt"  # at least one recipient accepted
    CHUNKING = "chunking"  # BDAT chunks taken, LAST not yet seen


class Verb(enum.Enum):
    """The commands the server implements (others are 500 or 502 in every phase)."""

    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    BDAT = "BDAT"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    VRFY = "VRFY"
    HELP = "HELP"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"


class Transition(enum.Enum):
    """What moves the session from one phase to another."""

    HELLO = "hello"  # HELO/EHLO answered: implies RSET
    MAIL_ACCEPTED = "mail accepted"
    RCPT_ACCEPTED = "rcpt accepted"
    CHUNK_TAKEN = "chunk taken"  # a BDAT chunk without LAST, even one that failed
    MESSAGE_DONE = "message done"  # end of DATA or BDAT LAST, whatever the reply
    RESET = "reset"
    TLS_STARTED = "tls started"


_OK = None  # allowed
_PHASES = tuple(Phase)
_HELLO = replies.SEND_HELLO_FIRST
_EHLO = replies.SEND_EHLO_FIRST
_NEED_MAIL = replies.NEED_MAIL
_NESTED = replies.NESTED_MAIL
_NO_RCPT = replies.NO_VALID_RECIPIENTS
_IN_TX = replies.IN_TRANSACTION
# One row per verb; columns INITIAL, READY, MAIL, RCPT, CHUNKING (Phase order).
_ROWS: dict[Verb, tuple[Reply | None, ...]] = {
    Verb.MAIL: (_HELLO, _OK, _NESTED, _NESTED, _NESTED),
    Verb.RCPT: (_HELLO, _NEED_MAIL, _OK, _OK, replies.RCPT_AFTER_BDAT),
    Verb.DATA: (_HELLO, _NEED_MAIL, _NO_RCPT, _OK, replies.DATA_AFTER_BDAT),
    # A refused BDAT still has its chunk read and thrown away.
    Verb.BDAT: (_HELLO, _NEED_MAIL, _NO_RCPT, _OK, _OK),
    Verb.STARTTLS: (_EHLO, _OK, _IN_TX, _IN_TX, _IN_TX),
    Verb.AUTH: (_EHLO, _OK, _IN_TX, _IN_TX, _IN_TX),
    **{
        verb: (_OK,) * len(_PHASES)
        for verb in (Verb.HELO, Verb.EHLO, Verb.RSET, Verb.NOOP, Verb.QUIT, Verb.VRFY, Verb.HELP)
    },
}

SEQUENCE: dict[tuple[Phase, Verb], Reply | None] = {
    (phase, verb): row[i] for verb, row in _ROWS.items() for i, phase in enumerate(_PHASES)
}
"""(phase, verb) → None if the verb may run, else the 503/554 reply that refuses it."""

TRANSITIONS: dict[tuple[Phase, Transition], Phase] = {
    **{(phase, Transition.HELLO): Phase.READY for phase in Phase},
    **{(phase, Transition.RESET): Phase.READY for phase in Phase if phase is not Phase.INITIAL},
    (Phase.INITIAL, Transition.RESET): Phase.INITIAL,
    (Phase.READY, Transition.MAIL_ACCEPTED): Phase.MAIL,
    (Phase.MAIL, Transition.RCPT_ACCEPTED): Phase.RCPT,
    (Phase.RCPT, Transition.RCPT_ACCEPTED): Phase.RCPT,
    (Phase.RCPT, Transition.CHUNK_TAKEN): Phase.CHUNKING,
    (Phase.CHUNKING, Transition.CHUNK_TAKEN): Phase.CHUNKING,
    (Phase.RCPT, Transition.MESSAGE_DONE): Phase.READY,
    (Phase.CHUNKING, Transition.MESSAGE_DONE): Phase.READY,
    (Phase.READY, Transition.TLS_STARTED): Phase.INITIAL,
}
"""(phase, transition) → the next phase. A missing pair is a bug in the machine."""


def refusal(phase: Phase, verb: Verb) -> Reply | None:
    """The reply refusing `verb` in `phase`, or None when it may run."""
    return SEQUENCE[(phase, verb)]


def next_phase(phase: Phase, transition: Transition) -> Phase:
    """The phase after `transition`; KeyError for an impossible pair (a bug, not the peer)."""
    return TRANSITIONS[(phase, transition)]
