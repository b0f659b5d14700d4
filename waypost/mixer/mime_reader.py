"""An Internet message read into the email package's objects as its parser reads it, but a
multipart/mixed split on its boundary in one pass rather than fed to the parser line by
line: the header blocks still go through the parser, the bodies are set as they stand."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.policy import Policy

# email.feedparser's patterns: a header or continuation line, a line end. A "From " line
# (an mbox envelope line) is not read here: the parser takes it for the Unix From, a
# defect, or the first line of the body, depending on where it stands.
_HEADER_LINE = re.compile(r"^([\041-\071\073-\176]*:|[\t ])")
# Characters str.splitlines (the parser's line splitter) ends a line at, besides CR and LF,
# that ASCII text decoded with surrogate escapes may hold: text with them is left to the
# parser.
_ODD_LINE_ENDS = "\x0b\x0c\x1c\x1d\x1e"


def read_message(content: bytes, policy: Policy) -> EmailMessage:
    """`BytesParser(policy=policy).parsebytes(content)`: the same headers, parts and bodies
    for a single part or a top-level multipart/mixed of single parts (RFC 2046 §5.1.1),
    the parser's own reading for anything else (a nested multipart, a message/*, a
    defect to record)."""
    text = content.decode("ascii", "surrogateescape")
    message = _split_mixed(text, policy) if _ordinary_lines(text) else None
    if message is None:
        parsed = BytesParser(policy=policy).parsebytes(content)
        assert isinstance(parsed, EmailMessage)
        return parsed
    return message


def _ordinary_lines(text: str) -> bool:
    """Lines all end in CRLF, or all in LF, and nothing else ends a line."""
    if any(odd in text for odd in _ODD_LINE_ENDS):
        return False
    if "\r" not in text:
        return True
    return text.count("\r") == text.count("\r\n") == text.count("\n")


def _split_mixed(text: str, policy: Policy) -> EmailMessage | None:
    """The message, when it is a single part or a multipart/mixed of single parts, with
    nothing the parser would record a defect for; else None."""
    split = _header_and_body(text)
    if split is None:
        return None
    header, body = split
    message = _headers(header, policy)
    if message.get_content_maintype() not in ("multipart", "message"):
        # A single part: all that follows the header is its body.
        message.set_payload(body)
        return message
    if message.get_content_type() != "multipart/mixed":
        return None
    encoding = str(message.get("Content-Transfer-Encoding", "8bit")).lower()
    if encoding not in ("7bit", "8bit", "binary"):
        return None  # RFC 2045 §6.4: a defect the parser records
    boundary = message.get_boundary()
    if boundary is None:
        return None
    found = _delimiters(body, boundary)
    if not found or found[0].group("end"):
        return None  # no part at all: a defect the parser records
    parts: list[EmailMessage] = []
    at = 0  # found[at]: the delimiter the next part follows
    while True:
        # email.feedparser skips delimiter lines that follow one another (a close
        # delimiter among them too): no part lies between them.
        while at + 1 < len(found) and found[at + 1].start() == found[at].end():
            at += 1
        if at + 1 == len(found):
            return None  # the last part runs to the end: no close delimiter, a defect
        part = _leaf(body[found[at].end() : found[at + 1].start()], policy)
        if part is None:
            return None
        parts.append(part)
        at += 1
        if found[at].group("end"):
            close = found[at]
            break
    preamble = body[: found[0].start()]
    if preamble:
        # RFC 2046 §5.1.1: the line end before a delimiter belongs to the delimiter.
        message.preamble = _without_line_end(preamble)
    message.set_payload([])
    for part in parts:
        message.attach(part)
    # email.feedparser: all that follows the close delimiter's line is the epilogue.
    message.epilogue = body[close.end() :]
    return message


def _delimiters(body: str, boundary: str) -> list[re.Match[str]]:
    """The delimiter lines of the body, in order, found by a substring search."""
    # email.feedparser's boundary line: RFC 2046 §5.1.1's delimiter, transport padding
    # (white space) allowed after it, at the start of a line.
    line = re.compile(rf"--{re.escape(boundary)}(?P<end>--)?[ \t]*(?:\r\n|\n|\Z)")
    needle = f"--{boundary}"
    found = []
    at = body.find(needle)
    while at >= 0:
        if at == 0 or body[at - 1] == "\n":
            match = line.match(body, at)
            if match is not None:
                found.append(match)
        at = body.find(needle, at + 1)
    return found


def _header_and_body(text: str) -> tuple[str, str] | None:
    """The header block (with the empty line that ends it) and the body, when every line
    before that empty line is a header line; else None (the parser has a defect for it)."""
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return None
        line = text[start : end + 1]
        if line in ("\n", "\r\n"):
            return text[: end + 1], text[end + 1 :]
        if not _HEADER_LINE.match(line):
            return None
        start = end + 1


def _headers(header: str, policy: Policy) -> EmailMessage:
    """A header block (every line a header line, `_header_and_body`) as the parser reads
    it: each field's lines through the policy's `header_source_parse`, as
    email.feedparser gives them to it. A block the parser would note a defect in (a
    continuation line first, an empty field name) goes to it."""
    lines = header.splitlines(keepends=True)
    if lines and lines[-1] in ("\n", "\r\n"):
        lines.pop()  # the empty line that ends the block
    if not lines or lines[0][0] in " \t" or any(line[0] == ":" for line in lines):
        parsed = Parser(policy=policy).parsestr(header, headersonly=True)
        assert isinstance(parsed, EmailMessage)
        return parsed
    return _fields(lines, policy)


def _fields(lines: list[str], policy: Policy) -> EmailMessage:
    message = EmailMessage(policy=policy)
    field: list[str] = []
    for line in lines:
        if line[0] in " \t":
            field.append(line)  # a continuation line (RFC 5322 §2.2.3)
            continue
        if field:
            message.set_raw(*policy.header_source_parse(field))
        field = [line]
    if field:
        message.set_raw(*policy.header_source_parse(field))
    return message


def _leaf(chunk: str, policy: Policy) -> EmailMessage | None:
    """A part that is not itself a multipart or a message/*, as the parser reads it: its
    headers, and its body without the line end that belongs to the next delimiter."""
    if chunk[:1] in ("\n", "\r"):
        header, body = "", chunk[2 if chunk.startswith("\r\n") else 1 :]
    else:
        split = _header_and_body(chunk)
        if split is None:
            return None
        header, body = split
    part = _headers(header, policy) if header else EmailMessage(policy=policy)
    if part.get_content_maintype() in ("multipart", "message"):
        return None
    part.set_payload(_without_line_end(body))
    return part


def _without_line_end(text: str) -> str:
    """The text less one final line end (CRLF, CR or LF). Tested at the end rather than
    searched for: a search for `(\r\n|\r|\n)\\Z` tries every position of the text."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\r", "\n")):
        return text[:-1]
    return text
