"""JSON-RPC 2.0 over a Unix socket: framing, dispatch, the method registry, the server."""
