-- Tool integrity: the definitions backends list (tools, prompts, resource
-- templates), which of them an administrator approved or rejected, and the
-- audit records of both. Bodies are TEXT, not JSONB: a body is the exact
-- canonical encoding its hash was computed over (JSONB would reorder it).

-- Every definition ever seen, once per hash: a definition is announced
-- (log line, metric, audit record) by the one replica whose insert wins.
CREATE TABLE tool_definitions (
    backend       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('tool', 'prompt', 'resource_template')),
    name          TEXT NOT NULL,
    hash          TEXT NOT NULL,
    body          TEXT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    PRIMARY KEY (backend, kind, name, hash)
);

-- One row per item: the approved and rejected definition ('' for none) and
-- the one last seen.
CREATE TABLE tool_pins (
    backend       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('tool', 'prompt', 'resource_template')),
    name          TEXT NOT NULL,
    approved_hash TEXT NOT NULL DEFAULT '',
    approved_us   BIGINT NOT NULL DEFAULT 0,
    approved_by   TEXT NOT NULL DEFAULT '',
    rejected_hash TEXT NOT NULL DEFAULT '',
    current_hash  TEXT NOT NULL,
    current_us    BIGINT NOT NULL,
    PRIMARY KEY (backend, kind, name)
);

-- One row: bumped by every approval or rejection, so replicas polling it
-- drop what they remember of the pins.
CREATE TABLE pin_revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO pin_revision (id, value) VALUES (1, 0);

ALTER TABLE audit_records DROP CONSTRAINT IF EXISTS audit_records_kind_check;
ALTER TABLE audit_records ADD CONSTRAINT audit_records_kind_check CHECK (kind IN ('decision', 'change', 'shadow', 'tool_change'));
