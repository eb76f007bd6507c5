"""Real git repositories for tests, made with the `git` command in a temp folder.

Every call runs git with an isolated environment: HOME is the test's own folder, the system
config is ignored, and author/committer are fixed, so nothing depends on the machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

AUTHOR = {"name": "Test Person", "email": "test@example.com"}


def git_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR["name"],
        "GIT_AUTHOR_EMAIL": AUTHOR["email"],
        "GIT_COMMITTER_NAME": AUTHOR["name"],
        "GIT_COMMITTER_EMAIL": AUTHOR["email"],
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.update(extra or {})
    return env


def git(
    cwd: Path, *args: str, home: Path | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run git in `cwd`; returns stdout; raises with git's stderr when it fails."""
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env=git_env(home or cwd, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr}")
    return done.stdout


def make_repo(
    path: Path,
    *,
    home: Path | None = None,
    files: Mapping[str, str] | None = None,
    commits: int = 1,
    remotes: Mapping[str, str] | None = None,
) -> Path:
    """A repository at `path` with `commits` commits of `files` (default: a README)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", home=home)
    for name, text in (files or {"README.md": f"# {path.name}\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for i in range(commits):
        if i:
            (path / "CHANGES.txt").write_text(f"change {i}\n")
        git(path, "add", "-A", home=home)
        git(path, "commit", "-q", "-m", f"commit {i}", home=home)
    for name, url in (remotes or {}).items():
        git(path, "remote", "add", name, url, home=home)
    return path
