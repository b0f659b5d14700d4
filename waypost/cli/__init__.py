"""The `waypost` command line, one module per verb."""
