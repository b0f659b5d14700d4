"""X.420 §8 interpersonal notifications ⇄ RFC 8098 message disposition notifications, both
ways: a receipt is "displayed", a discard "deleted", an auto-forward "dispatched"."""

from __future__ import annotations

import email
import email.policy
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime

from waypost.mixer.message_ids import (
    MessageIdError,
    ipm_id_to_msg_id,
    msg_id_to_ipm_id,
    msg_ids_in,
)
from waypost.x400.ipm_heading import IPMIdentifier, ORDescriptor
from waypost.x400.ipn import IPN, IPNError, NonReceiptFields, ReceiptFields

AddressMapper = Callable[[str], str]

# RFC 8098 §3.2.6.1 action modes and sending modes, by X.420 §8.3.2 acknowledgment mode.
_MODES = {
    "manual": "manual-action/MDN-sent-manually",
    "automatic": "automatic-action/MDN-sent-automatically",
}
# RFC 8098 §3.2.6.2 disposition types for X.420 §8.2.1 non-receipt reasons.
_NON_RECEIPT_TYPES = {"ipm-discarded": "deleted", "ipm-auto-forwarded": "dispatched"}
# Extension fields (RFC 8098 §3.1.1 extension-field) for what an MDN has no field for.
RECEIPT_TIME = "X400-Receipt-Time"
SUPPLEMENTARY_INFO = "X400-Supplementary-Info"
DISCARD_REASON = "X400-Discard-Reason"
AUTO_FORWARD_COMMENT = "X400-Auto-Forward-Comment"
CONVERSION_EITS = "X400-Conversion-EITs"


class MDNError(ValueError):
    """An MDN or IPN that cannot be mapped; the message names the field and why."""


# --- X.400 → Internet ------------------------------------------------------------------


def ipn_to_mdn(
    ipn: IPN,
    *,
    or_to_mail: AddressMapper,
    gateway_domain: str,
    to: str,
    returned_message: bytes | None = None,
    now: float | None = None,
) -> bytes:
    """An RFC 8098 MDN (multipart/report; report-type=disposition-notification) for an
    IPN, to `to` (the subject IPM's originator, mapped). `returned_message` is an NRN's
    returned IPM already converted to RFC 5322, sent as the third part. CRLF line endings."""
    now = time.time() if now is None else now
    reporter = ipn.ipn_originator or ipn.ipm_intended_recipient
    if reporter is None or reporter.address is None:
        raise MDNError("Final-Recipient: the IPN names neither its originator nor the recipient")
    final = or_to_mail(reporter.address)
    fields = [
        # RFC 8098 §3.2.2: the gateway that made the MDN from a foreign notification.
        ("MDN-Gateway", f"dns; {_line(gateway_domain)}"),
    ]
    if (
        ipn.ipm_intended_recipient is not None
        and ipn.ipm_intended_recipient.address is not None
        and ipn.ipm_intended_recipient != reporter
    ):
        fields.append(
            ("Original-Recipient", f"rfc822; {or_to_mail(ipn.ipm_intended_recipient.address)}")
        )
    fields += [
        ("Final-Recipient", f"rfc822; {final}"),  # §3.2.4
        ("Original-Message-ID", ipm_id_to_msg_id(ipn.subject_ipm, gateway_domain)),  # §3.2.5
        ("Disposition", disposition_of(ipn)),  # §3.2.6
    ]
    if ipn.receipt is not None:
        fields.append((RECEIPT_TIME, format_datetime(ipn.receipt.receipt_time)))
        if ipn.receipt.supplementary_receipt_info is not None:
            fields.append((SUPPLEMENTARY_INFO, ipn.receipt.supplementary_receipt_info))
    if ipn.non_receipt is not None:
        if ipn.non_receipt.discard_reason is not None:
            fields.append((DISCARD_REASON, ipn.non_receipt.discard_reason))
        if ipn.non_receipt.auto_forward_comment is not None:
            fields.append((AUTO_FORWARD_COMMENT, ipn.non_receipt.auto_forward_comment))
    if ipn.conversion_eits:
        fields.append((CONVERSION_EITS, ", ".join(ipn.conversion_eits)))
    notification = "".join(f"{name}: {_line(value)}\r\n" for name, value in fields)
    text = _explanation(ipn, final)
    parts = [
        ("Content-Type: text/plain; charset=us-ascii", text.encode("ascii", "replace")),
        ("Content-Type: message/disposition-notification", notification.encode("ascii", "replace")),
    ]
    if returned_message is not None:
        body = returned_message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        encoding = "7bit" if body.isascii() else "8bit"
        parts.append(
            (f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {encoding}", body)
        )
    boundary = f"=_waypost_mdn_{os.urandom(12).hex()}"
    head = [
        f"Date: {format_datetime(datetime.fromtimestamp(now, UTC))}",
        f"From: <{_line(final)}>",
        f"To: <{_line(to)}>",
        f"Subject: {_subject(ipn)}",
        f"Message-ID: <{int(now):x}.{os.urandom(8).hex()}@{_line(gateway_domain)}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
        f'\tboundary="{boundary}"',
    ]
    out = bytearray(("\r\n".join(head) + "\r\n\r\n").encode())
    for part_head, body in parts:
        out += f"--{boundary}\r\n{part_head}\r\n\r\n".encode() + body
        out += b"" if body.endswith(b"\r\n") else b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def disposition_of(ipn: IPN) -> str:
    """The RFC 8098 §3.2.6 Disposition of an IPN: an RN's mode is its acknowledgment mode;
    an NRN is generated by the recipient's UA without the user (X.420 §8.2)."""
    if ipn.receipt is not None:
        return f"{_MODES[ipn.receipt.acknowledgment_mode]}; displayed"
    if ipn.non_receipt is not None:
        return f"{_MODES['automatic']}; {_NON_RECEIPT_TYPES[ipn.non_receipt.reason]}"
    raise MDNError("Disposition: an IPN of another notification type has no MDN counterpart")


def _subject(ipn: IPN) -> str:
    if ipn.receipt is not None:
        return "Read receipt (displayed)"
    return "Non-receipt notification"


def _explanation(ipn: IPN, final: str) -> str:
    if ipn.receipt is not None:
        when = format_datetime(ipn.receipt.receipt_time)
        text = f"The message you sent to <{final}> was received at {when}."
    elif ipn.non_receipt is not None and ipn.non_receipt.reason == "ipm-auto-forwarded":
        text = f"The message you sent to <{final}> was forwarded automatically, unread."
    else:
        text = f"The message you sent to <{final}> was discarded without being read."
    return f"{_line(text)}\r\nThis notification came from X.400 through the gateway.\r\n"


def _line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text).strip()


# --- Internet → X.400 ------------------------------------------------------------------


def mdn_to_ipn(
    mdn: bytes | Message,
    *,
    mail_to_or: AddressMapper,
    gateway_domain: str,
    now: float | None = None,
) -> IPN:
    """The X.420 IPN for an RFC 8098 MDN about an IPM that crossed the gateway: displayed
    (and processed) become a receipt, deleted a discard, dispatched an auto-forward;
    raises MDNError naming the field for what X.420 cannot say (a failed disposition)."""
    message = (
        mdn
        if isinstance(mdn, Message)
        else email.message_from_bytes(mdn, policy=email.policy.default)
    )
    try:
        return _read_mdn(message, mail_to_or, gateway_domain, now)
    except IPNError as error:  # a value X.420 does not allow, named by its X.420 field
        raise MDNError(f"MDN: {error}") from None


def _read_mdn(
    message: Message, mail_to_or: AddressMapper, gateway_domain: str, now: float | None
) -> IPN:
    fields = _notification(message)
    disposition = _field(fields, "Disposition")
    mode_text, _, kind_text = disposition.partition(";")
    action_mode = mode_text.strip().split("/")[0].lower()
    kind, _, modifiers = kind_text.strip().lower().partition("/")
    if modifiers:
        # RFC 8098 §3.2.6.3: "error" — the disposition could not be carried out.
        raise MDNError(f"Disposition: {disposition!r} reports an error, which X.420 cannot say")
    automatic = action_mode == "automatic-action"
    if action_mode not in ("manual-action", "automatic-action"):
        raise MDNError(f"Disposition: {disposition!r} has no RFC 8098 action mode")
    receipt = non_receipt = None
    if kind in ("displayed", "processed"):
        receipt = ReceiptFields(
            receipt_time=_receipt_time(fields, message, now),
            acknowledgment_mode="automatic" if automatic else "manual",
            supplementary_receipt_info=_optional(fields, SUPPLEMENTARY_INFO),
        )
    elif kind in ("deleted", "dispatched"):
        non_receipt = NonReceiptFields(
            reason="ipm-discarded" if kind == "deleted" else "ipm-auto-forwarded",
            discard_reason=_optional(fields, DISCARD_REASON),
            auto_forward_comment=_optional(fields, AUTO_FORWARD_COMMENT),
        )
    else:
        raise MDNError(f"Disposition: {kind!r} is not an RFC 8098 disposition type")
    original = _optional(fields, "Original-Recipient")
    eits = _optional(fields, CONVERSION_EITS)
    return IPN(
        subject_ipm=_subject_ipm(fields, gateway_domain),
        ipn_originator=ORDescriptor(address=mail_to_or(_address(fields, "Final-Recipient"))),
        ipm_intended_recipient=None
        if original is None
        else ORDescriptor(address=mail_to_or(_address(fields, "Original-Recipient"))),
        conversion_eits=None if eits is None else tuple(e.strip() for e in eits.split(",")),
        receipt=receipt,
        non_receipt=non_receipt,
    )


def _notification(message: Message) -> Message:
    if message.get_content_type() != "multipart/report":
        raise MDNError(f"Content-Type: {message.get_content_type()} is not multipart/report")
    if str(message.get_param("report-type", "")).lower() != "disposition-notification":
        raise MDNError("Content-Type: report-type is not disposition-notification")
    payload = message.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if isinstance(part, Message) and part.get_content_type() in (
            "message/disposition-notification",
            "message/global-disposition-notification",
        ):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    raise MDNError("no message/disposition-notification part")


def _optional(fields: Message, name: str) -> str | None:
    value = fields.get(name)
    return None if value is None else " ".join(str(value).split())


def _field(fields: Message, name: str) -> str:
    value = _optional(fields, name)
    if value is None:
        raise MDNError(f"{name}: required (RFC 8098 §3.1) but absent")
    return value


def _address(fields: Message, name: str) -> str:
    _, separator, address = _field(fields, name).partition(";")
    pairs = getaddresses([address.strip()]) if separator else []
    if not pairs or "@" not in pairs[0][1]:
        raise MDNError(f"{name}: {_field(fields, name)!r} is not address-type; address")
    return pairs[0][1]


def _subject_ipm(fields: Message, gateway_domain: str) -> IPMIdentifier:
    value = _field(fields, "Original-Message-ID")
    try:
        ids = msg_ids_in("Original-Message-ID", value)
        if len(ids) != 1:
            raise MessageIdError(f"{value!r} is not one msg-id")
        return msg_id_to_ipm_id(ids[0], gateway_domain)
    except MessageIdError as error:
        raise MDNError(f"Original-Message-ID: {error}") from None


def _receipt_time(fields: Message, message: Message, now: float | None) -> datetime:
    """When the IPM was received: the X.400 field a gateway wrote, else the MDN's Date
    (RFC 8098 has no field for it), else now; in whole seconds as UTCTime holds it."""
    for value in (_optional(fields, RECEIPT_TIME), _optional(message, "Date")):
        if value is None:
            continue
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise MDNError(f"{RECEIPT_TIME} or Date: {value!r} is not a date-time") from None
        if when.tzinfo is not None:
            return when.replace(microsecond=0)
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).replace(microsecond=0)
