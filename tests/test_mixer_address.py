"""RFC 2156 §4 address mapping: each table case, each fallback, the escapes, both ways, and
round trips over generated addresses."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from waypost.address import AddressError, Mailbox, ORAddress, parse_mailbox, parse_oraddress
from waypost.address.oraddress import fold_value, format_slash, slash_items
from waypost.mixer.address_map import (
    AddressMapper,
    Gateway,
    MappingEntry,
    MappingError,
    MappingRule,
)

GATEWAY = Gateway("gw.example", parse_oraddress("/C=GB/ADMD= /PRMD=Gw/"))
SALES = MappingEntry.parse("/C=GB/ADMD= /PRMD=Acme/O=Sales/", "sales.acme.example")
ACME = MappingEntry.parse("/C=GB/ADMD= /PRMD=Acme/", "acme.example")
MAPPER = AddressMapper.symmetric(GATEWAY, [ACME, SALES])


def to_rfc822(text: str) -> tuple[str, MappingRule, MappingEntry | None]:
    mapped = MAPPER.to_rfc822(parse_oraddress(text))
    return str(mapped.mailbox), mapped.rule, mapped.entry


def to_x400(text: str) -> tuple[str, MappingRule, MappingEntry | None]:
    mapped = MAPPER.to_x400(parse_mailbox(text))
    return str(mapped.oraddress), mapped.rule, mapped.entry


def folded(address: ORAddress) -> list[tuple[str, str]]:
    # X.411 compares O/R addresses without case; a subdomain comes back in lower case.
    return [(key, fold_value(value)) for key, value in address.attributes()]


# --- X.400 → RFC 822 --------------------------------------------------------------------------


def test_longest_prefix_gives_the_domain_and_a_personal_name_the_local_part() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/") == (
        "Jo.Smith@sales.acme.example", MappingRule.TABLE_PERSONAL_NAME, SALES,
    )  # fmt: skip


def test_initials_become_one_letter_components() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/I=KL/")[0] == (
        "Jo.K.L.Smith@sales.acme.example"
    )
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/I=K/")[0] == (
        "K.Smith@sales.acme.example"
    )


def test_other_attributes_go_in_the_local_part_least_significant_first() -> None:
    # A lone surname, a generation qualifier, a one-letter given name: no Given.I.Surname.
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/") == (
        "/S=Smith/@sales.acme.example", MappingRule.TABLE_ATTRIBUTES, SALES,
    )  # fmt: skip
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/Q=Jr/")[0] == (
        "/Q=Jr/G=Jo/S=Smith/@sales.acme.example"
    )
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=J/")[0] == (
        "/G=J/S=Smith/@sales.acme.example"
    )
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/CN=Sales Desk/")[0] == (
        '"/CN=Sales Desk/"@sales.acme.example'
    )


def test_organizational_units_below_the_prefix_become_subdomains() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/OU1=East/OU2=Hq/S=Smith/G=Jo/") == (
        "Jo.Smith@hq.east.sales.acme.example", MappingRule.TABLE_PERSONAL_NAME, SALES,
    )  # fmt: skip
    # An O that is no DNS label stays in the local part, and so does everything below it.
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Mkt Dept/OU1=East/S=Smith/G=Jo/") == (
        '"/G=Jo/S=Smith/OU1=East/O=Mkt Dept/"@acme.example', MappingRule.TABLE_ATTRIBUTES, ACME,
    )  # fmt: skip


def test_a_subdomain_that_another_entry_owns_is_not_made_of_o_or_ou() -> None:
    marketing = MappingEntry.parse("/C=GB/ADMD= /PRMD=Acme/O=Marketing/", "sales.acme.example")
    mapper = AddressMapper.symmetric(GATEWAY, [ACME, marketing])
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/")
    mapped = mapper.to_rfc822(address)
    assert str(mapped.mailbox) == "/G=Jo/S=Smith/O=Sales/@acme.example"
    assert mapper.to_x400(mapped.mailbox).oraddress == address


def test_an_rfc822_dda_under_a_table_prefix_is_the_mail_address() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/DDA:RFC-822=j(u)o(a)acme.example/") == (
        "j_o@acme.example", MappingRule.TABLE_RFC822_DDA, ACME,
    )  # fmt: skip


def test_the_escapes_stay_in_a_std_or_local_part() -> None:
    # RFC 2156 §4.3.2: what PrintableString cannot carry travels as (u), (a), (q), (l), (r)...
    mapped = to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=O(u)Neil(l)x(r)/G=Jo/")
    assert mapped[0] == '"/G=Jo/S=O(u)Neil(l)x(r)/"@sales.acme.example'
    mapped = to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/CN=a(a)b(p)c(b)d(q)e(036)/")
    assert mapped[0] == r'"/CN=a(a)b(p)c(b)d(q)e(036)/"@sales.acme.example'


def test_no_table_entry_carries_the_whole_address_at_the_gateway() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Other/O=Sales/S=Smith/G=Jo/") == (
        '"/G=Jo/S=Smith/O=Sales/PRMD=Other/ADMD= /C=GB/"@gw.example',
        MappingRule.GATEWAY_LOCAL_PART,
        None,
    )


def test_a_blank_admd_prefix_maps_only_the_blank_admd() -> None:
    # Letting " " stand for any ADMD would lose ADMD=BT on the way back.
    assert to_rfc822("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/G=Jo/")[1] == (
        MappingRule.GATEWAY_LOCAL_PART
    )


def test_the_prefix_alone_has_no_local_part_and_goes_by_a_shorter_entry_or_the_gateway() -> None:
    # Under ACME, O=Sales would be the subdomain SALES owns: it stays an attribute.
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/") == (
        "/O=Sales/@acme.example", MappingRule.TABLE_ATTRIBUTES, ACME,
    )  # fmt: skip
    mapper = AddressMapper.symmetric(GATEWAY, [SALES])
    mapped = mapper.to_rfc822(parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/"))
    assert (str(mapped.mailbox), mapped.rule) == (
        '"/O=Sales/PRMD=Acme/ADMD= /C=GB/"@gw.example', MappingRule.GATEWAY_LOCAL_PART,
    )  # fmt: skip


def test_a_name_that_would_read_back_otherwise_stays_in_attributes() -> None:
    # "Jo.Ann.Smith" would read back as G=Jo, S=Smith with "Ann" lost: the std-or form.
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo.Ann/")[0] == (
        "/G=Jo.Ann/S=Smith/@sales.acme.example"
    )
    assert to_rfc822("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/I=K1/")[0] == (
        "/I=K1/S=Smith/@sales.acme.example"
    )


def test_an_address_too_long_for_a_local_part_falls_back_then_is_refused() -> None:
    long_cn = "x" * 60
    with pytest.raises(MappingError, match="local part too long"):
        MAPPER.to_rfc822(parse_oraddress(f"/C=GB/ADMD= /PRMD=Acme/O=Sales/CN={long_cn}/"))


def test_a_gateway_dda_gives_back_the_mail_address() -> None:
    assert to_rfc822("/C=GB/ADMD= /PRMD=Gw/DDA:RFC-822=fred(a)nowhere.example/") == (
        "fred@nowhere.example", MappingRule.GATEWAY_RFC822_DDA, None,
    )  # fmt: skip


def test_a_gateway_dda_that_is_no_mail_address_is_refused() -> None:
    with pytest.raises(MappingError, match="RFC-822 DDA 'not an address'"):
        MAPPER.to_rfc822(parse_oraddress("/C=GB/ADMD= /PRMD=Gw/DDA:RFC-822=not an address/"))


# --- RFC 822 → X.400 --------------------------------------------------------------------------


def test_longest_domain_match_and_a_personal_name() -> None:
    assert to_x400("jo.smith@sales.acme.example") == (
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=smith/G=jo/", MappingRule.DOMAIN_PERSONAL_NAME, SALES,
    )  # fmt: skip
    assert to_x400("Jo.K.L.Smith@sales.acme.example")[0] == (
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/I=KL/"
    )
    assert to_x400("k.smith@acme.example")[0] == "/C=GB/ADMD= /PRMD=Acme/S=smith/I=k/"


def test_subdomains_below_the_match_fill_o_then_the_ous() -> None:
    assert to_x400("jo.smith@hq.east.sales.acme.example")[0] == (
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/OU1=east/OU2=hq/S=smith/G=jo/"
    )
    assert to_x400("jo.smith@research.acme.example") == (
        "/C=GB/ADMD= /PRMD=Acme/O=research/S=smith/G=jo/", MappingRule.DOMAIN_PERSONAL_NAME, ACME,
    )  # fmt: skip


def test_a_std_or_local_part_adds_its_attributes_under_the_prefix() -> None:
    assert to_x400('"/G=Jo/S=O(u)Neil/"@sales.acme.example') == (
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=O(u)Neil/G=Jo/", MappingRule.DOMAIN_ATTRIBUTES, SALES,
    )  # fmt: skip
    assert parse_oraddress(to_x400('"/G=Jo/S=O(u)Neil/"@sales.acme.example')[0]).surname == (
        "O_Neil"
    )


def test_a_std_or_local_part_that_contradicts_the_prefix_is_refused() -> None:
    with pytest.raises(MappingError, match="do not fit under /C=GB/ADMD= /PRMD=Acme/O=Sales/"):
        MAPPER.to_x400(parse_mailbox('"/O=Other/S=Smith/"@sales.acme.example'))


def test_any_other_local_part_travels_in_an_rfc822_dda_under_the_prefix() -> None:
    # The RFC 2156 escapes: "_" is (u), "@" is (a) in the PrintableString.
    assert to_x400("jo_x@acme.example") == (
        "/C=GB/ADMD= /PRMD=Acme/DDA:RFC-822=jo(u)x(a)acme.example/",
        MappingRule.DOMAIN_RFC822_DDA,
        ACME,
    )
    assert to_x400("jsmith@sales.acme.example")[1] == MappingRule.DOMAIN_RFC822_DDA
    assert to_x400('"j(o)%x!y"@acme.example')[0] == (
        "/C=GB/ADMD= /PRMD=Acme/DDA:RFC-822=(q)j(l)o(r)(p)x(b)y(q)(a)acme.example/"
    )


def test_no_table_entry_carries_the_mail_address_in_a_dda_at_the_gateway() -> None:
    assert to_x400("fred@nowhere.example") == (
        "/C=GB/ADMD= /PRMD=Gw/DDA:RFC-822=fred(a)nowhere.example/", MappingRule.GATEWAY_DDA, None,
    )  # fmt: skip


def test_an_oraddress_local_part_at_the_gateway_is_that_oraddress() -> None:
    assert to_x400('"/G=Jo/S=Smith/O=Sales/PRMD=Other/ADMD= /C=GB/"@gw.example') == (
        "/C=GB/ADMD= /PRMD=Other/O=Sales/S=Smith/G=Jo/", MappingRule.LOCAL_PART_ORADDRESS, None,
    )  # fmt: skip


def test_a_broken_oraddress_local_part_at_the_gateway_is_refused() -> None:
    with pytest.raises(MappingError, match="not an O/R address: missing C"):
        MAPPER.to_x400(parse_mailbox('"/S=Smith/"@gw.example'))


def test_too_many_subdomains_for_o_and_four_ous_go_by_the_gateway() -> None:
    assert to_x400("jo.smith@a.b.c.d.e.f.acme.example")[1] == MappingRule.GATEWAY_DDA


# --- tables and explanations -----------------------------------------------------------------


def test_a_table_entry_holds_only_the_hierarchical_attributes() -> None:
    with pytest.raises(MappingError, match="not S"):
        MappingEntry.parse("/C=GB/PRMD=Acme/S=Smith/", "acme.example")
    with pytest.raises(AddressError, match="label"):
        MappingEntry.parse("/C=GB/PRMD=Acme/", "acme..example")


def test_a_domain_or_prefix_mapped_twice_in_one_table_is_refused() -> None:
    other = MappingEntry.parse("/C=GB/ADMD= /PRMD=Other/", "acme.example")
    with pytest.raises(MappingError, match=r"domain mapped twice in one table: acme\.example"):
        AddressMapper.symmetric(GATEWAY, [ACME, other])
    shouting = MappingEntry.parse("/C=GB/ADMD= /PRMD=ACME/", "acme.example.org")
    with pytest.raises(MappingError, match="O/R prefix mapped twice"):
        AddressMapper(GATEWAY, oraddress_to_domain=[ACME, shouting])
    # The same prefix may map to two domains when only one of them maps back.
    AddressMapper(GATEWAY, domain_to_oraddress=[ACME, shouting], oraddress_to_domain=[ACME])


def test_each_direction_has_its_own_table() -> None:
    # An entry only in the X.400 → RFC 822 table: mail for the domain goes by the gateway.
    mapper = AddressMapper(GATEWAY, oraddress_to_domain=[SALES])
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/")
    assert str(mapper.to_rfc822(address).mailbox) == "Jo.Smith@sales.acme.example"
    assert mapper.to_x400(Mailbox("Jo.Smith", "sales.acme.example")).rule == (
        MappingRule.GATEWAY_DDA
    )


def test_every_result_explains_itself() -> None:
    mapped = MAPPER.to_rfc822(parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/"))
    assert mapped.explain() == (
        "Jo.Smith@sales.acme.example: table: O/R prefix → domain, personal name as "
        "Given.I.Surname [/C=GB/ADMD= /PRMD=Acme/O=Sales/ ⇄ sales.acme.example]"
    )
    back = MAPPER.to_x400(parse_mailbox("fred@nowhere.example"))
    assert back.explain() == (
        "/C=GB/ADMD= /PRMD=Gw/DDA:RFC-822=fred(a)nowhere.example/: no table entry: the mail "
        "address in an RFC-822 DDA at the gateway"
    )


def test_slash_items_are_the_pieces_of_the_slash_form() -> None:
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/S=O(u)Neil/DDA:RFC-822=a(a)b/")
    items = slash_items(address)
    assert [key for key, _ in items] == ["C", "ADMD", "PRMD", "S", "DDA:RFC-822"]
    assert "/" + "".join(item for _, item in items) == format_slash(address)


# --- round trips ------------------------------------------------------------------------------

_VALUE = st.text(alphabet=string.ascii_letters + string.digits + " -'_@()%!\"$", min_size=1)
_NAME = st.text(alphabet=string.ascii_letters + "-'", min_size=1, max_size=8)


@st.composite
def oraddresses(draw: st.DrawFn) -> ORAddress:
    country = draw(st.sampled_from(["GB", "FR"]))
    admd = draw(st.sampled_from([" ", "Atlas"]))
    prmd = draw(st.sampled_from(["Acme", "Other", "Gw"]))
    organization = draw(
        st.none() | st.sampled_from(["Sales", "Marketing", "Mkt Dept", "research", "x"])
    )
    units = tuple(
        draw(
            st.lists(
                st.sampled_from(["East", "Hq", "sales"])
                | _VALUE.map(str.strip).filter(bool).map(lambda v: v[:8]),
                max_size=2,
            )
        )
    )
    if organization is None:
        units = ()
    surname = draw(st.none() | _NAME | _VALUE.map(lambda v: v[:10]))
    given = draw(st.none() | _NAME) if surname else None
    initials = draw(st.none() | st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=2))
    common_name = draw(st.none() | _VALUE.map(lambda v: v[:10]))
    try:
        return ORAddress(
            country=country,
            admd=admd,
            prmd=prmd,
            organization=organization,
            org_units=units,
            surname=surname,
            given_name=given,
            initials=initials if surname else None,
            common_name=common_name,
        )
    except AddressError:
        assume(False)
        raise


@given(oraddresses())
def test_x400_to_rfc822_and_back_gives_the_original(address: ORAddress) -> None:
    try:
        mailbox = MAPPER.to_rfc822(address).mailbox
    except MappingError:
        assume(False)  # longer than RFC 5321 lets a mailbox be
        raise
    assert folded(MAPPER.to_x400(mailbox).oraddress) == folded(address)


_LOCAL = st.text(alphabet=string.ascii_letters + string.digits + "._-+'!%", min_size=1, max_size=20)
_DOMAIN = st.sampled_from(
    ["acme.example", "sales.acme.example", "east.sales.acme.example", "nowhere.example", "x.org"]
)


@given(_LOCAL, _DOMAIN)
def test_rfc822_to_x400_and_back_gives_the_original(local: str, domain: str) -> None:
    try:
        mailbox = Mailbox(local, domain)
    except AddressError:
        assume(False)
        raise
    address = MAPPER.to_x400(mailbox).oraddress
    assert MAPPER.to_rfc822(address).mailbox == mailbox


_PREFIXES = [
    "/C=GB/ADMD= /PRMD=Acme/",
    "/C=GB/ADMD= /PRMD=Acme/O=Sales/",
    "/C=GB/ADMD= /PRMD=Acme/O=Sales/OU1=East/",
    "/C=GB/ADMD= /PRMD=Acme/O=Marketing/",
    "/C=GB/ADMD= /PRMD=Other/",
    "/C=FR/ADMD=Atlas/",
]
_DOMAINS = [
    "acme.example", "sales.acme.example", "east.sales.acme.example", "marketing.example",
    "other.example", "x.acme.example", "fr.example",
]  # fmt: skip


@st.composite
def mappers(draw: st.DrawFn) -> AddressMapper:
    prefixes = draw(st.lists(st.sampled_from(_PREFIXES), unique=True, max_size=4))
    domains = draw(
        st.lists(st.sampled_from(_DOMAINS), unique=True, min_size=len(prefixes), max_size=4)
    )
    entries = [MappingEntry.parse(p, d) for p, d in zip(prefixes, domains, strict=False)]
    return AddressMapper.symmetric(GATEWAY, entries)


@given(mappers(), oraddresses())
def test_any_consistent_tables_map_x400_across_and_back(
    mapper: AddressMapper, address: ORAddress
) -> None:
    # Whatever one-to-one table an operator writes, an O/R address never comes back as
    # another recipient.
    try:
        mailbox = mapper.to_rfc822(address).mailbox
    except MappingError:
        assume(False)
        raise
    assert folded(mapper.to_x400(mailbox).oraddress) == folded(address)


@given(mappers(), _LOCAL, _DOMAIN)
def test_any_consistent_tables_map_mail_across_and_back(
    mapper: AddressMapper, local: str, domain: str
) -> None:
    try:
        mailbox = Mailbox(local, domain)
    except AddressError:
        assume(False)
        raise
    address = mapper.to_x400(mailbox).oraddress
    back = mapper.to_x400(mapper.to_rfc822(address).mailbox).oraddress
    # The mail address may come back as another alias of the same X.400 recipient.
    assert folded(back) == folded(address)
