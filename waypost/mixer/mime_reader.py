"""An Internet message read into the email package's objects as its parser reads it, but a
multipart/mixed split on its boundary in one pass rather than fed to the parser line by
line: the header blocks still go through the parser, the bodies are set as they stand."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.policy import Policy
from typing import NamedTuple

# email.feedparser's patterns: a header or continuation line, a line end. A "From " line
# (an mbox envelope line) is not read here: the parser takes it for the Unix From, a
# defect, or the first line of the body, depending on where it stands.
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]*:|[\t ]")  # matched at a line's start
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
    message = None if _odd_line_ends(text) else _split_mixed(text, policy)
    if message is None:
        parsed = BytesParser(policy=policy).parsebytes(content)
        assert isinstance(parsed, EmailMessage)
        return parsed
    return message


def _odd_line_ends(text: str) -> bool:
    """Something other than CR, LF or CRLF may end a line. Where a bare CR or LF stands
    matters only in a header block or before or after a delimiter, and is checked
    there: counting line ends over a whole 100 KiB attachment costs more than reading
    the rest of the message."""
    return any(odd in text for odd in _ODD_LINE_ENDS)


def _split_mixed(text: str, policy: Policy) -> EmailMessage | None:
    """The message, when it is a single part or a multipart/mixed of single parts, with
    nothing the parser would record a defect for; else None."""
    split = _header_and_body(text, 0, len(text))
    if split is None:
        return None
    header, body = split
    message = _headers(header, policy)
    if message.get_content_maintype() not in ("multipart", "message"):
        # A single part: all that follows the header is its body.
        message.set_payload(text[body:])
        return message
    if message.get_content_type() != "multipart/mixed":
        return None
    encoding = str(message.get("Content-Transfer-Encoding", "8bit")).lower()
    if encoding not in ("7bit", "8bit", "binary"):
        return None  # RFC 2045 §6.4: a defect the parser records
    boundary = message.get_boundary()
    if boundary is None:
        return None
    found = _delimiters(text, boundary, body)
    if found is None:
        return None
    if not found or found[0].close:
        return None  # no part at all: a defect the parser records
    parts: list[EmailMessage] = []
    at = 0  # found[at]: the delimiter the next part follows
    while True:
        # email.feedparser skips delimiter lines that follow one another (a close
        # delimiter among them too): no part lies between them.
        while at + 1 < len(found) and found[at + 1].start == found[at].end:
            at += 1
        if at + 1 == len(found):
            return None  # the last part runs to the end: no close delimiter, a defect
        part = _leaf(text, found[at].end, found[at + 1].start, policy)
        if part is None:
            return None
        parts.append(part)
        at += 1
        if found[at].close:
            close = found[at]
            break
    if found[0].start > body:
        # RFC 2046 §5.1.1: the line end before a delimiter belongs to the delimiter.
        message.preamble = _without_line_end(text, body, found[0].start)
    message.set_payload([])
    for part in parts:
        message.attach(part)
    # email.feedparser: all that follows the close delimiter's line is the epilogue.
    message.epilogue = text[close.end :]
    return message


class _Delimiter(NamedTuple):
    """A delimiter line: where it starts, where its line end ends, and whether it is the
    close delimiter."""

    start: int
    end: int
    close: bool


def _delimiters(text: str, boundary: str, body: int) -> list[_Delimiter] | None:
    """The delimiter lines of the body (the text from offset `body` on, the start of a
    line), in order, found by a substring search; None when
    a bare CR starts or ends a line that may be one (the parser's lines end at a bare CR
    too: it is left to read them). Matched by hand: a regular expression for each
    message's boundary would be compiled for each message."""
    # email.feedparser's boundary line: RFC 2046 §5.1.1's delimiter, transport padding
    # (white space) allowed after it, then the line end, at the start of a line.
    needle = f"--{boundary}"
    found = []
    at = text.find(needle, body)
    while at >= 0:
        before = text[at - 1] if at > body else "\n"
        if before == "\r":
            return None  # a bare CR (a hyphen follows it) ends the line before
        if before == "\n":
            after = at + len(needle)
            close = text.startswith("--", after)
            end = after + 2 if close else after
            while text.startswith((" ", "\t"), end):
                end += 1
            if text.startswith("\r\n", end):
                found.append(_Delimiter(at, end + 2, close))
            elif text.startswith("\n", end) or end == len(text):
                found.append(_Delimiter(at, end + 1 if end < len(text) else end, close))
            elif text.startswith("\r", end):
                return None  # a delimiter line that ends in a bare CR
        at = text.find(needle, at + 1)
    return found


def _header_and_body(text: str, start: int, stop: int) -> tuple[str, int] | None:
    """Of the entity `text[start:stop]`: the header block (with the empty line that ends
    it) and the offset of the body, when every line before that empty line is a header
    line; else None (the parser has a defect for it). Offsets rather than slices: a
    slice of the body would copy a whole attachment."""
    at = start
    while True:
        end = text.find("\n", at, stop)
        if end < 0:
            return None
        if end == at or (end == at + 1 and text[at] == "\r"):  # the empty line
            header = text[start : end + 1]
            if header.count("\r") != header.count("\r\n"):
                return None  # a bare CR ends a line of the block for the parser
            return header, end + 1
        if not _HEADER_LINE.match(text, at):
            return None
        at = end + 1


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


def _leaf(text: str, start: int, stop: int, policy: Policy) -> EmailMessage | None:
    """The part `text[start:stop]`, when it is not itself a multipart or a message/*, as
    the parser reads it: its headers, and its body without the line end that belongs to
    the next delimiter."""
    if text.startswith(("\n", "\r"), start, stop):
        header, body = "", start + (2 if text.startswith("\r\n", start, stop) else 1)
    else:
        split = _header_and_body(text, start, stop)
        if split is None:
            return None
        header, body = split
    part = _headers(header, policy) if header else EmailMessage(policy=policy)
    if part.get_content_maintype() in ("multipart", "message"):
        return None
    part.set_payload(_without_line_end(text, body, stop))
    return part


def _without_line_end(text: str, start: int, stop: int) -> str:
    """`text[start:stop]` less one final line end (CRLF, CR or LF). Tested at the end
    rather than searched for: a search for `(\r\n|\r|\n)\\Z` tries every position."""
    if stop - start >= 2 and text.startswith("\r\n", stop - 2, stop):
        stop -= 2
    elif stop > start and text[stop - 1] in "\r\n":
        stop -= 1
    return text[start:stop]
