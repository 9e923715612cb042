-- Questions the gateway asked a person (the confirm obligation) and their
-- answers: the answer arrives in the client's own POST, which may reach
-- another replica than the one holding the call's stream, so it meets the
-- question here. Rows live minutes; expired ones are purged.
CREATE TABLE confirmations (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    answer     TEXT NOT NULL DEFAULT '',
    expires_us BIGINT NOT NULL
);
CREATE INDEX confirmations_expires ON confirmations (expires_us);
