"""session_files: the files a session included or excluded (the fifth document's
included_files and excluded_files), one row per (session, path).

Its own rule: a path is in a session once; marking it again changes its status
(`session_files.set` takes many paths at once, for a file picker's selection).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Id, Ref
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import NotFound
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.table import Row, Table, Where

FilePath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Status = Literal["included", "excluded"]
MAX_SET = 10_000


class SessionFile(Row, kw_only=True):
    session_id: int
    path: FilePath
    status: Status = "included"


SESSION_FILES = Table(
    "session_files", SessionFile, orders={"path": "t.session_id, t.path"},
    identity=("session_id",),
)  # fmt: skip

methods = Methods()
Crud(
    SESSION_FILES,
    refs=[Ref("session", "session_id", "sessions", required=True, description="a session's id")],
    create=("path", "status"),
    change=("status",),
    filters=("status", "path"),
).register(methods)


class SetParams(Params, frozen=True):
    session: Id
    included: Annotated[list[FilePath], msgspec.Meta(max_length=MAX_SET)] = msgspec.field(
        default_factory=list
    )
    excluded: Annotated[list[FilePath], msgspec.Meta(max_length=MAX_SET)] = msgspec.field(
        default_factory=list
    )


class SetOutcome(msgspec.Struct, kw_only=True):
    added: int
    changed: int
    unchanged: int


@methods("session_files.set")
async def set_(app: App, call: Call, p: SetParams) -> SetOutcome:
    """Mark many paths of a session included or excluded at once (each path once: a path
    in both lists is excluded); each new or changed row has its event."""

    def op(tx: Tx) -> SetOutcome:
        if tx.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (p.session,)).fetchone() is None:
            raise NotFound(f"no session with id {p.session}", field="session")
        wanted: dict[str, Status] = {path: "included" for path in p.included}
        wanted.update({path: "excluded" for path in p.excluded})
        out = SetOutcome(added=0, changed=0, unchanged=0)
        for path, status in wanted.items():
            where = Where(SESSION_FILES).eq("session_id", p.session).eq("path", path)
            found = SESSION_FILES.first(tx.conn, where)
            if found is None:
                SESSION_FILES.insert(tx, {"session_id": p.session, "path": path, "status": status})
                out.added += 1
            elif found.status != status:
                SESSION_FILES.update(tx, found.id, {"status": status})
                out.changed += 1
            else:
                out.unchanged += 1
        return out

    return await app.db.write(op)
