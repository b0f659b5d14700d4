"""A whole interpersonal message (X.420 §7: heading and body) ⇄ its BER, as P22 (content
type 22, X.420 1988 and later) or P2 (content type 2, X.420 1984)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from waypost.asn1 import SEQUENCE, BERError, Element, constructed, context, decode
from waypost.x400.ipm_bodies import BodyPart, GeneralText, MessagePart
from waypost.x400.ipm_bodies_ber import (
    UnsupportedBodyPartError,
    encode_body,
    is_basic,
    read_body_part,
)
from waypost.x400.ipm_heading import IPMHeading, ORDescriptor
from waypost.x400.ipm_heading_ber import (
    IPM_HEADINGS,
    IPMContentError,
    encode_heading,
    heading_extensions,
    read_heading,
)

# X.420 §7: InformationObject ::= CHOICE { ipm [0] IPM, ipn [1] IPN }.
IPM_TAG = context(0, True)
IPN_TAG = context(1, True)

__all__ = [
    "IPMContentError",
    "InterpersonalMessage",
    "NotAnIPMError",
    "P2Error",
    "decode_ipm",
    "encode_ipm",
    "p2_obstacles",
]


class NotAnIPMError(ValueError):
    """The content is an IPN (X.420 §8, InformationObject [1]), not an IPM."""


class P2Error(IPMContentError):
    """An IPM that P2 (X.420 1984) cannot carry; `field` names what is in the way."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InterpersonalMessage:
    """X.420 §7 IPM ::= SEQUENCE { heading Heading, body Body }."""

    heading: IPMHeading
    body: tuple[BodyPart, ...] = ()


def encode_ipm(ipm: InterpersonalMessage, *, p2: bool = False) -> bytes:
    """The content octets of an IPM (InformationObject ipm [0]). With `p2`, what P2 cannot
    carry (see p2_obstacles) raises P2Error; raises IPMContentError for a field X.420
    does not allow, UnsupportedBodyPartError for a body part with no encoding."""
    if p2:
        obstacles = p2_obstacles(ipm)
        if obstacles:
            field, reason = obstacles[0]
            raise P2Error(field, reason)
    heading = encode_heading(ipm.heading)
    try:
        body = encode_body(ipm.body, IPM_HEADINGS)
    except UnicodeEncodeError as error:
        raise IPMContentError("body", str(error)) from None
    return constructed(IPM_TAG, heading, body)


def p2_obstacles(ipm: InterpersonalMessage, where: str = "") -> list[tuple[str, str]]:
    """What keeps `ipm` from P2, as (field, reason): X.420 (1984) has no heading extensions
    ([15], X.420 (1988) §7.2.17) and no extended body parts ([15], §7.4), nor the
    recipient extensions and notification bits later editions added (§7.2.4).
    Forwarded IPMs (message body parts, §7.4.11) are looked into as well."""
    found: list[tuple[str, str]] = []
    heading = ipm.heading
    for extension in heading_extensions(heading):
        found.append((f"{where}heading.extensions", f"heading extension {extension.type}"))
    for name in ("primary_recipients", "copy_recipients", "blind_copy_recipients"):
        recipients: tuple[ORDescriptor, ...] = getattr(heading, name)
        for n, recipient in enumerate(recipients):
            field = f"{where}heading.{name.replace('_', '-')}[{n}]"
            if recipient.recipient_extensions:
                found.append((field, "recipient extensions"))
            late = recipient.notification_requests - P2_NOTIFICATIONS
            if late:
                found.append((field, f"notification requests {sorted(late)}"))
    for n, part in enumerate(ipm.body):
        field = f"{where}body[{n}]"
        if isinstance(part, MessagePart):
            if isinstance(part.heading, IPMHeading):
                inner = InterpersonalMessage(heading=part.heading, body=part.body)
                found.extend(p2_obstacles(inner, f"{field}.message."))
            else:
                found.append((field, "a forwarded IPM whose heading is not read"))
        elif not is_basic(part):
            kind = "general-text" if isinstance(part, GeneralText) else type(part).__name__
            found.append((field, f"{kind} is an extended body part"))
    return found


# X.420 (1984) NotificationRequests ::= BIT STRING { rn(0), nrn(1), ipm-return(2) }.
P2_NOTIFICATIONS = frozenset({"rn", "nrn", "ipm-return"})


def decode_ipm(content: bytes) -> InterpersonalMessage:
    """The IPM of P2 or P22 content octets. Raises NotAnIPMError for an IPN, IPMContentError
    naming the field for content that breaks X.420, UnsupportedBodyPartError (a
    ValueError) for a body part this codec does not read."""
    try:
        element = decode(content, name="content", lenient=True)
    except BERError as error:
        raise IPMContentError("content", str(error)) from None
    if element.tag == IPN_TAG:
        raise NotAnIPMError("the content is an IPN (X.420 §8), not an IPM")
    if element.tag != IPM_TAG:
        raise IPMContentError("content", f"{element.tag} is neither ipm [0] nor ipn [1]")
    return read_ipm(element)


def read_ipm(element: Element) -> InterpersonalMessage:
    """The IPM of a decoded ipm [0] element (or an IPM SEQUENCE); see decode_ipm."""
    try:
        parts = element.children()
        if len(parts) != 2:
            raise IPMContentError(
                "ipm", f"IPM ::= SEQUENCE {{ heading, body }}, found {len(parts)}"
            )
        heading = read_heading(parts[0].named("heading"))
        body = parts[1].expect(SEQUENCE, name="body")
        return InterpersonalMessage(heading=heading, body=tuple(_read_body(body)))
    except (IPMContentError, UnsupportedBodyPartError):
        raise
    except BERError as error:
        raise IPMContentError(error.path, error.reason) from None
    except ValueError as error:
        raise IPMContentError("body", str(error)) from None


def _read_body(body: Element) -> Iterable[BodyPart]:
    for n, part in enumerate(body):
        try:
            yield read_body_part(part.named(f"body[{n}]"), IPM_HEADINGS)
        except (BERError, IPMContentError, UnsupportedBodyPartError):
            raise
        except ValueError as error:  # the part's model refused what the BER held
            raise IPMContentError(f"body[{n}]", str(error)) from None
