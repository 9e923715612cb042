-- Shadow-policy disagreements are audit records of their own kind. SQLite
-- cannot alter a CHECK constraint, so the table is rebuilt.
CREATE TABLE audit_records_new (
    id          TEXT PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('decision', 'change', 'shadow')),
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
INSERT INTO audit_records_new SELECT * FROM audit_records;
DROP TABLE audit_records;
ALTER TABLE audit_records_new RENAME TO audit_records;
CREATE INDEX audit_records_at ON audit_records (at_us, id);
CREATE INDEX audit_records_subject_at ON audit_records (subject, at_us);
CREATE INDEX audit_records_backend_at ON audit_records (backend, at_us);
CREATE INDEX audit_records_agent_at ON audit_records (agent, at_us);
CREATE INDEX audit_records_object_at ON audit_records (object_kind, object_name, at_us);
