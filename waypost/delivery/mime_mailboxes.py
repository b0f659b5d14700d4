"""Local X.400 mailboxes read with a mail client: their IPMs converted to MIME (RFC 2156,
RFC 2157) and written to a Maildir mailbox instead of the X.400 store (`[local]
mime_mailboxes`)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from waypost.address import AddressError, parse_oraddress
from waypost.address.oraddress import ORAddress
from waypost.delivery.maildir import LocalDeliveryError
from waypost.message import Envelope, Message, ObjectKind
from waypost.mixer.address_map import AddressMapper, has_prefix
from waypost.mixer.convert import ConversionError, GatewaySide, ipm_to_mail, is_ipm_content


class MimeMailboxes:
    """Which local O/R addresses take MIME, into which Maildir mailbox (longest prefix)."""

    def __init__(
        self, table: Mapping[str, str], mapper: AddressMapper, *, x400_domain: str, hostname: str
    ) -> None:
        entries = [(parse_oraddress(prefix), mailbox) for prefix, mailbox in table.items()]
        self._entries: list[tuple[ORAddress, str]] = sorted(
            entries, key=lambda entry: -len(entry[0].attributes())
        )
        self.mapper = mapper
        self.x400_domain = x400_domain
        self.hostname = hostname

    def mailbox_for(self, envelope: Envelope, address: str) -> str | None:
        """The Maildir mailbox of this recipient when its message is an IPM it takes as MIME;
        None for the X.400 store (another address, a report, a probe, other content)."""
        if envelope.object_kind is not ObjectKind.MESSAGE or not is_ipm_content(
            envelope.content_type
        ):
            return None
        try:
            parsed = parse_oraddress(address)
        except AddressError:
            return None
        return next((box for prefix, box in self._entries if has_prefix(parsed, prefix)), None)

    def convert(self, envelope: Envelope, content: bytes, address: str) -> Message:
        """The message as the mailbox's reader gets it; raises LocalDeliveryError (5.6.x)."""
        index = next(i for i, r in enumerate(envelope.recipients) if r.address == address)
        side = GatewaySide(
            mapper=self.mapper,
            x400_domain=self.x400_domain,
            hostname=self.hostname,
            now=time.time(),
        )
        try:
            converted = ipm_to_mail(envelope, content, [index], side)
        except ConversionError as exc:
            raise LocalDeliveryError(exc.detail, permanent=True) from None
        if converted.message is None:
            detail = converted.refused.get(index, "5.6.3 not converted")
            raise LocalDeliveryError(detail, permanent=True)
        return converted.message
