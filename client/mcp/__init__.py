"""`pm mcp`: the Model Context Protocol bridge, agents' door to pm-agentd.

Each agent runs its own thin `pm mcp` (a stdio MCP server on the official `mcp` SDK, the
optional extra `pm-agent[mcp]`); every one forwards to the daemon's socket, so many agents
share one writer. The package's modules, from the wire inwards:

- server: the SDK's low-level Server on stdio (stdout carries protocol only, logs go to stderr)
- tools, generated: the core tools, and the rest generated from the daemon's `rpc.discover`
- schemas: JSON Schemas taken from `rpc.discover`, made tight
- resources, prompts: `pm://` resources fed by `events.subscribe`; start and hand-off prompts
- link: the connection to the daemon (starting it, reconnecting, events)
- install, jsonedit: `pm mcp install claude|cursor|vscode`, byte-preserving config edits
- command: the `pm mcp` command line
"""

INSTALL_HINT = "pm mcp needs the MCP SDK: pip install 'pm-agent[mcp]' (or pipx inject pm-agent mcp)"
