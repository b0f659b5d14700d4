"""Addresses: RFC 5321 mailboxes, X.400 O/R addresses, and telling one from the other."""

from __future__ import annotations

from waypost.address.mailbox import (
    POSTMASTER,
    AddressError,
    Mailbox,
    mailbox_name,
    parse_domain,
    parse_mailbox,
    parse_path,
)
from waypost.address.oraddress import (
    BLANK_ADMD,
    ORAddress,
    format_semicolon,
    format_slash,
    is_oraddress_text,
    parse_oraddress,
)

__all__ = [
    "BLANK_ADMD",
    "POSTMASTER",
    "AddressError",
    "Mailbox",
    "ORAddress",
    "canonical_address",
    "format_semicolon",
    "format_slash",
    "is_oraddress_text",
    "mailbox_name",
    "parse_address",
    "parse_domain",
    "parse_mailbox",
    "parse_oraddress",
    "parse_path",
]


def parse_address(text: str) -> Mailbox | ORAddress:
    """An O/R address if the text looks like one (`is_oraddress_text`), else a mailbox."""
    if is_oraddress_text(text):
        return parse_oraddress(text)
    return parse_mailbox(text)


def canonical_address(text: str) -> str:
    """The one text form an address is stored and compared in; raises AddressError."""
    address = parse_address(text)
    if isinstance(address, ORAddress):
        return format_slash(address)
    return str(address)
