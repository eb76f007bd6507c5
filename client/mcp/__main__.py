"""`python -m client.mcp …` is `pm mcp …` (for a client that starts servers with an
interpreter rather than a script on PATH)."""

from __future__ import annotations

import sys

from client.commands import run

sys.exit(run(["mcp", *sys.argv[1:]]))
