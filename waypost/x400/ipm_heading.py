"""The full IPM heading of X.420 §7.2 as plain values (addresses as O/R address texts), the
model the MIXER gateway maps to and from RFC 5322 headers. No BER here: see ipm_heading_ber.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# X.420 §7.2.18 Importance ::= ENUMERATED {low(0), normal(1), high(2)}
IMPORTANCE = ("low", "normal", "high")
# X.420 §7.2.19 Sensitivity ::= ENUMERATED {personal(1), private(2), company-confidential(3)}
SENSITIVITY = ("personal", "private", "company-confidential")
# X.420 §7.2.4 NotificationRequests ::= BIT STRING {rn(0), nrn(1), ipm-return(2),
# an-supported(3), suppress-an(4)}: the bit names, in bit order.
NOTIFICATION_REQUESTS = ("rn", "nrn", "ipm-return", "an-supported", "suppress-an")


@dataclass(frozen=True, slots=True, kw_only=True)
class IPMIdentifier:
    """X.420 §7.2.1 IPMIdentifier: an optional user (O/R address text) and a
    user-relative identifier (a PrintableString of at most 64 characters)."""

    user: str | None
    local: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadingExtension:
    """X.420 §7.2.17 IPMSExtension: a type (an OID in dotted form) and its value's BER,
    kept whole so a heading extension this model does not map is relayed or named."""

    type: str
    value: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ORDescriptor:
    """X.420 §7.2.3 ORDescriptor: an O/R address text (the formal name) and/or a
    free-form name, and an optional telephone number.

    In the recipient fields a descriptor is also the rest of its RecipientSpecifier
    (X.420 §7.2.4): the notifications the originator asks of that recipient (names from
    NOTIFICATION_REQUESTS), whether a reply is requested, and the recipient's extensions
    (kept whole). Elsewhere these keep their defaults."""

    address: str | None = None
    free_form_name: str | None = None
    telephone_number: str | None = None
    notification_requests: frozenset[str] = frozenset()
    reply_requested: bool = False
    recipient_extensions: tuple[HeadingExtension, ...] = ()

    def __post_init__(self) -> None:
        if self.address is None and self.free_form_name is None:
            raise ValueError("ORDescriptor: neither a formal name nor a free-form name")
        unknown = set(self.notification_requests) - set(NOTIFICATION_REQUESTS)
        if unknown:
            raise ValueError(f"notification-requests: {sorted(unknown)} not in X.420's bits")
        object.__setattr__(self, "notification_requests", frozenset(self.notification_requests))

    @property
    def is_plain(self) -> bool:
        """Whether nothing of a RecipientSpecifier is set (a descriptor outside recipients)."""
        return not (self.notification_requests or self.reply_requested or self.recipient_extensions)


@dataclass(frozen=True, slots=True, kw_only=True)
class IPMHeading:
    """X.420 §7.2 Heading. Empty tuples and None stand for absent fields; the defaults
    are X.420's (importance normal, auto-forwarded FALSE)."""

    this_ipm: IPMIdentifier
    originator: ORDescriptor | None = None
    authorizing_users: tuple[ORDescriptor, ...] = ()
    primary_recipients: tuple[ORDescriptor, ...] = ()
    copy_recipients: tuple[ORDescriptor, ...] = ()
    blind_copy_recipients: tuple[ORDescriptor, ...] = ()
    replied_to_ipm: IPMIdentifier | None = None
    obsoleted_ipms: tuple[IPMIdentifier, ...] = ()
    related_ipms: tuple[IPMIdentifier, ...] = ()
    subject: str | None = None
    expiry_time: datetime | None = None
    reply_time: datetime | None = None
    reply_recipients: tuple[ORDescriptor, ...] = ()
    importance: str = "normal"
    sensitivity: str | None = None
    auto_forwarded: bool = False
    # Heading extensions (X.420 §7.2.17): languages and incomplete-copy are mapped;
    # the others are kept whole (STANAG 4406's are read by waypost.x400.p772).
    languages: tuple[str, ...] = ()
    incomplete_copy: bool = False
    other_extensions: tuple[HeadingExtension, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.importance not in IMPORTANCE:
            raise ValueError(f"importance: {self.importance!r} is not one of {IMPORTANCE}")
        if self.sensitivity is not None and self.sensitivity not in SENSITIVITY:
            raise ValueError(f"sensitivity: {self.sensitivity!r} is not one of {SENSITIVITY}")
