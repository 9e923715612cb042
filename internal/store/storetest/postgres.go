// Package storetest gives tests a PostgreSQL database of their own: a fresh
// schema on the machine's server, dropped when the test ends. PostgreSQL is
// required; when it is unreachable the test fails and says how to start it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// DefaultPostgres is the server the machines this project runs on start
// before every session and CI run.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// StartHint says how to bring PostgreSQL up.
const StartHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start" +
	" (or set TEST_POSTGRES=postgres://... to use another server, or TEST_POSTGRES=off to test SQLite only)"

var probe struct {
	once sync.Once
	err  error
}

// PostgresBase is the server DSN tests use (TEST_POSTGRES, else
// DefaultPostgres); ok is false when TEST_POSTGRES=off. It fails t when the server does not answer in CI (CI set), and skips the test, saying
// why, on a developer's machine.
func PostgresBase(t testing.TB) (dsn string, ok bool) {
	t.Helper()
	base := os.Getenv("TEST_POSTGRES")
	if base == "off" {
		t.Log("TEST_POSTGRES=off: PostgreSQL is not tested")
		return "", false
	}
	if base == "" {
		base = DefaultPostgres
	}
	probe.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err == nil {
			err = db.PingContext(ctx)
			_ = db.Close()
		}
		probe.err = err
	})
	if probe.err != nil {
		testutil.Unreachable(t, "PostgreSQL", probe.err, StartHint)
		return "", false
	}
	return base, true
}

// SchemaDSN creates a schema of the test's own on base, dropped at
// cleanup, and returns a DSN whose search_path points at it.
func SchemaDSN(t testing.TB, base string) string {
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
			t.Fatalf("postgres: %s: %v\n%s", stmt, err, StartHint)
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
