-- Every domain row has a uid (a UUIDv7: export, merge and sync between machines, where integer
-- ids collide), created_at, updated_at and a version bumped by every update.
--
-- Added in place (a table rebuild would cascade through the foreign keys): a uid column filled
-- for existing rows with a UUIDv7 of their creation time (uuid7_at: a function the migration
-- runner provides), then unique. The daemon gives every row it inserts a UUIDv7; a row another
-- tool inserts without one (`sqlite3` by hand) gets a random UUIDv4 from a trigger.

ALTER TABLE kv ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE kv ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE projects ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE jobs ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE quality_metrics ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE quality_metrics ADD COLUMN created_at TEXT NOT NULL DEFAULT '';
ALTER TABLE quality_metrics ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
ALTER TABLE quality_metrics ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);

UPDATE quality_metrics SET created_at = calculated_at, updated_at = calculated_at;

-- A 0.1 scan stored an origin URL of any length; a project row now holds at most 2048
-- characters there (the URL stays in `remotes`).
UPDATE projects SET repository_url = NULL WHERE length(repository_url) > 2048;

UPDATE kv SET uid = uuid7_at(created_at);
UPDATE projects SET uid = uuid7_at(created_at);
UPDATE jobs SET uid = uuid7_at(created_at);
UPDATE quality_metrics SET uid = uuid7_at(created_at);

CREATE UNIQUE INDEX kv_uid ON kv (uid);
CREATE UNIQUE INDEX projects_uid ON projects (uid);
CREATE UNIQUE INDEX jobs_uid ON jobs (uid);
CREATE UNIQUE INDEX quality_metrics_uid ON quality_metrics (uid);

CREATE TRIGGER kv_uid AFTER INSERT ON kv WHEN NEW.uid = ''
BEGIN UPDATE kv SET uid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE id = NEW.id; END;
CREATE TRIGGER projects_uid AFTER INSERT ON projects WHEN NEW.uid = ''
BEGIN UPDATE projects SET uid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE id = NEW.id; END;
CREATE TRIGGER jobs_uid AFTER INSERT ON jobs WHEN NEW.uid = ''
BEGIN UPDATE jobs SET uid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE id = NEW.id; END;
CREATE TRIGGER quality_metrics_uid AFTER INSERT ON quality_metrics WHEN NEW.uid = ''
BEGIN UPDATE quality_metrics SET uid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE id = NEW.id; END;
CREATE TRIGGER quality_metrics_times AFTER INSERT ON quality_metrics WHEN NEW.created_at = ''
BEGIN UPDATE quality_metrics SET created_at = NEW.calculated_at, updated_at = NEW.calculated_at
    WHERE id = NEW.id; END;
