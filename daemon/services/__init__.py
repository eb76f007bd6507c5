"""Domain services: what the daemon does, between the RPC layer and the database layer."""
