-- Jobs: the daemon's own runs (scans, maintenance, backups) and the jobs clients record for
-- themselves (an agent's API calls), with the background_jobs lifecycle.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),  -- task_type
    source       TEXT NOT NULL CHECK (source IN ('daemon', 'client')),
    status       TEXT NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled')),
    project_id   INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    session_id   TEXT,
    prompt       TEXT,
    response     TEXT,            -- small output inline …
    output_path  TEXT,            -- … a large one in a file under <data>/jobs/
    api_type     TEXT,
    model_used   TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    CHECK ((status IN ('completed', 'failed', 'canceled')) = (finished_at IS NOT NULL))
);

CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_kind ON jobs (kind, id DESC);
CREATE INDEX jobs_project ON jobs (project_id);
CREATE INDEX jobs_session ON jobs (session_id);
