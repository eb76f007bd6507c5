"""documents and documents.search through a real daemon: the full-text index in step with the
table through insert, update, delete and a plan's archive/unarchive (checked by FTS5's own
integrity-check on the file), ranking on a small realistic corpus, plain words that are FTS5
syntax searched as typed, a malformed FTS5 query refused with its reason, filters, typed
metadata per kind, an episode's access count, embeddings and the nearest neighbours."""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

import pytest

from daemon.domain.documents.vectors import _scores, pack
from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import DaemonProcess, wait_for


def fts_sound(daemon: DaemonProcess) -> None:
    """FTS5's integrity-check compares the index with its content (the live documents)."""
    conn = sqlite3.connect(daemon.db_path)
    try:
        conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('integrity-check')")
    finally:
        conn.close()


def titles(result: dict[str, Any]) -> list[str]:
    return [item["title"] for item in result["items"]]


def test_the_index_follows_insert_update_delete(daemon: DaemonProcess) -> None:
    made = daemon.call("documents.add", {"kind": "note", "title": "Deploy notes",
                                         "content": "We deploy on Fridays with fly."})  # fmt: skip
    assert titles(daemon.call("documents.search", {"query": "fridays"})) == ["Deploy notes"]
    daemon.call("documents.update", {"id": made["id"], "title": "Release notes",
                                     "content": "Releases go out on Tuesdays."})  # fmt: skip
    fts_sound(daemon)
    assert daemon.call("documents.search", {"query": "fridays"})["total"] == 0
    assert titles(daemon.call("documents.search", {"query": "tuesdays"})) == ["Release notes"]
    assert titles(daemon.call("documents.search", {"query": "release"})) == ["Release notes"]
    daemon.call("documents.delete", {"id": made["id"]})
    fts_sound(daemon)
    assert daemon.call("documents.search", {"query": "tuesdays"})["total"] == 0


def test_ranking_snippets_and_filters_on_a_small_corpus(daemon: DaemonProcess) -> None:
    corpus = [
        ("knowledge", "SQLite WAL mode", "Write-ahead logging lets readers go on while one "
         "writer commits. Checkpoints move pages back into the database.", ["sqlite"]),
        ("note", "Standup 3 March", "Talked about the release, the CI being slow, and a WAL "
         "question someone had.", ["meeting"]),
        ("research", "Connection pools", "Pools keep connections open; with SQLite every "
         "connection may read but only one writes, so the pool size matters little.", []),
        ("note", "Groceries", "Milk, eggs, bread.", []),
    ]  # fmt: skip
    for kind, title, content, tags in corpus:
        daemon.call("documents.add", {"kind": kind, "title": title, "content": content,
                                      "tags": tags})  # fmt: skip
    found = daemon.call("documents.search", {"query": "wal"})
    # The title match outranks a passing mention in the body.
    assert titles(found) == ["SQLite WAL mode", "Standup 3 March"]
    assert found["items"][0]["score"] > found["items"][1]["score"]
    assert "**WAL**" in found["items"][0]["snippet"]
    marked = daemon.call("documents.search", {"query": "wal", "marks": ["<b>", "</b>"]})
    assert "<b>WAL</b>" in marked["items"][1]["snippet"]
    both = daemon.call("documents.search", {"query": "sqlite writer"})
    assert titles(both) == ["SQLite WAL mode"]
    assert titles(daemon.call("documents.search", {"query": "sqlite", "kind": "research"})) == [
        "Connection pools"
    ]
    assert titles(daemon.call("documents.search", {"query": "wal", "tags": ["meeting"]})) == [
        "Standup 3 March"
    ]
    assert (
        daemon.call("documents.search", {"query": "wal", "since": "2999-01-01T00:00:00Z"})["total"]
        == 0
    )
    prefix = daemon.call("documents.search", {"query": "connect*"})
    assert titles(prefix) == ["Connection pools"]
    page = daemon.call("documents.search", {"query": "wal", "limit": 1, "offset": 1})
    assert (titles(page), page["total"]) == (["Standup 3 March"], 2)


def test_plain_words_are_safe_and_fts5_syntax_is_opt_in(daemon: DaemonProcess) -> None:
    daemon.call("documents.add", {"kind": "note", "title": "Operators",
                                  "content": 'Use "AND" or NEAR( carefully: x:y -z'})  # fmt: skip
    for query in ['"AND" NEAR(', "x:y", "-z", 'carefully: "unclosed', "(NOT", "NOT"]:
        result = daemon.call("documents.search", {"query": query})  # never an error
        assert isinstance(result["total"], int)
    assert daemon.call("documents.search", {"query": "near("})["total"] == 1
    assert daemon.call("documents.search", {"query": "operators OR nothing",
                                            "syntax": "fts5"})["total"] == 1  # fmt: skip
    for bad in ['"unclosed', "AND AND", "title:(", "nocolumn:word"]:
        error = daemon.call_error("documents.search", {"query": bad, "syntax": "fts5"})
        assert error.code == -32602 and error.data["field"] == "query", bad
        assert error.data["reason"], bad
    error = daemon.call_error("documents.search", {"query": "!!! ..."})
    assert error.code == -32602 and "no word" in error.message


def test_a_plans_documents_leave_search_with_it_and_come_back(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon().start()
    repo = make_repo(daemon.dev_root / "shop")
    daemon.call("projects.scan")
    plan = daemon.call("plans.add", {"project": str(repo), "title": "Checkout"})
    phase = daemon.call("phases.add", {"plan": plan["id"], "title": "Design"})
    note = daemon.call(
        "documents.add",
        {
            "kind": "note",
            "title": "Payment flow",
            "content": "Stripe webhooks",
            "phase": phase["id"],
        },
    )
    assert (note["plan_id"], note["project_id"]) == (plan["id"], plan["project_id"])
    loose = daemon.call(
        "documents.add",
        {"kind": "note", "title": "Unrelated", "content": "Stripe fees", "project": str(repo)},
    )
    assert daemon.call("documents.search", {"query": "stripe"})["total"] == 2
    assert titles(daemon.call("documents.search", {"query": "stripe", "plan": plan["id"]})) == [
        "Payment flow"
    ]
    daemon.call("plans.archive", {"id": plan["id"]})
    fts_sound(daemon)
    assert titles(daemon.call("documents.search", {"query": "stripe"})) == [loose["title"]]
    assert daemon.call("documents.get", {"id": note["id"]})["archived"] is True
    daemon.call("plans.unarchive", {"id": plan["id"]})
    fts_sound(daemon)
    assert daemon.call("documents.search", {"query": "stripe"})["total"] == 2
    # A document added to an archived plan is archived from the start.
    daemon.call("plans.archive", {"id": plan["id"]})
    late = daemon.call("documents.add", {"kind": "note", "title": "Late", "content": "stripe",
                                         "plan": plan["id"]})  # fmt: skip
    assert late["archived"] is True
    fts_sound(daemon)


def test_metadata_is_typed_by_kind(daemon: DaemonProcess) -> None:
    episode = daemon.call("documents.add", {"kind": "episode", "type": "error_fix",
                                            "title": "Fixed the flaky test", "content": "…",
                                            "metadata": {"importance": 2.5}})  # fmt: skip
    assert episode["metadata"]["importance"] == 2.5 and episode["metadata"]["access_count"] == 0
    bad: list[tuple[dict[str, Any], str]] = [
        ({"kind": "episode", "type": "lunch"}, "type"),
        ({"kind": "episode", "metadata": {"importance": -1}}, "metadata.importance"),
        ({"kind": "artifact", "type": "document", "metadata": {"unknown": 1}}, "metadata"),
        ({"kind": "code_chunk", "metadata": {"file": "a.py"}}, "metadata"),
        ({"kind": "diary"}, "kind"),
    ]
    for fields, field in bad:
        error = daemon.call_error("documents.add", {"title": "t", "content": "c", **fields})
        assert (error.code, error.data.get("field")) == (-32602, field), fields
    knowledge = daemon.call(
        "documents.add",
        {
            "kind": "knowledge",
            "title": "Retry policy",
            "content": "…",
            "metadata": {"slug": "retry", "category": "pattern"},
        },
    )
    error = daemon.call_error(
        "documents.update", {"id": knowledge["id"], "metadata": {"slug": "Not A Slug"}}
    )
    assert error.data["field"] == "metadata.slug"


def test_reading_an_episode_counts_an_access(daemon: DaemonProcess) -> None:
    made = daemon.call(
        "documents.add",
        {"kind": "episode", "type": "decision", "title": "Use FTS5", "content": "bm25 is enough"},
    )
    first = daemon.call("documents.get", {"id": made["id"]})
    second = daemon.call("documents.get", {"id": made["id"]})
    assert (first["metadata"]["access_count"], second["metadata"]["access_count"]) == (1, 2)
    assert second["metadata"]["last_accessed_at"] >= first["metadata"]["last_accessed_at"]
    assert second["version"] == made["version"]  # a read is not a change
    note = daemon.call("documents.add", {"kind": "note", "title": "n", "content": "c"})
    assert daemon.call("documents.get", {"id": note["id"]})["metadata"] == {}


def test_embeddings_and_the_nearest_documents(daemon: DaemonProcess) -> None:
    ids = [daemon.call("documents.add", {"kind": "note", "title": f"d{i}", "content": "c"})["id"]
           for i in range(4)]  # fmt: skip
    vectors = [[1.0, 0.0, 0.0], [0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]
    for doc_id, vector in zip(ids, vectors, strict=True):
        assert daemon.call("documents.embed", {"id": doc_id, "embedding": vector})["dims"] == 3
    near = daemon.call("documents.similar", {"id": ids[0], "limit": 2})
    assert [item["id"] for item in near["items"]] == [ids[1], ids[2]]
    assert near["items"][0]["score"] == pytest.approx(0.970, abs=1e-3) and near["compared"] == 4
    query = daemon.call("documents.similar", {"embedding": [0.0, 2.0, 0.1], "limit": 1})
    assert [item["id"] for item in query["items"]] == [ids[2]]
    floor = daemon.call("documents.similar", {"id": ids[0], "min_score": 0.5})
    assert [item["id"] for item in floor["items"]] == [ids[1]]
    other = daemon.call("documents.similar", {"embedding": [1.0, 0.0]})  # another dimension
    assert (other["compared"], other["items"]) == (0, [])
    daemon.call("documents.embed", {"id": ids[1], "embedding": None})
    assert daemon.call("documents.similar", {"id": ids[0]})["compared"] == 3
    for params in ({"id": ids[0], "embedding": [1e39, 0.0, 0.0]},
                   {"id": ids[0], "embedding": [0.0, 0.0, 0.0]}):  # fmt: skip
        assert daemon.call_error("documents.embed", params).code == -32602
    assert daemon.call_error("documents.similar", {"id": ids[1]}).data["kind"] == "not_found"
    daemon.call("documents.delete", {"id": ids[2]})  # its vector goes with it
    assert daemon.call("documents.similar", {"id": ids[0]})["compared"] == 2


def test_scores_agree_with_and_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy is the optional `vectors` extra: the pure-Python scoring used without it gives
    the same cosines."""
    query = pack([0.5, -1.0, 2.0])
    blobs = [pack(v) for v in ([0.5, -1.0, 2.0], [-0.5, 1.0, -2.0], [1.0, 0.0, 0.0],
                               [3.0, 4.0, 0.1])]  # fmt: skip
    with_numpy = _scores(query, blobs)
    monkeypatch.setitem(sys.modules, "numpy", None)  # what `import numpy` meets when absent
    without = _scores(query, blobs)
    assert without == pytest.approx(with_numpy, abs=1e-6)
    assert without[:3] == pytest.approx([1.0, -1.0, 0.5 / 2.2913], abs=1e-4)


def test_repair_and_import_leave_the_index_whole(daemon: DaemonProcess) -> None:
    for i in range(3):
        daemon.call("documents.add", {"kind": "note", "title": f"note {i}",
                                      "content": "the quick brown fox"})  # fmt: skip
    conn = sqlite3.connect(daemon.db_path)
    try:  # another tool empties the index (its content stays in documents)
        conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('delete-all')")
        conn.commit()
    finally:
        conn.close()
    assert daemon.call("documents.search", {"query": "fox"})["total"] == 0
    repaired = daemon.call("db.repair")
    assert "documents_fts" in repaired["fts_rebuilt"]
    assert daemon.call("documents.search", {"query": "fox"})["total"] == 3
    exported = daemon.call("db.export", {"format": "json"})
    daemon.call("documents.add", {"kind": "note", "title": "after", "content": "fox again"})
    daemon.call("db.import", {"path": exported["path"]})  # rows inserted without triggers

    def searchable() -> bool:
        return bool(daemon.call("documents.search", {"query": "fox"})["total"] == 3)

    wait_for(searchable, 10, "the index rebuilt after the import")
    fts_sound(daemon)


def test_a_perpetua_stages_prompt_result_and_thinking_are_documents(
    make_daemon: DaemonFactory,
) -> None:
    """A journey is a plan, a stage a phase; its prompt, result and thinking are stage
    documents scoped to the phase, found by search and listed by the phase."""
    daemon = make_daemon().start()
    repo = make_repo(daemon.dev_root / "lab")
    daemon.call("projects.scan")
    journey = daemon.call("plans.add", {"project": str(repo), "title": "Why is the cache cold",
                                        "kind": "journey"})  # fmt: skip
    stage = daemon.call("phases.add", {"plan": journey["id"], "title": "Chasing",
                                       "kind": "chasing"})  # fmt: skip
    for part, text in (("prompt", "Find what evicts the cache"), ("result", "TTL of 30 s"),
                       ("thinking", "Eviction follows the deploys")):  # fmt: skip
        made = daemon.call("documents.add", {"kind": "stage", "type": part, "phase": stage["id"],
                                             "title": f"Chasing ({part})", "content": text,
                                             "metadata": {"stage": "chasing"}})  # fmt: skip
        assert (made["plan_id"], made["project_id"]) == (journey["id"], journey["project_id"])
    parts = daemon.call("documents.list", {"phase": stage["id"], "kind": "stage"})
    assert sorted(d["type"] for d in parts["items"]) == ["prompt", "result", "thinking"]
    assert titles(daemon.call("documents.search", {"query": "ttl"})) == ["Chasing (result)"]
    error = daemon.call_error("documents.add", {"kind": "stage", "type": "summary",
                                                "phase": stage["id"], "title": "x",
                                                "content": "y"})  # fmt: skip
    assert error.data["field"] == "type"


def test_an_index_emptied_while_the_daemon_was_down_is_rebuilt_at_start(
    daemon: DaemonProcess,
) -> None:
    daemon.call("documents.add", {"kind": "note", "title": "kept", "content": "lighthouse"})
    daemon.stop()
    conn = sqlite3.connect(daemon.db_path)
    try:  # what an offline import leaves: rows without their index entries
        conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('delete-all')")
        conn.commit()
    finally:
        conn.close()
    daemon.start()
    wait_for(lambda: daemon.call("documents.search", {"query": "lighthouse"})["total"] == 1, 10,
             "the index rebuilt at start")  # fmt: skip
    fts_sound(daemon)
