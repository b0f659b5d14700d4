"""`waypost password-hash USER`: a line for the SMTP AUTH users file (smtp.auth_users)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from waypost.cli.common import EXIT_OK, CommandError
from waypost.smtp.auth import hash_password


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "password-hash",
        help="hash a password for the SMTP AUTH users file",
        description="Print `USER:HASH` (salted scrypt) for the file named by smtp.auth_users. "
        "The password is read from the terminal, or from the first line of standard input.",
    )
    parser.add_argument("user", metavar="USER")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if ":" in args.user or not args.user.strip():
        raise CommandError("a user name cannot be empty or contain ':'")
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.user}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("empty password")
    print(f"{args.user}:{hash_password(password)}")
    return EXIT_OK
