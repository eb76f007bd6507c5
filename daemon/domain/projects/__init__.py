"""Projects: finding them in the Dev folder and reading what they are from their files."""
