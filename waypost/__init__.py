"""Waypost: an X.400 and SMTP message transfer agent that never loses a message."""

__version__ = "0.1.0"
