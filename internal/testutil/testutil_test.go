package testutil

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fatalRecorder keeps what a check reports instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestWantStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"not_found","error_description":"unknown session"}`)
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		want    int
		failure []string // what the failure must show; none: no failure
	}{
		{"status as expected: silent, body left unread", http.StatusNotFound, nil},
		{"other status: shows status, want, type and body", http.StatusOK,
			[]string{"GET /mcp", "HTTP 404, want 200", `"application/json"`, "unknown session"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/mcp")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rec := &fatalRecorder{TB: t}
			WantStatus(rec, resp, tc.want)
			for _, s := range tc.failure {
				if !strings.Contains(rec.msg, s) {
					t.Errorf("failure %q does not show %q", rec.msg, s)
				}
			}
			if tc.failure == nil {
				if rec.msg != "" {
					t.Errorf("unexpected failure %q", rec.msg)
				}
				if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "unknown session") {
					t.Errorf("body consumed on success: %q", b)
				}
			}
		})
	}
}
