"""waypost.mixer.mime_reader reads a message as the email package's parser does: the same
headers, parts, bodies, preamble and epilogue, over generated multipart messages with
delimiter-like lines, missing separators, line ends of every kind (mixed, bare CRs among
them) and 8-bit octets."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.mixer import mime_reader
from waypost.mixer.bodies import DEFAULT_POLICY
from waypost.mixer.mime_reader import read_message

Shape = tuple[object, ...]


def shape(message: Message) -> Shape:
    """Everything the gateway can read of a parsed message."""
    payload = message.get_payload()
    body: object = [shape(p) for p in payload] if isinstance(payload, list) else payload
    return (
        [(name, str(value)) for name, value in message.raw_items()],
        message.get_unixfrom(),
        message.preamble,
        message.epilogue,
        message.get_content_type(),
        [type(defect) for defect in message.defects],
        body,
    )


def parsed(content: bytes) -> Message:
    return BytesParser(policy=DEFAULT_POLICY).parsebytes(content)


BOUNDARY = "b=_1"
ORDINARY_LINES = [
    "text",
    "",
    "--b=_1x",
    " --b=_1",
    "From here",
    "caf\u00e9",
    "a: b",
    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
]
# The ordinary lines, and as often lines that are delimiters or end lines oddly.
body_lines = st.sampled_from(ORDINARY_LINES) | st.sampled_from(
    [*ORDINARY_LINES, "--b=_1", "--b=_1--", "--b=_1  ", "\x0c", "x\ry"]
)
part_headers = st.lists(
    st.sampled_from(
        [
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Type: application/pdf",
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="f.pdf"',
            "Content-Description: folded",
            "  continued",
        ]
    )
    | st.sampled_from(
        [
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Type: application/pdf",
            "Content-Type: message/rfc822",
            "Content-Type: multipart/alternative; boundary=inner",
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="f.pdf"',
            "Content-Description: folded",
            "  continued",
            "not a header",
        ]
    ),
    max_size=3,
)
ordinary_parts = st.tuples(
    st.lists(st.sampled_from(["Content-Type: application/pdf", "X-A: b"]), max_size=2),
    st.just(True),
    st.lists(st.sampled_from(ORDINARY_LINES), max_size=6),
)
parts = ordinary_parts | st.tuples(part_headers, st.booleans(), st.lists(body_lines, max_size=6))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    top = ["From: a@example.com", "Subject: s", "MIME-Version: 1.0"]
    top.append(
        draw(
            st.sampled_from(
                [
                    f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"',
                    f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"',
                    f"Content-Type: multipart/mixed; boundary={BOUNDARY}",
                    "Content-Type: multipart/mixed",
                    f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"',
                    "Content-Type: text/plain",
                ]
            )
        )
    )
    if draw(st.booleans()):
        top.append(draw(st.sampled_from(["Content-Transfer-Encoding: 7bit", "X-C: base64"])))
    lines = [*top, ""]
    lines += draw(st.lists(body_lines, max_size=2))  # preamble
    for headers, separator, body in draw(st.lists(parts, max_size=4)):
        lines.append(draw(st.sampled_from([f"--{BOUNDARY}", f"--{BOUNDARY} \t"])))
        lines += headers
        if separator:
            lines.append("")
        lines += body
    if draw(st.integers(0, 3)):
        lines.append(f"--{BOUNDARY}--")
        lines += draw(st.lists(body_lines, max_size=2))  # epilogue
    end = draw(st.sampled_from(["\r\n", "\n"]))
    # Mostly one line end throughout; now and then another, a bare CR among them.
    ends = st.just(end) | st.sampled_from(["\r\n", "\n", "\r"])
    text = "".join(line + draw(ends) for line in lines[:-1]) + lines[-1]
    text += draw(st.sampled_from(["", end]))
    return text.encode("utf-8")


@settings(max_examples=3000, deadline=None)
@given(messages())
def test_read_as_the_parser_reads(content: bytes) -> None:
    assert shape(read_message(content, DEFAULT_POLICY)) == shape(parsed(content))


def test_an_attachment_is_read_without_the_parser() -> None:
    lines = [
        "From: a@example.com",
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"',
        "",
        "preamble",
        f"--{BOUNDARY}",
        "Content-Type: text/plain",
        "",
        "hello",
        f"--{BOUNDARY}",
        "Content-Type: application/pdf",
        "Content-Transfer-Encoding: base64",
        "",
        *["QUFB" * 19] * 2000,
        f"--{BOUNDARY}--",
        "epilogue",
    ]
    content = "\r\n".join(lines).encode()
    message = read_message(content, DEFAULT_POLICY)
    assert shape(message) == shape(parsed(content))
    attachment = message.get_payload(1)
    assert isinstance(attachment, Message)
    assert attachment.get_payload(decode=True) == b"AAA" * 19 * 2000


def test_mixed_line_ends_away_from_the_delimiters_are_read_without_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [
        "From: a@example.com\r\n",
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\n',
        "\r\n",
        f"--{BOUNDARY}\r\n",
        "Content-Type: text/plain\r\n",
        "\r\n",
        "a bare CR\rin a line\n",
        "and a bare LF\n",
        f"--{BOUNDARY}--\r\n",
    ]
    content = "".join(lines).encode()
    expected = shape(parsed(content))
    monkeypatch.setattr(mime_reader, "BytesParser", None)  # the parser is not called
    assert shape(read_message(content, DEFAULT_POLICY)) == expected


def test_a_bare_cr_before_a_delimiter_is_left_to_the_parser() -> None:
    content = (
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\r\n\r\n'
        f"--{BOUNDARY}\r\n\r\ntext\r--{BOUNDARY}\r\n\r\nmore\r\n--{BOUNDARY}--\r"
        "epilogue\r\n"
    ).encode()
    assert shape(read_message(content, DEFAULT_POLICY)) == shape(parsed(content))
