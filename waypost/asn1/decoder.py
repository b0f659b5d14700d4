"""BER decoding: a checked scan of the whole input, then lazy, path-aware `Element`s.

`decode` first walks the whole encoding with an explicit stack (`waypost.asn1.scan`),
checking every tag and length and the `Limits`, and noting where each
indefinite-length element ends. The `Element`s handed out afterwards parse
their children on demand and slice the input with memoryviews, so large values
are never copied until asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from waypost.asn1 import values
from waypost.asn1.core import (
    BIT_STRING,
    NULL,
    OCTET_STRING,
    BadValueError,
    LimitError,
    Limits,
    MalformedError,
    Tag,
    TagClass,
    TruncatedError,
    UnexpectedTagError,
)
from waypost.asn1.scan import Doc, HeaderError, header, scan

Input = bytes | bytearray | memoryview
DEFAULT_LIMITS = Limits()


def _element(
    doc: Doc, p: int, bound: int, parent: Element | None, index: int, name: str | None
) -> Element:
    tag, hlen, length = header(doc.mv, p, bound, doc.limits.max_length)
    stop = doc.ends[p] if length < 0 else p + hlen + length
    return Element(tag, p, hlen, doc.mv[p + hlen : stop], doc, parent, index, name)


class Element:
    """One decoded TLV: `tag`, absolute `offset`, `header_length` and the contents `value`.

    `value` is a memoryview of the input (for an indefinite length, without the
    end-of-contents). `path` names the element for errors: "$[0][3]" by
    position, or with the names given through `child`, `expect` and `named`.
    """

    __slots__ = (
        "_children",
        "_doc",
        "_index",
        "_name",
        "_parent",
        "header_length",
        "offset",
        "tag",
        "value",
    )

    def __init__(
        self,
        tag: Tag,
        offset: int,
        header_length: int,
        value: memoryview,
        doc: Doc,
        parent: Element | None,
        index: int,
        name: str | None,
    ) -> None:
        self.tag, self.offset, self.header_length, self.value = tag, offset, header_length, value
        self._doc, self._parent, self._index, self._name = doc, parent, index, name
        self._children: list[Element] | None = None

    def __repr__(self) -> str:
        return f"<Element {self.tag} at {self.offset} length {len(self.value)} {self.path}>"

    @property
    def length(self) -> int:
        """Length of the contents octets."""
        return len(self.value)

    @property
    def indefinite(self) -> bool:
        """Whether the element was sent with the indefinite length form."""
        return self.offset in self._doc.ends

    @property
    def end(self) -> int:
        """Offset just after the element (after its end-of-contents, if any)."""
        return self.offset + self.header_length + len(self.value) + 2 * self.indefinite

    @property
    def raw(self) -> memoryview:
        """The whole encoding of the element as received (to keep it opaque)."""
        return self._doc.mv[self.offset : self.end]

    @property
    def path(self) -> str:
        """Where the element is: names given by the layers above, else positions."""
        parts: list[str] = []
        element: Element | None = self
        while element is not None:
            parent = element._parent
            if parent is None:
                parts.append(element._name or "$")
            elif element._name is not None:
                parts.append(f".{element._name}")
            else:
                parts.append(f"[{element._index}]")
            element = parent
        return "".join(reversed(parts))

    def error(self, reason: str) -> BadValueError:
        """An error about this element (for the layers above to raise)."""
        return BadValueError(reason, self.offset, self.path)

    def named(self, name: str) -> Element:
        """This element under a name, which its path (and its children's) will use."""
        return Element(
            self.tag,
            self.offset,
            self.header_length,
            self.value,
            self._doc,
            self._parent,
            self._index,
            name,
        )

    def expect(self, *tags: Tag, name: str | None = None) -> Element:
        """This element (named `name`) if it has one of `tags`; else UnexpectedTagError."""
        element = self.named(name) if name is not None else self
        if self.tag not in tags:
            wanted = " or ".join(map(str, tags))
            raise UnexpectedTagError(
                f"expected {wanted}, found {self.tag}", self.offset, element.path
            )
        return element

    def children(self) -> list[Element]:
        """The elements inside a constructed element, parsed on first use."""
        if self._children is None:
            if not self.tag.constructed:
                raise self.error(f"{self.tag} is primitive and has no elements inside")
            doc = self._doc
            mv, ends, max_length = doc.mv, doc.ends, doc.limits.max_length
            found: list[Element] = []
            p = self.offset + self.header_length
            stop = p + len(self.value)
            while p < stop:
                # What `_element` and `Element.end` do, inline: this runs for every element.
                tag, hlen, length = header(mv, p, stop, max_length)
                if length < 0:
                    content_end = ends[p]
                    after = content_end + 2
                else:
                    content_end = after = p + hlen + length
                found.append(
                    Element(tag, p, hlen, mv[p + hlen : content_end], doc, self, len(found), None)
                )
                p = after
            self._children = found
        return self._children

    def __iter__(self) -> Iterator[Element]:
        return iter(self.children())

    def __len__(self) -> int:
        return len(self.children())

    def find(self, tag: Tag) -> Element | None:
        """The first element inside with `tag`, or None."""
        for c in self._children if self._children is not None else self.children():
            if c.tag == tag:
                return c
        return None

    def child(self, key: int | Tag, name: str | None = None) -> Element:
        """The element inside at position `key` or with tag `key`, optionally named."""
        if isinstance(key, Tag):
            found = self.find(key)
            if found is None:
                what = name or str(key)
                raise UnexpectedTagError(f"missing {what} in {self.tag}", self.offset, self.path)
        else:
            items = self.children()
            if not -len(items) <= key < len(items):
                what = f"{name} ([{key}])" if name else f"[{key}]"
                raise UnexpectedTagError(
                    f"missing {what}: {self.tag} holds {len(items)}", self.offset, self.path
                )
            found = items[key]
        return found.named(name) if name is not None else found

    # Typed accessors -------------------------------------------------------------

    def _primitive(self, what: str) -> memoryview:
        if self.tag.constructed:
            raise self.error(f"{what} must be primitive, found {self.tag}")
        return self.value

    def _segments(self, what: str, segment: Tag) -> bytes:
        """Contents of a primitive string, or the joined segments of a constructed one."""
        if not self.tag.constructed:
            return bytes(self.value)
        parts: list[memoryview] = []
        todo = list(reversed(self.children()))
        while todo:
            child = todo.pop()
            if child.tag.number != segment.number or child.tag.cls != TagClass.UNIVERSAL:
                raise child.error(f"a segment of a constructed {what} must be {segment}")
            if child.tag.constructed:
                todo.extend(reversed(child.children()))
            else:
                parts.append(child.value)
        return b"".join(parts)

    def as_int(self) -> int:
        """INTEGER or ENUMERATED contents (any tag)."""
        try:
            return values.int_from(self._primitive("INTEGER"))
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def as_bool(self) -> bool:
        """BOOLEAN contents: one octet, any non-zero value is TRUE."""
        content = self._primitive("BOOLEAN")
        if len(content) != 1:
            raise self.error(f"BOOLEAN contents must be one octet, found {len(content)}")
        return content[0] != 0

    def is_null(self) -> bool:
        """Whether this is a universal NULL (which must be empty)."""
        if self.tag != NULL:
            return False
        if self.value:
            raise self.error("NULL with contents octets")
        return True

    def as_null(self) -> None:
        """Check an (implicitly tagged) NULL: primitive and empty."""
        if self._primitive("NULL"):
            raise self.error("NULL with contents octets")

    def as_octets(self) -> bytes:
        """OCTET STRING contents (a copy), joining the segments of a constructed one."""
        return self._segments("OCTET STRING", OCTET_STRING)

    def as_oid(self) -> str:
        """OBJECT IDENTIFIER as dotted text."""
        try:
            return values.oid_from(self._primitive("OBJECT IDENTIFIER"))
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def as_string(self, kind: Tag | None = None, *, check: bool = True) -> str:
        """A character string; `kind` is the universal type when implicitly tagged.

        IA5, Printable, Numeric and Visible must be ASCII; Teletex, Graphic and
        General are read as Latin-1. With `check`, Printable and Numeric strings
        must keep to their character sets.
        """
        kind = kind or self.tag
        if kind.cls != TagClass.UNIVERSAL:
            raise self.error(f"{self.tag} is not a string type: pass the kind it implicitly tags")
        if self.tag.constructed:
            content = self._segments(str(kind), kind.primitive())
        else:
            content = bytes(self.value)
        try:
            return values.string_from(content, kind.number, check=check)
        except ValueError as exc:
            error = self.error(str(exc))
            faults = self._doc.faults
            if faults is None or kind.number not in values.STRING_CODECS:
                raise error from None
        # Decoded leniently: the string is kept as received and the fault noted.
        faults.append(error)
        return values.string_as_received(content, kind.number)

    @property
    def faults(self) -> list[BadValueError]:
        """Strings of a lenient `decode` read so far that broke their type, kept as received."""
        return self._doc.faults if self._doc.faults is not None else []

    def as_bits(self) -> tuple[bytes, int]:
        """BIT STRING contents: (octets, unused bits in the last octet)."""
        try:
            if not self.tag.constructed:
                return values.bits_from(self.value)
            parts = [c._segments("BIT STRING", BIT_STRING) for c in self.children()]
            decoded = [values.bits_from(part) for part in parts]
        except ValueError as exc:
            raise self.error(str(exc)) from None
        if any(unused for _, unused in decoded[:-1]):
            raise self.error("only the last segment of a BIT STRING may have unused bits")
        return b"".join(d for d, _ in decoded), decoded[-1][1] if decoded else 0

    def as_bit_set(self) -> frozenset[int]:
        """The numbers of the bits set in a BIT STRING (bit 0 first): named bits."""
        return values.bit_numbers(*self.as_bits())

    def as_time(self, kind: Tag | None = None) -> datetime:
        """UTCTime or GeneralizedTime as a datetime; `kind` when implicitly tagged."""
        kind = kind or self.tag
        try:
            if self.tag.constructed:
                content = self._segments(str(kind), kind.primitive())
            else:
                content = bytes(self.value)
            return values.time_from(content, kind.number)
        except ValueError as exc:
            raise self.error(str(exc)) from None


def _view(data: Input, limits: Limits) -> memoryview:
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    if len(mv) > limits.max_total:
        raise LimitError(
            f"input of {len(mv)} bytes exceeds max_total {limits.max_total}",
            limits.max_total,
            limit="max_total",
        )
    return mv


def decode(
    data: Input,
    *,
    limits: Limits = DEFAULT_LIMITS,
    name: str = "$",
    allow_trailing: bool = False,
    lenient: bool = False,
) -> Element:
    """Decode exactly one element (trailing bytes are an error unless allowed).

    With `lenient`, a character string whose octets break its type is read as
    received instead of raising, and noted in the elements' `faults`.
    """
    mv = _view(data, limits)
    if not mv:
        raise TruncatedError("empty input", 0, name)
    doc = Doc(mv, limits, {}, [] if lenient else None)
    end, _ = scan(mv, 0, len(mv), limits, doc.ends, 0, name)
    if end != len(mv) and not allow_trailing:
        raise MalformedError(f"{len(mv) - end} bytes after the element", end, name)
    return _element(doc, 0, end, None, 0, name)


def decode_all(data: Input, *, limits: Limits = DEFAULT_LIMITS, name: str = "$") -> list[Element]:
    """Decode a concatenation of elements (max_elements counts them all)."""
    mv = _view(data, limits)
    doc = Doc(mv, limits, {})
    found: list[Element] = []
    p = count = 0
    while p < len(mv):
        label = f"{name}[{len(found)}]"
        end, count = scan(mv, p, len(mv), limits, doc.ends, count, label)
        found.append(_element(doc, p, end, None, 0, label))
        p = end
    return found


def split_first(data: Input, *, limits: Limits = DEFAULT_LIMITS) -> int | None:
    """Size of the complete element at the start of `data`, or None if more bytes are needed.

    Malformed headers and exceeded limits raise at once (a 2 GB declared length
    is refused from its length octets). An indefinite length is scanned to its
    end-of-contents, so feeding one in many pieces rescans it each time.
    """
    mv = memoryview(data)
    try:
        _, hlen, length = header(mv, 0, len(mv), limits.max_length)
    except HeaderError as exc:
        if exc.kind is TruncatedError:
            return None
        raise exc.error("$") from None
    size = hlen + length
    if length >= 0 and size > limits.max_total:
        raise LimitError(f"element of {size} bytes exceeds max_total", 0, limit="max_total")
    if length >= 0:
        return size if size <= len(mv) else None
    try:
        end, _ = scan(mv, 0, len(mv), limits, {}, 0, "$")
    except TruncatedError:
        if len(mv) > limits.max_total:
            raise LimitError("incomplete element exceeds max_total", 0, limit="max_total") from None
        return None
    return end


class TLVReader:
    """Frames a byte stream into whole elements: `feed` bytes, then iterate."""

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole element."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes received."""
        self._buffer += data

    def next_element(self) -> bytes | None:
        """The next complete element's bytes, or None until more are fed."""
        if not self._buffer:
            return None
        size = split_first(self._buffer, limits=self._limits)
        if size is None:
            return None
        element, self._buffer = self._buffer[:size], self._buffer[size:]
        return element

    def __iter__(self) -> Iterator[bytes]:
        while (element := self.next_element()) is not None:
            yield element
