"""`waypost serve`: run the MTA in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from waypost import events, service
from waypost.cli.common import EXIT_CONFIG, CommandError, add_config_option, config_path
from waypost.setup.preflight import check_configuration


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "serve", help="run the MTA", description="Run Waypost in the foreground."
    )
    add_config_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The checks `waypost config check` runs, every problem an event (as the other reasons
    # serve does not start are: 1004, 1005, 1203, 1205, 1601), before anything is touched;
    # the data directory is service.prepare_data_dir's to check (event 1005, exit code 76).
    config, problems = check_configuration(config_path(args), places=False)
    for problem in problems:
        key = problem.key or "(the whole file)"
        events.emit(events.CONFIG_INVALID, path=problem.path, key=key, reason=problem.reason)
    if problems or config is None:
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        raise CommandError(f"not started: {count} in the configuration", EXIT_CONFIG)
    json_file = config.log.json_file or None
    try:
        if json_file:
            Path(json_file).parent.mkdir(parents=True, exist_ok=True)
        events.configure_logging(
            level=config.log.level, json_file=json_file, categories=config.log.categories
        )
    except OSError as exc:
        raise CommandError(
            f"not started: log.json_file {json_file}: {exc.strerror or exc}", EXIT_CONFIG
        ) from None
    events.emit(events.CONFIG_LOADED, source=config.source)
    try:
        return asyncio.run(service.run(config))
    except service.ServiceError as exc:
        raise CommandError(str(exc), exc.exit_code) from None
