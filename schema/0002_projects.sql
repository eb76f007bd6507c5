-- Projects: every column of the PM Agent document, what discovery learns, and which fields
-- the user set by hand (a rescan never overwrites those).

CREATE TABLE projects (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL CHECK (length(name) > 0),
    path            TEXT NOT NULL UNIQUE,
    description     TEXT,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'on-hold', 'archived')),
    origin_type     TEXT CHECK (origin_type IN ('created', 'forked', 'cloned')),
    ownership       TEXT CHECK (ownership IN ('mine', 'customized-fork', 'exploring')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_worked_on  TEXT,
    repository_url  TEXT,
    deployed_url    TEXT,
    -- how it came to be known, and where
    source          TEXT NOT NULL DEFAULT 'discovered'
                    CHECK (source IN ('discovered', 'registered')),
    root            TEXT,
    -- what discovery learns
    vcs             TEXT NOT NULL DEFAULT 'none' CHECK (vcs IN ('git', 'none')),
    git_kind        TEXT CHECK (git_kind IN ('worktree', 'linked-worktree', 'bare')),
    git_common_dir  TEXT,
    branch          TEXT,
    head_sha        TEXT,
    detached        INTEGER NOT NULL DEFAULT 0 CHECK (detached IN (0, 1)),
    default_branch  TEXT,
    remotes         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(remotes)),
    languages       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(languages)),
    manifests       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(manifests)),
    archived_marker INTEGER NOT NULL DEFAULT 0 CHECK (archived_marker IN (0, 1)),
    worktree_of     INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    -- recognising it after a move or a return
    identity        TEXT,
    device          INTEGER,
    inode           INTEGER,
    present         INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    missing_since   TEXT,
    -- the last look at it
    scanned_at      TEXT,
    scan_error      TEXT,
    fingerprint     TEXT,
    user_set        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(user_set)),
    CHECK ((present = 1) = (missing_since IS NULL))
);

CREATE INDEX projects_status ON projects (status);
CREATE INDEX projects_last_worked ON projects (last_worked_on DESC);
CREATE INDEX projects_name ON projects (name);
CREATE INDEX projects_identity ON projects (identity);
CREATE INDEX projects_inode ON projects (device, inode);
CREATE INDEX projects_worktree_of ON projects (worktree_of);
CREATE INDEX projects_common_dir ON projects (git_common_dir);

-- Folders the user asked pm-agent to forget while they still exist: discovery skips them.
CREATE TABLE ignored_paths (
    path       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
