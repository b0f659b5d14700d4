"""The full IPM heading of X.420 §7.2 as plain values (addresses as O/R address texts), the
model the MIXER gateway maps to and from RFC 5322 headers. No BER here: see ipm.py for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# X.420 §7.2.18 Importance ::= ENUMERATED {low(0), normal(1), high(2)}
IMPORTANCE = ("low", "normal", "high")
# X.420 §7.2.19 Sensitivity ::= ENUMERATED {personal(1), private(2), company-confidential(3)}
SENSITIVITY = ("personal", "private", "company-confidential")


@dataclass(frozen=True, slots=True, kw_only=True)
class IPMIdentifier:
    """X.420 §7.2.1 IPMIdentifier: an optional user (O/R address text) and a
    user-relative identifier (a PrintableString of at most 64 characters)."""

    user: str | None
    local: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ORDescriptor:
    """X.420 §7.2.3 ORDescriptor: an O/R address text with an optional free-form name."""

    address: str
    free_form_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadingExtension:
    """X.420 §7.2.17 IPMSExtension: a type (an OID in dotted form) and its value's BER,
    kept whole so a heading extension this model does not map is relayed or named."""

    type: str
    value: bytes = b""


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
