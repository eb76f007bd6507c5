"""pm-agentd: the one writer of pm-agent's SQLite file, serving JSON-RPC on a Unix socket."""

__version__ = "0.1.0"

# Bumped only when a change breaks existing clients; additions keep it.
PROTOCOL_VERSION = 1
