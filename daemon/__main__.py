"""`python -m daemon` runs pm-agentd."""

from daemon.main import entry

entry()
