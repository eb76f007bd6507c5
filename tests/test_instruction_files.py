"""Instruction, skill and agent files read from a real repository layout made by the test,
through a real daemon: every format indexed on the scan, `instructions.for_path` most
specific first with why (nested AGENTS.md precedence, applyTo and Cursor globs, alwaysApply),
skills matched by tags/language/framework, front matter that is malformed or hostile reported
and never fatal, files outside the project or that would block never read, and the watcher
keeping it fresh."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for

LAYOUT = {
    "README.md": "# shop\n",
    "AGENTS.md": "# Shop\nRun `make test` before you commit.\n",
    "CLAUDE.md": "Claude: keep answers short.\n",
    "GEMINI.md": "Gemini: cite files.\n",
    "services/api/AGENTS.md": "# API\nErrors are JSON problem documents.\n",
    "services/api/v2/AGENTS.md": "# API v2\nEvery handler is async.\n",
    "node_modules/left-pad/AGENTS.md": "never read: a dependency\n",
    ".gitignore": "generated/\n",
    "generated/AGENTS.md": "never read: ignored by git\n",
    ".github/copilot-instructions.md": "Copilot: prefer small pull requests.\n",
    ".github/instructions/python.instructions.md": (
        '---\napplyTo: "**/*.py,**/*.pyi"\ndescription: Python style\n---\nType hints everywhere.\n'
    ),
    ".github/instructions/migrations.instructions.md": (
        "---\napplyTo: services/*/migrations/**\n---\nMigrations are append-only.\n"
    ),
    ".github/instructions/manual.instructions.md": "No front matter: attached by hand only.\n",
    ".cursor/rules/react.mdc": (
        "---\ndescription: React components\nglobs: web/**/*.tsx, web/**/*.jsx\n"
        "alwaysApply: false\n---\nFunction components only.\n"
    ),
    ".cursor/rules/house.mdc": "---\nalwaysApply: true\n---\nBritish spelling.\n",
    ".cursor/rules/release.mdc": (
        "---\ndescription: When preparing a release\nalwaysApply: false\n---\nTag, then push.\n"
    ),
    ".github/skills/sqlite/SKILL.md": (
        "---\nname: sqlite-tuning\ndescription: Make SQLite queries fast\n"
        "tags: [sql, performance]\ncategory: database\nlanguages:\n  - Python\n"
        "frameworks: [fastapi]\n---\nRead EXPLAIN QUERY PLAN first.\n"
    ),
    ".github/skills/react-testing/SKILL.md": (
        "---\nname: react-testing\ndescription: Test components\ntags: testing, react\n"
        "languages: [TypeScript]\nframeworks: [react]\n---\nUse testing-library.\n"
    ),
    "agents/reviewer.md": (
        "---\nname: reviewer\ndescription: Reviews pull requests\nmodel: claude-sonnet-4\n"
        "tools: [read, grep]\n---\nYou review code for correctness.\n"
    ),
}


def shop(daemon: DaemonProcess, files: dict[str, str] | None = None) -> Path:
    repo = make_repo(daemon.dev_root / "shop", files=files or LAYOUT)
    daemon.call("projects.scan")
    return repo


def refreshed(daemon: DaemonProcess, repo: Path) -> dict[str, Any]:
    result: dict[str, Any] = daemon.call("instructions.refresh", {"project": str(repo)})
    return result


def for_path(daemon: DaemonProcess, path: Path, **params: Any) -> list[dict[str, Any]]:
    result = daemon.call("instructions.for_path", {"path": str(path), **params})
    items: list[dict[str, Any]] = result["items"]
    return items


def test_every_format_is_indexed_with_its_own_fields(daemon: DaemonProcess) -> None:
    repo = shop(daemon)
    refreshed(daemon, repo)
    docs = daemon.call("documents.list", {"project": str(repo), "origin": "repo", "limit": 100})
    by_path = {d["path"]: d for d in docs["items"]}
    assert set(by_path) == {
        "AGENTS.md", "CLAUDE.md", "GEMINI.md", "services/api/AGENTS.md",
        "services/api/v2/AGENTS.md", ".github/copilot-instructions.md",
        ".github/instructions/python.instructions.md",
        ".github/instructions/migrations.instructions.md",
        ".github/instructions/manual.instructions.md", ".cursor/rules/react.mdc",
        ".cursor/rules/house.mdc", ".cursor/rules/release.mdc",
        ".github/skills/sqlite/SKILL.md", ".github/skills/react-testing/SKILL.md",
        "agents/reviewer.md",
    }  # fmt: skip
    python = by_path[".github/instructions/python.instructions.md"]
    assert python["metadata"]["applies_to"] == ["**/*.py", "**/*.pyi"]
    assert python["metadata"]["description"] == "Python style"
    assert python["content"].strip() == "Type hints everywhere."  # the body, not the header
    react = by_path[".cursor/rules/react.mdc"]["metadata"]
    assert react["applies_to"] == ["web/**/*.tsx", "web/**/*.jsx"] and not react["always_apply"]
    assert by_path[".cursor/rules/house.mdc"]["metadata"]["always_apply"] is True
    assert by_path["services/api/AGENTS.md"]["metadata"]["scope"] == "services/api"
    skill = by_path[".github/skills/sqlite/SKILL.md"]
    assert (skill["kind"], skill["title"], skill["tags"]) == (
        "skill",
        "sqlite-tuning",
        ["sql", "performance"],
    )
    assert skill["metadata"]["languages"] == ["Python"]
    assert skill["metadata"]["frameworks"] == ["fastapi"]
    agent = by_path["agents/reviewer.md"]
    assert agent["kind"] == "agent" and agent["metadata"]["tools"] == ["read", "grep"]
    assert agent["metadata"]["model"] == "claude-sonnet-4"
    # The daemon's copies are not edited by hand.
    error = daemon.call_error("documents.update", {"id": agent["id"], "title": "x"})
    assert error.data["kind"] == "invalid_state" and error.data["path"] == "agents/reviewer.md"


def test_for_path_is_most_specific_first_with_why(daemon: DaemonProcess) -> None:
    repo = shop(daemon)
    refreshed(daemon, repo)
    items = for_path(daemon, repo / "services/api/v2/handlers/orders.py", content=False)
    assert [i["path"] for i in items] == [
        "services/api/v2/AGENTS.md",  # the nearest folder file first
        "services/api/AGENTS.md",
        ".github/instructions/python.instructions.md",  # a glob of the whole tree
        "AGENTS.md", "CLAUDE.md", "GEMINI.md",
        ".cursor/rules/house.mdc", ".github/copilot-instructions.md",
    ]  # fmt: skip
    assert items[0]["why"] == "services/api/v2/AGENTS.md governs services/api/v2/ and below"
    assert "**/*.py matches services/api/v2/handlers/orders.py" in items[2]["why"]
    assert items[0]["content"] is None
    migration = for_path(daemon, repo / "services/billing/migrations/0001.sql")
    assert migration[0]["path"] == ".github/instructions/migrations.instructions.md"
    assert migration[0]["content"].strip() == "Migrations are append-only."
    web = [i["path"] for i in for_path(daemon, repo / "web/app/Cart.tsx", content=False)]
    assert web[0] == ".cursor/rules/react.mdc" and "services/api/AGENTS.md" not in web
    asked = for_path(daemon, repo / "web/app/Cart.tsx", content=False, on_request=True)
    on_request = [i for i in asked if i["applies"] == "on_request"]
    assert [i["path"] for i in on_request] == [".cursor/rules/release.mdc"]
    # Relative to a project named by name; a path outside it is refused.
    relative = daemon.call("instructions.for_path", {"project": "shop", "path": "setup.py"})
    assert relative["relative_path"] == "setup.py"
    error = daemon.call_error("instructions.for_path", {"project": "shop", "path": "../x.py"})
    assert error.data["field"] == "path"
    outside = daemon.call("instructions.for_path", {"path": "/nowhere/at/all.py"})
    assert (outside["project_id"], outside["items"]) == (None, [])


def test_instructions_stored_by_hand_apply_beside_the_files(daemon: DaemonProcess) -> None:
    repo = shop(daemon)
    refreshed(daemon, repo)
    daemon.call("documents.add", {"kind": "instruction", "title": "Docs tone", "content": "Plain.",
                                  "project": str(repo),
                                  "metadata": {"applies_to": ["docs/**/*.md"]}})  # fmt: skip
    daemon.call("documents.add", {"kind": "instruction", "title": "Everywhere",
                                  "content": "Be kind."})  # fmt: skip
    docs = [i["title"] for i in for_path(daemon, repo / "docs/guide/intro.md", content=False)]
    assert docs[0] == "Docs tone" and "Everywhere" in docs
    code = [i["title"] for i in for_path(daemon, repo / "src/a.c", content=False)]
    assert "Docs tone" not in code and "Everywhere" in code


def test_skills_are_matched_by_tags_language_framework_and_words(daemon: DaemonProcess) -> None:
    repo = shop(daemon)
    refreshed(daemon, repo)

    def match(**params: Any) -> list[str]:
        found = daemon.call("skills.match", {"project": str(repo), **params})
        return [item["title"] for item in found["items"]]

    assert match(tags=["sql"]) == ["sqlite-tuning"]
    assert match(path=str(repo / "web/Cart.tsx")) == ["react-testing"]  # from the extension
    assert match(framework="React", tags=["testing"]) == ["react-testing"]
    assert match(tags=["performance"], language="typescript") == ["sqlite-tuning", "react-testing"]
    assert match(query="explain query") == ["sqlite-tuning"]
    assert match(tags=["cooking"]) == []
    best = daemon.call(
        "skills.match",
        {"project": str(repo), "tags": ["sql"], "language": "python", "framework": "fastapi"},
    )
    assert best["items"][0]["matched"] == ["tag:sql", "language:python", "framework:fastapi"]


def test_malformed_and_hostile_front_matter_is_reported_never_fatal(
    daemon: DaemonProcess,
) -> None:
    huge = "---\n" + "".join(f"key{i}: value\n" for i in range(5000)) + "---\nbody\n"
    files = {
        "README.md": "x\n",
        ".github/instructions/broken.instructions.md": "---\napplyTo: [a, b\n---\nStill here.\n",
        ".github/instructions/unclosed.instructions.md": "---\napplyTo: '**'\nno end\n",
        ".github/instructions/yaml.instructions.md": (
            "---\napplyTo: !!python/object/apply:os.system ['touch /tmp/pwned']\n---\nx\n"
        ),
        ".cursor/rules/huge.mdc": huge,
        ".cursor/rules/mapping.mdc": "---\nglobs: {a: b}\n---\nx\n",
        "agents/ok.md": "---\nname: ok\n---\nfine\n",
    }
    repo = shop(daemon, files)
    outcome = refreshed(daemon, repo)
    problems = "\n".join(outcome["problems"])
    assert "broken.instructions.md: front matter line 2: a list that does not close" in problems
    assert "unclosed.instructions.md: front matter: no closing `---`" in problems
    assert "huge.mdc: front matter" in problems and "mapping.mdc" in problems
    docs = daemon.call("documents.list", {"project": str(repo), "origin": "repo"})["items"]
    by_path = {d["path"]: d for d in docs}
    assert by_path["agents/ok.md"]["metadata"]["problem"] is None  # the others still indexed
    broken = by_path[".github/instructions/broken.instructions.md"]
    assert broken["metadata"]["problem"] and "Still here." in broken["content"]
    # Never executed: the tag is a string like any other.
    tagged = by_path[".github/instructions/yaml.instructions.md"]["metadata"]["applies_to"]
    assert tagged and tagged[0].startswith("!!python/object") and not Path("/tmp/pwned").exists()
    assert daemon.call("daemon.status")["state"] == "ready"


def test_links_out_and_fifos_are_never_read(daemon: DaemonProcess, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("a secret outside the project\n")
    repo = shop(daemon, {"README.md": "x\n", "services/AGENTS.md": "real\n"})
    (repo / "AGENTS.md").symlink_to(secret)  # the walk never follows a link
    os.mkfifo(repo / "CLAUDE.md")  # nor opens what is not a regular file (it would block)
    (repo / ".github").mkdir()
    (repo / ".github" / "copilot-instructions.md").symlink_to(secret)  # a known path: refused
    outcome = refreshed(daemon, repo)
    assert [p.split(":")[0] for p in outcome["problems"]] == [".github/copilot-instructions.md"]
    assert "outside" in outcome["problems"][0]
    docs = daemon.call("documents.list", {"project": str(repo), "origin": "repo"})["items"]
    assert [d["path"] for d in docs] == ["services/AGENTS.md"]
    assert daemon.call("documents.search", {"query": "secret"})["total"] == 0


def test_the_scan_indexes_and_the_watcher_keeps_it_fresh(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(config={"settle_ms": 50}).start()
    repo = make_repo(daemon.dev_root / "shop", files={"AGENTS.md": "Version one.\n"})
    daemon.call("projects.scan")

    def search(word: str) -> int:
        return int(daemon.call("documents.search", {"query": word})["total"])

    wait_for(lambda: search("one") == 1, 10, "the scan to index AGENTS.md")
    (repo / "AGENTS.md").write_text("Version two.\n")
    wait_for(lambda: search("two") == 1 and search("one") == 0, 10, "the change to be seen")
    nested = repo / "lib" / "AGENTS.md"
    nested.parent.mkdir()
    nested.write_text("Nested rules.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nested")  # the commit moves .git, which is watched
    wait_for(lambda: search("nested") == 1, 10, "a nested file added by a commit")
    (repo / "AGENTS.md").unlink()
    wait_for(lambda: search("two") == 0, 10, "a deleted file to leave the index")
