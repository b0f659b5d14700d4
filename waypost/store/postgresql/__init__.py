"""The MTA database on PostgreSQL: one queue shared by the nodes of a cluster."""
