"""The configuration: one TOML file, read with `tomllib` and validated into frozen structs.

Every problem is a `ConfigError` naming the file, the dotted key and the reason;
`waypost config check FILE` prints them all. docs/configuration.md documents each key.
`schema` declares the sections and their constraints, `checks` what no type can declare,
`routes` the routing table, `load` reads a file and resolves its paths, and `defaults`
writes the defaults.
"""

from __future__ import annotations

from waypost.config.defaults import dump_defaults, toml_value
from waypost.config.errors import ConfigError
from waypost.config.load import check_config_file, default_data_dir, load_config, read_config
from waypost.config.routes import build_routing_table
from waypost.config.schema import (
    EMBEDDED,
    LOG_LEVELS,
    MAX_MTA_NAME,
    SECTIONS,
    TLS_POLICIES,
    X400_MODES,
    Config,
    LocalConfig,
    LogConfig,
    QueueConfig,
    RouteConfig,
    ServerConfig,
    SmtpClientConfig,
    SmtpConfig,
    StoreConfig,
    X400Config,
    X400PeerConfig,
)
from waypost.config.values import is_domain_name, parse_address, selector_bytes

__all__ = [
    "EMBEDDED",
    "LOG_LEVELS",
    "MAX_MTA_NAME",
    "SECTIONS",
    "TLS_POLICIES",
    "X400_MODES",
    "Config",
    "ConfigError",
    "LocalConfig",
    "LogConfig",
    "QueueConfig",
    "RouteConfig",
    "ServerConfig",
    "SmtpClientConfig",
    "SmtpConfig",
    "StoreConfig",
    "X400Config",
    "X400PeerConfig",
    "build_routing_table",
    "check_config_file",
    "default_data_dir",
    "dump_defaults",
    "is_domain_name",
    "load_config",
    "parse_address",
    "read_config",
    "selector_bytes",
    "toml_value",
]
