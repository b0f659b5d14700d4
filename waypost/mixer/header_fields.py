"""A parsed message's header fields by name, read once, with each value as the email
package's header objects would give it: plain text as it stands, the rest through them."""

from __future__ import annotations

import re
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.utils import getaddresses

# Text the email package's header objects give back as it stands: printable ASCII and
# white space, without what its parsers interpret: encoded-words (RFC 2047 §2), quoted
# strings, comments and quoted-pairs (RFC 5322 §3.2).
_PLAIN_TEXT = re.compile(r"[ \t!#-'*-\[\]-~]*\Z")
_LINE_ENDS = re.compile(r"[\r\n]")
# RFC 5322 §3.2.3 atext (less "." in a display name, which only obs-phrase allows), and
# §3.4.1's addr-spec in its dot-atom form.
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_MAILBOX = re.compile(
    rf"[ \t]*(?:(?P<name>{_ATOM}(?:[ \t]+{_ATOM})*)?[ \t]*<(?P<angled>{_DOT_ATOM}@{_DOT_ATOM})>"
    rf"|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM}))[ \t]*\Z"
)
_WHITE = re.compile(r"[ \t]+")
# A msg-id in its plain form (RFC 5322 §3.6.4, dot-atom-text on both sides).
_PLAIN_MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>\Z")


class HeaderFields:
    """The header fields of a message by lower-case name, in order. Message.get walks
    every field and parses the one it finds at each call, and a conversion asks for some
    twenty names; this reads the fields once and parses only what needs parsing."""

    def __init__(self, message: Message) -> None:
        self.policy = message.policy
        self.fields: dict[str, list[tuple[str, object]]] = {}
        for name, value in message.raw_items():
            self.fields.setdefault(name.lower(), []).append((name, value))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self.fields

    def any_of(self, names: frozenset[str]) -> bool:
        """Whether a field has one of these names (given in lower case)."""
        return not names.isdisjoint(self.fields)

    def raw(self, name: str) -> list[tuple[str, object]]:
        """(name as written, value as stored) of each field of this name."""
        return self.fields.get(name.lower(), [])

    def texts(self, name: str) -> list[str]:
        """Each field's value as `str(message[name])` gives it."""
        return [
            self.as_text(written, value) for written, value in self.fields.get(name.lower(), ())
        ]

    def text(self, name: str) -> str | None:
        """The first field's value as `str(message.get(name))` gives it, or None."""
        found = self.fields.get(name.lower())
        return self.as_text(*found[0]) if found else None

    def as_text(self, name: str, value: object) -> str:
        if isinstance(value, str):
            # The policy's fetch removes line ends (folding keeps its white space).
            unfolded = _LINE_ENDS.sub("", value)
            if "=?" not in unfolded and self._as_it_stands(name, unfolded):
                return unfolded
        return str(self.policy.header_fetch_parse(name, value))  # type: ignore[arg-type]

    def _as_it_stands(self, name: str, text: str) -> bool:
        """Whether the header object of this field gives the text back unchanged: plain
        text in an unstructured field, a plain msg-id in a Message-ID field. Structured
        fields (a Date:, an address) are written anew from what their parser read."""
        registry = getattr(self.policy, "header_factory", None)
        if not isinstance(registry, HeaderRegistry):
            return False
        if issubclass(registry[name], UnstructuredHeader):
            return _PLAIN_TEXT.match(text) is not None
        return name.lower() == "message-id" and _PLAIN_MSG_ID.match(text) is not None


def plain_mailboxes(value: str) -> list[tuple[str, str]] | None:
    """(display name, addr-spec) of each mailbox of an address field in its plain forms
    (`Name <local@domain>`, `<local@domain>`, `local@domain`, separated by commas), as
    email.utils.getaddresses reads them; None for anything else, which it must read."""
    if "=?" in value or '"' in value or "(" in value:
        return None
    found: list[tuple[str, str]] = []
    for item in value.split(","):
        match = _PLAIN_MAILBOX.match(item)
        if match is None:
            return None
        name = match.group("name")
        found.append(
            (_WHITE.sub(" ", name) if name else "", match.group("angled") or match.group("bare"))
        )
    return found


def mailboxes(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of each mailbox of an address field's unfolded text."""
    plain = plain_mailboxes(value)
    return plain if plain is not None else getaddresses([value])
