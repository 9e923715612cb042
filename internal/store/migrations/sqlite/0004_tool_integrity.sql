-- Tool integrity: the definitions backends list (tools, prompts, resource
-- templates), which of them an administrator approved or rejected, and the
-- audit records of both. A body is the exact canonical encoding its hash
-- was computed over.

-- Every definition ever seen, once per hash: a definition is announced
-- (log line, metric, audit record) by the one writer whose insert wins.
CREATE TABLE tool_definitions (
    backend       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('tool', 'prompt', 'resource_template')),
    name          TEXT NOT NULL,
    hash          TEXT NOT NULL,
    body          TEXT NOT NULL,
    first_seen_us INTEGER NOT NULL,
    PRIMARY KEY (backend, kind, name, hash)
);

-- One row per item: the approved and rejected definition ('' for none) and
-- the one last seen.
CREATE TABLE tool_pins (
    backend       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('tool', 'prompt', 'resource_template')),
    name          TEXT NOT NULL,
    approved_hash TEXT NOT NULL DEFAULT '',
    approved_us   INTEGER NOT NULL DEFAULT 0,
    approved_by   TEXT NOT NULL DEFAULT '',
    rejected_hash TEXT NOT NULL DEFAULT '',
    current_hash  TEXT NOT NULL,
    current_us    INTEGER NOT NULL,
    PRIMARY KEY (backend, kind, name)
);

-- One row: bumped by every approval or rejection.
CREATE TABLE pin_revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO pin_revision (id, value) VALUES (1, 0);

-- Tool changes are audit records of their own kind. SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt, columns in 0003's order.
CREATE TABLE audit_records_new (
    id          TEXT PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('decision', 'change', 'shadow', 'tool_change')),
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
    after_json  TEXT,
    issuer      TEXT NOT NULL DEFAULT ''
);
INSERT INTO audit_records_new SELECT * FROM audit_records;
DROP TABLE audit_records;
ALTER TABLE audit_records_new RENAME TO audit_records;
CREATE INDEX audit_records_at ON audit_records (at_us, id);
CREATE INDEX audit_records_subject_at ON audit_records (subject, at_us);
CREATE INDEX audit_records_backend_at ON audit_records (backend, at_us);
CREATE INDEX audit_records_agent_at ON audit_records (agent, at_us);
CREATE INDEX audit_records_object_at ON audit_records (object_kind, object_name, at_us);
CREATE INDEX audit_records_issuer_subject_at ON audit_records (issuer, subject, at_us);
