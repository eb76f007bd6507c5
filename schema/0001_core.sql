-- The change log and the key-value store: the first domain, end to end.

-- Append-only, sequence-numbered log of every change. `seq` never goes backwards and is never
-- reused (AUTOINCREMENT), so a client that reconnects with `since` misses nothing still here.
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    ts    TEXT NOT NULL,
    topic TEXT NOT NULL CHECK (length(topic) > 0),
    type  TEXT NOT NULL CHECK (type LIKE topic || '.%'),
    data  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data))
);

CREATE INDEX events_topic_seq ON events (topic, seq);

CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Namespaced key-value store with optional expiry (key_value_store and cached_state).
CREATE TABLE kv (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT NOT NULL CHECK (length(namespace) BETWEEN 1 AND 256),
    key        TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),
    value      TEXT NOT NULL CHECK (json_valid(value)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    UNIQUE (namespace, key)
);

CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;
