"""RFC 2163 PX records without a network: the MAPX400 syntax both ways (the RFC's examples),
the names looked up in each tree, which record makes the entry, and merging entries."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from waypost.address import AddressError, ORAddress, parse_mailbox, parse_oraddress
from waypost.address.oraddress import fold_value
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry, MappingRule
from waypost.mixer.px import (
    PxError,
    PxRecord,
    domain_tree_names,
    entry_for_domain,
    entry_for_oraddress,
    mapx400_labels,
    parse_mapx400,
    x400_tree_name,
    x400_tree_names,
)


def labels(text: str) -> tuple[str, ...]:
    return tuple(text.rstrip(".").split("."))


def px(preference: int, map822: str, mapx400: tuple[str, ...] | str) -> PxRecord:
    x400 = labels(mapx400) if isinstance(mapx400, str) else mapx400
    return PxRecord(preference, labels(map822), x400)


# RFC 2163 §4's example records and the one more BIND's operator guide shows for RFC 1664,
# as RDATA: (MAP822, MAPX400) and the O/R prefix the MAPX400 names.
RFC2163_EXAMPLES = [
    ("it", "ADMD-garr.C-it", "/C=IT/ADMD=garr/"),
    ("cnr.it", "O-cnr.PRMD-infn.ADMD-garr.C-it", "/C=IT/ADMD=garr/PRMD=infn/O=cnr/"),
    ("it", "O-gate.PRMD-garr.ADMD-garr.C-it", "/C=IT/ADMD=garr/PRMD=garr/O=gate/"),
]


@pytest.mark.parametrize(("map822", "mapx400", "prefix"), RFC2163_EXAMPLES)
def test_rfc2163_examples_read_and_written(map822: str, mapx400: str, prefix: str) -> None:
    assert parse_mapx400(labels(mapx400)) == parse_oraddress(prefix)
    assert mapx400_labels(parse_oraddress(prefix)) == labels(mapx400)
    entry = entry_for_domain(map822, [px(50, map822, mapx400)])
    assert entry == MappingEntry.parse(prefix, map822)


def test_rfc2163_example_x400_tree_names() -> None:
    # RFC 2163 §4 publishes /C=it/ADMD=garr/ as the owner `ADMD-garr.X42D.it.` (with a
    # wildcard below it): the country label C-it becomes X42D.it.
    garr = parse_oraddress("/C=IT/ADMD=garr/")
    assert x400_tree_name(garr) == ("ADMD-garr", "X42D", "it")
    address = parse_oraddress("/C=IT/ADMD=garr/PRMD=infn/O=cnr/OU=pisa/S=Rossi/G=Mario/")
    assert x400_tree_names(address) == [
        ("OU-pisa", "O-cnr", "PRMD-infn", "ADMD-garr", "X42D", "it"),
        ("O-cnr", "PRMD-infn", "ADMD-garr", "X42D", "it"),
        ("PRMD-infn", "ADMD-garr", "X42D", "it"),
        ("ADMD-garr", "X42D", "it"),
    ]


def test_x400_tree_below_a_configured_root() -> None:
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/")
    assert x400_tree_names(address, ("x400", "example"))[0] == (
        "O-Sales", "PRMD-Acme", "ADMD- ", "X42D", "gb", "x400", "example",
    )  # fmt: skip


def test_special_encodings() -> None:
    # The blank ADMD is "ADMD- " (RFC 2156 Appendix F's "ADMD$ "), `ADMD-\032` in a zone.
    blank = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/")
    assert mapx400_labels(blank) == ("PRMD-Acme", "ADMD- ", "C-gb")
    assert parse_mapx400(("PRMD-Acme", "ADMD- ", "C-gb")) == blank
    # An attribute the hierarchy skips is its key alone (App. F's "@"): here no PRMD.
    no_prmd = parse_oraddress("/C=GB/ADMD=BT/O=Acme/")
    assert mapx400_labels(no_prmd) == ("O-Acme", "PRMD", "ADMD-BT", "C-gb")
    assert parse_mapx400(("O-Acme", "PRMD", "ADMD-BT", "C-gb")) == no_prmd
    # A dot inside a value is a byte of the label (`O-a\.b` in a zone file); "@" travels
    # in its printable-string form; each OU in order, OU1 nearest the O.
    odd = parse_oraddress("/C=GB/ADMD=BT/PRMD=x/O=a.b@c/OU=one/OU=two/")
    assert mapx400_labels(odd) == ("OU-two", "OU-one", "O-a.b(a)c", "PRMD-x", "ADMD-BT", "C-gb")
    assert parse_mapx400(mapx400_labels(odd)) == odd


@pytest.mark.parametrize(
    ("mapx400", "reason"),
    [
        (("O-x", "C-it"), "where ADMD belongs"),
        (("C-it", "ADMD-garr"), "where C belongs"),
        (("C-it",), "at least C and ADMD"),
        (("O", "PRMD-infn", "ADMD-garr", "C-it"), "omitted O is not supported"),
        (("PRMD-x", "ADMD", "C-it"), "omitted ADMD is not supported"),
        (("PRMD-", "ADMD-garr", "C-it"), "PRMD has an empty value"),
        (("S-Smith", "O-x", "PRMD-x", "ADMD-x", "C-it"), "where OU belongs"),
        (("O-" + "x" * 65, "PRMD-x", "ADMD-x", "C-it"), "not an O/R prefix: O is 65"),
        (("PRMD-\ufffd", "ADMD-x", "C-it"), "not an O/R prefix"),
        ((), "MAPX400 is empty"),
    ],
)
def test_bad_mapx400_is_refused_with_the_reason(mapx400: tuple[str, ...], reason: str) -> None:
    with pytest.raises(PxError, match=reason):
        parse_mapx400(mapx400)


def test_rfc822_tree_names_walk_up_the_domain() -> None:
    assert domain_tree_names("A.B.c.Example") == [
        "a.b.c.example", "b.c.example", "c.example", "example",
    ]  # fmt: skip
    assert domain_tree_names("[192.0.2.1]") == []


def test_x400_tree_names_skip_what_the_dns_cannot_hold() -> None:
    # An O of 64 characters makes a label of 66 octets: that level cannot be published.
    address = parse_oraddress(f"/C=GB/ADMD=BT/PRMD=P/O={'o' * 64}/S=Smith/")
    assert x400_tree_names(address) == [
        ("PRMD-P", "ADMD-BT", "X42D", "gb"),
        ("ADMD-BT", "X42D", "gb"),
    ]


def test_the_most_preferred_usable_record_wins() -> None:
    first = px(10, "pref.example", "PRMD-First.ADMD- .C-gb")
    second = px(20, "pref.example", "PRMD-Second.ADMD- .C-gb")
    broken = px(5, "pref.example", "O-x.C-gb")
    entry = entry_for_domain("pref.example", [second, broken, first])
    assert entry.prefix.prmd == "First"


def test_a_wildcard_cannot_hand_a_domain_another_domains_mapping() -> None:
    stolen = px(10, "acme.example", "PRMD-Acme.ADMD- .C-gb")
    with pytest.raises(PxError, match=r"MAP822 acme\.example is not x\.stolen\.example or above"):
        entry_for_domain("x.stolen.example", [stolen])
    assert entry_for_domain("x.acme.example", [stolen]).domain == "acme.example"


def test_mapx400_must_be_a_prefix_of_the_address() -> None:
    record = px(10, "acme.example", "O-Sales.PRMD-Acme.ADMD- .C-gb")
    sales = parse_oraddress("/C=GB/ADMD= /PRMD=ACME/O=sales/S=Smith/")
    assert entry_for_oraddress(sales, [record]).domain == "acme.example"
    other = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Marketing/S=Smith/")
    with pytest.raises(PxError, match="not a prefix"):
        entry_for_oraddress(other, [record])
    # An attribute the MAPX400 omits must be absent from the address too.
    skipped = px(10, "acme.example", "O-Sales.PRMD.ADMD- .C-gb")
    with pytest.raises(PxError, match="not a prefix"):
        entry_for_oraddress(sales, [skipped])


def test_bad_map822_is_refused() -> None:
    record = PxRecord(10, ("acme_example",), ("PRMD-Acme", "ADMD- ", "C-gb"))
    with pytest.raises(PxError, match="MAP822 is not a mail domain"):
        entry_for_domain("acme.example", [record])


GATEWAY = Gateway("gw.example", parse_oraddress("/C=GB/ADMD= /PRMD=Gw/"))
ACME = MappingEntry.parse("/C=GB/ADMD= /PRMD=Acme/", "acme.example")


def test_entries_found_in_dns_join_the_tables() -> None:
    configured = AddressMapper.symmetric(GATEWAY, [ACME])
    found = MappingEntry.parse("/C=IT/ADMD=garr/PRMD=infn/O=cnr/", "cnr.it")
    clash = MappingEntry.parse("/C=GB/ADMD= /PRMD=Other/", "acme.example")
    mapper = configured.with_entries(
        domain_to_oraddress=[found, clash], oraddress_to_domain=[found, found]
    )
    mapped = mapper.to_x400(parse_mailbox("Mario.Rossi@cnr.it"))
    assert mapped.rule is MappingRule.DOMAIN_PERSONAL_NAME and mapped.entry == found
    assert str(mapped.oraddress) == "/C=IT/ADMD=garr/PRMD=infn/O=cnr/S=Rossi/G=Mario/"
    back = mapper.to_rfc822(mapped.oraddress)
    assert str(back.mailbox) == "Mario.Rossi@cnr.it" and back.entry == found
    # The configured entry for acme.example stays; the one found for it is left out.
    assert mapper.to_x400(parse_mailbox("a.b@acme.example")).entry == ACME
    assert configured.to_x400(parse_mailbox("Mario.Rossi@cnr.it")).entry is None


_VALUE = st.text(alphabet="ABCabc019 '()+,-./:=?@", min_size=1, max_size=12).filter(
    lambda v: v.strip() and v == " ".join(v.split())
)


@given(
    admd=st.one_of(st.just(" "), _VALUE),
    prmd=st.one_of(st.none(), _VALUE),
    org=st.one_of(st.none(), _VALUE),
    units=st.lists(_VALUE, max_size=4),
)
def test_mapx400_round_trip(admd: str, prmd: str | None, org: str | None, units: list[str]) -> None:
    try:
        prefix = ORAddress(
            country="GB", admd=admd, prmd=prmd, organization=org, org_units=tuple(units)
        )
    except AddressError:
        assume(False)  # past an X.402 bound once escaped: no O/R address at all
        raise
    back = parse_mapx400(mapx400_labels(prefix))
    assert [(k, fold_value(v)) for k, v in back.attributes()] == [
        (k, fold_value(v)) for k, v in prefix.attributes()
    ]
