"""Quality: what a project's files say about its tests, CI, documentation, linting and upkeep."""
