package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// dbUnderTest is one database the conformance suite runs against.
type dbUnderTest struct {
	name string
	// shared: several Opens of one DSN reach one database (not so for
	// :memory:, where each Open is a new, empty database).
	shared bool
	newDSN func(t *testing.T) string
}

const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

const startPostgresHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start" +
	" (or set MCPGW_TEST_POSTGRES=postgres://... to use another server, or MCPGW_TEST_POSTGRES=off to test SQLite only)"

var pgProbe struct {
	once sync.Once
	err  error
}

// testBackends lists SQLite in memory, SQLite in a file and PostgreSQL.
// PostgreSQL is required: when it is unreachable the calling test fails and
// says how to start it, unless MCPGW_TEST_POSTGRES=off.
func testBackends(t *testing.T) []dbUnderTest {
	t.Helper()
	bs := []dbUnderTest{
		{name: "sqlite-memory", newDSN: func(*testing.T) string { return ":memory:" }},
		{name: "sqlite-file", shared: true, newDSN: func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "mcpgw.db")
		}},
	}
	base := os.Getenv("MCPGW_TEST_POSTGRES")
	if base == "off" {
		t.Log("MCPGW_TEST_POSTGRES=off: PostgreSQL is not tested")
		return bs
	}
	if base == "" {
		base = defaultTestPostgres
	}
	pgProbe.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err == nil {
			err = db.PingContext(ctx)
			_ = db.Close()
		}
		pgProbe.err = err
	})
	if pgProbe.err != nil {
		t.Errorf("PostgreSQL at %s is not reachable: %v\n%s", redactDSN(base), pgProbe.err, startPostgresHint)
		return bs
	}
	return append(bs, dbUnderTest{name: "postgres", shared: true, newDSN: func(t *testing.T) string {
		return postgresSchemaDSN(t, base)
	}})
}

// postgresSchemaDSN creates a schema of its own for the test, dropped at
// cleanup, and returns a DSN whose search_path points at it.
func postgresSchemaDSN(t *testing.T, base string) string {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "mcpgw_test_" + hex.EncodeToString(rnd[:])
	admin := func(stmt string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatalf("postgres: %v", err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("postgres: %s: %v\n%s", stmt, err, startPostgresHint)
		}
	}
	admin("CREATE SCHEMA " + schema)
	t.Cleanup(func() { admin("DROP SCHEMA " + schema + " CASCADE") })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

func openTest(t *testing.T, dsn string) Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustRevision(t *testing.T, s Store) int64 {
	t.Helper()
	r, err := s.Revision(context.Background())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return r
}

func countRows(t *testing.T, s Store, table string) int {
	t.Helper()
	var n int
	if err := s.(*sqlStore).db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func migrationCount(t *testing.T, d dialect) int {
	t.Helper()
	m, err := loadMigrations(d)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func describe(v any) string { return fmt.Sprintf("%+v", v) }
