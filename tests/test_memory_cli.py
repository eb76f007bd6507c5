"""The memory's commands as a person (or an agent's hook) types them, standing in a project:
`pm note add` (argument, stdin), `pm search` (ranked, matches marked, FTS5 opt-in, a
malformed query a clear error), `pm knowledge`, `pm context`, `pm instructions`, `pm brief`,
`pm resume`, `pm agents`, `pm checkpoint save|list|restore`, `pm metrics`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.test_cli import PM, Cli


def pm_in(
    cli: Cli, folder: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PM, *args],
        cwd=folder,
        env={**cli.env, "PWD": str(folder), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok_in(cli: Cli, folder: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    done = pm_in(cli, folder, *args, stdin=stdin, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def world(make_daemon: DaemonFactory) -> tuple[Cli, Path]:
    daemon = make_daemon(config={"rescan_interval_s": 0})
    repo = make_repo(
        daemon.dev_root / "shop",
        home=daemon.home,
        files={"AGENTS.md": "# Shop\nRun make test.\n", "api/AGENTS.md": "# API\nJSON only.\n"},
    )
    daemon.start()
    cli = Cli(daemon)
    cli.ok("scan")
    cli.ok("call", "instructions.refresh", '{"project": "shop"}')
    return cli, repo


def test_notes_search_and_listings(make_daemon: DaemonFactory) -> None:
    cli, repo = world(make_daemon)
    said = ok_in(cli, repo, "note", "add", "Deploys go out on Fridays.", "--tag", "ops")
    assert said.startswith("note #") and "Deploys go out on Fridays." in said
    ok_in(cli, repo, "note", "add", "--kind", "knowledge", "--title", "WAL", stdin="Readers "
          "keep reading while the writer commits.\n")  # fmt: skip
    ok_in(cli, repo, "note", "add", "--kind", "context", "-", stdin="Scope: the cart only.\n")
    out = ok_in(cli, repo, "search", "fridays")
    lines = out.splitlines()
    assert lines[0].startswith("#") and "note" in lines[0]
    assert "**Fridays**" in lines[1]  # not a terminal: Markdown bold, no escape codes
    hits = json.loads(ok_in(cli, repo, "--json", "search", "writer commits"))
    assert [h["title"] for h in hits["items"]] == ["WAL"]
    assert json.loads(ok_in(cli, repo, "--json", "search", "fridays OR wal", "--fts"))["total"] == 2
    bad = pm_in(cli, repo, "search", '"unclosed', "--fts")
    assert bad.returncode == 1 and "invalid_params" in bad.stderr and not bad.stdout
    assert "Scope: the cart only." in ok_in(cli, repo, "--json", "context")
    knowledge = ok_in(cli, repo, "knowledge").splitlines()
    assert knowledge[0].split()[:3] == ["ID", "TYPE", "TITLE"] and "WAL" in knowledge[1]
    empty = pm_in(cli, repo, "note", "add", "-", stdin="  \n")
    assert empty.returncode == 2 and "empty" in empty.stderr


def test_instructions_brief_and_resume(make_daemon: DaemonFactory) -> None:
    cli, repo = world(make_daemon)
    here = repo / "api"
    here.mkdir(exist_ok=True)
    out = ok_in(cli, here, "instructions", "--brief").splitlines()
    assert out == [
        "api/AGENTS.md — api/AGENTS.md governs api/ and below",
        "AGENTS.md — AGENTS.md governs the project root and below",
    ]
    full = ok_in(cli, here, "instructions", "handlers.py")
    assert "JSON only." in full and "Run make test." in full
    brief = ok_in(cli, here, "brief", "--max-chars", "300")
    assert brief.startswith("# Brief: shop — api") and len(brief) <= 301
    missing = pm_in(cli, repo, "resume")
    assert missing.returncode == 1 and "no continue point" in missing.stderr
    cli.ok("call", "continue_points.add", json.dumps({
        "project": "shop", "last_action": "wrote the handler", "file": "api/h.py", "line": 7,
        "next_steps": ["add tests"], "agent": "ada"}))  # fmt: skip
    resumed = ok_in(cli, here, "resume")
    assert "Last: wrote the handler" in resumed and "Where: api/h.py:7" in resumed
    assert "Next: add tests" in resumed and "By: ada" in resumed


def test_agents_checkpoints_and_metrics(make_daemon: DaemonFactory) -> None:
    cli, repo = world(make_daemon)
    cli.ok("call", "agents.heartbeat", '{"agent": "ada", "tokens": 1500}')
    agents = ok_in(cli, repo, "agents").splitlines()
    assert agents[0].split()[:3] == ["NAME", "TYPE", "STATUS"] and agents[1].startswith("ada")
    for day, value in (("2026-03-01", 100), ("2026-03-02", 400), ("2026-03-04", 50)):
        cli.ok(
            "call",
            "metrics.add",
            json.dumps(
                {
                    "project": "shop",
                    "type": "token_usage",
                    "agent": "ada",
                    "value": value,
                    "timestamp": f"{day}T12:00:00Z",
                }
            ),
        )
    table = ok_in(cli, repo, "metrics").splitlines()
    assert table[1].split()[:3] == ["ada", "550", "3"] and table[1].endswith("▂█▁")
    plan = json.loads(cli.ok("call", "plans.add", '{"project": "shop", "title": "Cart"}'))
    saved = ok_in(cli, repo, "checkpoint", "save", "before", "--reason", "trying")
    assert saved.startswith("checkpoint #1 before") and "1 plans" in saved
    cli.ok("call", "plans.update", json.dumps({"id": plan["id"], "title": "Renamed"}))
    listed = ok_in(cli, repo, "checkpoint", "list").splitlines()
    assert listed[1].split()[:3] == ["1", "before", "manual"]
    refused = pm_in(cli, repo, "checkpoint", "restore", "1")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = ok_in(cli, repo, "checkpoint", "restore", "1", "--yes")
    assert "restored checkpoint #1" in done and "pm checkpoint restore 2 --yes" in done
    back = json.loads(cli.ok("call", "plans.get", json.dumps({"id": plan["id"]})))
    assert back["title"] == "Cart"
