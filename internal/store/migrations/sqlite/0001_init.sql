-- Agents, backends and the audit trail. Times are integer microseconds since
-- the Unix epoch (UTC) in both dialects, so ordering and keyset paging
-- behave the same everywhere.

-- One row: the revision every agent/backend change bumps.
CREATE TABLE store_revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO store_revision (id, value) VALUES (1, 0);

-- body is the config object as JSON keyed by its YAML names (configjson).
CREATE TABLE agents (
    name       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('config', 'admin')),
    version    INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE backends (
    name       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('config', 'admin')),
    version    INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE audit_records (
    id          TEXT PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('decision', 'change')),
    decision_id TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    agent       TEXT NOT NULL DEFAULT '',
    backend     TEXT NOT NULL DEFAULT '',
    method      TEXT NOT NULL DEFAULT '',
    tool        TEXT NOT NULL DEFAULT '',
    allow       BOOLEAN NOT NULL,
    reasons     TEXT,
    revision    TEXT NOT NULL DEFAULT '',
    latency_ms  REAL NOT NULL DEFAULT 0,
    eval_us     INTEGER NOT NULL DEFAULT 0,
    source      TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL DEFAULT '',
    object_kind TEXT NOT NULL DEFAULT '',
    object_name TEXT NOT NULL DEFAULT '',
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_records_at ON audit_records (at_us, id);
CREATE INDEX audit_records_subject_at ON audit_records (subject, at_us);
CREATE INDEX audit_records_backend_at ON audit_records (backend, at_us);
CREATE INDEX audit_records_agent_at ON audit_records (agent, at_us);
CREATE INDEX audit_records_object_at ON audit_records (object_kind, object_name, at_us);
