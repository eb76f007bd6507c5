"""The OS edges: untrusted files, systemd, launchd, memory trimming."""
