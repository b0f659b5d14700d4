"""The bounded, non-recursive scan under `waypost.asn1.decoder`: headers, limits, indefinite ends.

`decode` first walks the whole encoding with an explicit stack, checking every
tag and length and the `Limits` (so nothing recursive or unbounded ever runs on
untrusted input) and noting where each indefinite-length element ends. The
`Element`s handed out afterwards parse their children on demand and slice the
input with memoryviews, so large values are never copied until asked for.
"""

from __future__ import annotations

from waypost.asn1.core import (
    BadValueError,
    BERError,
    LimitError,
    Limits,
    MalformedError,
    Tag,
    TagClass,
    TruncatedError,
)

# Tags in the one-octet (low tag number) form, indexed by the identifier octet.
LOW_TAGS = [Tag(TagClass(b >> 6), bool(b & 0x20), b & 0x1F) for b in range(256)]
_MAX_TAG_OCTETS = 5  # tag numbers up to 2**35: far beyond any real module


class HeaderError(Exception):
    def __init__(self, kind: type[BERError], reason: str, offset: int, limit: str = "") -> None:
        super().__init__(reason)
        self.kind, self.reason, self.offset, self.limit = kind, reason, offset, limit

    def error(self, path: str) -> BERError:
        if self.kind is LimitError:
            return LimitError(self.reason, self.offset, path, limit=self.limit)
        return self.kind(self.reason, self.offset, path)


def header(mv: memoryview, p: int, bound: int, max_length: int) -> tuple[Tag, int, int]:
    """Parse the identifier and length octets at `p`: (tag, header length, length or -1)."""
    if p >= bound:
        raise HeaderError(TruncatedError, "input ends before a tag", p)
    first = mv[p]
    q = p + 1
    if first & 0x1F != 0x1F:
        tag = LOW_TAGS[first]
    else:
        number = 0
        while True:
            if q >= bound:
                raise HeaderError(TruncatedError, "input ends inside a tag", q)
            octet = mv[q]
            if q == p + 1 and octet == 0x80:
                raise HeaderError(MalformedError, "tag number with a leading 0x80 octet", p)
            number = (number << 7) | (octet & 0x7F)
            q += 1
            if not octet & 0x80:
                break
            if q - p > _MAX_TAG_OCTETS:
                raise HeaderError(MalformedError, "tag number too large", p)
        if number < 0x1F:
            raise HeaderError(MalformedError, f"tag number {number} in the high form", p)
        tag = Tag(TagClass(first >> 6), bool(first & 0x20), number)
    if q >= bound:
        raise HeaderError(TruncatedError, "input ends before the length", q)
    octet = mv[q]
    q += 1
    if octet < 0x80 and octet <= max_length:
        return tag, q - p, octet
    if octet == 0x80:
        return tag, q - p, -1
    if octet == 0xFF:
        raise HeaderError(MalformedError, "reserved length octet 0xFF", q - 1)
    if octet < 0x80:
        count, length = 0, octet
    else:
        count = octet & 0x7F
        if q + count > bound:
            raise HeaderError(TruncatedError, "input ends inside the length", q)
        length = int.from_bytes(mv[q : q + count], "big")
    if length > max_length:
        raise HeaderError(
            LimitError, f"declared length {length} exceeds max_length {max_length}", p, "max_length"
        )
    return tag, q + count - p, length


def _path(root: str, stack: list[list[int]], index: int | None) -> str:
    path = root + "".join(f"[{frame[3]}]" for frame in stack[1:])
    return path if index is None or not stack else f"{path}[{index}]"


def scan(
    mv: memoryview,
    start: int,
    end: int,
    limits: Limits,
    ends: dict[int, int],
    count: int,
    root: str,
) -> tuple[int, int]:
    """Check the one element at `start`; return (offset after it, elements counted so far).

    Frames on the explicit stack: [bound, contents end or -1, next child index, own index,
    start, whether the bound is a definite length (else the end of the input)].
    """
    stack: list[list[int]] = []
    max_depth, max_elements, max_length = limits.max_depth, limits.max_elements, limits.max_length
    p = start
    while True:
        index: int | None = None
        if stack:
            top = stack[-1]
            bound = top[0]
            inside = top[5]  # bound by a definite length rather than the input
            if top[1] < 0:
                if p + 1 < bound and mv[p] == 0 and mv[p + 1] == 0:
                    ends[top[4]] = p
                    stack.pop()
                    p += 2
                    while stack and stack[-1][1] == p:
                        stack.pop()
                    if not stack:
                        return p, count
                    continue
                if p >= bound:
                    kind = MalformedError if inside else TruncatedError
                    raise kind("missing end-of-contents", p, _path(root, stack, None))
            index = top[2]
            top[2] = index + 1
        else:
            bound, inside = end, False
        # `header`'s own first case, inline (a low tag number and a one-octet length: nearly
        # every element); anything else, errors included, goes through `header`.
        if (
            p + 1 < bound
            and (first := mv[p]) & 0x1F != 0x1F
            and (length := mv[p + 1]) < 0x80
            and length <= max_length
        ):
            tag, hlen = LOW_TAGS[first], 2
        else:
            try:
                tag, hlen, length = header(mv, p, bound, max_length)
            except HeaderError as exc:
                if exc.kind is TruncatedError and inside:
                    exc.kind = MalformedError
                    exc.reason = f"{exc.reason} (enclosing element ends)"
                raise exc.error(_path(root, stack, index)) from None
            first = mv[p]
        if first == 0:
            reason = "end-of-contents not allowed here" if length == 0 else "reserved tag 0"
            raise MalformedError(reason, p, _path(root, stack, index))
        count += 1
        if count > max_elements:
            raise LimitError(
                f"more than max_elements {max_elements} elements",
                p,
                _path(root, stack, index),
                limit="max_elements",
            )
        constructed = tag.constructed
        if constructed and len(stack) >= max_depth:
            raise LimitError(
                f"nesting deeper than max_depth {max_depth}",
                p,
                _path(root, stack, index),
                limit="max_depth",
            )
        if length < 0:
            if not constructed:
                raise MalformedError(
                    "indefinite length on a primitive element", p, _path(root, stack, index)
                )
            stack.append([bound, -1, 0, index or 0, p, inside])
            p += hlen
            continue
        content_end = p + hlen + length
        if content_end > bound:
            kind = MalformedError if inside else TruncatedError
            what = "its enclosing element" if inside else "the input"
            reason = f"length {length} runs past the end of {what}"
            raise kind(reason, p, _path(root, stack, index))
        if constructed and length:
            stack.append([content_end, content_end, 0, index or 0, p, True])
            p += hlen
            continue
        p = content_end
        while stack and stack[-1][1] == p:
            stack.pop()
        if not stack:
            return p, count


class Doc:
    """What the elements of one decode share: the input, the limits, indefinite ends."""

    __slots__ = ("ends", "faults", "limits", "mv")

    def __init__(
        self,
        mv: memoryview,
        limits: Limits,
        ends: dict[int, int],
        faults: list[BadValueError] | None = None,
    ) -> None:
        self.mv, self.limits, self.ends = mv, limits, ends
        # Lenient decoding: strings that break their type, kept (None: they raise).
        self.faults = faults
