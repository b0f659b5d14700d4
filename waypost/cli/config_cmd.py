"""`waypost config check FILE` and `waypost config defaults`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from waypost.cli.common import EXIT_CONFIG, EXIT_OK
from waypost.config import check_config_file, dump_defaults


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "config", help="check a configuration file", description="Configuration tools."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a file",
        description="Validate a configuration file: prints `file: key: reason` for each "
        "problem; exit code 0 when clean, 78 otherwise.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=run_check)
    defaults = actions.add_parser("defaults", help="print the embedded defaults as TOML")
    defaults.set_defaults(run=run_defaults)


def run_check(args: argparse.Namespace) -> int:
    problems = check_config_file(args.file)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print(f"{args.file}: OK")
    return EXIT_OK


def run_defaults(args: argparse.Namespace) -> int:
    print(dump_defaults(), end="")
    return EXIT_OK
