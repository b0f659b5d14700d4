"""IPM body parts ⇄ MIME entities (RFC 2157): pure functions both ways, the forwarded
message's heading converted through a hook the heading mapping provides."""

from __future__ import annotations

import binascii
import functools
import itertools
import re
import secrets
import struct
import sys
from collections.abc import Sequence
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from io import BytesIO
from typing import Protocol

import pybase64

from waypost.smtp.server_message import has_bare_cr_or_lf
from waypost.x400.ipm_bodies import (
    ISO_8859_REGISTRATIONS,
    OCTET_STREAM,
    BilaterallyDefined,
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
)

# RFC 5322 §2.1.1: a line of at most 998 octets; longer text goes base64.
MAX_LINE = 998
# text/plain whose charset parameter, if any, has an IA5 reading (RFC 2046 §4.1.2; US-ASCII
# is a subset of UTF-8, RFC 3629 §1), in a form the email package reads as it stands.
_CHARSET = r"(?:us-ascii|ascii|utf-8)"
_ASCII_TEXT_TYPE = re.compile(
    rf'[ \t]*text/plain[ \t]*(?:;[ \t]*charset[ \t]*=[ \t]*(?:"{_CHARSET}"|{_CHARSET})[ \t]*)?\Z',
    re.IGNORECASE,
)
_BASE64_LINE = 76
# The MIME types with an equivalence in RFC 2157 §6 (multipart/mixed: §2.1).
_EQUIVALENT_TYPES = frozenset({"text/plain", OCTET_STREAM, "message/rfc822", "multipart/mixed"})


class CachedHeaderRegistry(HeaderRegistry):
    """The email package's header factory, remembering what it made. The stock one builds
    a new class for every header object, and the package parses a field again at each
    read: the gateway reads a part's Content-* fields several times, and the same few
    values come in message after message. Header objects are immutable (a message keeps
    one and folds it for every output), so one serves every message. Only the MIME
    entity fields, and short ones, are kept: a header object is a parse tree of about
    100 times the size of its text, and other fields rarely repeat."""

    KEPT = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})
    KEPT_LENGTH = 256

    def __init__(self, size: int = 256) -> None:
        super().__init__()
        self._size = size
        self._classes: dict[str, type[BaseHeader]] = {}
        self._made: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: object) -> BaseHeader:
        # Address objects, lists of them and long or other fields are made each time.
        if type(value) is not str or len(value) > self.KEPT_LENGTH or name.lower() not in self.KEPT:
            return self[name](name, value)
        key = (name, value)
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= self._size:
                self._made.clear()  # a bound, not an LRU: cheap, and refilled at once
            made = self._made[key] = self[name](name, value)
        return made


# The default policy (RFC 5322 and RFC 6532 parsing, header objects) with that factory:
# every policy of the gateway's conversions is a clone of it and shares the factory.
DEFAULT_POLICY = policy.default.clone(header_factory=CachedHeaderRegistry())
_CRLF_POLICY = DEFAULT_POLICY.clone(linesep="\r\n")
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))  # email.generator's


class _Generator(BytesGenerator):
    """BytesGenerator writing a body in one piece: the stock one writes each line and each
    line end apart, most of the cost of a large attachment. The octets are the same: its
    line ends become the policy's, and no line end is added after the last line."""

    def _write_lines(self, lines: str) -> None:
        if lines and self.policy is not None:
            # As email.generator's NLCRE.sub(linesep, lines), in passes of str.replace: a
            # CR left after the first pass ended a line of its own.
            text = lines.replace("\r\n", "\n").replace("\r", "\n")
            linesep = self.policy.linesep
            self.write(text if linesep == "\n" else text.replace("\n", linesep))

    @classmethod
    def _make_boundary(cls, text: bytes | str | None = None) -> str:
        # email.generator's boundary, checked against the text with a substring test
        # rather than a regular expression over every line: a text with no "--boundary"
        # anywhere has no delimiter line of it (RFC 2046 §5.1.1). A BytesGenerator's text
        # is bytes.
        while True:
            boundary = "=" * 15 + f"{secrets.randbelow(sys.maxsize):0{_BOUNDARY_WIDTH}d}" + "=="
            delimiter = "--" + boundary
            if text is None:
                return boundary
            if isinstance(text, bytes):
                if delimiter.encode() not in text:
                    return boundary
            elif delimiter not in text:
                return boundary


def as_bytes(entity: EmailMessage, with_policy: policy.Policy | None = None) -> bytes:
    """`entity.as_bytes(policy=with_policy)`, faster on large bodies."""
    out = BytesIO()
    _Generator(out, mangle_from_=False, policy=with_policy or entity.policy).flatten(entity)
    return out.getvalue()


class BodyConversionError(ValueError):
    """A MIME entity that cannot become body parts (RFC 2157 §2.4: the gateway then
    refuses the message with a conversion report); the message names the entity."""


class HeadingHook(Protocol):
    """How a forwarded IPM's heading (a MessagePart's) crosses the gateway (RFC 2157 §6.5
    leaves the heading to RFC 2156 §5): the heading mapping implements this."""

    def heading_to_fields(self, heading: object) -> list[tuple[str, str]]:
        """The RFC 5322 header fields of a heading."""
        ...

    def fields_to_heading(self, fields: list[tuple[str, str]]) -> object:
        """The heading of a forwarded message's RFC 5322 header fields."""
        ...


class HeaderFieldsHeading:
    """The hook used until the heading mapping is wired in: the heading IS the header
    fields, a tuple of (name, value), carried across unchanged."""

    def heading_to_fields(self, heading: object) -> list[tuple[str, str]]:
        if not isinstance(heading, tuple):
            raise TypeError("this heading hook takes a tuple of (name, value) header fields")
        return [(str(name), str(value)) for name, value in heading]

    def fields_to_heading(self, fields: list[tuple[str, str]]) -> object:
        return tuple(fields)


HEADER_FIELDS_HEADING = HeaderFieldsHeading()


# -- X.400 → MIME (RFC 2157 §2.2) ------------------------------------------------------


def body_to_mime(
    parts: Sequence[BodyPart], heading_hook: HeadingHook = HEADER_FIELDS_HEADING
) -> EmailMessage:
    """The MIME entity of an IPM body: its single part, or multipart/mixed of its parts
    in order (RFC 2157 §2.2). The entity carries MIME-Version and its Content-* fields
    only; the heading mapping adds the message's own fields. An empty body becomes an
    empty text/plain (RFC 2157 maps no zero-part body; an empty text loses nothing)."""
    if len(parts) == 1:
        entity = part_to_mime(parts[0], heading_hook)
    elif not parts:
        entity = part_to_mime(IA5Text(text=""), heading_hook)
    else:
        entity = EmailMessage(policy=DEFAULT_POLICY)
        entity.make_mixed()
        for part in parts:
            entity.attach(part_to_mime(part, heading_hook))
    if "MIME-Version" not in entity:  # set_content writes it for a message/rfc822
        entity["MIME-Version"] = "1.0"
    return entity


# The entity body_to_mime makes of one short-lined US-ASCII IA5Text, as as_bytes writes it
# with CRLF line ends (RFC 2157 §6.1: text/plain; charset=us-ascii, 7bit).
_SINGLE_TEXT_HEAD = (
    b'Content-Type: text/plain; charset="us-ascii"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
)


def single_text_bytes(parts: Sequence[BodyPart]) -> bytes | None:
    """`as_bytes(body_to_mime(parts), <CRLF policy>)` for a body of one US-ASCII IA5Text
    whose lines are short (most text), written without the
    email package; None for any other body."""
    if len(parts) != 1 or type(parts[0]) is not IA5Text:
        return None
    text = _seven_bit_text(parts[0].text)
    return None if text is None else _SINGLE_TEXT_HEAD + text


def _seven_bit_text(text: str) -> bytes | None:
    """An IA5Text's text as the generator writes the 7bit text/plain _set_text makes of
    it, with CRLF line ends; None when _set_text would encode it in base64."""
    if not text.isascii():
        return None
    # _set_text's test for 7bit, on the same lines.
    lines = text.split("\r\n")
    if not all(len(line) <= MAX_LINE and "\r" not in line for line in lines):
        return None
    return "\n".join(lines).replace("\n", "\r\n").encode("ascii")


def written_body(
    parts: Sequence[BodyPart],
    writing: policy.Policy,
    heading_hook: HeadingHook = HEADER_FIELDS_HEADING,
) -> tuple[bytes, bool] | None:
    """`single_text_bytes` or `mixed_bytes` of a body, and whether every line of it ends
    in CRLF with no bare CR or LF (RFC 5321 §2.3.8), known from how each piece was
    written rather than by scanning the whole; None for a body neither writes."""
    single = single_text_bytes(parts)
    if single is not None:
        return single, True  # _seven_bit_text's lines, each ended with CRLF
    return _mixed(parts, writing, heading_hook)


def mixed_bytes(
    parts: Sequence[BodyPart],
    writing: policy.Policy,
    heading_hook: HeadingHook = HEADER_FIELDS_HEADING,
) -> bytes | None:
    """`as_bytes(body_to_mime(parts, heading_hook), writing)` (a policy with CRLF line
    ends) for a body of several parts, none a message body part or a composite FTBP (text
    and attachments: most multipart mail), with the email package writing only the
    header fields: its generator writes each part into a buffer of its own, copies it,
    and rescans its text for line ends several times. None for any other body."""
    written = _mixed(parts, writing, heading_hook)
    return None if written is None else written[0]


def _mixed(
    parts: Sequence[BodyPart], writing: policy.Policy, heading_hook: HeadingHook
) -> tuple[bytes, bool] | None:
    """mixed_bytes, and whether its line ends are all CRLF: the base64 lines and the
    7bit text are written with CRLF, and only the other pieces (heads, other text) are
    scanned for a bare CR or LF."""
    if len(parts) < 2 or writing.linesep != "\r\n" or not all(map(_is_leaf, parts)):
        return None
    texts = []
    crlf = True
    for part in parts:
        if isinstance(part, FileTransfer | BilaterallyDefined):
            # Its base64 lines written as bytes with CRLF, not as text to be rescanned.
            head = _attachment_head(part, writing)
            if head is None:
                head = _header_bytes(part_to_mime(part, heading_hook, payload=False), writing)
            crlf = crlf and not has_bare_cr_or_lf(head)
            texts.append(head + b"\r\n".join(_base64_lines(part.data)))
            continue
        text = _seven_bit_text(part.text) if type(part) is IA5Text else None
        if text is not None:
            texts.append(_TEXT_PART_HEAD + text)
            continue
        text = _leaf_bytes(part_to_mime(part, heading_hook), writing)
        if text is None:
            return None
        crlf = crlf and not has_bare_cr_or_lf(text)
        texts.append(text)
    # body_to_mime's multipart/mixed, its boundary chosen as the generator chooses it
    # (RFC 2046 §5.1.1: a delimiter that occurs in no part).
    boundary = _boundary_absent_from(texts)
    delimiter = b"--" + boundary.encode("ascii")
    out = [_mixed_head(writing, boundary), delimiter, b"\r\n", texts[0]]
    for text in texts[1:]:
        out += [b"\r\n", delimiter, b"\r\n", text]
    out += [b"\r\n", delimiter, b"--\r\n"]
    # The delimiters are the boundary's ASCII, with no line end: the head needs the check.
    return b"".join(out), crlf and not has_bare_cr_or_lf(out[0])


# A part of _SINGLE_TEXT_HEAD's text within a multipart: no MIME-Version of its own.
_TEXT_PART_HEAD = (
    b'Content-Type: text/plain; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
)

# What _Generator._make_boundary makes: 15 "=", the digits of a random number below
# sys.maxsize zero-padded to one width, "==". A boundary of that shape is written the same
# way whatever its digits.
_BOUNDARY_SHAPE = re.compile(r"={15}[0-9]+==\Z")


def _mixed_head(writing: policy.Policy, boundary: str) -> bytes:
    """The header fields of body_to_mime's multipart/mixed with this boundary, as the
    generator writes them: the email package's once, for a boundary of the shape, then
    that with the digits replaced."""
    if _BOUNDARY_SHAPE.match(boundary) is None:
        return _mixed_head_written(writing, boundary)
    model = "=" * 15 + "0" * (len(boundary) - 17) + "=="
    return _mixed_head_written(writing, model).replace(
        model.encode("ascii"), boundary.encode("ascii")
    )


@functools.lru_cache(maxsize=8)
def _mixed_head_written(writing: policy.Policy, boundary: str) -> bytes:
    top = EmailMessage(policy=DEFAULT_POLICY)
    top.make_mixed()
    top["MIME-Version"] = "1.0"
    top.set_boundary(boundary)
    return _header_bytes(top, writing)


# Parameter values written quoted as they stand: printable ASCII but the quote and the
# backslash (RFC 2045 §5.1's quoted-string without a quoted-pair), single spaces inside.
_PLAIN_VALUE = re.compile(r"[!#-\[\]-~]+(?: [!#-\[\]-~]+)*\Z")
_PLAIN_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*\Z")
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")
_OCTETS_HEAD = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"


def _attachment_head(
    part: FileTransfer | BilaterallyDefined, writing: policy.Policy
) -> bytes | None:
    """`_header_bytes(part_to_mime(part, payload=False), writing)` for a part whose type,
    parameters and filename are plain ASCII written on lines within the policy's length,
    without the email package's header objects; None for anything else."""
    if isinstance(part, BilaterallyDefined):
        return _OCTETS_HEAD + b"\r\n"
    content_type = part.content_type
    if _PLAIN_TYPE.match(content_type) is None or content_type.startswith(
        ("multipart/", "message/")
    ):
        return None
    names = [name for name, _ in part.parameters]
    if len(set(names)) != len(names):
        return None  # set_param keeps the last value of a name given twice
    fields = [f"Content-Type: {content_type}"]
    for name, value in part.parameters:
        if _PLAIN_NAME.match(name) is None or _PLAIN_VALUE.match(value) is None:
            return None
        fields[0] += f'; {name}="{value}"'
    fields.append("Content-Transfer-Encoding: base64")
    filename = part.filename
    if filename is not None or content_type in _EQUIVALENT_TYPES:
        fields.append("Content-Disposition: attachment")
    if filename is not None:
        if _PLAIN_VALUE.match(filename) is None:
            return None
        fields[-1] += f'; filename="{filename}"'
    limit = writing.max_line_length
    if limit is not None and any(len(field) > limit for field in fields):
        return None
    return ("\r\n".join(fields) + "\r\n\r\n").encode("ascii")


def _boundary_absent_from(texts: Sequence[bytes]) -> str:
    """`_Generator._make_boundary` over the texts joined by CRLFs, tested text by text
    (a delimiter holds no line end, so none spans two of them) rather than on a copy of
    them all."""
    while True:
        boundary = _Generator._make_boundary()
        delimiter = f"--{boundary}".encode("ascii")
        if not any(delimiter in text for text in texts):
            return boundary


def _is_leaf(part: BodyPart) -> bool:
    if isinstance(part, MessagePart):
        return False
    return not (
        isinstance(part, FileTransfer) and part.content_type.startswith(("multipart/", "message/"))
    )


def _leaf_bytes(entity: EmailMessage, writing: policy.Policy) -> bytes | None:
    """A single part as the generator writes it: header fields, an empty line, and the
    payload with its line ends made the policy's (ASCII payloads only: 7bit or base64)."""
    payload = entity.get_payload()
    if not isinstance(payload, str) or not payload.isascii():
        return None
    text = payload.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return _header_bytes(entity, writing) + text.encode("ascii")


def _header_bytes(entity: EmailMessage, writing: policy.Policy) -> bytes:
    # email.generator.BytesGenerator._write_headers, and the empty line after them.
    fields = [writing.fold_binary(name, value) for name, value in entity.raw_items()]
    return b"".join(fields) + b"\r\n"


def part_to_mime(
    part: BodyPart, heading_hook: HeadingHook = HEADER_FIELDS_HEADING, *, payload: bool = True
) -> EmailMessage:
    """The MIME entity of one body part (RFC 2157 §6, defined equivalences); without its
    base64 payload when `payload` is False (for a caller that writes it itself)."""
    entity = EmailMessage(policy=DEFAULT_POLICY)
    if isinstance(part, IA5Text):
        # RFC 2157 §6.1: IA5Text ⇄ text/plain; charset=us-ascii.
        _set_text(entity, part.text, "us-ascii")
    elif isinstance(part, GeneralText):
        # RFC 2157 §6.2: GeneralText in an ISO 8859 repertoire ⇄ text/plain with that
        # part's charset.
        _set_text(entity, part.text, part.charset)
    elif isinstance(part, BilaterallyDefined):
        # RFC 2157 §6.3: BilaterallyDefined ⇄ application/octet-stream, no name.
        _set_bytes(entity, part.data, OCTET_STREAM, (), payload=payload)
    elif isinstance(part, FileTransfer):
        # RFC 2157 §6.4 and §3.1.1: an FTBP is an attachment; its pathname is the
        # filename (RFC 2157 §2.3.2, RFC 2183), its encapsulated MIME type the type.
        _set_file(entity, part, payload=payload)
    else:
        # RFC 2157 §6.5: a message body part ⇄ message/rfc822, the heading through the
        # RFC 2156 heading mapping, the body converted by these same rules.
        inner = body_to_mime(part.body, heading_hook)
        for name, value in heading_hook.heading_to_fields(part.heading):
            inner[name] = value
        # RFC 2046 §5.2.1: message/rfc822 is 7bit unless the message holds 8-bit octets
        # (an encapsulated entity that arrived 8bit keeps them).
        entity.set_content(inner, cte="7bit" if as_bytes(inner).isascii() else "8bit")
    return entity


def _set_text(entity: EmailMessage, text: str, charset: str) -> None:
    """Text as MIME: 7bit when it is short-lined US-ASCII, else base64, which carries
    the octets of any repertoire exactly (RFC 2045 §6)."""
    data = text.encode(charset)
    entity["Content-Type"] = f"text/plain; charset={charset}"
    lines = text.split("\r\n")
    if charset == "us-ascii" and all(len(line) <= MAX_LINE and "\r" not in line for line in lines):
        entity["Content-Transfer-Encoding"] = "7bit"
        entity.set_payload("\n".join(lines))
    else:
        entity["Content-Transfer-Encoding"] = "base64"
        entity.set_payload(_base64(data))


def _set_bytes(
    entity: EmailMessage,
    data: bytes,
    content_type: str,
    parameters: Sequence[tuple[str, str]],
    *,
    payload: bool = True,
) -> None:
    entity["Content-Type"] = content_type
    for name, value in parameters:
        entity.set_param(name, value)
    entity["Content-Transfer-Encoding"] = "base64"
    if payload:
        entity.set_payload(_base64(data))


def _set_file(entity: EmailMessage, part: FileTransfer, *, payload: bool = True) -> None:
    if part.content_type.startswith(("multipart/", "message/")):
        # A composite entity carried whole (RFC 2157 §3.1.1): its body already is MIME,
        # so it is parsed back rather than encoded (RFC 2045 §6.4 forbids base64 there).
        header = _content_type_field(part.content_type, part.parameters)
        parsed = BytesParser(policy=DEFAULT_POLICY).parsebytes(header + b"\r\n\r\n" + part.data)
        assert isinstance(parsed, EmailMessage)
        for name, value in parsed.items():
            entity[name] = value
        entity.set_payload(parsed.get_payload())
    else:
        _set_bytes(entity, part.data, part.content_type, part.parameters, payload=payload)
    # An FTBP is an attachment (RFC 2157 §6.4). An unnamed one of a type that has an
    # equivalence says so, or it would come back as that equivalence; others stay
    # inline so that an encapsulated multipart/alternative still reads as the message.
    if part.filename is not None or part.content_type in _EQUIVALENT_TYPES:
        entity["Content-Disposition"] = "attachment"
    if part.filename is not None:
        entity.set_param("filename", part.filename, header="Content-Disposition")


def _content_type_field(content_type: str, parameters: Sequence[tuple[str, str]]) -> bytes:
    entity = EmailMessage(policy=DEFAULT_POLICY)
    entity["Content-Type"] = content_type
    for name, value in parameters:
        entity.set_param(name, value)
    return f"Content-Type: {entity['Content-Type']}".encode()


def _base64(data: bytes) -> str:
    """base64.encodebytes(data) without its last line end."""
    return b"\n".join(_base64_lines(data)).decode("ascii")


# Cuts 64 lines of base64 at a time: a slice per line in a Python loop costs more than
# encoding them.
_BASE64_BLOCK = struct.Struct(f"{_BASE64_LINE}s" * 64)


def _base64_lines(data: bytes) -> list[bytes]:
    """The base64 lines of 76 characters (RFC 2045 §6.8), encoded in one call and cut,
    rather than one call per line."""
    text = pybase64.b64encode(data)
    blocks = len(text) // _BASE64_BLOCK.size * _BASE64_BLOCK.size
    lines = list(itertools.chain.from_iterable(_BASE64_BLOCK.iter_unpack(text[:blocks])))
    lines += [text[at : at + _BASE64_LINE] for at in range(blocks, len(text), _BASE64_LINE)]
    return lines


# -- MIME → X.400 (RFC 2157 §2.1) ------------------------------------------------------


def mime_to_body(
    entity: EmailMessage, heading_hook: HeadingHook = HEADER_FIELDS_HEADING
) -> list[BodyPart]:
    """The IPM body of a MIME message: one body part per part of a top-level
    multipart/mixed, else one for the whole entity (RFC 2157 §2.1)."""
    text = ascii_text_as_it_stands(entity)
    if text is not None:
        return [text]
    if entity.get_content_type() == "multipart/mixed" and not _is_attachment(entity):
        return [
            mime_to_part(_entity(p), heading_hook, path=f"part {i + 1}")
            for i, p in enumerate(_subparts(entity))
        ]
    return [mime_to_part(entity, heading_hook)]


def mime_to_part(
    entity: EmailMessage, heading_hook: HeadingHook = HEADER_FIELDS_HEADING, path: str = "body"
) -> BodyPart:
    """The body part of one MIME entity: a defined equivalence of RFC 2157 §6 where one
    applies, else the entity encapsulated in an FTBP (RFC 2157 §3.1.1), which keeps its
    type, parameters, name and octets (8-bit and UTF-8 content included).

    A multipart other than a top-level multipart/mixed (multipart/alternative, nested
    multiparts) crosses whole in that encapsulation, so it comes back unchanged; RFC 2157
    §6.6 also describes a message body part form for nested multiparts, which an X.400
    reader can open part by part but which needs the heading mapping to mark its type."""
    content_type = entity.get_content_type()
    filename = entity.get_filename()
    attachment = _is_attachment(entity)
    if content_type == "message/rfc822" and not attachment:
        inner = entity.get_payload(0)
        if not isinstance(inner, EmailMessage):
            raise BodyConversionError(f"{path}: message/rfc822 without a message")
        fields = [(n, str(v)) for n, v in inner.items() if not _is_entity_field(n)]
        body = mime_to_body(inner, heading_hook)
        return MessagePart(heading=heading_hook.fields_to_heading(fields), body=tuple(body))
    if content_type == "text/plain" and not attachment and filename is None:
        text = _plain_text(entity)
        if text is not None:
            return text
    if content_type == OCTET_STREAM and not attachment and not _parameters(entity):
        return BilaterallyDefined(data=_octets(entity))
    return FileTransfer(
        data=_octets(entity),
        filename=filename,
        content_type=content_type,
        parameters=_parameters(entity),
    )


def ascii_text_as_it_stands(entity: EmailMessage) -> IA5Text | None:
    """The ia5-text of a single part of US-ASCII text/plain in its plain forms, read without
    the email package's parameter parsers (most mail is this): what `mime_to_part` makes
    of it. None for anything else, which mime_to_part reads."""
    found: dict[str, str] = {}
    for name, value in entity.raw_items():
        key = name.lower()
        if key.startswith("content-"):
            if key in found or not isinstance(value, str):
                return None  # a repeated field, or one set as an object: the general way
            found[key] = value
    if "content-disposition" in found:
        return None
    kind = found.get("content-type")
    # RFC 2045 §5.2: no Content-Type is text/plain; charset=us-ascii (but for a part of a
    # multipart/digest, RFC 2046 §5.1.5).
    if kind is None and entity.get_default_type() != "text/plain":
        return None
    if kind is not None and not _ASCII_TEXT_TYPE.match(kind):
        return None
    encoding = found.get("content-transfer-encoding")
    if encoding is not None and encoding.strip().lower() not in ("7bit", "8bit"):
        return None
    payload = entity.get_payload()
    if not isinstance(payload, str) or not payload.isascii():
        return None
    # The canonical form of text ends lines in CRLF (RFC 2049 §4), as in `_octets`.
    return IA5Text(text=payload.replace("\r\n", "\n").replace("\n", "\r\n"))


def _plain_text(entity: EmailMessage) -> IA5Text | GeneralText | None:
    """text/plain as IA5Text (US-ASCII, RFC 2157 §6.1) or GeneralText (ISO 8859, §6.2),
    or None when its charset has no X.400 repertoire (then it is encapsulated)."""
    charset = (entity.get_content_charset() or "us-ascii").lower()
    extra = [name for name, _ in entity.get_params(failobj=[])[1:] if name.lower() != "charset"]
    if extra:
        return None  # format=flowed and the like: only an encapsulation keeps them
    data = _octets(entity)
    try:
        # US-ASCII is a subset of UTF-8 (RFC 3629 §1), and many agents label any text
        # UTF-8: text that is ASCII throughout loses nothing as ia5-text.
        if charset in ("us-ascii", "ascii") or (charset == "utf-8" and data.isascii()):
            return IA5Text(text=data.decode("ascii"))
        if charset in ISO_8859_REGISTRATIONS:
            return GeneralText(charset=charset, text=data.decode(charset))
    except ValueError:
        return None  # octets that break the declared charset travel as they came
    return None


def _octets(entity: EmailMessage) -> bytes:
    if entity.is_multipart() or entity.get_content_maintype() == "message":
        # A composite body is MIME itself: its octets are what follows its header.
        whole = as_bytes(entity, _CRLF_POLICY)
        return whole.partition(b"\r\n\r\n")[2]
    encoding = str(entity.get("Content-Transfer-Encoding", "")).strip().lower()
    data = decoded_payload(entity)
    if not isinstance(data, bytes):
        return b""
    if entity.get_content_maintype() == "text" and encoding != "base64":
        # The canonical form of text ends lines in CRLF (RFC 2049 §4); unencoded and
        # quoted-printable lines end as the file or link they came by ended them, but
        # base64 carries the octets the sender meant, line ends included.
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


def decoded_payload(entity: EmailMessage) -> object:
    """`entity.get_payload(decode=True)`. Base64 whose length is a multiple of four once
    its line ends are taken out is decoded at once, as the email package decodes it
    (`base64.b64decode(..., validate=True)`: the alphabet only, `=` only at the end), by
    pybase64 (SIMD: 12 µs for 100 KiB against binascii's 336); the package would split
    it into lines, join them and match the whole of it with a regular expression first.
    Anything else is the package's."""
    payload = entity.get_payload()
    # email.message.Message.get_payload's own test of the encoding.
    if isinstance(payload, str) and str(entity.get("content-transfer-encoding", "")).lower() == (
        "base64"
    ):
        try:
            # bytes.splitlines ends lines at CR and LF only.
            joined = payload.encode("ascii").translate(None, b"\r\n")
            if len(joined) % 4 == 0:  # else the package repairs the padding: a defect
                return pybase64.b64decode(joined, validate=True)
        except (UnicodeEncodeError, binascii.Error):
            pass  # the email package's reading: its defects, its repairs
    return entity.get_payload(decode=True)


def _parameters(entity: EmailMessage) -> tuple[tuple[str, str], ...]:
    params = entity.get_params(failobj=[])[1:]
    return tuple((name.lower(), str(value)) for name, value in params)


def _is_entity_field(name: str) -> bool:
    """A header field that describes the MIME entity (RFC 2045 §3, RFC 2183), not the
    message: it belongs to the body, so a forwarded message's heading hook never sees it."""
    lowered = name.lower()
    return lowered == "mime-version" or lowered.startswith("content-")


def _is_attachment(entity: EmailMessage) -> bool:
    return entity.get_content_disposition() == "attachment"


def _subparts(entity: EmailMessage) -> list[object]:
    payload = entity.get_payload()
    return list(payload) if isinstance(payload, list) else []


def _entity(part: object) -> EmailMessage:
    if not isinstance(part, EmailMessage):
        raise BodyConversionError("a multipart part is not a MIME entity")
    return part
