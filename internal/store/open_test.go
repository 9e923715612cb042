package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		dsn     string
		wantSub string
		notSub  string
	}{
		{"empty", "", "store.dsn: empty", ""},
		{"keyword dsn", "host=db user=u password=hunter2", "keyword=value", "hunter"},
		{"unknown scheme", "mysql://u:hunter2@db/x", "not supported", "hunter"},
		{"postgres unreachable, password hidden", "postgres://mcpgw:hunter2@127.0.0.1:1/db?sslmode=disable&password=hunter3", "connect postgres", "hunter"},
		{"postgresql scheme", "postgresql://127.0.0.1:1/db?sslmode=disable", "connect postgres", ""},
		{"sqlite in a missing directory", "file:" + filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), "open sqlite", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.dsn)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("error %q does not mention %q", err, tc.wantSub)
			}
			if tc.notSub != "" && strings.Contains(err.Error(), tc.notSub) {
				t.Errorf("error %q leaks %q", err, tc.notSub)
			}
		})
	}
}

func TestSQLiteDSNForms(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{":memory:", "file::memory:", filepath.Join(dir, "plain.db"), "file:" + filepath.Join(dir, "uri.db") + "?cache=private"} {
		t.Run(dsn, func(t *testing.T) {
			s := openTest(t, dsn)
			if _, err := s.Revision(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
