"""`waypost route ADDRESS…`: explain the routing decision for each address."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from waypost.address import AddressError, format_slash, is_oraddress_text, parse_oraddress
from waypost.address.mailbox import parse_mailbox
from waypost.amhs.addressing import Register, is_aftn_address
from waypost.cli.common import EXIT_FAILED, EXIT_OK, add_config_option, load
from waypost.clock import SystemClock
from waypost.config import build_routing_table
from waypost.delivery.px_lookup import PxLookup, PxLookupError
from waypost.mixer.address_map import AddressMapper
from waypost.nexthop import Transport
from waypost.routing import RoutingTable
from waypost.service import px_lookup
from waypost.setup.amhs import build_register
from waypost.setup.mixer import build_mapper


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "route",
        help="explain how addresses are routed",
        description="Explain the routing decision for mail domains, X.400 O/R addresses and "
        "AFTN addresses (eight letters: their AMHS O/R address from the register of AMHS "
        "management domains, then its route). Exit code 1 if any address has no route.",
    )
    add_config_option(parser)
    parser.add_argument("addresses", nargs="+", metavar="ADDRESS")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    table = build_routing_table(config)
    mapper = build_mapper(config) if config.mixer.enabled else None
    px = px_lookup(config, SystemClock()) if mapper is not None else None
    register, problems = build_register(config)
    for key, reason in problems:
        print(f"{key}: {reason}", file=sys.stderr)
    code = EXIT_OK
    for given in args.addresses:
        address: str | None = given
        if is_aftn_address(given.strip().upper()):
            address = _aftn(register, given.strip().upper())
        if address is None:
            code = EXIT_FAILED
            continue
        with_dns = mapper
        if px is not None and mapper is not None:
            try:
                with_dns = asyncio.run(_with_dns(px, mapper, address))
            except PxLookupError as exc:
                print(f"{address}: {exc}")
                code = EXIT_FAILED
                continue
        if not _explain(table, with_dns, address):
            code = EXIT_FAILED
    return code


async def _with_dns(px: PxLookup, mapper: AddressMapper, address: str) -> AddressMapper:
    """The mapper with the entry DNS publishes for the address (RFC 2163), if any."""
    try:
        if is_oraddress_text(address):
            found = await px.oraddress_entry(parse_oraddress(address))
            return mapper.with_entries(oraddress_to_domain=[found]) if found else mapper
        domain = parse_mailbox(address.strip("<>")).domain
    except (AddressError, ValueError):
        return mapper
    found = await px.domain_entry(domain)
    return mapper.with_entries(domain_to_oraddress=[found]) if found else mapper


def _aftn(register: Register | None, aftn: str) -> str | None:
    """Print how an AFTN address maps to its AMHS O/R address (ICAO Doc 9880 Part II), and
    return that; None when it does not map."""
    if register is None:
        print(
            f"{aftn}: an AFTN address, and no register of AMHS management domains is "
            "configured ([amhs] register)"
        )
        return None
    domain = register.domain_of(aftn)
    if domain is None:
        print(f"{aftn}: NO ROUTE")
        print(f"  no AMHS management domain in the register holds location indicator {aftn[:4]}")
        return None
    oraddress = format_slash(domain.oraddress(aftn))
    print(
        f"{aftn}: AFTN address of AMHS management domain {domain.prmd} "
        f"({domain.scheme.value} addressing, register prefix {domain.prefix})"
    )
    print(f"  its AMHS O/R address is {oraddress}")
    return oraddress


def _explain(table: RoutingTable, mapper: AddressMapper | None, address: str) -> bool:
    """Print the decision for one address, and where the gateway sends it on; True when it
    has a route all the way."""
    decision = table.route(address)
    hop = str(decision.next_hop) if decision.next_hop is not None else "NO ROUTE"
    print(f"{address}: {hop}")
    for line in decision.explanation:
        print(f"  {line}")
    if decision.next_hop is None:
        return False
    if mapper is None or decision.next_hop.transport is not Transport.GATEWAY:
        return True
    # The gateway maps the address into the other world (RFC 2156 §4), and routes it again.
    try:
        if is_oraddress_text(address):
            to_mail = mapper.to_rfc822(parse_oraddress(address))
            target, rule, entry = str(to_mail.mailbox), to_mail.rule, to_mail.entry
        else:
            to_x400 = mapper.to_x400(parse_mailbox(address.strip("<>")))
            target, rule, entry = format_slash(to_x400.oraddress), to_x400.rule, to_x400.entry
    except (AddressError, ValueError) as exc:
        print(f"  the gateway cannot map it: {exc}")
        return False
    print(f"  the gateway maps it to {target}")
    print(f"    by {rule.value}{f' [{entry}]' if entry else ''}")
    then = table.route(target)
    print(f"  then {target}: {then.next_hop if then.next_hop is not None else 'NO ROUTE'}")
    for line in then.explanation[1:]:
        print(f"    {line}")
    return then.next_hop is not None
