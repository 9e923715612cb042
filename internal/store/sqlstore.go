package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
)

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db    *sql.DB
	d     dialect
	shown string // DSN without credentials, for errors

	// auditStmts are SQLite's prepared audit INSERTs (see prepareAudit).
	auditMu     sync.Mutex
	auditStmts  map[auditShape]*sql.Stmt
	auditClosed bool
}

// objectTable describes one table of config objects (agents, backends); the
// generic functions below serve both.
type objectTable[T any] struct {
	table  string // SQL table name, a constant
	kind   audit.ObjectKind
	name   func(T) string
	rename func(*T, string)
	redact func(T) T
}

var (
	agentTable = objectTable[config.Agent]{
		table:  "agents",
		kind:   audit.ObjectAgent,
		name:   func(a config.Agent) string { return a.Name },
		rename: func(a *config.Agent, n string) { a.Name = n },
		redact: config.Agent.Redacted,
	}
	backendTable = objectTable[config.Backend]{
		table:  "backends",
		kind:   audit.ObjectBackend,
		name:   func(b config.Backend) string { return b.Name },
		rename: func(b *config.Backend, n string) { b.Name = n },
		redact: config.Backend.Redacted,
	}
)

func (s *sqlStore) ListAgents(ctx context.Context) ([]Entry[config.Agent], error) {
	return list(ctx, s.db, agentTable)
}

func (s *sqlStore) GetAgent(ctx context.Context, name string) (Entry[config.Agent], error) {
	return getEntry(ctx, s.db, agentTable, name)
}

func (s *sqlStore) PutAgent(ctx context.Context, a config.Agent, meta ChangeMeta) (Change[config.Agent], error) {
	return put(ctx, s, agentTable, a, meta)
}

func (s *sqlStore) DeleteAgent(ctx context.Context, name string, meta ChangeMeta) (Change[config.Agent], error) {
	return remove(ctx, s, agentTable, name, meta)
}

func (s *sqlStore) ListBackends(ctx context.Context) ([]Entry[config.Backend], error) {
	return list(ctx, s.db, backendTable)
}

func (s *sqlStore) GetBackend(ctx context.Context, name string) (Entry[config.Backend], error) {
	return getEntry(ctx, s.db, backendTable, name)
}

func (s *sqlStore) PutBackend(ctx context.Context, b config.Backend, meta ChangeMeta) (Change[config.Backend], error) {
	return put(ctx, s, backendTable, b, meta)
}

func (s *sqlStore) DeleteBackend(ctx context.Context, name string, meta ChangeMeta) (Change[config.Backend], error) {
	return remove(ctx, s, backendTable, name, meta)
}

func (s *sqlStore) Revision(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM store_revision WHERE id = 1").Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read revision: %w", err)
	}
	return v, nil
}

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store %s: ping: %w", s.shown, err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	s.closeAuditStmts()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store %s: close: %w", s.shown, err)
	}
	return nil
}

// queryer is what reads need from *sql.DB and *sql.Tx alike.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const entryColumns = "name, body, source, version, updated_us, updated_by"

func scanEntry[T any](t objectTable[T], sc interface{ Scan(...any) error }) (Entry[T], error) {
	var (
		e       Entry[T]
		name    string
		body    []byte
		source  string
		updated int64
	)
	if err := sc.Scan(&name, &body, &source, &e.Version, &updated, &e.UpdatedBy); err != nil {
		return e, err
	}
	if err := configjson.Unmarshal(body, &e.Value); err != nil {
		return e, fmt.Errorf("decode %s %q: %w", t.kind, name, err)
	}
	t.rename(&e.Value, name)
	e.Source = Source(source)
	e.UpdatedAt = time.UnixMicro(updated).UTC()
	return e, nil
}

func list[T any](ctx context.Context, q queryer, t objectTable[T]) ([]Entry[T], error) {
	rows, err := q.QueryContext(ctx, "SELECT "+entryColumns+" FROM "+t.table+" ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: list %ss: %w", t.kind, err)
	}
	defer rows.Close()
	var out []Entry[T]
	for rows.Next() {
		e, err := scanEntry(t, rows)
		if err != nil {
			return nil, fmt.Errorf("store: list %ss: %w", t.kind, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list %ss: %w", t.kind, err)
	}
	return out, nil
}

// get returns ErrNotFound unwrapped; callers add the context.
func get[T any](ctx context.Context, q queryer, t objectTable[T], name string) (Entry[T], error) {
	row := q.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM "+t.table+" WHERE name = $1", name)
	e, err := scanEntry(t, row)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}

func getEntry[T any](ctx context.Context, q queryer, t objectTable[T], name string) (Entry[T], error) {
	e, err := get(ctx, q, t, name)
	if err != nil {
		return e, fmt.Errorf("store: get %s %q: %w", t.kind, name, err)
	}
	return e, nil
}

// maxNameLen bounds object names; they appear in URLs, logs and audit rows.
const maxNameLen = 200

func validateName(kind audit.ObjectKind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("store: %s name is empty", kind)
	case len(name) > maxNameLen:
		return fmt.Errorf("store: %s name is longer than %d bytes", kind, maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("store: %s name is not valid UTF-8", kind)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("store: %s name %q contains a control character", kind, name)
		}
	}
	return nil
}

// writeTx runs fn in a transaction that first locks the revision row, so
// that concurrent writers, in this process or another, take turns.
func (s *sqlStore) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.lockedTx(ctx, s.d.lockRevision, "revision", fn)
}

// lockedTx runs fn in a transaction that first reads a row with lock, a
// query that locks it for writing (SQLite's transactions are exclusive
// from the start), so that writers of that row take turns.
func (s *sqlStore) lockedTx(ctx context.Context, lock, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var current int64
	if err := tx.QueryRowContext(ctx, lock).Scan(&current); err != nil {
		return fmt.Errorf("lock %s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func bumpRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, "UPDATE store_revision SET value = value + 1 WHERE id = 1 RETURNING value").Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("bump revision: %w", err)
	}
	return rev, nil
}

// upsert writes v under name at revision rev.
func upsert[T any](ctx context.Context, tx *sql.Tx, t objectTable[T], v T, source Source, rev int64, by string, now time.Time) error {
	body, err := configjson.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", t.kind, t.name(v), err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+t.table+
		" (name, body, source, version, created_us, updated_us, updated_by) VALUES ($1, $2, $3, $4, $5, $5, $6)"+
		" ON CONFLICT (name) DO UPDATE SET body = excluded.body, source = excluded.source,"+
		" version = excluded.version, updated_us = excluded.updated_us, updated_by = excluded.updated_by",
		t.name(v), string(body), string(source), rev, now.UnixMicro(), by)
	if err != nil {
		return fmt.Errorf("write %s %q: %w", t.kind, t.name(v), err)
	}
	return nil
}

func deleteRow[T any](ctx context.Context, tx *sql.Tx, t objectTable[T], name string) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+t.table+" WHERE name = $1", name); err != nil {
		return fmt.Errorf("delete %s %q: %w", t.kind, name, err)
	}
	return nil
}

// changeRecord builds the audit record of a change, with redacted snapshots.
func changeRecord[T any](t objectTable[T], name string, before, after *T, source Source, meta ChangeMeta, now time.Time) (audit.Record, error) {
	r := audit.Record{
		Time:       now,
		Kind:       audit.KindChange,
		DecisionID: meta.DecisionID,
		RequestID:  meta.RequestID,
		Subject:    meta.Subject,
		Issuer:     meta.Issuer,
		Agent:      meta.Agent,
		Allow:      true,
		Revision:   meta.Revision,
		Source:     string(source),
		ObjectKind: t.kind,
		ObjectName: name,
	}
	switch {
	case before == nil:
		r.Action = audit.ActionCreate
	case after == nil:
		r.Action = audit.ActionDelete
	default:
		r.Action = audit.ActionUpdate
	}
	var err error
	if before != nil {
		if r.Before, err = configjson.Marshal(t.redact(*before)); err != nil {
			return r, fmt.Errorf("encode %s %q: %w", t.kind, name, err)
		}
	}
	if after != nil {
		if r.After, err = configjson.Marshal(t.redact(*after)); err != nil {
			return r, fmt.Errorf("encode %s %q: %w", t.kind, name, err)
		}
	}
	return r.Normalize(), nil
}

func put[T any](ctx context.Context, s *sqlStore, t objectTable[T], v T, meta ChangeMeta) (Change[T], error) {
	var ch Change[T]
	name := t.name(v)
	if err := validateName(t.kind, name); err != nil {
		return ch, err
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		old, err := get(ctx, tx, t, name)
		switch {
		case err == nil:
			ch.Before = &old.Value
		case !errors.Is(err, ErrNotFound):
			return err
		}
		rev, err := bumpRevision(ctx, tx)
		if err != nil {
			return err
		}
		now := time.Now()
		if err := upsert(ctx, tx, t, v, SourceAdmin, rev, meta.Subject, now); err != nil {
			return err
		}
		if ch.Audit, err = changeRecord(t, name, ch.Before, &v, SourceAdmin, meta, now); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, []audit.Record{ch.Audit})
	})
	if err != nil {
		return Change[T]{}, fmt.Errorf("store: put %s %q: %w", t.kind, name, err)
	}
	return ch, nil
}

func remove[T any](ctx context.Context, s *sqlStore, t objectTable[T], name string, meta ChangeMeta) (Change[T], error) {
	var ch Change[T]
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		old, err := get(ctx, tx, t, name)
		if err != nil {
			return err
		}
		ch.Before = &old.Value
		if _, err := bumpRevision(ctx, tx); err != nil {
			return err
		}
		if err := deleteRow(ctx, tx, t, name); err != nil {
			return err
		}
		if ch.Audit, err = changeRecord(t, name, ch.Before, nil, SourceAdmin, meta, time.Now()); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, []audit.Record{ch.Audit})
	})
	if err != nil {
		return Change[T]{}, fmt.Errorf("store: delete %s %q: %w", t.kind, name, err)
	}
	return ch, nil
}

// adminLockKey is the advisory lock id of admin writes ("mcpgwadm").
const adminLockKey = 0x6d637067_7761646d

// LockAdmin: see Store.
func (s *sqlStore) LockAdmin(ctx context.Context) (func(), error) {
	if s.d.name != postgresDialect.name {
		return func() {}, nil
	}
	// A session lock lives on one connection: hold that connection until
	// the unlock, while the writes themselves use the pool.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: admin lock: %w", s.shown, err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(adminLockKey)); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("store %s: admin lock: %w", s.shown, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", int64(adminLockKey)); err != nil {
			// Closing the connection ends the session and with it the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}, nil
}
