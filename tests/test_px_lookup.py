"""RFC 2163 lookups against a real DNS server (NSD) serving PX records from zone files: the
RFC's examples, the longest match up each tree, the TTL cache, and failures that are not
"no mapping"."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nsd_server import NsdServer, nsd_available

from waypost import events
from waypost.address import parse_mailbox, parse_oraddress
from waypost.address.oraddress import fold_value
from waypost.clock import ManualClock
from waypost.delivery.px_lookup import (
    PxLookup,
    PxLookupError,
    parse_nameserver,
    parse_x400_root,
)
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry, MappingRule

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        not nsd_available(),
        reason="nsd is not installed (scripts/install-system-tools.sh installs it)",
    ),
]

SOA = "@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n"

# RFC 2163 §4's example records, published as BIND's operator guide shows them for RFC
# 1664: the X.400 tree of Italy below X42D.it, wildcards so that what is below a name finds
# its entry.
IT_ZONE = f"""$ORIGIN it.
$TTL 300
{SOA}
*.ADMD-garr.X42D       IN PX 50 it. ADMD-garr.C-it.
O-cnr.PRMD-infn.ADMD-garr.X42D IN PX 50 cnr.it. O-cnr.PRMD-infn.ADMD-garr.C-it.
cnr                    IN PX 50 cnr.it. O-cnr.PRMD-infn.ADMD-garr.C-it.
*.cnr                  IN PX 50 cnr.it. O-cnr.PRMD-infn.ADMD-garr.C-it.
*.infn                 IN PX 50 infn.it. O.PRMD-infn.ADMD-garr.C-it.
"""

EXAMPLE_ZONE = f"""$ORIGIN example.
$TTL 300
{SOA}
acme              IN PX 10 acme.example. PRMD-Acme.ADMD-\\032.C-gb.
sales.acme        IN PX 10 sales.acme.example. O-Sales.PRMD-Acme.ADMD-\\032.C-gb.
pref              IN PX 20 pref.example. PRMD-Second.ADMD-\\032.C-gb.
pref              IN PX 10 pref.example. PRMD-First.ADMD-\\032.C-gb.
*.stolen          IN PX 10 acme.example. PRMD-Acme.ADMD-\\032.C-gb.
broken            IN PX 10 broken.example. O-x.C-gb.
long-ttl    86400 IN PX 10 long-ttl.example. PRMD-Long.ADMD-\\032.C-gb.
; the X.400 tree of Great Britain below the root x400.example
$ORIGIN ADMD-\\032.X42D.gb.x400.example.
PRMD-Acme         IN PX 10 acme.example. PRMD-Acme.ADMD-\\032.C-gb.
O-Sales.PRMD-Acme IN PX 10 sales.acme.example. O-Sales.PRMD-Acme.ADMD-\\032.C-gb.
O-a\\.b.PRMD-Acme IN PX 10 dots.acme.example. O-a\\.b.PRMD-Acme.ADMD-\\032.C-gb.
O-Gone.PRMD-Acme  IN PX 10 gone.example. O-Elsewhere.PRMD-Acme.ADMD-\\032.C-gb.
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    server = NsdServer(
        tmp_path_factory.mktemp("nsd"),
        {"it.": IT_ZONE, "example.": EXAMPLE_ZONE, "unloadable.test.": None},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lookup(nsd: NsdServer) -> PxLookup:
    return PxLookup.with_nameservers([nsd.address], x400_root="x400.example", timeout=3.0)


@pytest.fixture
def rfc_lookup(nsd: NsdServer) -> PxLookup:
    return PxLookup.with_nameservers([nsd.address], timeout=3.0)  # the RFC's own root


def entry(prefix: str, domain: str) -> tuple[str, list[tuple[str, str]]]:
    return folded(MappingEntry.parse(prefix, domain))


def folded(found: MappingEntry | None) -> tuple[str, list[tuple[str, str]]] | None:
    """An entry as X.411 compares it: many servers (NSD among them) give the names inside
    RDATA back in lower case."""
    if found is None:
        return None
    return found.domain, [(key, fold_value(value)) for key, value in found.prefix.attributes()]


# --- RFC 2163's examples ------------------------------------------------------------------


async def test_rfc2163_x400_tree_wildcard_maps_garr_to_it(rfc_lookup: PxLookup) -> None:
    # *.ADMD-garr.X42D.it. PX 50 it. ADMD-garr.C-it. : every address under ADMD garr.
    address = parse_oraddress("/C=IT/ADMD=garr/PRMD=polimi/S=Bianchi/")
    assert folded(await rfc_lookup.oraddress_entry(address)) == entry("/C=IT/ADMD=garr/", "it")


async def test_rfc2163_x400_tree_longest_match(rfc_lookup: PxLookup) -> None:
    address = parse_oraddress("/C=IT/ADMD=garr/PRMD=infn/O=cnr/OU=pisa/S=Rossi/")
    assert folded(await rfc_lookup.oraddress_entry(address)) == entry(
        "/C=IT/ADMD=garr/PRMD=infn/O=cnr/", "cnr.it"
    )


async def test_rfc2163_rfc822_tree_domain_and_below(rfc_lookup: PxLookup) -> None:
    cnr = entry("/C=IT/ADMD=garr/PRMD=infn/O=cnr/", "cnr.it")
    assert folded(await rfc_lookup.domain_entry("cnr.it")) == cnr
    assert folded(await rfc_lookup.domain_entry("iat.pisa.cnr.it")) == cnr  # the wildcard below


async def test_rfc2163_omitted_organisation_is_refused_with_an_event(
    rfc_lookup: PxLookup, caplog: pytest.LogCaptureFixture
) -> None:
    # *.infn.it. PX 50 infn.it. O.PRMD-infn.ADMD-garr.C-it. : subdomains of infn.it stand
    # for OUs with no O, which a mapping entry cannot say; the gateway falls back.
    with caplog.at_level(logging.WARNING, logger="waypost"):
        assert await rfc_lookup.domain_entry("mi.infn.it") is None
        assert await rfc_lookup.domain_entry("mi.infn.it") is None
    warnings = [
        r for r in caplog.records if getattr(r, "waypost_event", None) is events.PX_RECORD_UNUSABLE
    ]
    assert len(warnings) == 1  # once per answer fetched, not once per message
    assert "mi.infn.it" in warnings[0].getMessage()
    assert "omitted O is not supported" in warnings[0].getMessage()


async def test_entries_found_plug_into_the_address_mapper(rfc_lookup: PxLookup) -> None:
    gateway = Gateway("gw.example", parse_oraddress("/C=GB/ADMD= /PRMD=Gw/"))
    configured = AddressMapper.symmetric(gateway, [])
    mailbox = parse_mailbox("Mario.Rossi@iat.pisa.cnr.it")
    found = await rfc_lookup.domain_entry(mailbox.domain)
    assert found is not None
    mapped = configured.with_entries(domain_to_oraddress=[found]).to_x400(mailbox)
    assert mapped.rule is MappingRule.DOMAIN_PERSONAL_NAME
    assert str(mapped.oraddress) == (
        "/C=IT/ADMD=garr/PRMD=infn/O=cnr/OU1=pisa/OU2=iat/S=Rossi/G=Mario/"
    )
    # And back: the X.400 tree has no name for the OUs, so the walk stops at the O.
    back_entry = await rfc_lookup.oraddress_entry(mapped.oraddress)
    assert back_entry is not None
    back = configured.with_entries(oraddress_to_domain=[back_entry]).to_rfc822(mapped.oraddress)
    assert str(back.mailbox) == "Mario.Rossi@iat.pisa.cnr.it"
    assert configured.to_x400(mailbox).rule is MappingRule.GATEWAY_DDA  # without DNS


# --- the RFC 822 tree ---------------------------------------------------------------------


async def test_longest_match_up_the_domain(lookup: PxLookup) -> None:
    acme = entry("/C=GB/ADMD= /PRMD=Acme/", "acme.example")
    sales = entry("/C=GB/ADMD= /PRMD=Acme/O=Sales/", "sales.acme.example")
    assert folded(await lookup.domain_entry("acme.example")) == acme
    assert folded(await lookup.domain_entry("sales.acme.example")) == sales
    # No record at these names: the walk goes up to the nearest one.
    assert folded(await lookup.domain_entry("a.b.sales.acme.example")) == sales
    assert folded(await lookup.domain_entry("hr.acme.example")) == acme


async def test_no_record_anywhere_is_none(lookup: PxLookup) -> None:
    assert await lookup.domain_entry("nowhere.example") is None  # NXDOMAIN, then no PX
    assert await lookup.domain_entry("ns.example") is None  # the name exists, without PX


async def test_lowest_preference_wins(lookup: PxLookup) -> None:
    found = await lookup.domain_entry("pref.example")
    assert found is not None and fold_value(found.prefix.prmd or "") == "first"


async def test_wildcard_with_another_domains_mapping_is_refused(lookup: PxLookup) -> None:
    assert await lookup.domain_entry("x.stolen.example") is None


async def test_bad_record_is_refused(lookup: PxLookup) -> None:
    assert await lookup.domain_entry("broken.example") is None


# --- the X.400 tree -----------------------------------------------------------------------


async def test_x400_tree_below_a_configured_root(lookup: PxLookup) -> None:
    sales = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Sales/OU=Leeds/S=Smith/")
    assert folded(await lookup.oraddress_entry(sales)) == entry(
        "/C=GB/ADMD= /PRMD=Acme/O=Sales/", "sales.acme.example"
    )
    other = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Marketing/S=Jones/")
    assert folded(await lookup.oraddress_entry(other)) == entry(
        "/C=GB/ADMD= /PRMD=Acme/", "acme.example"
    )
    assert await lookup.oraddress_entry(parse_oraddress("/C=GB/ADMD=BT/O=X/S=Y/")) is None


async def test_x400_tree_value_with_a_dot(lookup: PxLookup) -> None:
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=a.b/S=Smith/")
    found = await lookup.oraddress_entry(address)
    assert found is not None and found.domain == "dots.acme.example"
    assert found.prefix.organization == "a.b"


async def test_x400_record_for_another_prefix_is_refused(lookup: PxLookup) -> None:
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/O=Gone/S=Smith/")
    assert await lookup.oraddress_entry(address) is None


# --- the cache ----------------------------------------------------------------------------


async def test_answers_are_cached_for_their_ttl_capped(tmp_path: Path) -> None:
    server = NsdServer(tmp_path / "nsd", {"example.": EXAMPLE_ZONE})
    server.start()
    clock = ManualClock()
    lookup = PxLookup.with_nameservers(
        [server.address], max_cache_seconds=600, timeout=1.0, clock=clock
    )
    try:
        long_ttl = await lookup.domain_entry("long-ttl.example")
        assert long_ttl is not None and fold_value(long_ttl.prefix.prmd or "") == "long"
        assert await lookup.domain_entry("nowhere.example") is None
    finally:
        server.stop()
    # The server is gone: answers come from the cache while their TTL lasts, the negative
    # ones for the SOA's negative TTL (60 s here, RFC 2308 §5).
    assert await lookup.domain_entry("long-ttl.example") == long_ttl
    assert await lookup.domain_entry("nowhere.example") is None
    await clock.advance(61)
    assert await lookup.domain_entry("long-ttl.example") == long_ttl
    with pytest.raises(PxLookupError):
        await lookup.domain_entry("nowhere.example")
    # The record's TTL is a day, but nothing is kept longer than max_cache_seconds.
    await clock.advance(600)
    with pytest.raises(PxLookupError) as failed:
        await lookup.domain_entry("long-ttl.example")
    assert failed.value.status == "4.4.3"
    assert "long-ttl.example" in str(failed.value)


# --- failures -----------------------------------------------------------------------------


async def test_servfail_is_a_temporary_failure(lookup: PxLookup) -> None:
    with pytest.raises(PxLookupError, match=r"^4\.4\.3 PX lookup of a\.unloadable\.test\. failed"):
        await lookup.domain_entry("a.unloadable.test")


async def test_refused_is_a_temporary_failure(lookup: PxLookup) -> None:
    with pytest.raises(PxLookupError):
        await lookup.domain_entry("mail.not-served.org")


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A UDP socket that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_timeout_is_a_temporary_failure(silent_server: str) -> None:
    lookup = PxLookup.with_nameservers([silent_server], timeout=0.5)
    with pytest.raises(PxLookupError, match=r"^4\.4\.3 PX lookup of acme\.example\. failed"):
        await lookup.domain_entry("acme.example")
    address = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/S=Smith/")
    with pytest.raises(PxLookupError):
        await asyncio.wait_for(lookup.oraddress_entry(address), 30)


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        ("2001:db8::1", ("2001:db8::1", 53)),
        ("[2001:db8::1]:5353", ("2001:db8::1", 5353)),
    ],
)
def test_nameserver_forms(text: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ns.example", "is not an IP address"),
        ("192.0.2.1:0", "port '0' is not a number"),
        ("192.0.2.1:dns", "port 'dns' is not a number"),
        ("[2001:db8::1", "write an IPv6 address and port as"),
    ],
)
def test_bad_nameserver_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_nameserver(text)


def test_x400_root_forms() -> None:
    assert parse_x400_root(".") == () == parse_x400_root("")
    assert parse_x400_root("X400.Example.") == ("X400", "Example")
    with pytest.raises(ValueError, match="is not a domain name"):
        parse_x400_root("a..b")


async def test_the_gateway_maps_through_a_px_record(nsd: NsdServer, tmp_path: Path) -> None:
    # No table entry: the gateway finds sales.acme.example's mapping in DNS, converts the
    # mail for the X.400 recipient it names, and delivers it to the local X.400 store.
    from helpers import free_port, running_service  # noqa: PLC0415

    from waypost.message import Envelope, Message, Recipient  # noqa: PLC0415
    from waypost.x400.p1_objects import decode_object  # noqa: PLC0415

    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n[queue]\npoll_interval = 0.1\n'
        '[local]\noraddresses = ["/C=GB/ADMD= /PRMD=Acme/"]\n'
        '[x400]\nglobal_domain = "/C=GB/ADMD= /PRMD=Acme/"\n'
        '[mixer]\nenabled = true\ndomain = "gw.example"\n'
        'oraddress = "/C=GB/ADMD= /PRMD=Acme/O=Gateway/"\n'
        f'dns = true\ndns_x400_root = "x400.example"\ndns_nameservers = ["{nsd.address}"]\n'
        '[[route]]\nmatch = "sales.acme.example"\nnext_hop = "gateway:mixer"\n',
        name="w",
        listen=False,
    )
    try:
        envelope = Envelope(
            mts_id="px.1@mx.test",
            originator="bob@remote.example",
            recipients=[Recipient(address="Jo.Smith@sales.acme.example")],
        )
        await svc.submit(Message(envelope=envelope, content=b"Subject: px\r\n\r\nhi\r\n"))
        root = Path(svc.config.local.x400_store)
        for _ in range(600):
            files = list(root.glob("*/new/*.p1"))
            if files:
                break
            await asyncio.sleep(0.05)
        (file,) = files
        stored, _ = decode_object(file.read_bytes())
        (recipient,) = stored.recipients
        assert fold_value(recipient.address) == fold_value(
            "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/"
        )
    finally:
        await svc.stop()


def test_route_explains_a_mapping_found_in_dns(nsd: NsdServer, tmp_path: Path) -> None:
    from test_cli import waypost  # noqa: PLC0415

    config = tmp_path / "waypost.toml"
    config.write_text(
        '[server]\ndata_dir = "data"\n[x400]\nlisten = []\n'
        'global_domain = "/C=GB/ADMD= /PRMD=Acme/"\n'
        '[local]\noraddresses = ["/C=GB/ADMD= /PRMD=Acme/"]\n'
        '[mixer]\nenabled = true\ndomain = "gw.example"\n'
        'oraddress = "/C=GB/ADMD= /PRMD=Acme/O=Gateway/"\n'
        f'dns = true\ndns_x400_root = "x400.example"\ndns_nameservers = ["{nsd.address}"]\n'
        '[[route]]\nmatch = "sales.acme.example"\nnext_hop = "gateway:mixer"\n'
    )
    result = waypost("route", "-c", str(config), "Jo.Smith@sales.acme.example", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.lower()
    assert "the gateway maps it to /c=gb/admd= /prmd=acme/o=sales/s=smith/g=jo/" in out
    assert "⇄ sales.acme.example]" in out  # the entry DNS gave
    assert "then /c=gb/admd= /prmd=acme/o=sales/s=smith/g=jo/: local" in out
