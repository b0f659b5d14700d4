"""Write seed corpora for the harnesses: `python fuzz/seeds.py CORPUS_DIR`.

CORPUS_DIR/<harness>/ gets well-formed inputs to mutate: the client side of each PP capture
in /work/shared/vectors/pp (for the OSI stack, in both modes), the MTS-APDUs those carry and
one Waypost builds (P1, BER), their IPM contents (P22), and a few SMTP sessions.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from waypost.asn1 import BERError
from waypost.message import ContentType, Envelope, Recipient
from waypost.osi.stack import (
    NEED_DATA,
    Accept,
    Association,
    ConfirmTransfer,
    Mode,
    OpenRequest,
    Role,
    State,
    TransferReceived,
)
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_objects import decode_object, encode_stored

PP = Path("/work/shared/vectors/pp")
TESTS = Path(__file__).resolve().parent.parent / "tests"
SMITH, JONES = "/C=GB/ADMD= /PRMD=A/S=Smith/", "/C=GB/ADMD= /PRMD=B/S=Jones/"
SMTP_SESSIONS = [
    b"EHLO a.test\r\nMAIL FROM:<a@a.test> SIZE=10\r\nRCPT TO:<b@b.test> NOTIFY=SUCCESS\r\n"
    b"DATA\r\nSubject: x\r\n\r\n..hi\r\n.\r\nQUIT\r\n",
    b"EHLO a.test\r\nMAIL FROM:<a@a.test> BODY=BINARYMIME\r\nRCPT TO:<b@b.test>\r\n"
    b"BDAT 5\r\nhelloBDAT 0 LAST\r\nRSET\r\nQUIT\r\n",
    b"EHLO a.test\r\nSTARTTLS\r\nEHLO a.test\r\nAUTH PLAIN AGFAYg==\r\nAUTH LOGIN\r\nYQ==\r\n*\r\n",
    b"HELO a.test\r\nMAIL FROM:<>\r\nRCPT TO:<\xc3\xa9@b.test>\r\nVRFY x\r\nNOOP\r\nHELP\r\n",
]


def pp_streams() -> list[tuple[str, bytes]]:
    if not PP.is_dir():
        return []
    sys.path.insert(0, str(TESTS))
    from pcap import tcp_streams  # noqa: PLC0415 - the tests' pcap reader, on the path now

    out = []
    for path in sorted(PP.glob("*.pcap")):
        for stream in tcp_streams(path):
            out.append((path.stem, stream.client_to_server))
    return out


def apdus(stream: bytes, mode: Mode) -> list[bytes]:
    """The MTS-APDUs a responder receives from `stream`."""
    assoc = Association(role=Role.RESPONDER, mode=mode)
    got: list[bytes] = []
    assoc.receive_data(stream)
    while (event := assoc.next_event()) is not NEED_DATA:
        if isinstance(event, OpenRequest) and assoc.state is State.AWAIT_ACCEPT:
            assoc.send(Accept(bind_result=b"\x31\x00"))
        elif isinstance(event, TransferReceived):
            got.append(event.apdu)
            if assoc.state is State.OPEN:
                assoc.send(ConfirmTransfer())
    return got


def main(root: Path) -> None:
    corpus: dict[str, list[bytes]] = {h: [] for h in ("ber", "p1", "ipm", "osi_stack", "smtp")}
    envelope = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=A/;seed-1",
        originator=SMITH,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    ipm = build_ipm(originator=SMITH, recipients=[JONES], subject="Seed", text="Hi", ipm_id="s")
    corpus["p1"].append(encode_stored(envelope, ipm))
    corpus["ipm"].append(ipm)
    for name, stream in pp_streams():
        for mode in (Mode.NORMAL_1988, Mode.X410):
            bit = 1 if mode is Mode.X410 else 0
            for chunking in (0x0A, 0x0C):  # 512 and 4096 octets at a time (fuzz_osi_stack)
                corpus["osi_stack"].append(bytes([bit | chunking]) + stream)
            try:
                corpus["p1"].extend(apdus(stream, mode))
            except Exception as exc:  # a capture in the other mode: not a seed
                print(f"{name} {mode.value}: {exc}", file=sys.stderr)
    for apdu in list(corpus["p1"]):
        try:
            _, content = decode_object(apdu)
        except BERError:
            continue
        if content:
            corpus["ipm"].append(content)
    corpus["ber"] = corpus["p1"] + corpus["ipm"]
    corpus["smtp"] = [bytes([head, 0]) + s for s in SMTP_SESSIONS for head in (0x00, 0x02, 0x19)]
    for harness, inputs in corpus.items():
        folder = root / harness
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        print(f"{harness}: {len(set(inputs))} seeds in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".fuzz-corpus"))
