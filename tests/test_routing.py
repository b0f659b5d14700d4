"""The routing table: next-hop syntax, most-specific-wins, validation and explanations."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.nexthop import NextHop, parse_next_hop
from waypost.routing import (
    REMEMBERED_DECISIONS,
    Decision,
    RouteEntry,
    RouteError,
    RoutingTable,
)


def table(*routes: tuple[str, str], local: tuple[str, ...] = (), local_or: tuple[str, ...] = ()
          ) -> RoutingTable:  # fmt: skip
    return RoutingTable(
        [RouteEntry(match, hop) for match, hop in routes],
        local_domains=list(local),
        local_oraddresses=list(local_or),
    )


def hop_of(decision: Decision) -> str | None:
    return None if decision.next_hop is None else str(decision.next_hop)


# --- next hops ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "destination", "port", "key"),
    [
        ("local", "local", "", None, "local"),
        (" LOCAL ", "local", "", None, "local"),
        ("smtp:[relay.example.com]", "smtp", "relay.example.com", 25,
         "smtp:[relay.example.com]:25"),
        ("smtp:[Relay.Example.COM]:2525", "smtp", "relay.example.com", 2525,
         "smtp:[relay.example.com]:2525"),
        ("smtp:[192.0.2.7]:587", "smtp", "192.0.2.7", 587, "smtp:[192.0.2.7]:587"),
        ("smtp:[::1]:2526", "smtp", "::1", 2526, "smtp:[::1]:2526"),
        ("smtp:[IPv6:::1]:2526", "smtp", "::1", 2526, "smtp:[::1]:2526"),
        ("smtp:[ipv6:2001:DB8:0::1]", "smtp", "2001:db8::1", 25, "smtp:[2001:db8::1]:25"),
        ("smtp:[bücher.example]", "smtp", "xn--bcher-kva.example", 25,
         "smtp:[xn--bcher-kva.example]:25"),
        ("smtp:mx.example.net", "smtp", "mx.example.net", None, "smtp:mx.example.net"),
        ("SMTP:", "smtp", "", None, "smtp:"),
        ("x400:PEER-1", "x400", "PEER-1", None, "x400:PEER-1"),
        ("error:no such domain here", "error", "no such domain here", None,
         "error:no such domain here"),
    ],
)  # fmt: skip
def test_parse_next_hop(
    text: str, transport: str, destination: str, port: int | None, key: str
) -> None:
    hop = parse_next_hop(text)
    assert hop == NextHop(transport, destination, port)
    assert str(hop) == key
    assert hop.mx_lookup is (transport == "smtp" and port is None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("smpt:[relay]", "unknown transport 'smpt'"),
        ("lmtp:x", "write 'lmtp:[host]:port' or 'lmtp:unix:/path/to/socket'"),
        ("lmtp:unix:relative/socket", "a UNIX socket needs an absolute path"),
        ("lmtp:[store.example]:0", "port 0 must be a number from 1 to 65535"),
        ("uucp:x", "unknown transport 'uucp'"),
        ("local:elsewhere", "'local' takes no destination"),
        ("smtp", "write 'smtp:'"),
        ("smtp:[relay.example", "missing ']'"),
        ("smtp:[relay.example]:0", "from 1 to 65535"),
        ("smtp:[relay.example]:65536", "from 1 to 65535"),
        ("smtp:[relay.example]:25x", "expected ':port'"),
        ("smtp:[relay.example]25", "expected ':port'"),
        ("smtp:relay.example:2525", "a port needs the host in brackets"),
        ("smtp:192.0.2.1", "write an IP address in brackets"),
        ("smtp:[IPv6:zz::1]", "not an IPv6 address"),
        ("smtp:[bad_host]", "host 'bad_host'"),
        ("smtp:bad..host", "empty label"),
        ("x400:", "x400 needs the name"),
        ("x400:TWO WORDS", "without spaces"),
        ("error:", "error needs the text"),
        ("error:bad\r\nline", "must be printable"),
    ],
)
def test_bad_next_hops(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_next_hop(text)
    assert reason in str(info.value)


# --- mail domains ---------------------------------------------------------------------------


def test_local_domains_are_exact_and_case_insensitive() -> None:
    routes = table(("*", "smtp:"), local=("Example.com", "bücher.example"))
    decision = routes.route("jo@EXAMPLE.COM")
    assert decision.next_hop == NextHop("local")
    assert decision.rule == "local.domains[0] 'Example.com'"
    assert "domain example.com is local (local.domains[0] 'Example.com')" in decision.explanation
    assert hop_of(routes.route("jo@xn--bcher-kva.example")) == "local"  # A-label = U-label
    assert hop_of(routes.route("jo@sub.example.com")) == "smtp:sub.example.com"
    assert routes.is_local_domain("EXAMPLE.com")
    assert not routes.is_local_domain("sub.example.com")
    assert not routes.is_local_domain("bad..domain")


def test_exact_beats_suffix_beats_default() -> None:
    routes = table(
        ("*", "smtp:[smarthost.example.net]"),
        (".com", "smtp:[com-relay.example]"),
        (".example.com", "smtp:[suffix-relay.example]"),
        ("sales.example.com", "smtp:[exact-relay.example]"),
    )
    assert hop_of(routes.route("a@sales.example.com")) == "smtp:[exact-relay.example]:25"
    assert hop_of(routes.route("a@eu.sales.example.com")) == "smtp:[suffix-relay.example]:25"
    assert hop_of(routes.route("a@example.com")) == "smtp:[com-relay.example]:25"  # not itself
    assert hop_of(routes.route("a@other.com")) == "smtp:[com-relay.example]:25"
    assert hop_of(routes.route("a@example.org")) == "smtp:[smarthost.example.net]:25"


def test_explanation_names_the_winner_and_the_others() -> None:
    routes = table(
        ("*", "smtp:"), (".com", "x400:GW"), (".example.com", "smtp:[relay.example.com]")
    )
    decision = routes.route("jo@Sales.Example.com")
    assert decision.address == "jo@sales.example.com"
    assert decision.rule == "route[2] '.example.com'"
    assert decision.explanation == (
        "jo@sales.example.com: RFC 5321 mailbox, domain sales.example.com",
        "domain sales.example.com is not local",
        "route[2] '.example.com' matches (suffix, 12 chars)",
        "route[1] '.com' also matches (suffix, 4 chars) but is less specific",
        "route[0] '*' also matches (default) but is less specific",
        "chosen: smtp:[relay.example.com]:25 (that host, no MX lookup)",
    )


def test_default_route_and_no_route() -> None:
    routes = table(("*", "smtp:"))
    decision = routes.route("jo@example.org")
    assert decision.next_hop == NextHop("smtp", "example.org")
    assert decision.explanation[-2] == "route[0] '*' matches (default)"
    assert decision.explanation[-1] == (
        "chosen: smtp:example.org (MX lookup of the recipient's domain)"
    )
    empty = table(("example.com", "local"))
    decision = empty.route("jo@example.org")
    assert decision.next_hop is None
    assert decision.explanation[-1].startswith("no route: nothing matches example.org")


def test_smtp_without_host_uses_the_recipients_domain() -> None:
    routes = table(("*", "smtp:"))
    assert hop_of(routes.route("jo@bücher.example")) == "smtp:xn--bcher-kva.example"
    assert hop_of(routes.route("jo@[192.0.2.9]")) == "smtp:[192.0.2.9]:25"
    assert hop_of(routes.route("jo@[IPv6:2001:db8::9]")) == "smtp:[2001:db8::9]:25"


def test_address_literals_match_exactly_only() -> None:
    routes = table(("[192.0.2.1]", "local"), (".1", "error:never"), ("*", "error:other"))
    assert hop_of(routes.route("jo@[192.0.2.1]")) == "local"
    assert hop_of(routes.route("jo@[192.0.2.2]")) == "error:other"


def test_suffix_lookup_does_not_scan_every_route() -> None:
    routes = table(*((f"host{i}.example.org", "smtp:") for i in range(5000)), (".net", "local"))
    assert hop_of(routes.route("a@host4999.example.org")) == "smtp:host4999.example.org"
    assert hop_of(routes.route("a@x.y.net")) == "local"


def test_error_transport_refuses_with_its_text() -> None:
    decision = table(("spam.example", "error:we do not relay for spam.example")).route(
        "x@spam.example"
    )
    assert decision.next_hop == NextHop("error", "we do not relay for spam.example")
    assert decision.explanation[-1].endswith("(the recipient is refused with this text)")


def test_paths_are_accepted() -> None:
    routes = table(("*", "smtp:"))
    assert hop_of(routes.route("<@relay.example:jo@example.com>")) == "smtp:example.com"
    null = routes.route("<>")
    assert null.next_hop is None
    assert "null reverse path" in null.explanation[-1]


# --- O/R addresses --------------------------------------------------------------------------

OR_ROUTES = (
    ("/C=GB/", "x400:UK-GATEWAY"),
    ("/C=GB/ADMD=BT/", "x400:BT"),
    ("/C=GB/ADMD= /PRMD=Acme/", "x400:ACME"),
    ("c=gb;a= ;p=acme;o=Sales", "x400:ACME-SALES"),
    ("*", "smtp:"),
)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/", "x400:ACME-SALES"),
        ("/C=GB/ADMD=BT/PRMD=ACME/O=Support/S=Smith/", "x400:ACME"),
        ("/C=GB/ADMD=Mercury/PRMD=acme/S=Smith/", "x400:ACME"),  # the blank ADMD is any ADMD
        ("/C=GB/ADMD=BT/PRMD=Other/S=Smith/", "x400:BT"),
        ("/C=GB/ADMD=Mercury/S=Smith/", "x400:UK-GATEWAY"),
        ("/C=GB/ADMD= /S=Smith/", "x400:UK-GATEWAY"),  # a blank-ADMD address is not under BT
        ("c=gb;a=bt;s=Smith", "x400:BT"),
        ("/C=US/ADMD=ATT/S=Smith/", None),  # "*" is for mail domains only
    ],
)
def test_or_prefix_most_specific_wins(address: str, expected: str | None) -> None:
    decision = table(*OR_ROUTES).route(address)
    assert hop_of(decision) == expected


def test_or_explanation() -> None:
    decision = table(*OR_ROUTES).route("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/")
    assert decision.rule == "route[3] 'c=gb;a= ;p=acme;o=Sales'"
    assert decision.explanation == (
        "/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/: X.400 O/R address",
        "not under any local O/R prefix",
        "route[3] 'c=gb;a= ;p=acme;o=Sales' matches (O/R prefix, 3 attributes)",
        "route[2] '/C=GB/ADMD= /PRMD=Acme/' also matches (O/R prefix, 2 attributes) "
        "but is less specific",
        "route[1] '/C=GB/ADMD=BT/' also matches (O/R prefix, 2 attributes) but is less specific",
        "route[0] '/C=GB/' also matches (O/R prefix, 1 attribute) but is less specific",
        "chosen: x400:ACME-SALES (an adjacent X.400 MTA)",
    )
    unrouted = table(*OR_ROUTES).route("/C=US/ADMD=ATT/S=Smith/")
    assert unrouted.explanation[-1] == (
        "no route: no O/R prefix matches (the default route '*' is for mail domains)"
    )


def test_equal_specificity_goes_to_the_deeper_attribute_in_either_order() -> None:
    address = "/C=GB/ADMD=BT/PRMD=Acme/S=Smith/"
    forward = table(("/C=GB/ADMD=BT/", "x400:BT"), ("/C=GB/PRMD=Acme/", "x400:ACME"))
    backward = table(("/C=GB/PRMD=Acme/", "x400:ACME"), ("/C=GB/ADMD=BT/", "x400:BT"))
    assert hop_of(forward.route(address)) == hop_of(backward.route(address)) == "x400:ACME"
    assert forward.route(address).explanation[3] == (
        "route[0] '/C=GB/ADMD=BT/' also matches (O/R prefix, 2 attributes) "
        "but names a shallower attribute (C, ADMD, PRMD, O, OU… in that order)"
    )


def test_local_or_prefixes_win_over_routes() -> None:
    routes = table(
        ("/C=GB/ADMD= /PRMD=Acme/O=Sales/", "x400:SALES"),
        local_or=("/C=GB/ADMD= /PRMD=Acme/", "c=gb;p=acme;o=hq"),
    )
    decision = routes.route("/C=GB/ADMD=BT/PRMD=Acme/O=HQ/S=Smith/")
    assert decision.next_hop == NextHop("local")
    assert decision.rule == "local.oraddresses[1] 'c=gb;p=acme;o=hq'"  # the more specific one
    assert "also matches" in decision.explanation[2]
    assert hop_of(routes.route("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/")) == "local"
    assert hop_of(routes.route("/C=GB/ADMD=BT/PRMD=Other/S=Smith/")) is None


def test_many_or_prefixes() -> None:
    routes = table(*((f"/C=GB/ADMD= /PRMD=P{i}/", f"x400:M{i}") for i in range(2000)))
    assert hop_of(routes.route("/C=GB/ADMD=BT/PRMD=p1999/S=x/")) == "x400:M1999"
    assert hop_of(routes.route("/C=DE/ADMD=BT/PRMD=p1999/S=x/")) is None


# --- bad configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([("", "local")], "route[0].match: empty"),
        ([("*", "local"), ("bad..domain", "local")], "route[1].match: domain 'bad..domain'"),
        ([("exa_mple.com", "local")], "route[0].match: domain label 'exa_mple'"),
        ([("*.example.com", "local")], "route[0].match: '*.example.com' is not a pattern here: "
                                       "write '.example.com'"),
        ([("jo@example.com", "local")], "route[0].match: 'jo@example.com': routes match domains"),
        ([(".[192.0.2.1]", "local")], "route[0].match: an address literal has no subdomains"),
        ([("/C=GB/XX=1/", "local")], "route[0].match: not a valid O/R address prefix: unknown "
                                     "attribute 'XX'"),
        ([("/S=Smith/", "local")], "route[0].match: not a valid O/R address prefix: missing C"),
        ([("a.example", "local"), ("b.example", "smpt:[relay]")],
         "route[1].next_hop: unknown transport 'smpt'"),
        ([("*", "smtp:[relay]:99999")], "route[0].next_hop: port 99999 must be a number"),
        ([("/C=GB/", "smtp:")], "route[0].next_hop: 'smtp:' looks up the MX of the recipient's"),
        ([("example.com", "local"), ("EXAMPLE.COM", "smtp:")],
         "route[1].match: duplicate of route[0] ('example.com')"),
        ([(".example.com", "local"), (".Example.Com", "smtp:")],
         "route[1].match: duplicate of route[0] ('.example.com')"),
        ([("*", "local"), (" * ", "smtp:")], "route[1].match: duplicate of route[0] ('*')"),
        ([("bücher.example", "local"), ("xn--bcher-kva.example", "local")],
         "route[1].match: duplicate of route[0] ('bücher.example')"),
        ([("/C=GB/ADMD= /PRMD=Acme/", "x400:A"), ("c=gb;p=ACME", "x400:B")],
         "route[1].match: duplicate of route[0] ('/C=GB/ADMD= /PRMD=Acme/')"),
    ],
)  # fmt: skip
def test_bad_routes_name_the_entry_and_field(routes: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(RouteError) as info:
        table(*routes)
    assert str(info.value).startswith(message)
    error = info.value
    index, _, field = error.key.partition("].")
    assert error.index == int(index.removeprefix("route["))
    assert error.field == field
    assert str(error) == f"{error.key}: {error.reason}"


def test_example_com_and_its_subdomains_are_different_routes() -> None:
    routes = table(("example.com", "local"), (".example.com", "smtp:"))
    assert hop_of(routes.route("a@example.com")) == "local"
    assert hop_of(routes.route("a@b.example.com")) == "smtp:b.example.com"


def test_bad_local_entries() -> None:
    with pytest.raises(RouteError, match=r"^local\.domains\[1\]: domain 'bad\.\.x' has an empty"):
        table(local=("good.example", "bad..x"))
    with pytest.raises(RouteError, match=r"^local\.oraddresses\[0\]: not a valid O/R address"):
        table(local_or=("/S=Smith/",))


def test_x400_peers_are_checked_when_given() -> None:
    entries = [RouteEntry("/C=GB/", "x400:NOPE")]
    with pytest.raises(RouteError, match=r"route\[0\]\.next_hop: unknown X.400 peer 'NOPE'"):
        RoutingTable(entries, x400_peers={"PEER"})
    RoutingTable(entries)  # unchecked when the peers are not given


def test_build_finds_every_bad_entry_in_one_pass() -> None:
    routes = [
        RouteEntry("a.example", "local"),
        RouteEntry("*.b.example", "local"),
        RouteEntry("c.example", "carrier-pigeon:"),
        RouteEntry("A.Example", "smtp:"),
        RouteEntry("/C=GB/", "x400:NOPE"),
        RouteEntry("/C=FR/", "smtp:"),
        RouteEntry("d.example", "smtp:[relay.example]:2525"),
    ]
    built, errors = RoutingTable.build(
        routes, ["ok.example", "bad..x"], ["/S=Smith/", "/C=GB/ADMD= /PRMD=Here/"],
        x400_peers={"PEER"},
    )  # fmt: skip
    assert [(e.key, e.index, e.field) for e in errors] == [
        ("local.domains[1]", 1, None),
        ("local.oraddresses[0]", 0, None),
        ("route[1].match", 1, "match"),
        ("route[2].next_hop", 2, "next_hop"),
        ("route[3].match", 3, "match"),
        ("route[4].next_hop", 4, "next_hop"),
        ("route[5].next_hop", 5, "next_hop"),
    ]
    assert errors[4].reason == "duplicate of route[0] ('a.example')"
    assert errors[5].reason == "unknown X.400 peer 'NOPE' (configured: PEER)"
    # The good entries are in the table, as the constructor would have them.
    assert hop_of(built.route("x@a.example")) == "local"
    assert hop_of(built.route("x@ok.example")) == "local"
    assert hop_of(built.route("x@d.example")) == "smtp:[relay.example]:2525"
    assert hop_of(built.route("/C=GB/ADMD= /PRMD=Here/S=Jo/")) == "local"
    assert hop_of(built.route("x@c.example")) is None


def test_the_constructor_raises_the_first_error_build_finds() -> None:
    routes = [RouteEntry("x.example", "smpt:"), RouteEntry("X.example", "local")]
    _, errors = RoutingTable.build(routes, ["bad..x"])
    with pytest.raises(RouteError) as info:
        RoutingTable(routes, ["bad..x"])
    assert info.value.args == errors[0].args
    assert [e.key for e in errors] == ["local.domains[0]", "route[0].next_hop"]


def test_build_of_good_entries_has_no_errors() -> None:
    built, errors = RoutingTable.build([RouteEntry("*", "smtp:")], ["here.example"])
    assert errors == []
    assert hop_of(built.route("x@elsewhere.example")) == "smtp:elsewhere.example"
    assert hop_of(built.route("x@here.example")) == "local"


def test_route_error_pickles() -> None:
    error = RouteError("route[2].next_hop", "unknown transport 'smpt'", 2, "next_hop")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.key, copy.reason, copy.index, copy.field) == (
        "route[2].next_hop",
        "unknown transport 'smpt'",
        2,
        "next_hop",
    )
    assert str(copy) == "route[2].next_hop: unknown transport 'smpt'"


# --- input from outside ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "'' is not a mailbox: empty address"),
        ("nobody", "'nobody' is not a mailbox: missing @"),
        ("jo@bad..domain", "is not a mailbox: domain 'bad..domain' has an empty label"),
        ("/C=GB/S", "'/C=GB/S' is not an X.400 O/R address: 'S' is not key=value"),
        ("c=gb;s=x;s=y", "is not an X.400 O/R address: repeated attribute S"),
        ("<jo@example.com", "is not a mailbox: a path must be enclosed"),
        ("x" * 500, "…' is not a mailbox: missing @"),
        ("jo\udcff@example.com", "is not a mailbox: local part: control or invalid character"),
    ],
)
def test_unparseable_addresses_have_no_route_and_say_why(address: str, reason: str) -> None:
    decision = table(("*", "smtp:")).route(address)
    assert decision.next_hop is None
    assert decision.address == address
    assert decision.explanation[-1].startswith("no route: ")
    assert reason in decision.explanation[-1]
    assert len(decision.explanation[-1]) < 400


@given(st.text(max_size=100) | st.text(st.sampled_from('/;=()<>@[]:.aC$ "\\'), max_size=40))
def test_route_never_raises(address: str) -> None:
    decision = table(*OR_ROUTES, local=("example.com",)).route(address)
    assert decision.explanation
    if decision.next_hop is None:
        assert decision.explanation[-1].startswith("no route: ")


def test_a_decision_is_remembered_and_the_same_as_a_fresh_tables() -> None:
    routes = table(*OR_ROUTES)
    for address in ("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/S=Smith/", "jo@example.com", "<>", "x@"):
        first = routes.route(address)
        assert routes.route(address) is first  # remembered, not decided again
        assert first == table(*OR_ROUTES).route(address)


def test_remembered_decisions_are_bounded() -> None:
    routes = table(("*", "smtp:"))
    for n in range(REMEMBERED_DECISIONS + 10):
        assert routes.route(f"u{n}@example.com").address == f"u{n}@example.com"
    assert len(routes._decided) <= REMEMBERED_DECISIONS
