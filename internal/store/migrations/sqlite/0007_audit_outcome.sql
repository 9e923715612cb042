-- A decision record says how the request it decided ended (the request
-- log's outcome: ok, denied, backend_error, ...), since the gateway writes
-- it after the relay. Records written before have none (''); a column with
-- a constant default is added in place.
ALTER TABLE audit_records ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
