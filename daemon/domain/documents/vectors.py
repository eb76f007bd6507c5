"""Embeddings a client stores with any document, and `documents.similar`: the nearest
documents by cosine similarity.

The daemon computes no embedding (that is the client's model); it keeps each as float32
(little-endian) in document_vectors and compares a query with every stored vector of the same
dimension in the filtered set, a few thousand at a time so memory stays bounded. numpy does
the arithmetic when it is installed (one matrix product per block, hundreds of times faster
than Python's loops); without it a pure-Python loop gives the same answers, slower.
"""

from __future__ import annotations

import array
import heapq
import math
import sqlite3
import sys
from collections.abc import Iterable
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Id
from daemon.domain.projects.ref import ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, NotFound
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.table import Where

from .model import DOCUMENTS, Kind

methods = Methods()

MAX_DIMS = 8192
BLOCK = 4096  # vectors compared per step
Vector = Annotated[list[float], msgspec.Meta(min_length=1, max_length=MAX_DIMS)]
Model = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def pack(values: list[float]) -> bytes:
    packed = array.array("f", values)
    if not all(math.isfinite(v) for v in packed):  # 1e39 is a JSON number, but not a float32
        raise InvalidParams(
            "Invalid params: an embedding holds a value that is not a finite float32",
            field="embedding",
        )
    if sys.byteorder == "big":
        packed.byteswap()
    if not any(packed):
        raise InvalidParams(
            "Invalid params: an embedding of zeros has no direction", field="embedding"
        )
    return packed.tobytes()


def unpack(blob: bytes) -> array.array[float]:
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values


class EmbedParams(Params, frozen=True):
    id: Id
    embedding: Vector | None  # null removes it
    model: Model | None = None


class Embedded(msgspec.Struct, kw_only=True):
    id: int
    dims: int | None
    model: str | None


@methods("documents.embed")
async def embed(app: App, call: Call, p: EmbedParams) -> Embedded:
    """Store (or with null remove) a document's embedding: float32, up to 8,192 dimensions,
    from the client's own model (named in `model`); documents.similar compares them."""
    blob = pack(p.embedding) if p.embedding is not None else None

    def op(tx: Tx) -> Embedded:
        DOCUMENTS.must_get(tx.conn, p.id)
        if blob is None:
            tx.conn.execute("DELETE FROM document_vectors WHERE document_id = ?", (p.id,))
            return Embedded(id=p.id, dims=None, model=None)
        dims = len(blob) // 4
        tx.conn.execute(
            "INSERT INTO document_vectors (document_id, dims, vector, model, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (document_id) DO UPDATE SET dims = excluded.dims, "
            "vector = excluded.vector, model = excluded.model, updated_at = excluded.updated_at",
            (p.id, dims, blob, p.model, tx.now),
        )
        return Embedded(id=p.id, dims=dims, model=p.model)

    return await app.db.write(op)


class SimilarParams(Params, frozen=True):
    id: Id | None = None  # the document whose embedding is the query…
    embedding: Vector | None = None  # …or the query itself
    kind: Kind | list[Kind] | None = None
    project: ProjectRef | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    min_score: Annotated[float, msgspec.Meta(ge=-1, le=1)] | None = None


class Neighbour(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    title: str
    path: str | None
    project_id: int | None
    score: float  # cosine similarity, 1 = the same direction


class Neighbours(msgspec.Struct, kw_only=True):
    dims: int
    compared: int  # vectors of that dimension in the filtered set
    items: list[Neighbour]  # nearest first


def _query_vector(conn: sqlite3.Connection, doc_id: int) -> bytes:
    row = conn.execute(
        "SELECT vector FROM document_vectors WHERE document_id = ?", (doc_id,)
    ).fetchone()
    if row is None:
        raise NotFound(
            f"document {doc_id} has no embedding (documents.embed stores one)", id=doc_id
        )
    return bytes(row[0])


def _scores(query: bytes, blobs: list[bytes]) -> list[float]:
    try:
        import numpy as np  # noqa: PLC0415 - optional, and ~100 ms to import: only when asked
    except ImportError:
        q = unpack(query)
        q_norm = math.sqrt(sum(x * x for x in q))
        out = []
        for blob in blobs:
            v = unpack(blob)
            norm = math.sqrt(sum(x * x for x in v))
            out.append(
                sum(a * b for a, b in zip(q, v, strict=True)) / (q_norm * norm) if norm else 0.0
            )
        return out
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
    q_vec = np.frombuffer(query, dtype="<f4")
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(q_vec))
    dots = matrix @ q_vec
    return [float(s) for s in np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)]


def nearest(
    conn: sqlite3.Connection, query: bytes, where: Where, exclude: int | None, limit: int,
    min_score: float | None,
) -> Neighbours:  # fmt: skip
    dims = len(query) // 4
    sql, args = where.sql("v.dims = ?", dims).render()
    cursor = conn.execute(
        f"SELECT t.id, v.vector FROM document_vectors AS v JOIN documents AS t "
        f"ON t.id = v.document_id{sql}",
        args,
    )
    best: list[tuple[float, int]] = []
    compared = 0
    for block in _blocks(cursor):
        ids = [row_id for row_id, _ in block]
        scores = _scores(query, [blob for _, blob in block])
        compared += len(block)
        for row_id, score in zip(ids, scores, strict=True):
            if row_id == exclude or (min_score is not None and score < min_score):
                continue
            heapq.heappush(best, (score, -row_id))
            if len(best) > limit:
                heapq.heappop(best)
    ranked = sorted(best, reverse=True)
    items = []
    for score, negative_id in ranked:
        doc = DOCUMENTS.must_get(conn, -negative_id)
        items.append(
            Neighbour(id=doc.id, kind=doc.kind, title=doc.title, path=doc.path,
                      project_id=doc.project_id, score=round(score, 6))
        )  # fmt: skip
    return Neighbours(dims=dims, compared=compared, items=items)


def _blocks(cursor: sqlite3.Cursor) -> Iterable[list[tuple[int, bytes]]]:
    try:
        while True:
            rows = cursor.fetchmany(BLOCK)
            if not rows:
                return
            yield [(int(r[0]), bytes(r[1])) for r in rows]
    finally:
        cursor.close()


@methods("documents.similar")
async def similar(app: App, call: Call, p: SimilarParams) -> Neighbours:
    """The documents nearest to a document's embedding (`id`) or to a given `embedding`, by
    cosine similarity, among those with an embedding of the same dimension; filtered by kind
    and project; archived documents are left out."""
    if (p.id is None) == (p.embedding is None):
        raise InvalidParams("Invalid params: give id or embedding (one of them)", field="id")
    query = pack(p.embedding) if p.embedding is not None else await app.db.read(_query_vector, p.id)
    where = Where(DOCUMENTS).eq("archived", False)
    if p.kind is not None:
        where.eq("kind", [p.kind] if isinstance(p.kind, str) else list(p.kind))
    if p.project is not None:
        where.eq("project_id", await project_id(app, p.project))
    result: Neighbours = await app.db.read(nearest, query, where, p.id, p.limit, p.min_score)
    return result
