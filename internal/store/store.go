// Package store persists agents, backends, tool pins, the audit trail and the
// state of the gateway's OAuth authorization server, in SQLite
// (modernc.org/sqlite, no cgo) for one gateway or PostgreSQL (pgx) for
// replicas sharing one configuration. Both run the same code and the same
// queries; only the embedded schema migrations differ per dialect.
//
// Secrets in agents and backends are stored as given, since the gateway needs
// them; the store never logs, and its change records carry only redacted
// copies (config.Agent.Redacted, config.Backend.Redacted).
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// ErrNotFound is returned (wrapped, with the name) for an agent or backend
// that does not exist.
var ErrNotFound = errors.New("not found")

// ErrReplayed is returned (wrapped) for an OAuth authorization code redeemed
// a second time or a refresh token presented again after it was rotated: a
// sign that it leaked. The caller revokes the grant (RotateOAuthRefresh
// already did).
var ErrReplayed = errors.New("replayed")

// Source says who last wrote an agent or backend.
type Source string

const (
	// SourceConfig entries were written by SeedFromConfig from the config file.
	SourceConfig Source = audit.SourceConfig
	// SourceAdmin entries were written through the admin API (Put).
	SourceAdmin Source = audit.SourceAdmin
)

// Entry is a stored agent or backend with its bookkeeping.
type Entry[T any] struct {
	Value     T
	Source    Source
	Version   int64 // the store Revision at which this entry last changed
	UpdatedAt time.Time
	UpdatedBy string // subject of the admin who wrote it; "" for the config file
}

// ChangeMeta says who makes an admin change and on what authority; it goes
// into the change's audit record.
type ChangeMeta struct {
	Subject    string // token subject of the caller
	Issuer     string // token issuer of the caller (the subject's namespace)
	Agent      string // agent the call came through
	DecisionID string // policy decision that allowed the change
	Revision   string // policy bundle revision of that decision
	RequestID  string
}

// Change reports what a Put or Delete did.
type Change[T any] struct {
	// Before is the entry as it was; nil when Put created it.
	Before *T
	// Audit is the change record written in the same transaction as the
	// change, with secrets redacted: a change is never stored without its
	// audit record. Forward it to other sinks; do not append it again.
	Audit audit.Record
}

// Store is the gateway's persistence.
//
// Every write of an agent or backend bumps Revision by one in the same
// transaction, sets the entry's Version to the new value, and records an
// audit record of kind "change" with before/after redacted.
type Store interface {
	ListAgents(ctx context.Context) ([]Entry[config.Agent], error)
	GetAgent(ctx context.Context, name string) (Entry[config.Agent], error)
	// PutAgent creates or replaces the agent named a.Name and marks it
	// SourceAdmin.
	PutAgent(ctx context.Context, a config.Agent, meta ChangeMeta) (Change[config.Agent], error)
	DeleteAgent(ctx context.Context, name string, meta ChangeMeta) (Change[config.Agent], error)

	ListBackends(ctx context.Context) ([]Entry[config.Backend], error)
	GetBackend(ctx context.Context, name string) (Entry[config.Backend], error)
	PutBackend(ctx context.Context, b config.Backend, meta ChangeMeta) (Change[config.Backend], error)
	DeleteBackend(ctx context.Context, name string, meta ChangeMeta) (Change[config.Backend], error)

	// SeedFromConfig applies the config file's agents and backends, in one
	// transaction. The config file wins for every name it lists, at every
	// start: such an entry is written with the file's content and
	// SourceConfig even if the admin API changed it since. Entries the file
	// does not list survive if their source is SourceAdmin (created or last
	// changed through the admin API) and are deleted if their source is
	// SourceConfig (the file listed them before and no longer does, which
	// revokes them). Entries already equal to the file are left alone, so
	// restarting with an unchanged file bumps no revision and writes no
	// audit record.
	SeedFromConfig(ctx context.Context, cfg *config.Config) error

	// Revision grows by one with every change to agents or backends, from
	// any process sharing the database: replicas poll it to notice each
	// other's changes cheaply.
	Revision(ctx context.Context) (int64, error)

	// AppendAudit stores records (normalized: missing ID and Time filled).
	// Appending a record whose ID is already stored is a no-op, so a retried
	// batch does not duplicate. Invalid records fail the whole call with an
	// error wrapping audit.ErrInvalidRecord.
	AppendAudit(ctx context.Context, recs ...audit.Record) error
	// QueryAudit returns one page of records, newest first (by time, then
	// id), and the cursor of the next page ("" on the last). Paging is by
	// keyset, so records appended meanwhile never shift or repeat a page.
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, string, error)
	// PurgeAuditInputs clears the policy inputs of the decision records
	// made before cutoff (audit.input_retention); the records stay.
	PurgeAuditInputs(ctx context.Context, cutoff time.Time) (int64, error)

	// LockAdmin serializes admin writers across every process sharing the
	// database, so that each one's read-validate-write step sees the
	// others' results (two replicas could otherwise each validate a change
	// and together store a topology that does not build). The returned
	// function releases the lock. PostgreSQL uses a session advisory lock;
	// SQLite, whose writers share one machine, relies on the caller's
	// process-wide lock.
	LockAdmin(ctx context.Context) (unlock func(), err error)

	// Pins of tool integrity (pins.go): what each backend lists, and what
	// administrators approved or rejected of it.
	ObserveDefinitions(ctx context.Context, backend string, defs []integrity.Definition, trustFirst bool, meta ChangeMeta) ([]Sighting, []audit.Record, error)
	ListPins(ctx context.Context, backend string) ([]Pin, error)
	DecidePins(ctx context.Context, d PinDecision, meta ChangeMeta) ([]Pin, []audit.Record, error)
	PinRevision(ctx context.Context) (int64, error)

	// The OAuth authorization server's clients, requests, codes, grants
	// and consents (oauth.go).
	OAuthStore
	Confirmations

	Ping(ctx context.Context) error
	Close() error
}

// Open connects to the database named by dsn and applies pending schema
// migrations.
//
//	postgres://... or postgresql://...   PostgreSQL (pgx)
//	file:mcpgw.db, mcpgw.db              SQLite file (WAL mode)
//	:memory:                             SQLite in memory, gone on Close
func Open(ctx context.Context, dsn string) (Store, error) {
	var (
		s   *sqlStore
		err error
	)
	switch {
	case dsn == "":
		return nil, errors.New("store.dsn: empty; want file:mcpgw.db, :memory: or a postgres:// URL")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err = openPostgres(ctx, dsn)
	case keywordDSN.MatchString(dsn):
		// Without this, "host=db password=..." would become a SQLite file
		// of that name.
		return nil, errors.New("store.dsn: keyword=value DSNs are not supported; write PostgreSQL as postgres://user@host:5432/db")
	case otherScheme.MatchString(dsn) && !strings.HasPrefix(dsn, "file:"):
		return nil, fmt.Errorf("store.dsn: scheme of %q not supported; want file:, :memory: or postgres://", secrets.DSN(dsn))
	default:
		s, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, s.db, s.d); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("store %s: %w", s.shown, err)
	}
	return s, nil
}

var (
	keywordDSN  = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
	otherScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
)
