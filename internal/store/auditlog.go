package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// auditBaseColumns are the columns of every record. Later migrations add
// a decision's request outcome (0007) and its recorded policy input (0006);
// an insert names them only when a record of the chunk has them, so that
// the statement is one an older schema takes too.
const auditBaseColumns = "id, at_us, kind, decision_id, request_id, subject, agent, backend, method, tool, allow," +
	" reasons, revision, latency_ms, eval_us, source, action, object_kind, object_name, before_json, after_json, issuer"

const (
	auditBaseColumnCount = 22
	// auditColumns is what a query selects with the recorded inputs.
	auditColumns = auditBaseColumns + ", outcome, input_json, input_masked"
	// auditColumnsNoInput is what a query selects when it does not ask for
	// the recorded inputs: they are never read, let alone returned.
	auditColumnsNoInput = auditBaseColumns + ", outcome, NULL, NULL"
)

// auditChunk rows per INSERT keeps the statement under SQLite's and
// PostgreSQL's bound-parameter limits (32766 and 65535).
const auditChunk = 200

func (s *sqlStore) AppendAudit(ctx context.Context, recs ...audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	norm := make([]audit.Record, len(recs))
	for i, r := range recs {
		norm[i] = r.Normalize()
		if err := norm[i].Validate(); err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: append audit: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := insertAudit(ctx, tx, s.d, norm); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: append audit: commit: %w", err)
	}
	return nil
}

// insertAudit writes normalized, valid records; an id already present is
// skipped.
func insertAudit(ctx context.Context, tx *sql.Tx, d dialect, recs []audit.Record) error {
	for start := 0; start < len(recs); start += auditChunk {
		chunk := recs[start:min(start+auditChunk, len(recs))]
		// The input columns are named only when a record has an input:
		// most chunks have none, and the statement is then the one the
		// schema before 0006 took.
		columns, count := auditBaseColumns, auditBaseColumnCount
		withOutcome := slices.ContainsFunc(chunk, func(r audit.Record) bool { return r.Outcome != "" })
		withInput := slices.ContainsFunc(chunk, func(r audit.Record) bool { return len(r.Input) > 0 || len(r.InputMasked) > 0 })
		if withOutcome {
			columns, count = columns+", outcome", count+1
		}
		if withInput {
			columns, count = columns+", input_json, input_masked", count+2
		}
		var sb strings.Builder
		sb.WriteString("INSERT INTO audit_records (" + columns + ") VALUES ")
		args := make([]any, 0, len(chunk)*count)
		for i, r := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for c := range count {
				if c > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString(d.param(i*count + c + 1))
			}
			sb.WriteByte(')')
			reasons, err := nullJSON(r.Reasons)
			if err != nil {
				return fmt.Errorf("encode reasons of %s: %w", r.ID, err)
			}
			masked, err := nullJSON(r.InputMasked)
			if err != nil {
				return fmt.Errorf("encode input_masked of %s: %w", r.ID, err)
			}
			args = append(args, r.ID, r.Time.UnixMicro(), string(r.Kind), r.DecisionID, r.RequestID,
				r.Subject, r.Agent, r.Backend, r.Method, r.Tool, r.Allow,
				reasons, r.Revision, r.LatencyMS, r.EvalMicros, r.Source, string(r.Action),
				string(r.ObjectKind), r.ObjectName, nullRaw(r.Before), nullRaw(r.After), r.Issuer)
			if withOutcome {
				args = append(args, r.Outcome)
			}
			if withInput {
				args = append(args, nullRaw(r.Input), masked)
			}
		}
		sb.WriteString(" ON CONFLICT (id) DO NOTHING")
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("insert %d audit records: %w", len(chunk), err)
		}
	}
	return nil
}

func nullJSON(reasons []string) (any, error) {
	if len(reasons) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(reasons)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func nullRaw(m json.RawMessage) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

func (s *sqlStore) QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, string, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, "", err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Kind != "" {
		where = append(where, "kind = "+arg(string(q.Kind)))
	}
	if q.Subject != "" {
		where = append(where, "subject = "+arg(q.Subject))
	}
	if q.Agent != "" {
		p := arg(q.Agent)
		where = append(where, "(agent = "+p+" OR (object_kind = 'agent' AND object_name = "+p+"))")
	}
	if q.Backend != "" {
		p := arg(q.Backend)
		where = append(where, "(backend = "+p+" OR (object_kind = 'backend' AND object_name = "+p+"))")
	}
	if q.Tool != "" {
		where = append(where, "tool = "+arg(q.Tool))
	}
	if q.Decision != "" {
		where = append(where, "allow = "+arg(q.Decision == audit.DecisionAllow))
	}
	if !q.Since.IsZero() {
		where = append(where, "at_us >= "+arg(q.Since.UnixMicro()))
	}
	if !q.Until.IsZero() {
		where = append(where, "at_us < "+arg(q.Until.UnixMicro()))
	}
	if q.Cursor != "" {
		at, id, err := audit.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(at_us, id) < ("+arg(at)+", "+arg(id)+")")
	}
	columns := auditColumnsNoInput
	if q.IncludeInput {
		columns = auditColumns
	}
	stmt := "SELECT " + columns + " FROM audit_records"
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " ORDER BY at_us DESC, id DESC LIMIT " + strconv.Itoa(q.Limit+1)

	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: query audit: %w", err)
	}
	defer rows.Close()
	recs := make([]audit.Record, 0, min(q.Limit, 64))
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, "", fmt.Errorf("store: query audit: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: query audit: %w", err)
	}
	next := ""
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
		last := recs[len(recs)-1]
		next = audit.EncodeCursor(last.Time.UnixMicro(), last.ID)
	}
	return recs, next, nil
}

func scanAudit(rows *sql.Rows) (audit.Record, error) {
	var (
		r                      audit.Record
		at                     int64
		kind, action, objKind  string
		reasons, before, after []byte
		input, masked          []byte
	)
	err := rows.Scan(&r.ID, &at, &kind, &r.DecisionID, &r.RequestID, &r.Subject, &r.Agent, &r.Backend,
		&r.Method, &r.Tool, &r.Allow, &reasons, &r.Revision, &r.LatencyMS, &r.EvalMicros, &r.Source,
		&action, &objKind, &r.ObjectName, &before, &after, &r.Issuer, &r.Outcome, &input, &masked)
	if err != nil {
		return r, err
	}
	r.Time = time.UnixMicro(at).UTC()
	r.Kind = audit.Kind(kind)
	r.Action = audit.Action(action)
	r.ObjectKind = audit.ObjectKind(objKind)
	if len(reasons) > 0 {
		if err := json.Unmarshal(reasons, &r.Reasons); err != nil {
			return r, fmt.Errorf("decode reasons of %s: %w", r.ID, err)
		}
	}
	if r.Before, err = compactJSON(before); err != nil {
		return r, fmt.Errorf("decode before of %s: %w", r.ID, err)
	}
	if r.After, err = compactJSON(after); err != nil {
		return r, fmt.Errorf("decode after of %s: %w", r.ID, err)
	}
	if len(input) > 0 {
		// Kept byte for byte (a TEXT column): the driver may reuse the buffer.
		r.Input = json.RawMessage(bytes.Clone(input))
	}
	if len(masked) > 0 {
		if err := json.Unmarshal(masked, &r.InputMasked); err != nil {
			return r, fmt.Errorf("decode input_masked of %s: %w", r.ID, err)
		}
	}
	return r, nil
}

// PurgeAuditInputs clears the inputs that decision records kept, for the
// records made before cutoff; the records stay. It returns how many were
// cleared.
func (s *sqlStore) PurgeAuditInputs(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		"UPDATE audit_records SET input_json = NULL, input_masked = NULL WHERE at_us < $1 AND (input_json IS NOT NULL OR input_masked IS NOT NULL)",
		cutoff.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("store: purge audit inputs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: purge audit inputs: %w", err)
	}
	return n, nil
}

// compactJSON undoes PostgreSQL's jsonb pretty spacing, and copies: the
// driver may reuse the scanned buffer.
func compactJSON(b []byte) (json.RawMessage, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
