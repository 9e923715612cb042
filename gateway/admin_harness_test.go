package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
)

// adminWorld is a whole gateway assembled by Start: a real identity
// provider, the shipped policies, an in-memory SQLite store and a demo notes
// backend, all on free loopback ports and stopped by the test. The store is
// polled only hourly, so whatever changes sooner was applied by the admin
// API itself.
type adminWorld struct {
	*harness
	srv *Server
	// sink is an extra audit sink, as stdout or an HTTP collector would be.
	sink *recordingSink
	// Tokens of the shipped policy's roles.
	root, admin, viewer, nobody string
}

func newAdminWorld(t *testing.T, mutate ...func(*config.Config)) *adminWorld {
	t.Helper()
	idp := startIdP(t)
	notes := startNotes(t, demo.Options{})
	ln := listenLoopback(t)
	cfg := baseConfig(ln, idp.Issuer())
	cfg.Server.MaxBodyBytes = 64 << 10
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.Backends["notes"] = notesBackend(notes.URL)
	cfg.Agents["claude-code"] = claudeCodeAgent([]string{"mcp:read", "mcp:write"}, "notes")
	cfg.Agents["admin-console"] = adminConsoleAgent()
	cfg.Policy = policyConfig(shippedPolicy)
	cfg.Store = storeConfig(":memory:", time.Hour)
	for _, m := range mutate {
		m(cfg)
	}
	sink := &recordingSink{}
	srv := startServer(t, cfg, StartOptions{Listener: ln, AuditSinks: []audit.Sink{sink}}, 5*time.Second)
	w := &adminWorld{harness: &harness{t: t, idp: idp, cfg: cfg, gw: srv.Gateway, url: srv.URL, notes: notes}, srv: srv, sink: sink}
	scopes := []string{"mcp:read", "mcp:write"}
	w.root = w.token("root", scopes, []string{"mcp-super-admins"}, adminClient)
	w.admin = w.token("bob", scopes, []string{"mcp-admins"}, adminClient)
	w.viewer = w.token("vera", scopes, []string{"mcp-viewers"}, adminClient)
	w.nobody = w.token("nina", scopes, nil, adminClient)
	return w
}

// recordingSink keeps what it is given.
type recordingSink struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (s *recordingSink) Write(_ context.Context, r audit.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
}

func (s *recordingSink) Close(context.Context) error { return nil }

// all is every record so far.
func (s *recordingSink) all() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

func (s *recordingSink) changes() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Record
	for _, r := range s.recs {
		if r.Kind == audit.KindChange {
			out = append(out, r)
		}
	}
	return out
}

// api calls the admin API; a body is sent as JSON.
func (w *adminWorld) api(method, path, token, body string) (int, http.Header, []byte) {
	w.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.url+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header, readAll(w.t, resp)
}

// must calls the admin API and fails the test unless the status is want.
func (w *adminWorld) must(want int, method, path, token, body string) []byte {
	w.t.Helper()
	status, _, b := w.api(method, path, token, body)
	if status != want {
		w.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	return b
}

func (w *adminWorld) revision() int64 {
	w.t.Helper()
	rev, err := w.srv.Store.Revision(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return rev
}

// auditPage reads one page of GET /admin/v1/audit.
func (w *adminWorld) auditPage(token, query string) ([]audit.Record, string) {
	w.t.Helper()
	var page struct {
		Records    []audit.Record `json:"records"`
		NextCursor string         `json:"next_cursor"`
	}
	decodeJSON(w.t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/audit?"+query, token, ""), &page)
	return page.Records, page.NextCursor
}

type apiEntry struct {
	Name      string         `json:"name"`
	Source    string         `json:"source"`
	Version   int64          `json:"version"`
	UpdatedAt time.Time      `json:"updated_at"`
	UpdatedBy string         `json:"updated_by"`
	Value     map[string]any `json:"value"`
}

type apiError struct {
	Error       string   `json:"error"`
	Description string   `json:"error_description"`
	Details     []string `json:"details"`
	DecisionID  string   `json:"decision_id"`
	Reasons     []string `json:"reasons"`
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// mcpSession initializes an MCP session through the gateway. It is safe in
// any goroutine: failures are returned, never reported through t.
func mcpSession(base, path, token, agent string) (string, error) {
	status, hdr, body, err := mcpPost(base, path, token, agent, "", initBody)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK || hdr.Get("Mcp-Session-Id") == "" {
		return "", &mcpFailure{step: "initialize", status: status, body: body}
	}
	sid := hdr.Get("Mcp-Session-Id")
	if _, _, _, err := mcpPost(base, path, token, agent, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return "", err
	}
	return sid, nil
}

// mcpEcho calls the notes backend's echo tool in a session and checks the
// reply carries the message back.
func mcpEcho(base, path, token, agent, sid string, id int, msg string) error {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":%q}}}`, id, msg)
	status, _, reply, err := mcpPost(base, path, token, agent, sid, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(reply, msg) || strings.Contains(reply, `"error"`) {
		return &mcpFailure{step: "tools/call echo", status: status, body: reply}
	}
	return nil
}

// mcpEchoOnce opens a session and calls echo, returning the HTTP status of
// the step that failed (or 200).
func mcpEchoOnce(base, path, token, agent, msg string) (int, error) {
	sid, err := mcpSession(base, path, token, agent)
	if err != nil {
		if f, ok := err.(*mcpFailure); ok {
			return f.status, err
		}
		return 0, err
	}
	if err := mcpEcho(base, path, token, agent, sid, 2, msg); err != nil {
		if f, ok := err.(*mcpFailure); ok {
			return f.status, err
		}
		return 0, err
	}
	return http.StatusOK, nil
}

type mcpFailure struct {
	step   string
	status int
	body   string
}

func (f *mcpFailure) Error() string { return fmt.Sprintf("%s: HTTP %d: %s", f.step, f.status, f.body) }

func mcpPost(base, path, token, agent, sid, body string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Agent-ID", agent)
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", err
	}
	return resp.StatusCode, resp.Header, string(b), nil
}
