"""`waypost events`: print the catalogue of numbered events."""

from __future__ import annotations

import argparse
import json
from typing import Any

from waypost import events


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "events", help="print the event catalogue", description="Print every numbered event."
    )
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="as docs/events.md")
    form.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(events.markdown(), end="")
        return 0
    for e in events.catalogue():
        if args.json:
            print(
                json.dumps(
                    {
                        "id": e.id,
                        "name": e.name,
                        "severity": e.severity.name,
                        "category": e.category.value,
                        "template": e.template,
                        "action": e.action,
                    }
                )
            )
        else:
            print(f"{e.id:5d} {e.severity.name:<8} {e.category.value:<9} {e.name}")
            print(f"      {e.template}")
            print(f"      What to do: {e.action}")
    return 0
