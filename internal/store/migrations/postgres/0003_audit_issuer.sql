-- Audit records name the issuer of the caller's token: with several trusted
-- issuers a subject ("alice") names a user only within the issuer that
-- asserted it. Records written before this migration have none ('').
ALTER TABLE audit_records ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_records_issuer_subject_at ON audit_records (issuer, subject, at_us);
