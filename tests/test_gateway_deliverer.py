"""The gateway's delivery agent converts a large message in a worker thread, so that the
event loop keeps moving meanwhile, and a small one on the loop; both give the same message."""

from __future__ import annotations

import asyncio
import email.policy
from email.message import EmailMessage

from waypost.address import parse_oraddress
from waypost.clock import ManualClock
from waypost.delivery.gateway import OFF_LOOP_SIZE, GatewayDeliverer
from waypost.handoff import Attempt, Claim, Handoff, Result
from waypost.intake import Intake
from waypost.message import Envelope, Recipient
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry
from waypost.nexthop import parse_next_hop
from waypost.routing import RouteEntry, RoutingTable
from waypost.x400.ipm_codec import decode_ipm

HERE = "/C=GB/ADMD= /PRMD=A/"
NOW = 1.8e9


def deliverer() -> GatewayDeliverer:
    gateway = Gateway("gw.a.example", parse_oraddress(f"{HERE}O=Gateway/"))
    mapper = AddressMapper.symmetric(
        gateway, [MappingEntry.parse("/C=GB/ADMD= /PRMD=B/", "b.example")]
    )
    table = RoutingTable([RouteEntry("/C=GB/ADMD= /PRMD=B/", "x400:B-MTA")])
    intake = Intake(table, clock=ManualClock(NOW), x400_domain=HERE, gateway=True)
    return GatewayDeliverer(mapper, intake, clock=ManualClock(NOW), hostname="a.example")


def mail(attachment: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.default.clone(linesep="\r\n"))
    message["From"] = "Sender <sender@a.example>"
    message["To"] = "Jones <Jones@b.example>"
    message["Subject"] = "figures"
    message["Message-ID"] = "<figures-1@a.example>"
    message.set_content("The figures.\n")
    message.add_attachment(attachment, "application", "pdf", filename="figures.pdf")
    return message.as_bytes()


def handoff(content: bytes) -> Handoff:
    envelope = Envelope(
        mts_id="<figures-1@a.example>",
        originator="sender@a.example",
        recipients=[Recipient(address="Jones@b.example")],
    )
    claim = Claim(
        recipient_id=1,
        message_id=1,
        rcpt_index=0,
        address="Jones@b.example",
        next_hop="gateway:mixer",
        attempts=0,
        received_at=NOW,
        expires_at=NOW + 86400,
        size=len(content),
        envelope=envelope,
    )
    return Handoff(
        next_hop=parse_next_hop("gateway:mixer"),
        message_id=1,
        envelope=envelope,
        content=content,
        recipients=[claim],
    )


async def deliver_counting_turns(content: bytes) -> tuple[list[Attempt], int]:
    """The attempts, and how many turns another task had on the loop during delivery."""
    turns = 0
    done = False

    async def other_session() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.create_task(other_session())
    await asyncio.sleep(0)  # the other task is running
    before = turns
    attempts = await deliverer().deliver(handoff(content))
    during = turns - before
    done = True
    await task
    return attempts, during


def test_a_large_message_is_converted_while_the_loop_keeps_moving() -> None:
    attachment = bytes(range(256)) * (OFF_LOOP_SIZE // 256 + 1)
    attempts, turns = asyncio.run(deliver_counting_turns(mail(attachment)))
    assert turns > 0
    [attempt] = attempts
    assert attempt.result is Result.DELIVERED
    assert attempt.conversion is not None
    ipm = decode_ipm(attempt.conversion.message.content)
    assert [getattr(p, "data", None) for p in ipm.body][1] == attachment
    assert attempt.conversion.message.envelope.recipients[0].address.startswith(
        "/C=GB/ADMD= /PRMD=B/"
    )


def test_a_small_message_is_converted_on_the_loop() -> None:
    attempts, turns = asyncio.run(deliver_counting_turns(mail(b"%PDF-1.4\n")))
    assert turns == 0
    [attempt] = attempts
    assert attempt.result is Result.DELIVERED
    assert attempt.conversion is not None
    assert attempt.conversion.message.envelope.content_type == "builtin:22"
