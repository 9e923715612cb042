-- Shadow-policy disagreements are audit records of their own kind.
ALTER TABLE audit_records DROP CONSTRAINT IF EXISTS audit_records_kind_check;
ALTER TABLE audit_records ADD CONSTRAINT audit_records_kind_check CHECK (kind IN ('decision', 'change', 'shadow'));
