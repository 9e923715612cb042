package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/store/storetest"
)

// dbUnderTest is one database the conformance suite runs against.
type dbUnderTest struct {
	name string
	// shared: several Opens of one DSN reach one database (not so for
	// :memory:, where each Open is a new, empty database).
	shared bool
	newDSN func(t *testing.T) string
}

// testBackends lists SQLite in memory, SQLite in a file and PostgreSQL.
// PostgreSQL is required: when it is unreachable the calling test fails and
// says how to start it, unless TEST_POSTGRES=off.
func testBackends(t *testing.T) []dbUnderTest {
	t.Helper()
	bs := []dbUnderTest{
		{name: "sqlite-memory", newDSN: func(*testing.T) string { return ":memory:" }},
		{name: "sqlite-file", shared: true, newDSN: func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "mcpgw.db")
		}},
	}
	if os.Getenv("TEST_POSTGRES") == "off" {
		return bs
	}
	// Asked for in each case, so that an unreachable server skips (or, in
	// CI, fails) the PostgreSQL cases only, not the SQLite ones.
	return append(bs, dbUnderTest{name: "postgres", shared: true, newDSN: func(t *testing.T) string {
		base, ok := storetest.PostgresBase(t)
		if !ok {
			t.SkipNow()
		}
		return storetest.SchemaDSN(t, base)
	}})
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

// openAtMigration opens dsn with the schema as migration last left it, for
// tests of what a later migration does to an older database.
func openAtMigration(t *testing.T, dsn string, last int64) *sqlStore {
	t.Helper()
	ctx := context.Background()
	var (
		s   *sqlStore
		err error
	)
	if strings.HasPrefix(dsn, "postgres") {
		s, err = openPostgres(ctx, dsn)
	} else {
		s, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, s.db, s.d, last); err != nil {
		t.Fatal(err)
	}
	return s
}
