"""`waypost serve`: run the MTA in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from waypost import events, service
from waypost.cli.common import CommandError, add_config_option, load
from waypost.config import ConfigError


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "serve", help="run the MTA", description="Run Waypost in the foreground."
    )
    add_config_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load(args)
    except ConfigError as exc:
        # An event, as the other reasons serve does not start are (1004, 1203, 1205).
        key = exc.key or "(the whole file)"
        events.emit(events.CONFIG_INVALID, path=exc.path, key=key, reason=exc.reason)
        raise
    json_file = config.log.json_file or None
    if json_file:
        Path(json_file).parent.mkdir(parents=True, exist_ok=True)
    events.configure_logging(level=config.log.level, json_file=json_file)
    events.emit(events.CONFIG_LOADED, source=config.source)
    try:
        return asyncio.run(service.run(config))
    except service.ServiceError as exc:
        raise CommandError(str(exc), exc.exit_code) from None
