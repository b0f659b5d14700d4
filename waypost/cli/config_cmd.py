"""`waypost config check [FILE]` and `waypost config defaults`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from waypost.cli.common import EXIT_CONFIG, EXIT_OK, add_config_option
from waypost.config import dump_defaults
from waypost.setup.preflight import check_configuration


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "config", help="check a configuration file", description="Configuration tools."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a file",
        description="Check a configuration as `waypost serve` would before it starts: every "
        "key, the files it names (TLS certificate and key, users file) and the directories "
        "Waypost writes in, as the user running the check (run it as the user Waypost runs "
        "as). Prints `file: key: reason` for each problem; exit code 0 when clean, 78 "
        "otherwise.",
    )
    check.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="the file to check (default: -c, else $WAYPOST_CONFIG, else the embedded defaults)",
    )
    add_config_option(check)
    check.set_defaults(run=run_check)
    defaults = actions.add_parser("defaults", help="print the embedded defaults as TOML")
    defaults.set_defaults(run=run_defaults)


def run_check(args: argparse.Namespace) -> int:
    config, problems = check_configuration(args.file or args.config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems or config is None:
        return EXIT_CONFIG
    print(f"{config.source}: OK (data directory {config.server.data_dir})")
    return EXIT_OK


def run_defaults(args: argparse.Namespace) -> int:
    print(dump_defaults(), end="")
    return EXIT_OK
