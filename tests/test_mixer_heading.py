"""The IPM heading ⇄ RFC 5322 header mapping of RFC 2156 §5: golden cases per field, both ways."""

from __future__ import annotations

import email
import email.policy
import string
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from waypost.mixer.heading import HeadingMappingError, headers_to_heading, heading_to_headers
from waypost.mixer.message_ids import (
    ipm_id_to_msg_id,
    msg_id_to_ipm_id,
    printable_escape,
    printable_unescape,
)
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor

GATEWAY = "gw.example"


def or_to_mail(oraddress: str) -> str:
    """A table-free stand-in for the address mapper: /O=org/S=name/ ⇄ name@org.example."""
    attributes = dict(part.split("=", 1) for part in oraddress.strip("/").split("/"))
    return f"{attributes['S']}@{attributes['O']}.example"


def mail_to_or(mail: str) -> str:
    local, _, domain = mail.partition("@")
    return f"/O={domain.removesuffix('.example')}/S={local}/"


def who(name: str, org: str = "acme", free_form: str | None = None) -> ORDescriptor:
    return ORDescriptor(address=f"/O={org}/S={name}/", free_form_name=free_form)


THIS = IPMIdentifier(user="/O=acme/S=jo/", local="1234.5678")


def to_headers(**fields: object) -> EmailMessage:
    heading = IPMHeading(this_ipm=THIS, **fields)  # type: ignore[arg-type]
    return heading_to_headers(heading, or_to_mail=or_to_mail, gateway_domain=GATEWAY)


def from_headers(text: str) -> IPMHeading:
    message = email.message_from_string(
        "Message-ID: <a1@mail.example>\n" + text + "\n", policy=email.policy.default
    )
    return headers_to_heading(message, mail_to_or=mail_to_or, gateway_domain=GATEWAY)


# --- X.400 → RFC 5322 ---------------------------------------------------------------


def test_originator_alone_is_from() -> None:
    headers = to_headers(originator=who("jo", free_form="Jo Smith"))
    assert headers["From"] == "Jo Smith <jo@acme.example>"
    assert "Sender" not in headers


def test_authorizing_users_are_from_and_the_originator_sender() -> None:
    headers = to_headers(originator=who("sec"), authorizing_users=(who("boss"), who("deputy")))
    assert headers["From"] == "boss@acme.example, deputy@acme.example"
    assert headers["Sender"] == "sec@acme.example"


def test_recipients_and_reply_to() -> None:
    headers = to_headers(
        primary_recipients=(who("a"), who("b", "beta")),
        copy_recipients=(who("c"),),
        blind_copy_recipients=(who("d"),),
        reply_recipients=(who("r"),),
    )
    assert headers["To"] == "a@acme.example, b@beta.example"
    assert headers["Cc"] == "c@acme.example"
    assert headers["Bcc"] == "d@acme.example"
    assert headers["Reply-To"] == "r@acme.example"


def test_non_ascii_subject_is_written_as_encoded_words() -> None:
    wire = to_headers(subject="Grüße aus Köln").as_string()
    assert "Subject: =?utf-8?" in wire
    assert not any(ord(c) > 127 for c in wire)


def test_ipm_identifier_from_x400_is_encoded_at_the_gateway() -> None:
    assert to_headers()["Message-ID"] == '<"1234.5678*/O=acme/S=jo/"@gw.example>'


def test_ipm_identifier_that_carries_an_822_msg_id_gives_it_back() -> None:
    carried = IPMIdentifier(user=None, local="a1(a)mail.example")
    assert ipm_id_to_msg_id(carried, GATEWAY) == "<a1@mail.example>"


def test_identifier_without_user_and_not_from_822_keeps_an_empty_user() -> None:
    bare = IPMIdentifier(user=None, local="no at sign")
    assert ipm_id_to_msg_id(bare, GATEWAY) == '<"no at sign*"@gw.example>'
    assert msg_id_to_ipm_id(ipm_id_to_msg_id(bare, GATEWAY), GATEWAY) == bare


def test_replied_to_related_and_obsoleted() -> None:
    other = IPMIdentifier(user=None, local="x(a)y.example")
    headers = to_headers(replied_to_ipm=other, related_ipms=(other, THIS), obsoleted_ipms=(other,))
    assert headers["In-Reply-To"] == "<x@y.example>"
    assert headers["References"] == '<x@y.example> <"1234.5678*/O=acme/S=jo/"@gw.example>'
    assert headers["Obsoletes"] == "<x@y.example>"


def test_expiry_and_reply_times() -> None:
    when = datetime(2026, 12, 3, 9, 30, 0, tzinfo=timezone(timedelta(hours=1)))
    headers = to_headers(expiry_time=when, reply_time=when)
    assert headers["Expiry-Date"] == "Thu, 03 Dec 2026 09:30:00 +0100"
    assert headers["Reply-By"] == "Thu, 03 Dec 2026 09:30:00 +0100"


def test_importance_sensitivity_autoforwarded_language_incomplete_copy() -> None:
    headers = to_headers(
        importance="high",
        sensitivity="company-confidential",
        auto_forwarded=True,
        languages=("en", "fr"),
        incomplete_copy=True,
        other_extensions=(HeadingExtension(type="1.2.3.4", value=b"\x05\x00"),),
    )
    assert headers["Importance"] == "high"
    assert headers["Sensitivity"] == "Company-Confidential"
    assert headers["Autoforwarded"] == "TRUE"
    assert headers.get_all("Language") == ["en", "fr"]
    assert headers["Incomplete-Copy"] == ""
    assert headers["Discarded-X400-IPMS-Extensions"] == "1.2.3.4"


def test_defaults_write_nothing() -> None:
    assert sorted(to_headers().keys()) == ["Message-ID"]


# --- RFC 5322 → X.400 ---------------------------------------------------------------


def test_from_alone_is_the_originator() -> None:
    heading = from_headers("From: Jo Smith <jo@acme.example>")
    assert heading.originator == who("jo", free_form="Jo Smith")
    assert heading.authorizing_users == ()


def test_sender_is_the_originator_and_from_the_authorizing_users() -> None:
    heading = from_headers("From: boss@acme.example, deputy@acme.example\nSender: sec@acme.example")
    assert heading.originator == who("sec")
    assert heading.authorizing_users == (who("boss"), who("deputy"))


def test_to_cc_bcc_reply_to() -> None:
    heading = from_headers(
        "To: a@acme.example, b@beta.example\nCc: c@acme.example\n"
        "Bcc: d@acme.example\nReply-To: r@acme.example"
    )
    assert heading.primary_recipients == (who("a"), who("b", "beta"))
    assert heading.copy_recipients == (who("c"),)
    assert heading.blind_copy_recipients == (who("d"),)
    assert heading.reply_recipients == (who("r"),)


def test_encoded_word_subject_is_decoded() -> None:
    assert from_headers("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=").subject == "Grüße"


def test_822_message_id_is_carried_escaped() -> None:
    assert from_headers("").this_ipm == IPMIdentifier(user=None, local="a1(a)mail.example")


def test_gateway_message_id_gives_back_the_x400_identifier() -> None:
    assert msg_id_to_ipm_id('<"1234.5678*/O=acme/S=jo/"@gw.example>', GATEWAY) == THIS


def test_in_reply_to_references_obsoletes_and_supersedes() -> None:
    heading = from_headers(
        "In-Reply-To: <p@q.example> (a phrase)\nReferences: <r@s.example> <t@u.example>\n"
        "Obsoletes: <v@w.example>\nSupersedes: <x@y.example>"
    )
    assert heading.replied_to_ipm == IPMIdentifier(user=None, local="p(a)q.example")
    assert [i.local for i in heading.related_ipms] == ["r(a)s.example", "t(a)u.example"]
    assert [i.local for i in heading.obsoleted_ipms] == ["v(a)w.example", "x(a)y.example"]


def test_dates_importance_sensitivity_autoforwarded_languages() -> None:
    heading = from_headers(
        "Expiry-Date: Thu, 03 Dec 2026 09:30:00 +0100\nReply-By: Fri, 04 Dec 2026 10:00:00 +0000\n"
        "Importance: HIGH\nSensitivity: private\nAutoforwarded: true\n"
        "Language: EN\nLanguage: de (German)\nIncomplete-Copy:"
    )
    assert heading.expiry_time == datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
    assert heading.reply_time == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    assert heading.importance == "high"
    assert heading.sensitivity == "private"
    assert heading.auto_forwarded is True
    assert heading.languages == ("en", "de")
    assert heading.incomplete_copy is True


def test_absent_message_id_takes_the_generated_identifier() -> None:
    message = email.message_from_string("From: jo@acme.example\n\n", policy=email.policy.default)
    made = IPMIdentifier(user="/O=gw/S=gateway/", local="G1")
    heading = headers_to_heading(
        message, mail_to_or=mail_to_or, gateway_domain=GATEWAY, generated_id=made
    )
    assert heading.this_ipm == made
    with pytest.raises(HeadingMappingError, match="Message-ID: absent"):
        headers_to_heading(message, mail_to_or=mail_to_or, gateway_domain=GATEWAY)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Importance: urgent", "Importance"),
        ("Sensitivity: secret", "Sensitivity"),
        ("Autoforwarded: maybe", "Autoforwarded"),
        ("Expiry-Date: tomorrow", "Expiry-Date"),
        ("Reply-By: Thu, 03 Dec 2026 09:30:00 -0000", "Reply-By"),
        ("Language: english", "Language"),
        ("In-Reply-To: no id here", "In-Reply-To"),
    ],
)
def test_bad_values_name_the_field(text: str, named: str) -> None:
    with pytest.raises(HeadingMappingError, match=f"^{named}: "):
        from_headers(text)


def test_printable_escapes_of_rfc_2156() -> None:
    assert printable_escape('a@b%c!d"e_f(g)h#') == "a(a)b(p)c(b)d(q)e(u)f(l)g(r)h(035)"
    assert printable_unescape("a(a)b(p)c(b)d(q)e(u)f(l)g(r)h(035)") == 'a@b%c!d"e_f(g)h#'


def test_every_ascii_character_escapes_as_rfc_2156_says_and_comes_back() -> None:
    # RFC 2156 §3.4: PrintableString stands for itself but for its parentheses; seven
    # characters have a mnemonic; any other ASCII character is "(ddd)", its code.
    printable = set(string.ascii_letters + string.digits + " '+,-./:=?")
    mnemonic = {"@": "a", "%": "p", "!": "b", '"': "q", "_": "u", "(": "l", ")": "r"}
    for code in range(128):
        char = chr(code)
        if char in printable:
            want = char
        else:
            want = f"({mnemonic[char]})" if char in mnemonic else f"({code:03d})"
        assert printable_escape(f"x{char}y") == f"x{want}y"
        assert printable_unescape(printable_escape(f"x{char}y")) == f"x{char}y"


def test_a_character_outside_ascii_has_no_printable_escape() -> None:
    with pytest.raises(ValueError, match="'é' is not ASCII"):
        printable_escape("café@a.example")


def test_display_name_folded_into_two_encoded_words_reads_back_whole() -> None:
    # RFC 2047 §6.2: the white space between adjacent encoded-words is not part of the
    # name; the stdlib's header parser keeps it, the mapping must not.
    heading = from_headers(
        "Reply-To: a@acme.example, =?utf-8?b?QUFBQUFBw4DDgCBBw4DDgCDDgMOAw4DDgMOAw4A=?=\n"
        " =?utf-8?q?=C3=80?= <b@acme.example>"
    )
    assert heading.reply_recipients == (who("a"), who("b", free_form="AAAAAAÀÀ AÀÀ ÀÀÀÀÀÀÀ"))


def test_non_ascii_display_name_before_a_comma_keeps_the_list_intact() -> None:
    # The stdlib's folder at 78 columns wrote the comma after this name as "=?utf-8?q?=2C?=",
    # joining the next mailbox to it.
    named = who("a", "a000", free_form="AAAAÀÀÀÀ AAAA AAAÀÀÀÀÀ")
    wire = to_headers(blind_copy_recipients=(named, who("a", "a"))).as_string()
    message = email.message_from_string(wire, policy=email.policy.default)
    heading = headers_to_heading(message, mail_to_or=mail_to_or, gateway_domain=GATEWAY)
    assert heading.blind_copy_recipients == (named, who("a", "a"))
