"""Memory search: `documents.search` over 100,000 documents of a few KB, indexing through the
writer with FTS, `instructions.for_path` with 1,000 projects indexed, and `context.brief`.

(a) Indexing: 100,000 documents (2-4 KB of words drawn from a Zipf-distributed vocabulary,
    spread over 50 projects, kinds and tags) sent as `documents.add` by 16 closed-loop
    clients in 2 processes: documents per second through the socket, the writer, the FTS
    triggers and the change log.
(b) Search through the socket, one client: two-term queries of mid-frequency words, and the
    same with filters (kind, project, tags); p50 and p99 per run.
(c) The baseline, in the same run on the same table: what Project Memory did,
    `LIKE '%term%'` over title and content (both terms), beside the same FTS5 query, both
    on a read-only connection in this process (no socket on either side).
(d) 1,000 projects, each with AGENTS.md, a nested src/AGENTS.md, an applyTo instructions
    file and a Cursor rule: how long the scan's indexing takes, then `instructions.for_path`
    and `context.brief` of random files, p50 and p99 per run.
Goals (issue 16): search p99 <= 10 ms (two terms), <= 20 ms with filters; indexing >= 5,000
documents/s; for_path p99 <= 2 ms; brief p99 <= 20 ms.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Table, fmt_ms, fmt_rate, median, met, spread

DOCS, DOCS_QUICK = 100_000, 5_000
PROJECTS_WITH_DOCS = 50
INSTRUCTION_PROJECTS, INSTRUCTION_PROJECTS_QUICK = 1_000, 100
CLIENTS, PROCESSES = 16, 2
QUERIES, QUERIES_QUICK = 500, 100
LIKE_QUERIES = 10
GOAL_SEARCH_P99, GOAL_FILTERED_P99 = 10e-3, 20e-3
GOAL_INDEX_RATE = 5_000.0
GOAL_FOR_PATH_P99, GOAL_BRIEF_P99 = 2e-3, 20e-3
KINDS = ["note", "knowledge", "research", "context", "episode"]
TAGS = ["api", "db", "ui", "ops", "perf", "auth", "billing", "search"]
_CONTEXT = multiprocessing.get_context("fork")


# --- the corpus ------------------------------------------------------------------------------
def vocabulary(size: int, rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "za", "pe", "qu", "di", "fo"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass
class Corpus:
    words: list[str]
    weights: list[float]
    requests: list[bytes] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)

    def text(self, rng: random.Random, count: int) -> str:
        return " ".join(rng.choices(self.words, cum_weights=self.weights, k=count))


def build_corpus(count: int, projects: list[str]) -> Corpus:
    rng = random.Random(16)
    words = vocabulary(20_000, rng)
    running, cum = 0.0, []
    for rank in range(1, len(words) + 1):
        running += 1 / rank  # Zipf: a few words everywhere, most words rare
        cum.append(running)
    corpus = Corpus(words, cum, projects=projects)
    for n in range(count):
        params = {
            "kind": KINDS[n % len(KINDS)],
            "title": corpus.text(rng, rng.randint(3, 8)),
            "content": corpus.text(rng, rng.randint(350, 650)),  # ~2-4 KB
            "project": projects[n % len(projects)],
            "tags": rng.sample(TAGS, 2),
        }
        message = {"jsonrpc": "2.0", "id": n, "method": "documents.add", "params": params}
        corpus.requests.append(json.dumps(message).encode() + b"\n")
    return corpus


def mid_frequency(corpus: Corpus) -> list[str]:
    """Words of rank 200-2,000 in the Zipf vocabulary: in a few percent of the documents,
    what a person searches for (not "the", not a typo)."""
    return corpus.words[200:2000]


# --- (a) indexing -----------------------------------------------------------------------------
def _send_all(path: str, requests: list[bytes], pipe: Connection) -> None:
    """One closed-loop connection per slice, in threads of this process."""
    import threading

    errors: list[str] = []

    def run(chunk: list[bytes]) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            buffer = b""
            for request in chunk:
                sock.sendall(request)
                line, buffer = common.next_line(sock, buffer)
                if b'"error"' in line:
                    errors.append(line[:300].decode(errors="replace"))

    per = CLIENTS // PROCESSES
    threads = [threading.Thread(target=run, args=(requests[i::per],)) for i in range(per)]
    pipe.recv()  # go
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipe.send(errors[:5])


def index(path: str, corpus: Corpus) -> tuple[float, int]:
    """(documents/s, errors) for the whole corpus through the socket."""
    children = []
    for worker in range(PROCESSES):
        ours, theirs = _CONTEXT.Pipe()
        share = corpus.requests[worker::PROCESSES]
        process = _CONTEXT.Process(target=_send_all, args=(path, share, theirs), daemon=True)
        process.start()
        children.append((process, ours))
    started = time.perf_counter()
    for _, pipe in children:
        pipe.send("go")
    errors: list[str] = []
    for process, pipe in children:
        errors += pipe.recv()
        process.join()
    elapsed = time.perf_counter() - started
    if errors:
        print("errors while indexing:", errors[:3], flush=True)
    return len(corpus.requests) / elapsed, len(errors)


# --- (b), (d) latency through the socket ------------------------------------------------------
def latencies(path: str, make: Callable[[int], dict[str, Any]], count: int) -> list[float]:
    out: list[float] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        buffer = b""
        for n in range(count + count // 10):  # the first tenth warms up
            message = {"jsonrpc": "2.0", "id": n, **make(n)}
            body = json.dumps(message).encode() + b"\n"
            started = time.perf_counter()
            sock.sendall(body)
            line, buffer = common.next_line(sock, buffer)
            elapsed = time.perf_counter() - started
            if b'"error"' in line[:200]:
                raise RuntimeError(f"error reply: {line[:300]!r}")
            if n >= count // 10:
                out.append(elapsed)
    return out


# --- (c) the LIKE baseline ---------------------------------------------------------------------
_FTS = (
    "SELECT t.id, snippet(documents_fts, -1, '**', '**', '…', 16) FROM documents_fts "
    "JOIN documents AS t ON t.id = documents_fts.rowid WHERE documents_fts MATCH ? "
    "ORDER BY documents_fts.rank LIMIT 20"
)
_LIKE = (
    "SELECT id, substr(content, 1, 100) FROM documents WHERE (title LIKE ?1 OR content LIKE ?1) "
    "AND (title LIKE ?2 OR content LIKE ?2) ORDER BY id DESC LIMIT 20"
)


def in_process(db: Path, pairs: list[tuple[str, str]]) -> tuple[list[float], list[float]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    fts, like = [], []
    try:
        for a, b in pairs:
            started = time.perf_counter()
            conn.execute(_FTS, (f'"{a}" "{b}"',)).fetchall()
            fts.append(time.perf_counter() - started)
        for a, b in pairs[:LIKE_QUERIES]:
            started = time.perf_counter()
            conn.execute(_LIKE, (f"%{a}%", f"%{b}%")).fetchall()
            like.append(time.perf_counter() - started)
    finally:
        conn.close()
    return fts, like


# --- (d) projects with instruction files --------------------------------------------------------
def make_projects(root: Path, count: int) -> list[Path]:
    made = []
    for n in range(count):
        repo = root / f"group{n // 100}" / f"proj{n:04d}"
        (repo / "src" / "api").mkdir(parents=True)
        (repo / ".github" / "instructions").mkdir(parents=True)
        (repo / ".cursor" / "rules").mkdir(parents=True)
        (repo / "package.json").write_text(f'{{"name": "proj{n}"}}')
        (repo / "AGENTS.md").write_text(f"# proj{n}\nRun the tests before committing.\n")
        (repo / "src" / "AGENTS.md").write_text("# src\nKeep modules small.\n")
        (repo / ".github" / "instructions" / "ts.instructions.md").write_text(
            '---\napplyTo: "**/*.ts"\n---\nStrict TypeScript.\n'
        )
        (repo / ".cursor" / "rules" / "api.mdc").write_text(
            "---\nglobs: src/api/**\nalwaysApply: false\n---\nValidate input.\n"
        )
        made.append(repo)
    return made


def count_instructions(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM documents WHERE kind = 'instruction' AND origin = 'repo'"
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


@dataclass
class Run:
    search: list[float]
    filtered: list[float]
    fts: list[float]
    like: list[float]
    for_path: list[float]
    brief: list[float]


def one_run(daemon: common.Daemon, corpus: Corpus, repos: list[Path], count: int, seed: int) -> Run:
    rng = random.Random(seed)
    words = mid_frequency(corpus)
    pairs = [(rng.choice(words), rng.choice(words)) for _ in range(count)]
    projects = corpus.projects

    def search(n: int) -> dict[str, Any]:
        a, b = pairs[n % len(pairs)]
        return {"method": "documents.search", "params": {"query": f"{a} {b}", "limit": 20}}

    def filtered(n: int) -> dict[str, Any]:
        a, b = pairs[n % len(pairs)]
        params = {
            "query": f"{a} {b}", "limit": 20, "kind": KINDS[n % len(KINDS)],
            "project": projects[n % len(projects)], "tags": [TAGS[n % len(TAGS)]],
        }  # fmt: skip
        return {"method": "documents.search", "params": params}

    def for_path(n: int) -> dict[str, Any]:
        repo = repos[rng.randrange(len(repos))]
        name = rng.choice(["src/api/orders.ts", "src/util.py", "README.md", "web/app.tsx"])
        return {"method": "instructions.for_path", "params": {"path": f"{repo}/{name}"}}

    def brief(n: int) -> dict[str, Any]:
        repo = repos[rng.randrange(len(repos))]
        return {
            "method": "context.brief",
            "params": {"path": f"{repo}/src/api/x.ts", "agent": "bench", "max_chars": 8000},
        }

    fts, like = in_process(daemon.db_path, pairs)
    return Run(
        search=latencies(daemon.socket_path, search, count),
        filtered=latencies(daemon.socket_path, filtered, count),
        fts=fts,
        like=like,
        for_path=latencies(daemon.socket_path, for_path, count * 2),
        brief=latencies(daemon.socket_path, brief, count),
    )


def main(runs: int, quick: bool) -> int:
    docs = DOCS_QUICK if quick else DOCS
    project_count = INSTRUCTION_PROJECTS_QUICK if quick else INSTRUCTION_PROJECTS
    queries = QUERIES_QUICK if quick else QUERIES
    with common.Daemon({"rescan_interval_s": "0", "quality": "off"}) as daemon:
        dev = daemon.root / "dev"
        holders = []
        for n in range(PROJECTS_WITH_DOCS):
            folder = dev / "docs" / f"notes{n:02d}"
            folder.mkdir(parents=True)
            (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")
            holders.append(str(folder))
        daemon.call("projects.scan")
        print(f"building {docs:,} documents…", flush=True)
        corpus = build_corpus(docs, holders)
        rate, errors = index(daemon.socket_path, corpus)
        print(f"indexed {docs:,} documents at {fmt_rate(rate)} ({errors} errors)", flush=True)

        repos = make_projects(dev / "repos", project_count)
        started = time.perf_counter()
        daemon.call("projects.scan")
        expected = project_count * 4
        common.wait_for(lambda: count_instructions(daemon.db_path) >= expected, 600,
                        "the instruction files to be indexed")  # fmt: skip
        indexed_s = time.perf_counter() - started
        print(f"{project_count:,} projects scanned and their instruction files indexed in "
              f"{indexed_s:.1f} s", flush=True)  # fmt: skip
        results = []
        for i in range(runs):
            run = one_run(daemon, corpus, repos, queries, seed=i)
            results.append(run)
            p = common.percentile
            print(f"run {i + 1}/{runs}: search p50 {fmt_ms(p(run.search, 50))} p99 "
                  f"{fmt_ms(p(run.search, 99))}; filtered p99 {fmt_ms(p(run.filtered, 99))}; "
                  f"for_path p99 {fmt_ms(p(run.for_path, 99))}; brief p99 "
                  f"{fmt_ms(p(run.brief, 99))}; LIKE p50 {fmt_ms(p(run.like, 50))}",
                  flush=True)  # fmt: skip
    print()
    print(report(results, docs, rate, errors, project_count, indexed_s))
    return 0 if errors == 0 else 1


def report(
    results: list[Run], docs: int, rate: float, errors: int, projects: int, indexed_s: float
) -> str:
    p = common.percentile
    table = Table(
        f"search: {docs:,} documents (2-4 KB), {projects:,} projects with instruction files, "
        f"{len(results)} runs (medians across runs, range in brackets)",
        ["metric", "figure", "goal", ""],
    )

    def row(label: str, values: list[float], goal: float | None) -> None:
        figure = median(values)
        table.add(label, spread(values, fmt_ms), fmt_ms(goal) if goal else "—",
                  met(figure <= goal) if goal else "")  # fmt: skip

    table.add(
        "indexing through the socket, writer and FTS",
        fmt_rate(rate),
        fmt_rate(GOAL_INDEX_RATE),
        met(rate >= GOAL_INDEX_RATE and errors == 0),
    )
    row("documents.search, two terms, p50", [p(r.search, 50) for r in results], None)
    row("documents.search, two terms, p99", [p(r.search, 99) for r in results], GOAL_SEARCH_P99)
    row("… with kind + project + tag filters, p99", [p(r.filtered, 99) for r in results],
        GOAL_FILTERED_P99)  # fmt: skip
    row("FTS5 query in-process (no socket), p50", [p(r.fts, 50) for r in results], None)
    row("LIKE '%a%' AND '%b%' in-process (baseline), p50", [p(r.like, 50) for r in results],
        None)  # fmt: skip
    ratio = median([p(r.like, 50) / p(r.fts, 50) for r in results])
    table.add("LIKE / FTS5 (p50)", f"{ratio:,.0f}x", "—", "")
    row("instructions.for_path, p50", [p(r.for_path, 50) for r in results], None)
    row("instructions.for_path, p99", [p(r.for_path, 99) for r in results], GOAL_FOR_PATH_P99)
    row("context.brief, p50", [p(r.brief, 50) for r in results], None)
    row("context.brief, p99", [p(r.brief, 99) for r in results], GOAL_BRIEF_P99)
    table.add(f"scan + instruction indexing of {projects:,} new projects", f"{indexed_s:.1f} s",
              "—", "")  # fmt: skip
    table.notes.append(
        "Two-term queries are pairs of words of rank 200-2,000 in a Zipf vocabulary of "
        "20,000; the LIKE baseline runs the same pairs (its first "
        f"{LIKE_QUERIES}) over the same table on a read-only connection."
    )
    return table.render() if not math.isnan(rate) else ""
