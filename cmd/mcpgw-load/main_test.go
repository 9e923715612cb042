package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/load"
)

func TestRun(t *testing.T) {
	b, err := demo.StartNotes(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("t1\n\nt2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no url", []string{"-n", "1"}, 1, ""},
		{"bad args JSON", []string{"-url", b.URL, "-args", "{"}, 2, ""},
		{"bad header", []string{"-url", b.URL, "-H", "nocolon"}, 2, ""},
		{"missing token file", []string{"-url", b.URL, "-token-file", "/nonexistent"}, 2, ""},
		{"text summary", []string{"-url", b.URL, "-n", "6", "-conns", "2", "-fresh", "message", "-token-file", tokens, "-agent", "a", "-H", "X-Test: 1"}, 0, "6 ok"},
		{"tool errors exit 1", []string{"-url", b.URL, "-n", "2", "-tool", "nope"}, 1, "errors rpc_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errb); code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"-url", b.URL, "-n", "3", "-conns", "1", "-method", "tools/list", "-json"}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var s load.Summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.OK != 3 {
			t.Fatalf("summary %+v, %v", s, err)
		}
	})
}
