"""Building each protocol's settings from the configuration, so that the protocol packages
never import `waypost.config`."""
