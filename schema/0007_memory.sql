-- Memory: what agents and people know and leave behind (issue 16).
--
-- documents: one table for every kind of text (context items, research, knowledge, notes,
-- artifacts, stage prompts/results/thinking, episodes, agent/instruction/skill files, build
-- scripts, code chunks, screenshots), scoped to a project and optionally a plan, phase, task or
-- session (a document scoped below a plan also carries the plan: archiving the plan archives
-- it); kind-specific fields in `metadata`, typed per kind by the daemon. A file read from a
-- repository (`origin = 'repo'`) carries its path inside the project.
--
-- One FTS5 index over title and content of the documents that are not archived (its content
-- is the view documents_live, so `rebuild` — db.repair — builds exactly that), kept in sync by
-- triggers through insert, update, delete and archive/unarchive.
--
-- document_vectors: an embedding a client stored for a document (float32, little-endian),
-- kept apart from the row: a BLOB cannot travel in the row's JSON, and most rows have none.
--
-- agents (registry and liveness), lineage (hand-offs), checkpoints (restorable snapshots),
-- continue_points (where work stopped), metrics (time series), session_files (a session's
-- included and excluded files).

CREATE TABLE documents (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
                substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
                '-' || lower(hex(randomblob(6)))),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    kind        TEXT NOT NULL CHECK (kind IN ('context', 'research', 'knowledge', 'note',
                'artifact', 'stage', 'episode', 'agent', 'instruction', 'skill',
                'build_script', 'code_chunk', 'screenshot')),
    type        TEXT CHECK (length(type) BETWEEN 1 AND 64),
    project_id  INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    plan_id     INTEGER REFERENCES plans (id) ON DELETE CASCADE,
    phase_id    INTEGER REFERENCES phases (id) ON DELETE CASCADE,
    task_id     INTEGER REFERENCES tasks (id) ON DELETE CASCADE,
    session_id  INTEGER REFERENCES sessions (id) ON DELETE SET NULL,
    agent       TEXT CHECK (length(agent) BETWEEN 1 AND 200),
    origin      TEXT NOT NULL DEFAULT 'stored' CHECK (origin IN ('stored', 'repo')),
    path        TEXT CHECK (length(path) BETWEEN 1 AND 4096),
    tags        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    archived    INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    title       TEXT NOT NULL CHECK (length(title) <= 1000),
    metadata    TEXT NOT NULL DEFAULT '{}'
                CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    -- Last: what a filter reads (kind, scope, tags…) stays on the row's first page, ahead of
    -- a body that spills into overflow pages.
    content     TEXT NOT NULL,
    CHECK (origin = 'stored' OR (project_id IS NOT NULL AND path IS NOT NULL)),
    CHECK (phase_id IS NULL OR plan_id IS NOT NULL)
);

CREATE INDEX documents_project_kind ON documents (project_id, kind, id);
CREATE INDEX documents_kind ON documents (kind, id);
CREATE INDEX documents_repo_path ON documents (project_id, path) WHERE path IS NOT NULL;
CREATE INDEX documents_plan ON documents (plan_id) WHERE plan_id IS NOT NULL;
CREATE INDEX documents_phase ON documents (phase_id) WHERE phase_id IS NOT NULL;
CREATE INDEX documents_task ON documents (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX documents_session ON documents (session_id) WHERE session_id IS NOT NULL;

CREATE VIEW documents_live AS SELECT id, title, content FROM documents WHERE archived = 0;

CREATE VIRTUAL TABLE documents_fts USING fts5 (
    title, content,
    content = 'documents_live', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
-- `ORDER BY rank` is bm25 with a title match worth five of the body's.
INSERT INTO documents_fts (documents_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0)');

CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents WHEN NEW.archived = 0 BEGIN
    INSERT INTO documents_fts (rowid, title, content) VALUES (NEW.id, NEW.title, NEW.content);
END;
CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents WHEN OLD.archived = 0 BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, content)
    VALUES ('delete', OLD.id, OLD.title, OLD.content);
END;
-- One trigger, its two statements in this order (two triggers on one event would fire in
-- reverse order of creation: the new text indexed before the old was taken out).
CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, content, archived ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, content)
    SELECT 'delete', OLD.id, OLD.title, OLD.content WHERE OLD.archived = 0;
    INSERT INTO documents_fts (rowid, title, content)
    SELECT NEW.id, NEW.title, NEW.content WHERE NEW.archived = 0;
END;

-- Perpetua's stage prompt, result and thinking, kept on phases until now, become documents.
INSERT INTO documents (created_at, updated_at, kind, type, title, content, project_id, plan_id,
                       phase_id, metadata, archived)
SELECT ph.created_at, ph.updated_at, 'stage', part.name,
       ph.title || ' (' || part.name || ')', part.text, pl.project_id, ph.plan_id, ph.id,
       json_object('stage', ph.kind), ph.archived
FROM phases AS ph JOIN plans AS pl ON pl.id = ph.plan_id
JOIN (SELECT id, 'prompt' AS name, prompt AS text FROM phases WHERE prompt IS NOT NULL
      UNION ALL SELECT id, 'result', result FROM phases WHERE result IS NOT NULL
      UNION ALL SELECT id, 'thinking', thinking FROM phases WHERE thinking IS NOT NULL
     ) AS part ON part.id = ph.id;

CREATE TABLE document_vectors (
    document_id INTEGER PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    dims        INTEGER NOT NULL CHECK (dims BETWEEN 1 AND 8192),
    vector      BLOB NOT NULL CHECK (typeof(vector) = 'blob' AND length(vector) = 4 * dims),
    model       TEXT CHECK (length(model) BETWEEN 1 AND 200),
    updated_at  TEXT NOT NULL
);
CREATE INDEX document_vectors_dims ON document_vectors (dims);

CREATE TABLE agents (
    id                 INTEGER PRIMARY KEY,
    uid                TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                       lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                       '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                       substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    version            INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    name               TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    type               TEXT NOT NULL DEFAULT 'coder' CHECK (length(type) BETWEEN 1 AND 64),
    status             TEXT NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'assigned',
                       'working', 'paused', 'error', 'stale', 'terminated')),
    project_id         INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    model_provider     TEXT CHECK (length(model_provider) BETWEEN 1 AND 64),
    model_name         TEXT CHECK (length(model_name) BETWEEN 1 AND 200),
    temperature        REAL CHECK (temperature BETWEEN 0 AND 2),
    max_tokens         INTEGER CHECK (max_tokens >= 1),
    system_prompt      TEXT,
    tools              TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tools) AND json_type(tools) = 'array'),
    current_task_id    INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    worktree_path      TEXT,
    branch_name        TEXT,
    tokens_used        INTEGER NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    tasks_completed    INTEGER NOT NULL DEFAULT 0 CHECK (tasks_completed >= 0),
    tasks_failed       INTEGER NOT NULL DEFAULT 0 CHECK (tasks_failed >= 0),
    last_activity_at   TEXT,  -- NULL: none since it was registered (created_at)
    terminated_at      TEXT,
    termination_reason TEXT,
    CHECK ((status = 'terminated') = (terminated_at IS NOT NULL))
);
CREATE INDEX agents_project ON agents (project_id);
CREATE INDEX agents_task ON agents (current_task_id);
CREATE INDEX agents_status ON agents (status);

CREATE TABLE metrics (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
                substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
                '-' || lower(hex(randomblob(6)))),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id  INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    task_id     INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    session_id  INTEGER REFERENCES sessions (id) ON DELETE SET NULL,
    agent       TEXT CHECK (length(agent) BETWEEN 1 AND 200),
    type        TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    value       REAL NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}'
                CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    timestamp   TEXT  -- when it was measured (ISO 8601 UTC; the daemon fills in now)
);
CREATE INDEX metrics_project_type ON metrics (project_id, type, timestamp);
CREATE INDEX metrics_type ON metrics (type, timestamp);
CREATE INDEX metrics_agent ON metrics (agent, type, timestamp) WHERE agent IS NOT NULL;
CREATE INDEX metrics_task ON metrics (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX metrics_session ON metrics (session_id, type) WHERE session_id IS NOT NULL;

CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
                substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
                '-' || lower(hex(randomblob(6)))),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    reason      TEXT CHECK (length(reason) <= 2000),
    kind        TEXT NOT NULL DEFAULT 'manual' CHECK (kind IN ('manual', 'safety')),
    state       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(state) AND json_type(state) = 'object'),
    git_commit  TEXT CHECK (length(git_commit) BETWEEN 4 AND 64),
    git_branch  TEXT,
    agent       TEXT CHECK (length(agent) BETWEEN 1 AND 200)
);
CREATE INDEX checkpoints_project ON checkpoints (project_id, id);

CREATE TABLE continue_points (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                    lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                    '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id         INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    plan_id         INTEGER REFERENCES plans (id) ON DELETE SET NULL,
    session_id      INTEGER REFERENCES sessions (id) ON DELETE SET NULL,
    last_action     TEXT NOT NULL CHECK (length(last_action) BETWEEN 1 AND 10000),
    file            TEXT CHECK (length(file) BETWEEN 1 AND 4096),
    line            INTEGER CHECK (line >= 1),
    function_name   TEXT CHECK (length(function_name) <= 1000),
    next_steps      TEXT NOT NULL DEFAULT '[]'
                    CHECK (json_valid(next_steps) AND json_type(next_steps) = 'array'),
    agent           TEXT CHECK (length(agent) BETWEEN 1 AND 200),
    iteration_count INTEGER NOT NULL DEFAULT 0 CHECK (iteration_count >= 0)
);
CREATE INDEX continue_points_project ON continue_points (project_id, id);
CREATE INDEX continue_points_task ON continue_points (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX continue_points_plan ON continue_points (plan_id) WHERE plan_id IS NOT NULL;
CREATE INDEX continue_points_session ON continue_points (session_id) WHERE session_id IS NOT NULL;

-- Hand-offs between agents (Project Memory's lineage), within a plan or a session; archived
-- with its plan.
CREATE TABLE lineage (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
                substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
                '-' || lower(hex(randomblob(6)))),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    plan_id     INTEGER REFERENCES plans (id) ON DELETE CASCADE,
    session_id  INTEGER REFERENCES sessions (id) ON DELETE SET NULL,
    task_id     INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    from_agent  TEXT CHECK (length(from_agent) BETWEEN 1 AND 200),
    to_agent    TEXT NOT NULL CHECK (length(to_agent) BETWEEN 1 AND 200),
    reason      TEXT CHECK (length(reason) <= 10000),
    summary     TEXT CHECK (length(summary) <= 100000),
    data        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data) AND json_type(data) = 'object'),
    archived    INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1))
);
CREATE INDEX lineage_project ON lineage (project_id, id);
CREATE INDEX lineage_plan ON lineage (plan_id, id) WHERE plan_id IS NOT NULL;
CREATE INDEX lineage_session ON lineage (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX lineage_task ON lineage (task_id) WHERE task_id IS NOT NULL;

-- A session's included and excluded files (the fifth document's included_files/excluded_files).
CREATE TABLE session_files (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
                substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
                '-' || lower(hex(randomblob(6)))),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    session_id  INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    path        TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 4096),
    status      TEXT NOT NULL DEFAULT 'included' CHECK (status IN ('included', 'excluded')),
    UNIQUE (session_id, path)
);
