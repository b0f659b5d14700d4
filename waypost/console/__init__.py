"""The web console: queues, messages, peers, events and metrics, and operator actions."""
