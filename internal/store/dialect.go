package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/secrets"

	// Registers the "pgx" database/sql driver.
	_ "github.com/jackc/pgx/v5/stdlib"
	// Registers the "sqlite" database/sql driver.
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations
var migrationFiles embed.FS

// dialect holds what differs between SQLite and PostgreSQL; every query
// outside it is shared ($N placeholders, ON CONFLICT, RETURNING and row-value
// comparisons work in both).
type dialect struct {
	name string
	// migrationDir holds the dialect's NNNN_name.sql files in migrationFiles.
	migrationDir string
	// migrationLock serializes migrations across processes, inside the
	// migration transaction; "" when the transaction itself is exclusive.
	migrationLock string
	// lockRevision starts every write transaction: it serializes writers on
	// the revision row so revisions are handed out in commit order.
	lockRevision string
	// param is the n-th (from 1) bound parameter's placeholder, for
	// statements that use each parameter once, in order. SQLite keeps a
	// list of named and numbered parameters ("$1" is one named "$1",
	// "?1" one numbered) and searches it linearly, both to prepare and,
	// in modernc's driver, to bind each argument: a 200-row audit INSERT
	// (4,400 parameters) cost ~10^7 string compares, 60% of the gateway's
	// CPU under load. A bare "?" is in no list.
	param func(n int) string
}

// migrationLockKey is an arbitrary constant naming mcpgw's migration lock
// among other advisory locks in the same database.
const migrationLockKey = 0x6d63706777 // "mcpgw"

var (
	sqliteDialect = dialect{
		name:         "sqlite",
		migrationDir: "migrations/sqlite",
		// Write transactions are BEGIN IMMEDIATE (see openSQLite), which
		// takes SQLite's database-wide write lock up front.
		lockRevision: "SELECT value FROM store_revision WHERE id = 1",
		param:        func(int) string { return "?" },
	}
	postgresDialect = dialect{
		name:          "postgres",
		migrationDir:  "migrations/postgres",
		migrationLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		lockRevision:  "SELECT value FROM store_revision WHERE id = 1 FOR UPDATE",
		param:         func(n int) string { return "$" + strconv.Itoa(n) },
	}
)

// sqliteBusyTimeout matches busy_timeout in sqliteParams.
const sqliteBusyTimeout = 10 * time.Second

// sqliteParams: wait for locks rather than fail with SQLITE_BUSY when another
// connection or process writes; begin every transaction as a writer, which
// avoids the deadlock of two readers both upgrading.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"

func openSQLite(ctx context.Context, dsn string) (*sqlStore, error) {
	memory := dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") || strings.Contains(dsn, "mode=memory")
	params := sqliteParams
	if !memory {
		params += "&_pragma=synchronous(NORMAL)"
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	shown := secrets.DSN(dsn)
	db, err := sql.Open("sqlite", dsn+sep+params)
	if err != nil {
		return nil, fmt.Errorf("store %s: open sqlite: %w", shown, err)
	}
	if memory {
		// Each connection to :memory: is its own empty database: keep
		// exactly one, forever.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		// SQLite has one writer at a time anyway; a few connections let
		// reads (WAL) proceed beside a write.
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(4)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store %s: open sqlite: %w", shown, err)
	}
	if !memory {
		if err := enableWAL(ctx, db); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store %s: open sqlite: %w", shown, err)
		}
	}
	return &sqlStore{db: db, d: sqliteDialect, shown: shown}, nil
}

// enableWAL switches the file to write-ahead logging, which lets reads run
// beside a write. The mode is stored in the file, so this is done once per
// Open rather than per connection. Switching needs an exclusive lock and
// SQLite answers SQLITE_BUSY at once, without its busy handler, when another
// connection (say a second process starting) holds a lock: retry until ctx or
// the busy timeout ends.
func enableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("journal_mode=WAL: database stays in %q mode", mode)
			}
			return nil
		}
		var serr *sqlite.Error
		if !errors.As(err, &serr) || serr.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return fmt.Errorf("journal_mode=WAL: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("journal_mode=WAL: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}

func openPostgres(ctx context.Context, dsn string) (*sqlStore, error) {
	shown := secrets.DSN(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: open postgres: %w", shown, err)
	}
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store %s: connect postgres: %w", shown, err)
	}
	return &sqlStore{db: db, d: postgresDialect, shown: shown}, nil
}
