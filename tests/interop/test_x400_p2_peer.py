"""Two `waypost serve` processes over P1 in X.410 (1984) mode: A relays to B, a peer it
knows as a 1984 MTA, what an in-process MTA C sends A in 1988 mode. An IPM X.420 (1984)
can carry reaches B as P2 (content type 2); one with a file-transfer body part never
leaves A, and C's originator gets a non-delivery report (5.6.1) back through A."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import free_port
from interop_helpers import Waypost, stop_all, wait_for
from test_x400_association import start
from test_x400_reports import delivered

from waypost.message import ContentType, Envelope, Message, ObjectKind, Recipient
from waypost.service import Service
from waypost.x400.ipm_bodies import FileTransfer, IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_objects import decode_object
from waypost.x400.p1_report import decode_report_content

pytestmark = pytest.mark.interop

DOMAIN = {name: f"/C=GB/ADMD= /PRMD={name.upper()}/" for name in "abc"}
SMITH = "/C=GB/ADMD= /PRMD=C/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
PASSWORD = "pw"


def peer(name: str, port: int, mode: str) -> str:
    return (
        f'[[x400.peer]]\nname = "{name.upper()}-MTA"\naddress = "127.0.0.1:{port}"\n'
        f'mode = "{mode}"\nour_password = "{PASSWORD}"\npeer_password = "{PASSWORD}"\n'
    )


def route(prmd: str, to: str) -> str:
    return f'[[route]]\nmatch = "{DOMAIN[prmd]}"\nnext_hop = "x400:{to.upper()}-MTA"\n'


def process(root: Path, name: str, port: int, extra: str) -> Waypost:
    store = root / f"{name}-x400"
    return Waypost(
        root / name,
        settings={
            "x400": {
                "listen": [f"127.0.0.1:{port}"],
                "mta_name": f"{name.upper()}-MTA",
                "global_domain": DOMAIN[name],
            },
            "local": {"oraddresses": [DOMAIN[name]], "x400_store": str(store)},
        },
        extra=extra,
    )


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[Waypost], Waypost]]:
    started: list[Waypost] = []

    def run(wp: Waypost) -> Waypost:
        started.append(wp)
        return wp.start()

    yield run
    stop_all(started)


def ipm_to_jones(*body: object) -> Message:
    heading = IPMHeading(
        this_ipm=IPMIdentifier(user=SMITH, local="c-1"),
        originator=ORDescriptor(address=SMITH),
        primary_recipients=(ORDescriptor(address=JONES),),
        subject="To a 1984 MTA",
        languages=("en",),
    )
    content = encode_ipm(InterpersonalMessage(heading=heading, body=body))  # type: ignore[arg-type]
    envelope = Envelope(
        mts_id=f"{DOMAIN['c']};c-1",
        originator=SMITH,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


def process_a(root: Path, ports: dict[str, int]) -> Waypost:
    """A: relays to B, its 1984 (X.410 mode) peer, and to C in 1988 mode."""
    return process(
        root,
        "a",
        ports["a"],
        route("b", "b")
        + route("c", "c")
        + peer("b", ports["b"], "x410")
        + peer("c", ports["c"], "1988"),
    )


def stored(root: Path) -> list[Path]:
    return sorted(root.glob("*/new/*.p1"))


async def run_c(tmp_path: Path, ports: dict[str, int], sent: Message) -> Service:
    c = await start(
        tmp_path,
        "c",
        ports["c"],
        route("b", "a") + peer("a", ports["a"], "1988"),
        local=f'oraddresses = ["{DOMAIN["c"]}"]\n',
    )
    await c.submit(sent)
    return c


async def test_a_relays_p22_to_its_1984_peer_as_p2(
    tmp_path: Path, processes: Callable[[Waypost], Waypost]
) -> None:
    ports = {name: free_port() for name in "abc"}
    b = processes(process(tmp_path, "b", ports["b"], peer("a", 1, "x410")))
    processes(process_a(tmp_path, ports))
    sent = ipm_to_jones(IA5Text(text="Hello from C"))
    c = await run_c(tmp_path, ports, sent)
    try:
        store = tmp_path / "b-x400"
        (file,) = await asyncio.to_thread(wait_for, lambda: stored(store), 20, "B's store")
        envelope, content = decode_object(file.read_bytes())
        assert envelope.content_type == ContentType.P2
        ipm = decode_ipm(content)
        assert ipm.body == (IA5Text(text="Hello from C"),)
        assert ipm.heading.subject == "To a 1984 MTA" and ipm.heading.languages == ()
        assert "open in x410 mode" in b.stderr
    finally:
        await c.stop()


async def test_what_p2_cannot_carry_comes_back_as_a_report(
    tmp_path: Path, processes: Callable[[Waypost], Waypost]
) -> None:
    ports = {name: free_port() for name in "abc"}
    processes(process(tmp_path, "b", ports["b"], peer("a", 1, "x410")))
    a = processes(process_a(tmp_path, ports))
    attachment = FileTransfer(data=b"%PDF-1.4", filename="r.pdf", content_type="application/pdf")
    c = await run_c(tmp_path, ports, ipm_to_jones(IA5Text(text="attached"), attachment))
    try:
        (report,) = await delivered(c)
        envelope, content = decode_object(report)
        assert envelope.object_kind is ObjectKind.REPORT
        assert envelope.recipients[0].address == SMITH
        (fate,) = decode_report_content(content).recipients
        assert fate.actual_recipient == JONES
        assert fate.describe() == "non-delivered: unable-to-transfer / content-type-not-supported"
        assert fate.supplementary is not None and fate.supplementary.startswith("5.6.1")
        assert a.wait_event(1828)
        assert stored(tmp_path / "b-x400") == []
    finally:
        await c.stop()
