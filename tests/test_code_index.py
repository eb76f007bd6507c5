"""documents.index_code through a real daemon on a small repository made by the test: chunks by
top-level definition (else windows), the scanner's pruning and .gitignore honoured, and a
reindex after one file changes touching only that file's chunks — the unchanged ones keep
their ids (and embeddings), a gone file takes its chunks with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gitrepos import make_repo
from tests.helpers import DaemonProcess

ORDERS = '''"""Orders."""
import json


def total(items):
    return sum(i["price"] for i in items)


def tax(amount, rate):
    if rate < 0:
        raise ValueError(rate)
    return amount * rate


class Basket:
    def __init__(self):
        self.items = []
'''

FILES = {
    "shop/orders.py": ORDERS,
    "shop/util.py": "def slug(text):\n    return text.lower().replace(' ', '-')\n",
    "web/cart.ts": (
        "export function addToCart(id: string) {\n  return fetch(`/cart/${id}`);\n}\n\n"
        "export const VERSION = 2;\n"
    ),
    "scripts/run.sh": "#!/bin/sh\n" + "".join(f"echo line {i}\n" for i in range(130)),
    "node_modules/dep/index.js": "function fromADependency() {}\n",
    ".venv/lib/site.py": "def fromAVirtualenv(): pass\n",
    "build/out.js": "function fromBuildOutput() {}\n",
    ".gitignore": "generated/\n",
    "generated/schema.py": "def fromAnIgnoredFolder(): pass\n",
    "docs/readme.md": "not code\n",
}


def chunks(daemon: DaemonProcess, repo: Path) -> dict[str, dict[str, Any]]:
    listed = daemon.call("documents.list", {"project": str(repo), "kind": "code_chunk",
                                            "limit": 1000})  # fmt: skip
    return {item["title"]: item for item in listed["items"]}


def test_index_then_reindex_touches_only_what_changed(daemon: DaemonProcess) -> None:
    repo = make_repo(daemon.dev_root / "shop", files=FILES)
    daemon.call("projects.scan")
    first = daemon.call("documents.index_code", {"project": "shop"})
    assert (first["files"], first["files_changed"], first["chunks_removed"]) == (4, 4, 0)
    made = chunks(daemon, repo)
    assert set(made) == {
        "shop/orders.py:1-4", "shop/orders.py:5-8 total", "shop/orders.py:9-14 tax",
        "shop/orders.py:15-17 Basket", "shop/util.py:1-2 slug",
        "web/cart.ts:1-4 addToCart", "web/cart.ts:5-5 VERSION",
        "scripts/run.sh:1-60", "scripts/run.sh:61-120", "scripts/run.sh:121-131",
    }  # fmt: skip
    tax = made["shop/orders.py:9-14 tax"]
    assert tax["metadata"]["symbols"] == ["tax"] and tax["metadata"]["language"] == "Python"
    assert tax["metadata"]["complexity"] == 1 and tax["type"] == "definition"
    assert tax["origin"] == "repo" and tax["path"] == "shop/orders.py"
    found = daemon.call("documents.search", {"query": "addToCart", "kind": "code_chunk"})
    assert [i["title"] for i in found["items"]] == ["web/cart.ts:1-4 addToCart"]
    for word in ("fromADependency", "fromAVirtualenv", "fromBuildOutput", "fromAnIgnoredFolder"):
        assert daemon.call("documents.search", {"query": word})["total"] == 0, word
    daemon.call("documents.embed", {"id": made["shop/orders.py:5-8 total"]["id"],
                                    "embedding": [0.1, 0.2]})  # fmt: skip

    same = daemon.call("documents.index_code", {"project": "shop"})
    assert (same["files_changed"], same["chunks_added"], same["chunks_removed"]) == (0, 0, 0)

    # One function of one file changes (and the lines after it move).
    (repo / "shop/orders.py").write_text(
        ORDERS.replace(
            "    return amount * rate\n",
            "    rounded = round(amount * rate, 2)\n    return rounded\n",
        )
    )
    events_before = daemon.call("events.list", {"topics": ["documents"], "limit": 1})["total"]
    again = daemon.call("documents.index_code", {"project": "shop"})
    assert (again["files_changed"], again["chunks_added"], again["chunks_removed"]) == (1, 1, 1)
    after = chunks(daemon, repo)
    # Chunks of the other files are the very same rows; in the changed file the unchanged
    # definitions keep their ids, and only the one that changed is new.
    for title, item in made.items():
        if not title.startswith("shop/orders.py"):
            assert after[title]["id"] == item["id"] and after[title]["version"] == 1
    moved = next(t for t in after if t.startswith("shop/orders.py") and "Basket" in t)
    assert after[moved]["id"] == made["shop/orders.py:15-17 Basket"]["id"]
    assert after["shop/orders.py:5-8 total"]["id"] == made["shop/orders.py:5-8 total"]["id"]
    new_tax = next(t for t in after if t.startswith("shop/orders.py") and "tax" in t)
    assert after[new_tax]["id"] not in {item["id"] for item in made.values()}
    events = daemon.call("events.list", {"topics": ["documents"], "limit": 1})["total"]
    assert events - events_before == 1 + 1 + 3  # created, deleted, three kept moved/rehashed
    near = daemon.call("documents.similar", {"embedding": [0.1, 0.2]})
    assert [i["title"] for i in near["items"]] == ["shop/orders.py:5-8 total"]  # kept its vector

    (repo / "shop/util.py").unlink()
    gone = daemon.call("documents.index_code", {"project": "shop"})
    assert (gone["files_removed"], gone["chunks_removed"]) == (1, 1)
    assert "shop/util.py:1-2 slug" not in chunks(daemon, repo)
    error = daemon.call_error("documents.index_code", {"project": "nowhere"})
    assert error.data["kind"] == "not_found"
