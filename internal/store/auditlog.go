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

	"github.com/jackc/pgx/v5/pgtype"

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
	// Prepared before the transaction: preparing takes a connection of
	// the pool, and an in-memory SQLite database has only the one the
	// transaction would hold.
	s.prepareAudit(ctx, norm)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: append audit: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.insertAudit(ctx, tx, norm); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: append audit: commit: %w", err)
	}
	return nil
}

// auditShape is what an audit INSERT statement depends on: how many rows
// it has and whether it names the optional columns. The input columns are
// named only when a record has an input, the outcome only when one has an
// outcome: most have neither, and the statement is then one the schema
// before 0006 took.
type auditShape struct {
	rows           int
	outcome, input bool
}

func shapeOf(chunk []audit.Record) auditShape {
	return auditShape{
		rows:    len(chunk),
		outcome: slices.ContainsFunc(chunk, func(r audit.Record) bool { return r.Outcome != "" }),
		input:   slices.ContainsFunc(chunk, func(r audit.Record) bool { return len(r.Input) > 0 || len(r.InputMasked) > 0 }),
	}
}

func (sh auditShape) columns() (string, int) {
	columns, count := auditBaseColumns, auditBaseColumnCount
	if sh.outcome {
		columns, count = columns+", outcome", count+1
	}
	if sh.input {
		columns, count = columns+", input_json, input_masked", count+2
	}
	return columns, count
}

// auditMaxPiece is the most rows one SQLite INSERT takes (6,400
// parameters at most, of the 32,766 SQLite allows): audit.BatchSink's
// default MaxBatch. A batch is written in pieces of powers of two rows
// (200 = 128 + 64 + 8), so that a few prepared statements, at most 9 sizes
// × 4 column sets, serve every batch: SQLite parsing the multi-row INSERT
// was a sixth of the write.
const auditMaxPiece = 256

// sqlitePieces calls fn with consecutive pieces of recs, in order.
func sqlitePieces(recs []audit.Record, fn func(piece []audit.Record) error) error {
	for len(recs) > 0 {
		n := auditMaxPiece
		for n > len(recs) {
			n /= 2
		}
		if err := fn(recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// prepareAudit prepares the SQLite statements that writing recs takes and
// that are not yet prepared. A statement that does not prepare is left
// out: the write then sends its text and reports the error.
func (s *sqlStore) prepareAudit(ctx context.Context, recs []audit.Record) {
	if s.d.name != sqliteDialect.name {
		return
	}
	_ = sqlitePieces(recs, func(piece []audit.Record) error {
		sh := shapeOf(piece)
		s.auditMu.Lock()
		_, ok := s.auditStmts[sh]
		s.auditMu.Unlock()
		if ok {
			return nil
		}
		st, err := s.db.PrepareContext(ctx, auditValuesSQL(s.d, sh))
		if err != nil {
			return nil
		}
		s.auditMu.Lock()
		defer s.auditMu.Unlock()
		if _, ok := s.auditStmts[sh]; ok || s.auditClosed {
			_ = st.Close()
			return nil
		}
		if s.auditStmts == nil {
			s.auditStmts = map[auditShape]*sql.Stmt{}
		}
		s.auditStmts[sh] = st
		return nil
	})
}

// closeAuditStmts closes the prepared statements, before the database.
func (s *sqlStore) closeAuditStmts() {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	s.auditClosed = true
	for sh, st := range s.auditStmts {
		_ = st.Close()
		delete(s.auditStmts, sh)
	}
}

// auditValuesSQL is the multi-row INSERT of sh.
func auditValuesSQL(d dialect, sh auditShape) string {
	columns, count := sh.columns()
	var sb strings.Builder
	sb.Grow(64 + len(columns) + sh.rows*count*4)
	sb.WriteString("INSERT INTO audit_records (" + columns + ") VALUES ")
	for i := range sh.rows {
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
	}
	sb.WriteString(" ON CONFLICT (id) DO NOTHING")
	return sb.String()
}

// insertAudit writes normalized, valid records; an id already present is
// skipped.
func (s *sqlStore) insertAudit(ctx context.Context, tx *sql.Tx, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if s.d.name == postgresDialect.name {
		if len(recs) >= auditArrayMin {
			return insertAuditArrays(ctx, tx, recs)
		}
		return s.insertAuditValues(ctx, tx, recs)
	}
	return sqlitePieces(recs, func(piece []audit.Record) error { return s.insertAuditValues(ctx, tx, piece) })
}

// insertAuditValues writes chunk with one multi-row INSERT, prepared when
// prepareAudit prepared its shape.
func (s *sqlStore) insertAuditValues(ctx context.Context, tx *sql.Tx, chunk []audit.Record) error {
	sh := shapeOf(chunk)
	_, count := sh.columns()
	args := make([]any, 0, len(chunk)*count)
	for _, r := range chunk {
		var err error
		if args, err = appendAuditArgs(args, r, sh); err != nil {
			return err
		}
	}
	s.auditMu.Lock()
	st := s.auditStmts[sh]
	s.auditMu.Unlock()
	var err error
	if st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		_, err = tx.ExecContext(ctx, auditValuesSQL(s.d, sh), args...)
	}
	if err != nil {
		return fmt.Errorf("insert %d audit records: %w", len(chunk), err)
	}
	return nil
}

// appendAuditArgs appends r's values, in the order of sh's columns.
func appendAuditArgs(args []any, r audit.Record, sh auditShape) ([]any, error) {
	reasons, err := nullJSON(r.Reasons)
	if err != nil {
		return args, fmt.Errorf("encode reasons of %s: %w", r.ID, err)
	}
	args = append(args, r.ID, r.Time.UnixMicro(), string(r.Kind), r.DecisionID, r.RequestID,
		r.Subject, r.Agent, r.Backend, r.Method, r.Tool, r.Allow,
		reasons, r.Revision, r.LatencyMS, r.EvalMicros, r.Source, string(r.Action),
		string(r.ObjectKind), r.ObjectName, nullRaw(r.Before), nullRaw(r.After), r.Issuer)
	if sh.outcome {
		args = append(args, r.Outcome)
	}
	if sh.input {
		masked, err := nullJSON(r.InputMasked)
		if err != nil {
			return args, fmt.Errorf("encode input_masked of %s: %w", r.ID, err)
		}
		args = append(args, nullRaw(r.Input), masked)
	}
	return args, nil
}

// auditArrayTypes are the PostgreSQL types of the columns, in the order
// of auditBaseColumns, then outcome, input_json, input_masked. The jsonb
// columns are sent as text and cast: PostgreSQL parses the same text the
// multi-row INSERT sent as jsonb parameters.
var auditArrayTypes = []string{"text", "bigint", "text", "text", "text", "text", "text", "text", "text", "text", "boolean",
	"jsonb", "text", "float8", "bigint", "text", "text", "text", "text", "jsonb", "jsonb", "text",
	"text", "text", "text"}

// auditArraysSQL is sh's INSERT in PostgreSQL: one array parameter per
// column, unnested into rows in the arrays' order, said with ORDINALITY
// rather than left to the planner (the order of the records, as the
// multi-row INSERT had them, decides which of two records with one id is
// kept). 25 parameters rather than 4,400 cost pgx
// and the server far less to encode, parse and plan.
func auditArraysSQL(sh auditShape) string {
	columns, count := sh.columns()
	var names, sel, params []string
	for i, typ := range auditArrayTypes {
		if i == auditBaseColumnCount && !sh.outcome || i > auditBaseColumnCount && !sh.input {
			continue
		}
		n := strconv.Itoa(len(params) + 1)
		names = append(names, "c"+n)
		if typ == "jsonb" {
			sel = append(sel, "c"+n+"::jsonb")
			typ = "text"
		} else {
			sel = append(sel, "c"+n)
		}
		params = append(params, "$"+n+"::"+typ+"[]")
	}
	if len(params) != count {
		panic("store: audit columns and array types disagree")
	}
	return "INSERT INTO audit_records (" + columns + ") SELECT " + strings.Join(sel, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") WITH ORDINALITY AS t(" + strings.Join(names, ", ") + ", ord)" +
		" ORDER BY ord ON CONFLICT (id) DO NOTHING"
}

// The PostgreSQL statements, by column set (rows do not matter).
var auditArraysStmts = func() (m [2][2]string) {
	for _, o := range []bool{false, true} {
		for _, i := range []bool{false, true} {
			m[b2i(o)][b2i(i)] = auditArraysSQL(auditShape{outcome: o, input: i})
		}
	}
	return m
}()

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// auditArrayChunk rows per PostgreSQL INSERT bounds the statement's size;
// the parameters are 25 arrays, whatever the rows.
const auditArrayChunk = 1024

// auditArrayMin is the fewest records PostgreSQL is sent as arrays: fewer
// measured as cheap or cheaper as a multi-row INSERT (one statement, which
// pgx keeps prepared, per size below this and column set).
const auditArrayMin = 4

// insertAuditArrays writes recs to PostgreSQL, auditArrayChunk rows per
// statement; pgx keeps each statement prepared on its connection.
func insertAuditArrays(ctx context.Context, tx *sql.Tx, recs []audit.Record) error {
	for start := 0; start < len(recs); start += auditArrayChunk {
		chunk := recs[start:min(start+auditArrayChunk, len(recs))]
		sh := shapeOf(chunk)
		n := len(chunk)
		// One backing array per element type, a column a slice of it.
		const textCols = 16 // with outcome
		texts := make([]string, textCols*n)
		ints := make([]int64, 2*n)
		latencies := make([]float64, n)
		allows := make([]bool, n)
		// reasons, before_json, after_json, input_json, input_masked
		nullable := make([]string, 5*n)
		d := []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}} // shared: pgx only reads it
		text := func(c int) pgTexts { return pgTexts{texts[c*n : (c+1)*n], d} }
		null := func(c int) pgNullTexts { return pgNullTexts{nullable[c*n : (c+1)*n], d} }
		for i, r := range chunk {
			var err error
			if nullable[i], err = jsonText(r.Reasons); err != nil {
				return fmt.Errorf("encode reasons of %s: %w", r.ID, err)
			}
			nullable[n+i], nullable[2*n+i] = string(r.Before), string(r.After)
			for c, v := range [textCols]string{r.ID, string(r.Kind), r.DecisionID, r.RequestID, r.Subject, r.Agent, r.Backend,
				r.Method, r.Tool, r.Revision, r.Source, string(r.Action), string(r.ObjectKind), r.ObjectName, r.Issuer, r.Outcome} {
				texts[c*n+i] = v
			}
			ints[i], ints[n+i] = r.Time.UnixMicro(), r.EvalMicros
			latencies[i], allows[i] = r.LatencyMS, r.Allow
			if sh.input {
				nullable[3*n+i] = string(r.Input)
				if nullable[4*n+i], err = jsonText(r.InputMasked); err != nil {
					return fmt.Errorf("encode input_masked of %s: %w", r.ID, err)
				}
			}
		}
		args := make([]any, 0, 25)
		args = append(args, text(0), pgInt8s{ints[:n], d}, text(1), text(2), text(3), text(4), text(5), text(6),
			text(7), text(8), pgBools{allows, d}, null(0), text(9), pgFloat8s{latencies, d},
			pgInt8s{ints[n:], d}, text(10), text(11), text(12), text(13), null(1), null(2), text(14))
		if sh.outcome {
			args = append(args, text(15))
		}
		if sh.input {
			args = append(args, null(3), null(4))
		}
		if _, err := tx.ExecContext(ctx, auditArraysStmts[b2i(sh.outcome)][b2i(sh.input)], args...); err != nil {
			return fmt.Errorf("insert %d audit records: %w", len(chunk), err)
		}
	}
	return nil
}

// Columns of one batch for pgx (pgtype.ArrayGetter). pgx boxes each
// element a []string or []int64 holds (one allocation each, 20 a record);
// these hand it pointers into the slice, of types it encodes without
// reflection.
type (
	pgTexts struct {
		v []string
		d []pgtype.ArrayDimension
	}
	// pgNullTexts is NULL where empty, as nullJSON and nullRaw make
	// values for SQLite.
	pgNullTexts struct {
		v []string
		d []pgtype.ArrayDimension
	}
	pgInt8s struct {
		v []int64
		d []pgtype.ArrayDimension
	}
	pgFloat8s struct {
		v []float64
		d []pgtype.ArrayDimension
	}
	pgBools struct {
		v []bool
		d []pgtype.ArrayDimension
	}
	pgText   string
	pgInt8   int64
	pgFloat8 float64
)

func (a pgTexts) Dimensions() []pgtype.ArrayDimension { return a.d }
func (a pgTexts) Index(i int) any                     { return (*pgText)(&a.v[i]) }
func (a pgTexts) IndexType() any                      { return new(pgText) }

func (a pgNullTexts) Dimensions() []pgtype.ArrayDimension { return a.d }
func (a pgNullTexts) IndexType() any                      { return new(pgText) }
func (a pgNullTexts) Index(i int) any {
	if a.v[i] == "" {
		return nil
	}
	return (*pgText)(&a.v[i])
}

func (a pgInt8s) Dimensions() []pgtype.ArrayDimension { return a.d }
func (a pgInt8s) Index(i int) any                     { return (*pgInt8)(&a.v[i]) }
func (a pgInt8s) IndexType() any                      { return new(pgInt8) }

func (a pgFloat8s) Dimensions() []pgtype.ArrayDimension { return a.d }
func (a pgFloat8s) Index(i int) any                     { return (*pgFloat8)(&a.v[i]) }
func (a pgFloat8s) IndexType() any                      { return new(pgFloat8) }

// A bool in an interface takes no allocation.
func (a pgBools) Dimensions() []pgtype.ArrayDimension { return a.d }
func (a pgBools) Index(i int) any                     { return a.v[i] }
func (a pgBools) IndexType() any                      { return false }

func (t *pgText) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}
func (v *pgInt8) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*v), Valid: true}, nil
}
func (v *pgFloat8) Float64Value() (pgtype.Float8, error) {
	return pgtype.Float8{Float64: float64(*v), Valid: true}, nil
}

// jsonText is list as JSON, "" (NULL) when empty.
func jsonText(list []string) (string, error) {
	if len(list) == 0 {
		return "", nil
	}
	b, err := json.Marshal(list)
	return string(b), err
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
