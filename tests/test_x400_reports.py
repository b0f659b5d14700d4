"""Reports, probes, trace and loops between Waypost MTAs over real P1 associations.

A, B and C are in-process services, each its own PRMD (/C=GB/ADMD= /PRMD=X/), with
routes between them; what arrives in a local X.400 store is read back as P1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from helpers import free_port
from test_x400_association import MTS_ID, ORIGINATOR, message, start

from waypost.asn1 import decode
from waypost.message import Extension, Message, ObjectKind, Recipient, ReportRequest
from waypost.service import Service
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu
from waypost.x400.p1_objects import decode_object
from waypost.x400.p1_report import ReportContent, decode_report_content

JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
CAROL = "/C=GB/ADMD= /PRMD=C/S=Carol/"
DOMAIN = {name: f"/C=GB/ADMD= /PRMD={name.upper()}/" for name in "abc"}


def peer(name: str, port: int, mode: str = "1988") -> str:
    return (
        f'[[x400.peer]]\nname = "{name.upper()}-MTA"\naddress = "127.0.0.1:{port}"\n'
        f'mode = "{mode}"\nour_password = "pw"\npeer_password = "pw"\ncheckpoint_size = 1\n'
    )


def route(prmd: str, to: str) -> str:
    return f'[[route]]\nmatch = "/C=GB/ADMD= /PRMD={prmd}/"\nnext_hop = "x400:{to.upper()}-MTA"\n'


async def network(
    tmp_path: Path, routes: dict[str, str], *, mode: str = "1988", **local: str
) -> dict[str, Service]:
    """Services a, b, c; `routes` maps 'a' to its route and peer lines; each delivers its
    own PRMD locally (or what `local` says)."""
    ports = {name: free_port() for name in "abc"}
    services: dict[str, Service] = {}
    for name in "abc":
        extra = routes.get(name, "")
        peers = "".join(peer(other, ports[other], mode) for other in "abc" if other != name)
        own = local.get(name, f'oraddresses = ["{DOMAIN[name]}"]\n')
        services[name] = await start(tmp_path, name, ports[name], extra + peers, local=own)
    return services


async def stop(services: dict[str, Service]) -> None:
    for svc in services.values():
        await svc.stop()


async def delivered(svc: Service, count: int = 1) -> list[bytes]:
    root = Path(svc.config.local.x400_store)
    for _ in range(300):
        files = sorted(root.glob("*/new/*.p1"))
        if len(files) >= count:
            return [f.read_bytes() for f in files]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} objects never arrived under {root}")


def report_of(apdu: bytes) -> ReportContent:
    envelope, content = decode_object(apdu)
    assert envelope.object_kind is ObjectKind.REPORT
    assert envelope.recipients[0].address == ORIGINATOR
    return decode_report_content(content)


def to(recipient: str, **fields: object) -> Message:
    """The test P22 message, for one recipient with these per-recipient fields."""
    sent = message()
    recipients = [Recipient(address=recipient, originally_specified_number=1, **fields)]  # type: ignore[arg-type]
    return msgspec.structs.replace(
        sent, envelope=msgspec.structs.replace(sent.envelope, recipients=recipients)
    )


@pytest.mark.parametrize("mode", ["1988", "x410"])
async def test_unknown_recipient_comes_back_as_a_non_delivery_report(
    tmp_path: Path, mode: str
) -> None:
    net = await network(
        tmp_path,
        {"a": route("B", "b"), "b": route("A", "a")},
        mode=mode,
        b=f'oraddresses = ["{DOMAIN["b"]}"]\nx400_mailboxes = ["{JONES}"]\n',
    )
    nobody = "/C=GB/ADMD= /PRMD=B/S=Nobody/"
    try:
        await net["a"].submit(to(nobody))
        (apdu,) = await delivered(net["a"])
        report = report_of(apdu)
        assert report.subject_id == MTS_ID
        (fate,) = report.recipients
        assert fate.actual_recipient == nobody and not fate.delivered
        assert fate.describe() == "non-delivered: unable-to-transfer / unrecognised-OR-name"
        assert fate.supplementary is not None and fate.supplementary.startswith("5.1.1")
        # The subject's trace as B saw it: A's domain, then B's.
        assert [t.domain for t in report.subject_trace or ()] == [DOMAIN["a"], DOMAIN["b"]]
        envelope, _ = decode_object(apdu)
        assert [t.domain for t in envelope.trace] == [DOMAIN["b"], DOMAIN["a"]]
        # Nothing reached B's store, and no report is ever made on the report.
        assert not list(Path(net["b"].config.local.x400_store).glob("*/new/*"))
        await asyncio.sleep(0.3)
        assert len(await delivered(net["a"])) == 1
    finally:
        await stop(net)


async def test_unroutable_recipient_is_reported_not_dropped(tmp_path: Path) -> None:
    # A routes PRMD=B to B; B delivers only O=HQ and has no route for the rest of PRMD=B.
    net = await network(
        tmp_path,
        {"a": route("B", "b"), "b": route("A", "a")},
        b='oraddresses = ["/C=GB/ADMD= /PRMD=B/O=HQ/"]\n',
    )
    stranger = "/C=GB/ADMD= /PRMD=B/O=Gone/S=Nobody/"
    try:
        await net["a"].submit(to(stranger))
        (fate,) = report_of((await delivered(net["a"]))[0]).recipients
        assert fate.actual_recipient == stranger
        assert fate.describe() == "non-delivered: unable-to-transfer / unrecognised-OR-name"
    finally:
        await stop(net)


async def test_delivery_report_when_the_originator_asks(tmp_path: Path) -> None:
    net = await network(tmp_path, {"a": route("B", "b"), "b": route("A", "a")})
    try:
        await net["a"].submit(to(JONES, report_request=ReportRequest.ALWAYS))
        (message_file,) = await delivered(net["b"])
        assert isinstance(decode_mts_apdu(message_file), P1Message)
        (apdu,) = await delivered(net["a"])
        (fate,) = report_of(apdu).recipients
        assert fate.actual_recipient == JONES and fate.delivered
        assert fate.report_request is ReportRequest.ALWAYS
    finally:
        await stop(net)


async def test_message_relayed_a_to_b_to_c_carries_the_trace(tmp_path: Path) -> None:
    net = await network(tmp_path, {"a": route("C", "b"), "b": route("C", "c") + route("A", "a")})
    try:
        await net["a"].submit(to(CAROL))
        (apdu,) = await delivered(net["c"])
        got = decode_mts_apdu(apdu)
        assert isinstance(got, P1Message)
        assert got.envelope.envelope.mts_id == MTS_ID
        assert [t.domain for t in got.envelope.envelope.trace] == [
            DOMAIN["a"],
            DOMAIN["b"],
            DOMAIN["c"],
        ]
        assert all(t.action == "relayed" for t in got.envelope.envelope.trace)
        assert got.content == message().content
    finally:
        await stop(net)


async def test_a_loop_is_detected_and_reported(tmp_path: Path) -> None:
    # A sends PRMD=C to B, and B sends it back to A: A sees its own domain in the trace.
    net = await network(tmp_path, {"a": route("C", "b"), "b": route("C", "a") + route("A", "a")})
    try:
        await net["a"].submit(to(CAROL))
        (apdu,) = await delivered(net["a"])
        (fate,) = report_of(apdu).recipients
        assert fate.actual_recipient == CAROL
        assert fate.describe() == "non-delivered: unable-to-transfer / loop-detected"
        assert not list(Path(net["c"].config.local.x400_store).glob("*/new/*"))
    finally:
        await stop(net)


async def test_unsupported_critical_extension_is_non_delivered(tmp_path: Path) -> None:
    net = await network(tmp_path, {"a": route("B", "b"), "b": route("A", "a")})
    odd = Extension(type="1.2.3.4.5", critical_for=["transfer"], value=b"\x05\x00")
    try:
        await net["a"].submit(to(JONES, extensions=[odd]))
        (fate,) = report_of((await delivered(net["a"]))[0]).recipients
        assert (
            fate.describe() == "non-delivered: unable-to-transfer / unsupported-critical-function"
        )
    finally:
        await stop(net)


@pytest.mark.parametrize("mode", ["1988", "x410"])
async def test_probes_are_answered_with_reports(tmp_path: Path, mode: str) -> None:
    net = await network(
        tmp_path,
        {"a": route("B", "b"), "b": route("A", "a")},
        mode=mode,
        b=f'oraddresses = ["{DOMAIN["b"]}"]\nx400_mailboxes = ["{JONES}"]\n',
    )
    nobody = "/C=GB/ADMD= /PRMD=B/S=Nobody/"
    sent = message()
    probe = msgspec.structs.replace(
        sent.envelope,
        recipients=[
            Recipient(
                address=JONES, originally_specified_number=1, report_request=ReportRequest.ALWAYS
            ),
            Recipient(
                address=nobody, originally_specified_number=2, report_request=ReportRequest.ALWAYS
            ),
        ],
        object_kind=ObjectKind.PROBE,
        content_length=len(sent.content),
    )
    try:
        await net["a"].submit(Message(envelope=probe, content=b""))
        apdus = await delivered(net["a"], 1)
        fates = {}
        for _ in range(100):
            fates = {
                r.actual_recipient: r.describe()
                for apdu in apdus
                for r in report_of(apdu).recipients
            }
            if len(fates) == 2:
                break
            await asyncio.sleep(0.05)
            apdus = await delivered(net["a"], 1)
        assert fates == {
            JONES: "delivered",
            nobody: "non-delivered: unable-to-transfer / unrecognised-OR-name",
        }
        # A probe is answered, never stored as a message.
        assert not list(Path(net["b"].config.local.x400_store).glob("*/new/*"))
        assert all(decode(a).tag.number == 1 for a in apdus)
    finally:
        await stop(net)
