-- Audit records name the issuer of the caller's token: with several trusted
-- issuers a subject ("alice") names a user only within the issuer that
-- asserted it. Records written before this migration have none (''). Unlike
-- 0002's CHECK constraint, a column with a constant default is one SQLite
-- can add in place, so the table is not rebuilt; the column comes last, as
-- auditlog.go's column list has it.
ALTER TABLE audit_records ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_records_issuer_subject_at ON audit_records (issuer, subject, at_us);
