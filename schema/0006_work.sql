-- Work: programs, plans, phases, tasks, dependencies, sessions, features, requirements (issue 15),
-- and the project fields Nexus and Project Memory keep that the projects table lacked.
--
-- One table of tasks holds Project Memory's steps (a task in a phase, ordered), PM Agent's todos
-- (a task in no plan) and Nexus' tasks; a subtask has a parent. Perpetua's journey is a plan
-- (kind 'journey') whose phases are its stages (phase kind = the stage type).
--
-- Derived state, kept current by the daemon in the same transaction as the change causing it:
--   tasks.blocked       a `blocks` dependency of the task, its phase, its plan or an ancestor task
--                       points at a plan/phase/task that is not completed or cancelled, or its
--                       parent task is blocked;
--   tasks.open_subtasks how many of its subtasks are not completed or cancelled;
--   tasks.unblocks      how many `blocks` dependencies point at it (urgency: what finishing it
--                       releases);
--   phases.status       from its tasks, when it has any; plans.status 'completed' when every
--                       task is, back to 'active' when one opens again;
--   features.completed_tasks.
-- Archiving a plan sets `archived` on it and on every phase, task, session and dependency of it,
-- in one transaction; the hot queries read partial indexes over `archived = 0` rows only, so
-- archived rows cost them nothing (bench/work.py measures it), and unarchiving changes no field
-- of any child row.

-- --- projects: Nexus' mode/settings/completed_at/lifecycle, Project Memory's parent workspace --
ALTER TABLE projects ADD COLUMN mode TEXT CHECK (mode IN ('genesis', 'evolution'));
ALTER TABLE projects ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(settings) AND json_type(settings) = 'object');
ALTER TABLE projects ADD COLUMN completed_at TEXT;
ALTER TABLE projects ADD COLUMN lifecycle TEXT
    CHECK (lifecycle IN ('created', 'planning', 'in_progress', 'paused', 'completed', 'failed'));
ALTER TABLE projects ADD COLUMN parent_id INTEGER REFERENCES projects (id) ON DELETE SET NULL;
CREATE INDEX projects_parent ON projects (parent_id);

-- --- programs: plans grouped, visible across projects --------------------------------------------
CREATE TABLE programs (
    id               INTEGER PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                     lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                     '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                     substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title            TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 1000),
    description      TEXT NOT NULL DEFAULT '',
    category         TEXT NOT NULL DEFAULT 'feature' CHECK (category IN
                     ('feature', 'bugfix', 'refactor', 'orchestration', 'quick_task', 'advisory')),
    priority         TEXT NOT NULL DEFAULT 'medium'
                     CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    status           TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
    goals            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(goals)),
    success_criteria TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(success_criteria))
);
CREATE INDEX programs_project ON programs (project_id);

-- A program seen from other projects than its own (Project Memory's program_workspace_links).
CREATE TABLE program_projects (
    id         INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
               lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
               '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
               substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    program_id INTEGER NOT NULL REFERENCES programs (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    linked_by  TEXT,
    UNIQUE (program_id, project_id)
);
CREATE INDEX program_projects_project ON program_projects (project_id);

-- --- plans ----------------------------------------------------------------------------------
CREATE TABLE plans (
    id               INTEGER PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                     lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                     '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                     substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    program_id       INTEGER REFERENCES programs (id) ON DELETE SET NULL,
    kind             TEXT NOT NULL DEFAULT 'plan' CHECK (kind IN ('plan', 'journey')),
    title            TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 1000),
    description      TEXT NOT NULL DEFAULT '',
    category         TEXT NOT NULL DEFAULT 'feature' CHECK (category IN
                     ('feature', 'bugfix', 'refactor', 'orchestration', 'quick_task', 'advisory')),
    priority         TEXT NOT NULL DEFAULT 'medium'
                     CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN
                     ('active', 'paused', 'blocked', 'completed', 'failed', 'cancelled')),
    goals            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(goals)),
    success_criteria TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(success_criteria)),
    settings         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    completed_at     TEXT,
    archived         INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    archived_at      TEXT,
    CHECK ((archived = 1) = (archived_at IS NOT NULL))
);
CREATE INDEX plans_project ON plans (project_id, archived);
CREATE INDEX plans_program ON plans (program_id);

-- --- phases (Perpetua's stages: kind, prompt, result, thinking) -----------------------------
CREATE TABLE phases (
    id           INTEGER PRIMARY KEY,
    uid          TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                 lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                 '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                 substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    plan_id      INTEGER NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 1000),
    description  TEXT NOT NULL DEFAULT '',
    position     INTEGER NOT NULL CHECK (position >= 0),
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                 ('pending', 'in_progress', 'in_review', 'blocked', 'completed', 'failed',
                  'cancelled')),
    kind         TEXT CHECK (kind IN ('discovering', 'chasing', 'solving', 'challenging',
                 'questioning', 'searching', 'imagining', 'building')),
    prompt       TEXT,
    result       TEXT,
    thinking     TEXT,
    completed_at TEXT,
    archived     INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    UNIQUE (plan_id, position)
);

-- --- sessions (PM Agent development_sessions, Project Memory, Nexus, the fifth document) --------
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                     lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                     '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                     substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    plan_id          INTEGER REFERENCES plans (id) ON DELETE SET NULL,
    kind             TEXT NOT NULL DEFAULT 'development' CHECK (kind IN
                     ('development', 'agent', 'interview', 'planning', 'execution')),
    status           TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
    external_id      TEXT UNIQUE,
    agent            TEXT,
    task_description TEXT,
    settings         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    data             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    goals            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(goals)),
    accomplishments  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(accomplishments)),
    blockers         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(blockers)),
    artifacts        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(artifacts)),
    summary          TEXT,
    tokens_used      INTEGER CHECK (tokens_used >= 0),
    duration_minutes INTEGER CHECK (duration_minutes >= 0),
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    archived         INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1))
);
CREATE INDEX sessions_project ON sessions (project_id, started_at);
CREATE INDEX sessions_plan ON sessions (plan_id);

-- --- features (PM Agent + Nexus; a sub-feature has a parent) ------------------------------------
CREATE TABLE features (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                    lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                    '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    parent_id       INTEGER REFERENCES features (id) ON DELETE CASCADE,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 1000),
    description     TEXT,
    status          TEXT NOT NULL DEFAULT 'backlog' CHECK (status IN
                    ('backlog', 'planned', 'in_progress', 'blocked', 'completed', 'cancelled')),
    priority        TEXT NOT NULL DEFAULT 'should'
                    CHECK (priority IN ('must', 'should', 'could', 'wont')),
    complexity      TEXT NOT NULL DEFAULT 'simple' CHECK (complexity IN ('simple', 'complex')),
    estimated_tasks INTEGER NOT NULL DEFAULT 0 CHECK (estimated_tasks >= 0),
    completed_tasks INTEGER NOT NULL DEFAULT 0 CHECK (completed_tasks >= 0),
    estimated_hours REAL CHECK (estimated_hours >= 0),
    actual_hours    REAL CHECK (actual_hours >= 0),
    completed_at    TEXT
);
CREATE INDEX features_project ON features (project_id, status);
CREATE INDEX features_parent ON features (parent_id);

-- --- requirements (Nexus) ----------------------------------------------------------------------
CREATE TABLE requirements (
    id                  INTEGER PRIMARY KEY,
    uid                 TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                        lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                        '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                        substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    version             INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id          INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    category            TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 200),
    description         TEXT NOT NULL CHECK (length(description) >= 1),
    priority            TEXT NOT NULL DEFAULT 'medium'
                        CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    source              TEXT,
    user_stories        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(user_stories)),
    acceptance_criteria TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(acceptance_criteria)),
    linked_features     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(linked_features)),
    validated           INTEGER NOT NULL DEFAULT 0 CHECK (validated IN (0, 1)),
    confidence          REAL NOT NULL DEFAULT 1.0 CHECK (confidence BETWEEN 0 AND 1),
    tags                TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags))
);
CREATE INDEX requirements_project ON requirements (project_id);

-- --- tasks: steps, todos, Nexus tasks ------------------------------------------------------------
CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY,
    uid               TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
                      lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
                      '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
                      substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- where it belongs (a todo: a project and no plan; a step: a phase of a plan)
    project_id        INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    plan_id           INTEGER REFERENCES plans (id) ON DELETE CASCADE,
    phase_id          INTEGER REFERENCES phases (id) ON DELETE CASCADE,
    parent_id         INTEGER REFERENCES tasks (id) ON DELETE CASCADE,
    position          INTEGER CHECK (position >= 0),
    feature_id        INTEGER REFERENCES features (id) ON DELETE SET NULL,
    session_id        INTEGER REFERENCES sessions (id) ON DELETE SET NULL,
    -- what it is
    title             TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 1000),
    active_form       TEXT,
    description       TEXT,
    type              TEXT NOT NULL DEFAULT 'auto' CHECK (type IN ('auto', 'checkpoint', 'tdd')),
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                      ('pending', 'in_progress', 'in_review', 'blocked', 'completed', 'failed',
                       'cancelled')),
    blocked_reason    TEXT,
    priority          INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 9),
    size              TEXT CHECK (size IN ('atomic', 'small', 'medium', 'large')),
    tags              TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    notes             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(notes)),
    assigned_agent    TEXT,
    worktree_path     TEXT,
    branch_name       TEXT,
    qa_iterations     INTEGER NOT NULL DEFAULT 0 CHECK (qa_iterations >= 0),
    max_iterations    INTEGER NOT NULL DEFAULT 50 CHECK (max_iterations >= 0),
    estimated_minutes INTEGER CHECK (estimated_minutes >= 0),
    actual_minutes    INTEGER CHECK (actual_minutes >= 0),
    due_at            TEXT,
    defer_until       TEXT,
    started_at        TEXT,
    completed_at      TEXT,
    completed_by      TEXT,
    completed_branch  TEXT,
    completed_head    TEXT,
    -- the claim: a lease an agent holds and renews
    claimed_by        TEXT,
    claimed_at        TEXT,
    lease_s           INTEGER CHECK (lease_s > 0),
    lease_until       TEXT,
    reclaims          INTEGER NOT NULL DEFAULT 0 CHECK (reclaims >= 0),
    -- derived (see the top of this file)
    blocked           INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    open_subtasks     INTEGER NOT NULL DEFAULT 0 CHECK (open_subtasks >= 0),
    unblocks          INTEGER NOT NULL DEFAULT 0 CHECK (unblocks >= 0),
    archived          INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    CHECK (phase_id IS NULL OR plan_id IS NOT NULL),
    CHECK ((position IS NULL) = (phase_id IS NULL AND parent_id IS NULL)),
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL)),
    CHECK (parent_id IS NULL OR parent_id != id)
);
CREATE INDEX tasks_project ON tasks (project_id);
CREATE INDEX tasks_plan ON tasks (plan_id);
CREATE INDEX tasks_phase ON tasks (phase_id);
CREATE INDEX tasks_parent ON tasks (parent_id);
CREATE INDEX tasks_feature ON tasks (feature_id);
CREATE INDEX tasks_session ON tasks (session_id);
-- dense 0-based order: top-level steps within a phase, subtasks within their parent
CREATE UNIQUE INDEX tasks_phase_position ON tasks (phase_id, position)
    WHERE parent_id IS NULL AND phase_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_parent_position ON tasks (parent_id, position) WHERE parent_id IS NOT NULL;
-- ready work, ranked: priority, then what finishing it releases, then age
CREATE INDEX tasks_ready ON tasks (priority, unblocks DESC, created_at, id)
    WHERE status = 'pending' AND blocked = 0 AND open_subtasks = 0 AND archived = 0;
CREATE INDEX tasks_ready_project ON tasks (project_id, priority, unblocks DESC, created_at, id)
    WHERE status = 'pending' AND blocked = 0 AND open_subtasks = 0 AND archived = 0;
-- ready work with a due date or a deferral: few, scored one by one
CREATE INDEX tasks_ready_due ON tasks (due_at)
    WHERE due_at IS NOT NULL AND status = 'pending' AND blocked = 0 AND open_subtasks = 0
      AND archived = 0;
CREATE INDEX tasks_deferred ON tasks (defer_until)
    WHERE defer_until IS NOT NULL AND status = 'pending' AND blocked = 0 AND open_subtasks = 0
      AND archived = 0;
-- a plan's next step: open top-level steps of a phase in order
CREATE INDEX tasks_phase_open ON tasks (phase_id, position)
    WHERE parent_id IS NULL AND phase_id IS NOT NULL AND archived = 0
      AND status NOT IN ('completed', 'cancelled');
CREATE INDEX tasks_parent_open ON tasks (parent_id, position)
    WHERE parent_id IS NOT NULL AND archived = 0 AND status NOT IN ('completed', 'cancelled');
-- claims whose lease runs out (the sweep, and ready work that an expired claim frees)
CREATE INDEX tasks_leases ON tasks (lease_until) WHERE lease_until IS NOT NULL;

-- --- dependencies: typed edges between plans, phases and tasks ("from depends on to") -------------
-- (An edge from a node to itself is a cycle, refused with the others by the daemon.)
CREATE TABLE dependencies (
    id         INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4))) || '-' ||
               lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) ||
               '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
               substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    from_type  TEXT NOT NULL CHECK (from_type IN ('plan', 'phase', 'task')),
    from_id    INTEGER NOT NULL,
    to_type    TEXT NOT NULL CHECK (to_type IN ('plan', 'phase', 'task')),
    to_id      INTEGER NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'blocks'
               CHECK (kind IN ('blocks', 'related', 'discovered_from', 'duplicates')),
    note       TEXT,
    archived   INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    UNIQUE (from_type, from_id, to_type, to_id, kind)
);
CREATE INDEX dependencies_to ON dependencies (to_type, to_id, kind);

-- An edge goes with either end (the ends are of three tables, so no foreign key can say it).
CREATE TRIGGER plans_dependencies AFTER DELETE ON plans BEGIN
    DELETE FROM dependencies WHERE from_type = 'plan' AND from_id = OLD.id;
    DELETE FROM dependencies WHERE to_type = 'plan' AND to_id = OLD.id;
END;
CREATE TRIGGER phases_dependencies AFTER DELETE ON phases BEGIN
    DELETE FROM dependencies WHERE from_type = 'phase' AND from_id = OLD.id;
    DELETE FROM dependencies WHERE to_type = 'phase' AND to_id = OLD.id;
END;
CREATE TRIGGER tasks_dependencies AFTER DELETE ON tasks BEGIN
    DELETE FROM dependencies WHERE from_type = 'task' AND from_id = OLD.id;
    DELETE FROM dependencies WHERE to_type = 'task' AND to_id = OLD.id;
END;

-- --- how many tasks are ready, per project (0: tasks in no project) -----------------------------
-- What tasks.ready's `total` reads instead of counting the partial index (34,000 ready tasks:
-- 2.4 ms). Kept by triggers, so every writer keeps it true: the daemon, an import (which sets
-- triggers aside and brings this table as exported), a tool writing by hand. Derived state,
-- not a domain row: no uid. (Added to 0006 before any database outside the tests had it.)
CREATE TABLE ready_counts (
    project_id INTEGER PRIMARY KEY,  -- the task's project, 0 for none (no foreign key: derived)
    ready      INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER tasks_ready_count_insert AFTER INSERT ON tasks
WHEN NEW.status = 'pending' AND NEW.blocked = 0 AND NEW.open_subtasks = 0 AND NEW.archived = 0
BEGIN
    INSERT INTO ready_counts (project_id, ready) VALUES (coalesce(NEW.project_id, 0), 1)
        ON CONFLICT (project_id) DO UPDATE SET ready = ready + 1;
END;
CREATE TRIGGER tasks_ready_count_delete AFTER DELETE ON tasks
WHEN OLD.status = 'pending' AND OLD.blocked = 0 AND OLD.open_subtasks = 0 AND OLD.archived = 0
BEGIN
    UPDATE ready_counts SET ready = ready - 1 WHERE project_id = coalesce(OLD.project_id, 0);
END;
CREATE TRIGGER tasks_ready_count_update
AFTER UPDATE OF status, blocked, open_subtasks, archived, project_id ON tasks
WHEN (OLD.status = 'pending' AND OLD.blocked = 0 AND OLD.open_subtasks = 0 AND OLD.archived = 0)
  OR (NEW.status = 'pending' AND NEW.blocked = 0 AND NEW.open_subtasks = 0 AND NEW.archived = 0)
BEGIN
    UPDATE ready_counts SET ready = ready - 1
        WHERE project_id = coalesce(OLD.project_id, 0) AND OLD.status = 'pending'
          AND OLD.blocked = 0 AND OLD.open_subtasks = 0 AND OLD.archived = 0;
    INSERT INTO ready_counts (project_id, ready)
        SELECT coalesce(NEW.project_id, 0), 1
        WHERE NEW.status = 'pending' AND NEW.blocked = 0 AND NEW.open_subtasks = 0
          AND NEW.archived = 0
        ON CONFLICT (project_id) DO UPDATE SET ready = ready + 1;
END;
