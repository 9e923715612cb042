package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// A client's X-Request-ID goes into log lines, audit records and the
// backend request: it is adopted only when short and plain, and replaced
// by a fresh UUID otherwise.
func TestRequestIDAdoptedOnlyWhenSafe(t *testing.T) {
	var mu sync.Mutex
	var backendSaw string
	rec := &recorder{}
	h := newHarness(t, harnessOptions{audit: rec.audit, wrapNotes: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			backendSaw = r.Header.Get("X-Request-ID")
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	pv := "2025-06-18"
	for _, tc := range []struct {
		name, sent string
		adopted    bool
	}{
		{"a UUID", "0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"letters, digits and . _ : -", "lb.1_req:42-a", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"65 characters", strings.Repeat("a", 65), false},
		{"quotes", `abc" level="error`, false},
		{"a space", "abc def", false},
		{"a slash", "a/b", false},
		{"non-ASCII", "idé", false},
		{"absent", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Mcp-Protocol-Version": pv, "X-Request-ID": tc.sent}
			resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid, headers: headers,
				body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			got := resp.Header.Get("X-Request-ID")
			if tc.adopted && got != tc.sent {
				t.Fatalf("X-Request-ID %q answered as %q, want it adopted", tc.sent, got)
			}
			if !tc.adopted {
				if got == tc.sent {
					t.Fatalf("X-Request-ID %q was adopted", tc.sent)
				}
				if _, err := uuid.Parse(got); err != nil {
					t.Fatalf("generated X-Request-ID %q is not a UUID", got)
				}
			}
			mu.Lock()
			saw := backendSaw
			mu.Unlock()
			if saw != got {
				t.Fatalf("backend got X-Request-ID %q, client was told %q", saw, got)
			}

			// A refused request's audit record carries the same id.
			refused := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid, headers: headers, body: `{"jsonrpc":`})
			readAll(t, refused)
			_, _, records := rec.seen()
			if len(records) == 0 {
				t.Fatal("no audit record of the refusal")
			}
			last := records[len(records)-1]
			if want := refused.Header.Get("X-Request-ID"); last.RequestID != want || (!tc.adopted && last.RequestID == tc.sent) {
				t.Fatalf("audit record has request id %q, answer said %q (sent %q)", last.RequestID, want, tc.sent)
			}
		})
	}
}
