"""Which conversion an object takes across the gateway: messages, reports and
notifications of each world, each to its counterpart in the other (RFC 2156 §5)."""

from __future__ import annotations

from collections.abc import Sequence

from waypost.message import ContentType, Envelope, ObjectKind
from waypost.mixer.convert import ConversionError, Converted, GatewaySide, ipm_to_mail, mail_to_ipm
from waypost.mixer.notices import (
    NotANoticeError,
    dsn_to_x400,
    ipn_to_mail,
    mdn_to_x400,
    report_kind,
    report_to_mail,
)
from waypost.x400.ipm_codec import InterpersonalMessage, NotAnIPMError, decode_ipm

_IPM_TYPES = (ContentType.P2, ContentType.P22, ContentType.P772)


def to_mail(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> tuple[str, Converted]:
    """(what it was, the Internet object) for an X.400 message, report or IPN."""
    if envelope.object_kind is ObjectKind.REPORT:
        return "X.411 report → DSN", report_to_mail(envelope, content, indexes, side)
    if envelope.content_type not in _IPM_TYPES:
        raise ConversionError(f"5.6.1 content type {envelope.content_type} has no Internet form")
    ipm: InterpersonalMessage | None = None
    try:
        ipm = decode_ipm(content)
    except NotAnIPMError:
        # X.420 §7.1: the content is an IPN, not an IPM.
        return "IPN → MDN", ipn_to_mail(envelope, content, indexes, side)
    except ValueError:
        pass  # ipm_to_mail says why, with its status code
    # Decoded once: ipm_to_mail takes the IPM read here.
    return "X.400 → Internet mail", ipm_to_mail(envelope, content, indexes, side, ipm)


def to_x400(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> tuple[str, Converted]:
    """(what it was, the X.400 object) for Internet mail, a DSN or an MDN. A report that
    does not say which X.400 message it is about crosses as an ordinary message."""
    kind = report_kind(content)
    try:
        if kind == "delivery-status":
            return "DSN → X.411 report", dsn_to_x400(envelope, content, indexes, side)
        if kind == "disposition-notification":
            return "MDN → IPN", mdn_to_x400(envelope, content, indexes, side)
    except NotANoticeError:
        pass
    return "Internet mail → X.400", mail_to_ipm(envelope, content, indexes, side)
