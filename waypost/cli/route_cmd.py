"""`waypost route ADDRESS…`: explain the routing decision for each address."""

from __future__ import annotations

import argparse
from typing import Any

from waypost.cli.common import EXIT_FAILED, EXIT_OK, add_config_option, load
from waypost.config import build_routing_table


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "route",
        help="explain how addresses are routed",
        description="Explain the routing decision for mail domains and X.400 O/R addresses. "
        "Exit code 1 if any address has no route.",
    )
    add_config_option(parser)
    parser.add_argument("addresses", nargs="+", metavar="ADDRESS")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    table = build_routing_table(load(args))
    code = EXIT_OK
    for address in args.addresses:
        decision = table.route(address)
        hop = str(decision.next_hop) if decision.next_hop is not None else "NO ROUTE"
        print(f"{address}: {hop}")
        for line in decision.explanation:
            print(f"  {line}")
        if decision.next_hop is None:
            code = EXIT_FAILED
    return code
