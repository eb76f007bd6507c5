"""`python -m daemon` runs pm-agentd."""

from daemon.runtime.main import entry

entry()
