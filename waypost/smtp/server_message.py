"""Reading a message's octets: DATA's dot-stuffed text (RFC 5321 §4.5.2) and BDAT's counted
chunks (RFC 3030), with the size limit enforced as they arrive."""

from __future__ import annotations

_END = b"\r\n.\r\n"


def has_bare_cr_or_lf(data: bytes) -> bool:
    """Whether any CR is not followed by LF or any LF not preceded by CR (C-speed counts)."""
    crlf = data.count(b"\r\n")
    return data.count(b"\r") != crlf or data.count(b"\n") != crlf


class MessageReader:
    """The message being received: octets kept up to `limit`, counted and dropped beyond it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        self._content = bytearray()
        self._line_start = True

    def add(self, part: bytes | bytearray) -> None:
        self.size += len(part)
        if self.too_big:
            return
        if self.size > self.limit:
            self.too_big = True
            self._content = bytearray()  # never hold more than the limit
            return
        self._content += part

    def take(self) -> bytes:
        """The content (empty when too big), letting go of the buffer."""
        content = bytes(self._content)
        self._content = bytearray()
        return content

    @property
    def held(self) -> int:
        """Octets held in memory now."""
        return len(self._content)

    def read_dot_stuffed(self, buf: bytearray) -> tuple[bool, bool]:
        """Take dot-stuffed text from the front of `buf`: (progressed, ended at CRLF.CRLF).

        Only a real CRLF starts a line: a "." after a bare CR or LF is text, so no
        look-alike ends the message early (SMTP smuggling); the caller refuses bare
        CR/LF at the end. The text is scanned as if preceded by CRLF when a line
        starts there, so that find/replace do the work at C speed; the last four
        octets wait for more, as they may begin the end marker, and a CR is never
        parted from the LF after it. Lines longer than 998 octets are kept as they
        are, as Postfix does.
        """
        prefix = b"\r\n" if self._line_start else b""
        text = prefix + buf
        end = text.find(_END)
        if end != -1:
            self.add(text[: end + 2].replace(b"\r\n.", b"\r\n")[len(prefix) :])
            del buf[: end + len(_END) - len(prefix)]
            return True, True
        cut = len(text) - (len(_END) - 1)
        if cut > 0 and text[cut - 1] == 0x0D:
            cut -= 1
        if cut <= len(prefix):
            return False, False
        self.add(text[:cut].replace(b"\r\n.", b"\r\n")[len(prefix) :])
        self._line_start = text.endswith(b"\r\n", 0, cut)
        del buf[: cut - len(prefix)]
        return True, False
