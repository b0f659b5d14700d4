"""The intake: one path for every message — routing, trace, loops, critical extensions and
`error:` hops decided the same way whatever the message came over."""

from __future__ import annotations

import logging

import pytest

from waypost import events
from waypost.arrival import Arrival, LoopError, Source, UnroutableError
from waypost.clock import ManualClock
from waypost.intake import LOOP_HOP, Intake
from waypost.message import (
    Envelope,
    Extension,
    Message,
    ObjectKind,
    Recipient,
    TraceElement,
)
from waypost.nexthop import NextHop, Transport, parse_next_hop
from waypost.routing import RouteEntry, RoutingTable

HERE = "/C=GB/ADMD= /PRMD=HERE/"
ELSEWHERE = "/C=GB/ADMD= /PRMD=THERE/"
LOCAL_OR = "/C=GB/ADMD= /PRMD=HERE/O=Sales/S=Smith/"
REMOTE_OR = "/C=GB/ADMD= /PRMD=THERE/S=Jones/"
UNROUTED_OR = "/C=FR/ADMD= /PRMD=NOWHERE/S=Dupont/"
NOW = 1.8e9


def make_intake(*, remote: str = "smtp:[192.0.2.1]:25", max_received: int = 50) -> Intake:
    table = RoutingTable(
        [
            RouteEntry("remote.example", remote),
            RouteEntry("/C=GB/ADMD= /PRMD=THERE/", "x400:THERE-MTA"),
        ],
        local_domains=["here.example"],
        local_oraddresses=[HERE],
    )
    return Intake(table, clock=ManualClock(NOW), x400_domain=HERE, max_received=max_received)


def message(
    *recipients: str | Recipient,
    originator: str = "alice@here.example",
    content: bytes = b"Subject: hi\r\n\r\nhello\r\n",
    **fields: object,
) -> Message:
    rcpts = [r if isinstance(r, Recipient) else Recipient(address=r) for r in recipients]
    envelope = Envelope(
        mts_id="m1@here.example",
        originator=originator,
        recipients=rcpts,
        **fields,  # type: ignore[arg-type]
    )
    return Message(envelope=envelope, content=content)


def event_ids(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.waypost_event.id for r in caplog.records if hasattr(r, "waypost_event")]


# --- submission ---------------------------------------------------------------------


def test_submit_routes_every_recipient() -> None:
    new = make_intake().admit(
        message("bob@here.example", "carol@remote.example", REMOTE_OR),
        Arrival(source=Source.SUBMIT),
    )
    assert new is not None
    assert [str(h) for h in new.next_hops] == [
        "local",
        "smtp:[192.0.2.1]:25",
        "x400:THERE-MTA",
    ]
    assert new.message.envelope.trace == []  # mail from a mail address gets no X.400 trace


def test_submit_refuses_the_whole_message_naming_each_unroutable_recipient() -> None:
    with pytest.raises(UnroutableError) as caught:
        make_intake().admit(
            message("bob@here.example", "x@nowhere.example", UNROUTED_OR),
            Arrival(source=Source.SUBMIT),
        )
    assert [address for address, _ in caught.value.reasons] == ["x@nowhere.example", UNROUTED_OR]
    assert "x@nowhere.example" in str(caught.value)


def test_submit_from_an_or_originator_adds_this_domains_trace() -> None:
    new = make_intake().admit(
        message(REMOTE_OR, originator=LOCAL_OR, arrival=NOW - 5), Arrival(source=Source.SUBMIT)
    )
    assert new is not None
    (element,) = new.message.envelope.trace
    assert (element.domain, element.arrival, element.action) == (HERE, NOW - 5, "relayed")


def test_a_gateway_resubmission_is_traced_and_routed_like_a_submission() -> None:
    new = make_intake().admit(
        message(REMOTE_OR, originator=LOCAL_OR), Arrival(source=Source.GATEWAY)
    )
    assert new is not None
    assert [str(h) for h in new.next_hops] == ["x400:THERE-MTA"]
    assert [t.domain for t in new.message.envelope.trace] == [HERE]


def test_a_report_is_routed_to_its_destination_without_trace() -> None:
    report = message(REMOTE_OR, originator="", is_report=True, object_kind=ObjectKind.REPORT)
    new = make_intake().admit(report, Arrival(source=Source.REPORT))
    assert new is not None
    assert [str(h) for h in new.next_hops] == ["x400:THERE-MTA"]
    assert new.message.envelope.trace == []
    with pytest.raises(UnroutableError):
        make_intake().admit(message(UNROUTED_OR, originator=""), Arrival(source=Source.REPORT))


# --- SMTP ---------------------------------------------------------------------------


def test_smtp_keeps_the_hops_chosen_at_rcpt_and_puts_received_in_front() -> None:
    hop = NextHop(Transport.SMTP, "relay.example", 2525)
    new = make_intake().admit(
        message("carol@remote.example"),
        Arrival(source=Source.SMTP, peer="192.0.2.9", next_hops=[hop], received=b"Received: x\r\n"),
    )
    assert new is not None
    assert list(new.next_hops) == [hop]  # decided at RCPT, not routed again
    assert new.message.content == b"Received: x\r\nSubject: hi\r\n\r\nhello\r\n"


def test_smtp_refuses_a_message_with_too_many_received_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    looping = b"Received: from a by b\r\n" * 3 + b"Subject: loop\r\n\r\nbody\r\n"
    intake = make_intake(max_received=3)
    with caplog.at_level(logging.INFO), pytest.raises(LoopError):
        intake.admit(
            message("bob@here.example", content=looping),
            Arrival(source=Source.SMTP, peer="192.0.2.9", received=b"Received: ours\r\n"),
        )
    assert event_ids(caplog) == [events.SMTP_LOOP.id]
    (record,) = [r for r in caplog.records if hasattr(r, "waypost_event")]
    assert record.waypost_fields["client"] == "192.0.2.9"
    # Two fields are under the limit of three: our own Received: is not counted.
    fine = b"Received: from a by b\r\n" * 2 + b"\r\nbody\r\n"
    new = intake.admit(
        message("bob@here.example", content=fine),
        Arrival(source=Source.SMTP, received=b"Received: ours\r\n"),
    )
    assert new is not None and new.message.content.startswith(b"Received: ours\r\n")


# --- P1 -----------------------------------------------------------------------------


def p1(
    *recipients: str | Recipient, trace: list[TraceElement] | None = None, **fields: object
) -> Message:
    return message(
        *recipients,
        originator=REMOTE_OR,
        trace=trace if trace is not None else [TraceElement(domain=ELSEWHERE, arrival=NOW - 60)],
        content_type="1.3.26.0.4406.0.4.1",
        **fields,
    )


def test_p1_adds_trace_sets_arrival_and_keeps_only_recipients_it_answers_for() -> None:
    theirs = Recipient(address=REMOTE_OR, responsibility=False)
    new = make_intake().admit(p1(LOCAL_OR, theirs), Arrival(source=Source.P1, peer="THERE-MTA"))
    assert new is not None
    envelope = new.message.envelope
    assert [r.address for r in envelope.recipients] == [LOCAL_OR]
    assert [str(h) for h in new.next_hops] == ["local"]
    assert [t.domain for t in envelope.trace] == [ELSEWHERE, HERE]
    assert envelope.arrival == NOW


def test_p1_with_no_recipient_of_ours_stores_nothing() -> None:
    theirs = Recipient(address=REMOTE_OR, responsibility=False)
    assert make_intake().admit(p1(theirs), Arrival(source=Source.P1)) is None


def test_p1_unroutable_recipient_is_kept_with_an_error_hop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        new = make_intake().admit(p1(LOCAL_OR, UNROUTED_OR), Arrival(source=Source.P1, peer="P"))
    assert new is not None
    local, error = new.next_hops
    assert str(local) == "local"
    assert error.transport is Transport.ERROR and error.destination.startswith("5.4.4 ")
    assert event_ids(caplog) == [events.X400_NO_ROUTE.id]


def test_p1_loop_non_delivers_every_recipient_and_drops_a_looping_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    been_here = [
        TraceElement(domain=HERE, arrival=NOW - 120),
        TraceElement(domain=ELSEWHERE, arrival=NOW - 60),
    ]
    with caplog.at_level(logging.INFO):
        new = make_intake().admit(
            p1(LOCAL_OR, REMOTE_OR, trace=been_here), Arrival(source=Source.P1)
        )
        report = make_intake().admit(
            p1(LOCAL_OR, trace=been_here, object_kind=ObjectKind.REPORT), Arrival(source=Source.P1)
        )
    assert new is not None
    assert list(new.next_hops) == [LOOP_HOP, LOOP_HOP]
    assert str(LOOP_HOP).startswith("error:5.4.6 ")
    assert report is None
    assert event_ids(caplog) == [events.X400_LOOP_DETECTED.id, events.X400_LOOP_DETECTED.id]


def test_p1_critical_extension_non_delivers_only_that_recipient(
    caplog: pytest.LogCaptureFixture,
) -> None:
    critical = Recipient(
        address=REMOTE_OR, extensions=[Extension(type="1.2.3.4", critical_for=["transfer"])]
    )
    harmless = Recipient(
        address=LOCAL_OR, extensions=[Extension(type="1.2.3.5", critical_for=["delivery"])]
    )
    with caplog.at_level(logging.INFO):
        new = make_intake().admit(p1(critical, harmless), Arrival(source=Source.P1))
    assert new is not None
    first, second = new.next_hops
    assert str(first) == "error:5.3.3 unsupported critical function (extension 1.2.3.4)"
    assert str(second) == "local"
    assert event_ids(caplog) == [events.X400_CRITICAL_EXTENSION.id]


# --- re-routing ---------------------------------------------------------------------


def test_reroute_follows_the_routing_table_of_today() -> None:
    envelope = message("carol@remote.example", "bob@here.example").envelope
    before = parse_next_hop("smtp:[192.0.2.1]:25")
    moved = make_intake(remote="smtp:[192.0.2.7]:2525").reroute(envelope, 0, before)
    assert str(moved) == "smtp:[192.0.2.7]:2525"
    assert make_intake().reroute(envelope, 0, before) == before
    assert str(make_intake().reroute(envelope, 1, before)) == "local"


def test_reroute_keeps_the_intakes_verdicts_and_fails_what_has_no_route() -> None:
    envelope = message(REMOTE_OR, "x@nowhere.example").envelope
    critical = NextHop(Transport.ERROR, "5.3.3 unsupported critical function (extension 9)")
    intake = make_intake()
    assert intake.reroute(envelope, 0, LOOP_HOP) == LOOP_HOP
    assert intake.reroute(envelope, 0, critical) == critical
    # A routing refusal or a missing route is the table's to decide again.
    assert str(intake.reroute(envelope, 0, NextHop(Transport.ERROR, "5.4.4 no route"))) == (
        "x400:THERE-MTA"
    )
    gone = intake.reroute(envelope, 1, parse_next_hop("smtp:[192.0.2.1]:25"))
    assert gone.transport is Transport.ERROR and gone.destination.startswith("5.4.4 ")
