"""Networking shared by the transports: listeners that survive accept() failures."""
