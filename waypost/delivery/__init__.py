"""Delivery agents: local Maildir delivery (the transports add theirs)."""
