"""X.400 reports made here: one P1 report per subject message, to its O/R originator.

A recipient's outcome is kept as text beginning with an enhanced status code
(RFC 3463); `nondelivery_codes` maps it to X.411's non-delivery reason and
diagnostic the way RFC 2156 pairs them, and the text itself travels as the
supplementary information.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from waypost.message import (
    ContentType,
    Envelope,
    Message,
    ObjectKind,
    Recipient,
    ReportRequest,
    TraceElement,
    new_mts_id,
)
from waypost.x400.p1_report import ReportContent, ReportedRecipient, encode_report_content

# Reason codes (X.411 NonDeliveryReasonCode).
TRANSFER_FAILURE = 0
UNABLE_TO_TRANSFER = 1
CONVERSION_NOT_PERFORMED = 2
RESTRICTED_DELIVERY = 5

# Status code prefix → (reason, diagnostic); the longest prefix wins.
_CODES: dict[str, tuple[int, int | None]] = {
    "5.1.": (UNABLE_TO_TRANSFER, 0),  # unrecognised-OR-name
    "5.1.4": (UNABLE_TO_TRANSFER, 1),  # ambiguous-OR-name
    "5.2.": (UNABLE_TO_TRANSFER, 4),  # recipient-unavailable
    "5.2.3": (UNABLE_TO_TRANSFER, 7),  # content-too-long
    "5.3.3": (UNABLE_TO_TRANSFER, 18),  # unsupported-critical-function
    "5.3.4": (UNABLE_TO_TRANSFER, 7),  # content-too-long
    "5.4.1": (TRANSFER_FAILURE, None),
    "5.4.4": (UNABLE_TO_TRANSFER, 0),  # no route: unrecognised-OR-name
    "5.4.6": (UNABLE_TO_TRANSFER, 3),  # loop-detected
    "4.4.7": (TRANSFER_FAILURE, 5),  # maximum-time-expired
    "5.4.7": (TRANSFER_FAILURE, 5),
    "5.5.": (TRANSFER_FAILURE, 14),  # protocol-violation
    "5.5.4": (UNABLE_TO_TRANSFER, 11),  # invalid-arguments: an envelope that cannot be read
    "5.6.": (UNABLE_TO_TRANSFER, 12),  # content-syntax-error
    "5.6.1": (UNABLE_TO_TRANSFER, 15),  # content-type-not-supported
    "5.6.3": (CONVERSION_NOT_PERFORMED, 8),  # conversion-impractical
    "5.7.": (RESTRICTED_DELIVERY, None),
}


def nondelivery_codes(detail: str) -> tuple[int, int | None]:
    """(reason, diagnostic) for an outcome text that starts with an enhanced status code."""
    status = detail.split(" ", 1)[0]
    for length in range(len(status), 0, -1):
        found = _CODES.get(status[:length])
        if found is not None:
            return found
    return TRANSFER_FAILURE, None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientFate:
    """What became of one recipient of the subject: delivered (at `when`) or not."""

    rcpt_index: int
    delivered: bool
    detail: str
    when: float


def build_report(
    *,
    subject: Envelope,
    content: bytes,
    outcomes: Sequence[RecipientFate],
    received_at: float,
    domain: str,
    now: float,
) -> Message:
    """The report to the subject's originator, ready to route and enqueue."""
    reported = []
    wants_content = False
    for outcome in outcomes:
        recipient = subject.recipients[outcome.rcpt_index]
        reported.append(_reported(recipient, outcome, received_at))
        wants_content = wants_content or not outcome.delivered
    returned = (
        content
        if wants_content
        and subject.object_kind is ObjectKind.MESSAGE
        and "content-return-request" in subject.per_message_indicators
        else None
    )
    report_content = ReportContent(
        subject_id=subject.mts_id,
        subject_trace=tuple(subject.trace) or None,
        eits=tuple(subject.encoded_information_types) or None,
        content_type=subject.content_type
        if subject.content_type.startswith(("builtin:", "oid:"))
        else None,
        content_id=subject.content_id,
        returned_content=returned,
        recipients=tuple(reported),
    )
    envelope = Envelope(
        mts_id=f"{domain};{new_mts_id('r').partition('@')[0]}",
        originator="",
        recipients=[
            Recipient(
                address=subject.originator,
                originally_specified_number=1,
                report_request=ReportRequest.NONE,
                mta_report_request=ReportRequest.NONE,
            )
        ],
        content_type=ContentType.X400_REPORT,
        trace=[TraceElement(domain=domain, arrival=now)],
        arrival=now,
        is_report=True,
        object_kind=ObjectKind.REPORT,
    )
    return Message(envelope=envelope, content=encode_report_content(report_content))


def _reported(
    recipient: Recipient, outcome: RecipientFate, received_at: float
) -> ReportedRecipient:
    reason, diagnostic = (None, None) if outcome.delivered else nondelivery_codes(outcome.detail)
    return ReportedRecipient(
        actual_recipient=recipient.address,
        originally_specified_number=recipient.originally_specified_number or 1,
        arrival=received_at,
        mta_report_request=recipient.mta_report_request,
        report_request=recipient.report_request,
        delivered_at=outcome.when if outcome.delivered else None,
        reason=reason,
        diagnostic=diagnostic,
        supplementary=outcome.detail or None,
    )
