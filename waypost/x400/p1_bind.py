"""X.411 MTA-bind: MTABindArgument, MTABindResult and MTABindError, as typed values.

    MTABindArgument ::= CHOICE { unauthenticated NULL,
        authenticated [1] SET { initiator-name [0] MTAName (IA5String),
            initiator-credentials [1] Credentials, security-context [2] … OPTIONAL } }
    Credentials ::= CHOICE { simple Password, strong [0] …, protected [1] … }
    Password ::= CHOICE { IA5String, OCTET STRING }

MTABindResult has the same shape (responder-name, responder-credentials).
In 1988 normal mode RTSE carries them as `[16]`/`[17]`/`[18]` EXPLICIT;
X.410 mode carries them bare: `wrap`/`unwrap` handle the explicit tags.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from waypost.asn1 import (
    ENUMERATED,
    IA5_STRING,
    INTEGER,
    NULL,
    OCTET_STRING,
    Element,
    constructed,
    context,
    decode,
    encode_int,
    encode_null,
    encode_octets,
    encode_string,
    set_of,
)

AUTHENTICATED = context(1, True)
Input = bytes | bytearray | memoryview

BIND_ARGUMENT_TAG = context(16, True)
BIND_RESULT_TAG = context(17, True)
BIND_ERROR_TAG = context(18, True)


class MTABindError(enum.IntEnum):
    """X.411 MTABindError (ENUMERATED)."""

    BUSY = 0
    AUTHENTICATION_ERROR = 2
    UNACCEPTABLE_DIALOGUE_MODE = 3
    UNACCEPTABLE_SECURITY_CONTEXT = 4
    INADEQUATE_ASSOCIATION_CONFIDENTIALITY = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class MTABind:
    """An MTABindArgument or MTABindResult.

    `name` None is the unauthenticated NULL. `password` is the simple
    credentials (str for IA5String, bytes for OCTET STRING); it is left out of
    repr. `credentials` keeps strong/protected credentials as received;
    `security_context` the encoding of [2], if any.
    """

    name: str | None = None
    password: str | bytes | None = field(default=None, repr=False)
    credentials: bytes | None = field(default=None, repr=False)
    security_context: bytes | None = None

    @property
    def authenticated(self) -> bool:
        """Whether this is the authenticated form (with a name)."""
        return self.name is not None


def decode_bind(data: Input | Element) -> MTABind:
    """A bare MTABindArgument or MTABindResult; raises BERError with a path."""
    element = data if isinstance(data, Element) else decode(data, name="mta-bind")
    element = element.expect(NULL, AUTHENTICATED)
    if element.tag == NULL:
        element.as_null()
        return MTABind()
    name = element.child(context(0), "mta-name").as_string(IA5_STRING)
    credentials = element.child(context(1, True), "credentials")
    security = element.find(context(2, True))
    inner = credentials.child(0, "credentials-choice")
    password: str | bytes | None = None
    raw: bytes | None = None
    if inner.tag == IA5_STRING:
        password = inner.as_string()
    elif inner.tag in (OCTET_STRING, OCTET_STRING.as_constructed()):
        password = inner.as_octets()
    elif inner.tag in (context(0, True), context(1, True)):
        raw = bytes(inner.raw)
    else:
        raise inner.error(f"unexpected {inner.tag} in Credentials")
    if len(credentials) != 1:
        raise credentials.error("Credentials must hold one alternative")
    for item in element:
        if item.tag not in (context(0), context(1, True), context(2, True)):
            raise item.error(f"unexpected {item.tag} in the authenticated bind")
    return MTABind(
        name=name,
        password=password,
        credentials=raw,
        security_context=bytes(security.raw) if security is not None else None,
    )


def encode_bind(bind: MTABind) -> bytes:
    """The bare MTABindArgument/Result."""
    if bind.name is None:
        return encode_null()
    if bind.credentials is not None:
        credentials = bind.credentials
    elif isinstance(bind.password, bytes):
        credentials = encode_octets(bind.password)
    else:
        credentials = encode_string(IA5_STRING, bind.password or "")
    parts = [encode_string(context(0), bind.name, IA5_STRING), constructed(context(1), credentials)]
    if bind.security_context is not None:
        parts.append(bind.security_context)
    return set_of(*parts, tag=AUTHENTICATED)


def decode_bind_error(data: Input | Element) -> MTABindError:
    """A bare MTABindError (ENUMERATED; an INTEGER is accepted too)."""
    element = data if isinstance(data, Element) else decode(data, name="mta-bind-error")
    element = element.expect(ENUMERATED, INTEGER)
    value = element.as_int()
    try:
        return MTABindError(value)
    except ValueError:
        raise element.error(f"unknown MTABindError {value}") from None


def encode_bind_error(error: MTABindError) -> bytes:
    """The bare MTABindError."""
    return encode_int(int(error), ENUMERATED)


def wrap(tag_number: int, bare: bytes) -> bytes:
    """`[16]`/`[17]`/`[18]` EXPLICIT, as RTSE's 1988 normal mode carries the bind."""
    return constructed(context(tag_number, True), bare)


def unwrap(data: Input, tag_number: int) -> Element:
    """The bare value inside an `[n]` EXPLICIT wrapper (raises BERError)."""
    outer = decode(data, name="rtse-user-data").expect(context(tag_number, True))
    if len(outer) != 1:
        raise outer.error("the explicit wrapper must hold exactly one element")
    return outer.child(0, "mta-bind")
