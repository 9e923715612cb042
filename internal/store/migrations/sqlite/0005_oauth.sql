-- The OAuth 2.1 authorization server facade (issue 11): registered clients,
-- authorization requests between /authorize and the IdP's callback,
-- authorization codes, grants (token families) with their refresh tokens,
-- and remembered consents. Every replica reads and writes these, so a code
-- or refresh token one replica issued is redeemed at any other. Codes and
-- refresh tokens are stored as SHA-256 hashes only; secrets of the upstream
-- IdP arrive encrypted by the caller (BLOB, opaque here). JSON documents
-- are TEXT: the admin API shows a registration as it was received.
-- A zero *_us time is "none" (never expires, not used, not revoked).

CREATE TABLE oauth_clients (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL DEFAULT '',
    software_id      TEXT NOT NULL DEFAULT '',
    software_version TEXT NOT NULL DEFAULT '',
    redirect_uris    TEXT NOT NULL DEFAULT '[]',
    agent            TEXT NOT NULL DEFAULT '',
    metadata         TEXT NOT NULL DEFAULT '',
    cimd             BOOLEAN NOT NULL DEFAULT 0,
    created_us       INTEGER NOT NULL,
    expires_us       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_clients_expires ON oauth_clients (expires_us) WHERE expires_us > 0;

-- Single use: taken (deleted) by the callback.
CREATE TABLE oauth_pending (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL DEFAULT '',
    code_challenge TEXT NOT NULL DEFAULT '',
    resource       TEXT NOT NULL DEFAULT '',
    scope          TEXT NOT NULL DEFAULT '',
    consent_id     TEXT NOT NULL DEFAULT '',
    secret         BLOB,
    expires_us     INTEGER NOT NULL
);
CREATE INDEX oauth_pending_client ON oauth_pending (client_id);
CREATE INDEX oauth_pending_expires ON oauth_pending (expires_us);

-- One row per login of one user through one client.
CREATE TABLE oauth_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    agent          TEXT NOT NULL DEFAULT '',
    subject        TEXT NOT NULL DEFAULT '',
    issuer         TEXT NOT NULL DEFAULT '',
    groups_json    TEXT NOT NULL DEFAULT '[]',
    scopes_json    TEXT NOT NULL DEFAULT '[]',
    resource       TEXT NOT NULL DEFAULT '',
    claims         TEXT NOT NULL DEFAULT '',
    upstream       BLOB,
    created_us     INTEGER NOT NULL,
    updated_us     INTEGER NOT NULL,
    expires_us     INTEGER NOT NULL,
    revoked_us     INTEGER NOT NULL DEFAULT 0,
    revoked_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX oauth_grants_client_created ON oauth_grants (client_id, created_us);
CREATE INDEX oauth_grants_subject_created ON oauth_grants (subject, created_us);
CREATE INDEX oauth_grants_created ON oauth_grants (created_us, id);
CREATE INDEX oauth_grants_expires ON oauth_grants (expires_us);
CREATE INDEX oauth_grants_revoked ON oauth_grants (revoked_us) WHERE revoked_us > 0;

-- Every refresh token a grant has had: used_us = 0 is the current one (at
-- most one per grant), the others are kept until the grant is purged so
-- that presenting one again is recognized as reuse.
CREATE TABLE oauth_refresh_tokens (
    hash       TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    used_us    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
CREATE UNIQUE INDEX oauth_refresh_tokens_current ON oauth_refresh_tokens (grant_id) WHERE used_us = 0;

-- Used codes stay an hour, so that a second redemption is recognized as a
-- replay.
CREATE TABLE oauth_codes (
    hash           TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL DEFAULT '',
    code_challenge TEXT NOT NULL DEFAULT '',
    resource       TEXT NOT NULL DEFAULT '',
    expires_us     INTEGER NOT NULL,
    used_us        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_codes_grant ON oauth_codes (grant_id);
CREATE INDEX oauth_codes_client ON oauth_codes (client_id);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_us);

CREATE TABLE oauth_consents (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL DEFAULT '',
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
CREATE INDEX oauth_consents_client ON oauth_consents (client_id);
CREATE INDEX oauth_consents_expires ON oauth_consents (expires_us);

-- What the OAuth endpoints did (registration, consent, tokens, refusals) is
-- audited with its own kind. SQLite cannot alter a CHECK constraint, so the
-- table is rebuilt as 0004 did, columns in the same order.
CREATE TABLE audit_records_new (
    id          TEXT PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('decision', 'change', 'shadow', 'tool_change', 'oauth')),
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
