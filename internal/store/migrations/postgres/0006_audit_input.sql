-- A decision record may keep the policy input it was made on
-- (audit.record_inputs), masked by the bundle's system.log.mask rules, for
-- `mcpgw policy replay`. input_json is TEXT, not JSONB: the input is kept
-- byte for byte (ASCII only, every other character a \u escape; JSONB would
-- decode the escapes and refuse \u0000). input_masked is a JSON array of the
-- pointers the mask erased or replaced. Both are NULL for every other record,
-- for records written before this migration and once audit.input_retention
-- has passed (the record itself stays).
ALTER TABLE audit_records ADD COLUMN input_json TEXT;
ALTER TABLE audit_records ADD COLUMN input_masked TEXT;
-- audit.input_retention clears expired inputs: only rows that still have one
-- are indexed.
CREATE INDEX audit_records_input_at ON audit_records (at_us) WHERE input_json IS NOT NULL OR input_masked IS NOT NULL;
