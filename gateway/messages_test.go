package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// recorder keeps what a backend received and the gateway's audit records.
type recorder struct {
	mu      sync.Mutex
	bodies  []string
	methods []string
	paths   []string
	records []audit.Record
}

func (r *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(body))
		r.methods = append(r.methods, req.Method)
		r.paths = append(r.paths, req.URL.RawPath+"|"+req.URL.Path)
		r.mu.Unlock()
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(w, req)
	})
}

func (r *recorder) audit(_ context.Context, rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
}

func (r *recorder) seen() (bodies, methods []string, records []audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...), append([]string(nil), r.methods...), append([]audit.Record(nil), r.records...)
}

func TestHostileMessagesNeverReachTheBackend(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, harnessOptions{wrapNotes: rec.wrap, audit: rec.audit})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	call := func(params string) string {
		return `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":` + params + `}`
	}
	cases := []struct {
		name string
		body string
		code int
	}{
		{"case-variant name", call(`{"name":"list_files","NAME":"echo"}`), -32602},
		{"duplicate name", call(`{"name":"list_files","name":"echo"}`), -32700},
		{"upper-case envelope member", `{"jsonrpc":"2.0","id":9,"method":"ping","METHOD":"tools/call","params":{"name":"list_files"}}`, -32600},
		{"request and response at once", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"list_files"},"Method":null,"result":{}}`, -32600},
		{"number a double cannot hold", call(`{"name":"read_file","arguments":{"path":"/etc/passwd","n":1e400}}`), -32700},
		{"argument folding onto a schema property", call(`{"name":"read_file","arguments":{"PATH":"/etc/passwd"}}`), -32602},
		{"tool the backend does not list", call(`{"name":"no_such_tool"}`), -32602},
		{"lone surrogate", call(`{"name":"echo","arguments":{"message":"\ud800"}}`), -32700},
		{"trailing data", call(`{"name":"echo","arguments":{"message":"x"}}`) + `{}`, -32700},
		{"batch with a repeated id", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]`, -32600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _, _ := rec.seen()
			headers := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}
			if strings.HasPrefix(c.body, "[") {
				headers["Mcp-Protocol-Version"] = "2025-03-26"
			}
			resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid, body: c.body, headers: headers})
			msgs := rpcMessages(t, resp)
			if code, msg := rpcErrorCode(msgs[0]); code != c.code {
				t.Fatalf("HTTP %d, error %d %q; want %d", resp.StatusCode, code, msg, c.code)
			}
			after, _, records := rec.seen()
			// A refused tools/call may make the gateway list the tools itself,
			// but the message itself never reaches the backend.
			for _, b := range after[len(before):] {
				if strings.Contains(b, `"id":9`) || strings.Contains(b, `"ping"`) {
					t.Fatalf("the backend received %s", b)
				}
			}
			last := records[len(records)-1]
			if last.Allow || last.Kind != audit.KindDecision || last.Subject != "alice" || last.Backend != "notes" || !strings.Contains(strings.Join(last.Reasons, " "), "refused by the gateway") {
				t.Fatalf("refusal audit record = %+v", last)
			}
		})
	}
}

func TestForwardedBytesAreTheDecidedReading(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, harnessOptions{wrapNotes: rec.wrap})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	before, _, _ := rec.seen()
	body := " {\"jsonrpc\" : \"2.0\", \"id\":7, \"m\\u0065thod\":\"tools/call\",\n \"params\":{\"n\\u0061me\":\"echo\",\"arguments\":{\"message\":\"<\\u00e9>\"}}} "
	resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid, body: body,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}})
	msgs := rpcMessages(t, resp)
	if msgs[0]["error"] != nil {
		t.Fatalf("call refused: %v", msgs[0])
	}
	after, _, _ := rec.seen()
	want := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"<é>"}}}`
	var got []string
	for _, b := range after[len(before):] {
		if strings.Contains(b, `"id":7`) {
			got = append(got, b)
		}
	}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("backend received %q, want exactly %q", got, want)
	}
}

func TestPathsTwoServersReadDifferentlyAreRefused(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, harnessOptions{wrapNotes: rec.wrap, audit: rec.audit})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	cases := []struct {
		path   string
		status int
	}{
		{"/notes/../employees", http.StatusBadRequest},
		{"/notes/%2e%2e/employees", http.StatusBadRequest},
		{"/notes/%2E%2E/employees", http.StatusBadRequest},
		{"/notes%2f..%2femployees", http.StatusBadRequest},
		{"/notes/..%5cemployees", http.StatusBadRequest},
		{"/notes/./", http.StatusBadRequest},
		{"/notes//x", http.StatusBadRequest},
		{"/notes/..;/employees", http.StatusBadRequest},
		{"/notes/%252e%252e/employees", http.StatusBadRequest},
		{"/notes/%zz", http.StatusBadRequest},
		{"/notes/sub", http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			before, _, _ := rec.seen()
			req, err := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(initBody))
			if err != nil {
				t.Fatal(err)
			}
			// Opaque keeps the path exactly as written: Go's client would
			// otherwise clean or re-encode it.
			req.URL.Opaque = c.path
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Agent-ID", "claude-code")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, body, c.status)
			}
			if after, _, _ := rec.seen(); len(after) != len(before) {
				t.Fatalf("the backend received %q", after[len(before):])
			}
		})
	}
	_, _, records := rec.seen()
	if len(records) == 0 || !strings.Contains(records[0].Reasons[0], "request path") {
		t.Fatalf("path refusals are not audited: %+v", records)
	}
}

func TestForwardSubpaths(t *testing.T) {
	paths := make(chan string, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, c := range []struct {
		subpaths bool
		path     string
		status   int
		backend  string
	}{
		{false, "/sub", http.StatusAccepted, "/mcp/"},
		{false, "/sub/", http.StatusAccepted, "/mcp/"},
		{false, "/sub/extra", http.StatusNotFound, ""},
		{true, "/sub/extra", http.StatusAccepted, "/mcp/extra"},
	} {
		h := newHarness(t, harnessOptions{mutate: func(cfg *config.Config) {
			cfg.Backends["sub"] = config.Backend{URL: "http://" + ln.Addr().String() + "/mcp/", Paths: []string{"/sub"}, AuthMethod: "none", ForwardSubpaths: c.subpaths}
			a := cfg.Agents["claude-code"]
			a.BackendAccess = append(a.BackendAccess, "sub")
			cfg.Agents["claude-code"] = a
		}})
		tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
		resp := h.do(rawRequest{path: c.path, token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
		t.Logf("forward_subpaths %v, %s", c.subpaths, c.path)
		testutil.WantStatus(t, resp, c.status)
		readAll(t, resp)
		if c.backend == "" {
			continue
		}
		// The backend's URL is used as configured (its trailing slash kept);
		// only a backend with forward_subpaths gets the sub-path.
		if got := <-paths; got != c.backend {
			t.Fatalf("forward_subpaths %v, %s: backend saw %s, want %s", c.subpaths, c.path, got, c.backend)
		}
	}
}

// denyKindPolicy allows everything but GET streams and DELETEs.
const denyKindPolicy = `package mcp.gateway

decision := {"allow": false, "reasons": [sprintf("no %s", [input.mcp.kind])], "status": 0} if {
	input.mcp.kind in {"stream", "close"}
} else := {"allow": true, "reasons": [], "status": 0}

visible_tools contains t.name if some t in input.tools
visible_resources contains r.uri if some r in input.resources
visible_prompts contains p.name if some p in input.prompts
`

func TestGetAndDeleteAreDecided(t *testing.T) {
	rec := &recorder{}
	dir := t.TempDir()
	writeFile(t, dir+"/p.rego", denyKindPolicy)
	var mu sync.Mutex
	var decided []policy.Record
	eng, err := policy.New(context.Background(), policy.Options{Source: dir, AllowUnsigned: true, Logger: quietLogger(),
		DecisionLog: func(_ context.Context, r policy.Record) { mu.Lock(); decided = append(decided, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Stop(context.Background()) })
	h := newHarness(t, harnessOptions{authorizer: eng, wrapNotes: rec.wrap})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		_, before, _ := rec.seen()
		resp := h.do(rawRequest{method: method, path: "/notes", token: tok, agent: "claude-code", session: sid})
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "decision_id") {
			t.Fatalf("%s: HTTP %d %s, want 403 naming the decision", method, resp.StatusCode, body)
		}
		if _, after, _ := rec.seen(); len(after) != len(before) {
			t.Fatalf("%s reached the backend: %v", method, after[len(before):])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]bool{}
	for _, r := range decided {
		if !r.Allow {
			kinds[r.Method] = true
		}
	}
	if !kinds["GET"] || !kinds["DELETE"] {
		t.Fatalf("denied decisions %v do not include GET and DELETE", kinds)
	}
}

func TestRepliesAreFilteredWhateverTheirMediaType(t *testing.T) {
	cases := []struct {
		name, contentType string
		status            int
		body              string
		wantStatus        int
		wantTools         string
	}{
		{"json-seq label", "application/json-seq", 200, `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get_secret"}]}}`, 200, "echo"},
		{"error status", "application/json", 400, `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get_secret"}]}}`, 400, "echo"},
		{"text label", "text/plain", 200, `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get_secret"}]}}`, 200, "echo"},
		{"upper-case list member", "application/json", 200, `{"jsonrpc":"2.0","id":1,"result":{"Tools":[{"name":"echo"},{"name":"get_secret"}]}}`, 200, "echo"},
		{"duplicate members", "application/json", 200, `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]},"result":{"tools":[{"name":"get_secret"}]}}`, 502, ""},
		{"mislabelled garbage", "application/json", 200, `{"jsonrpc":"2.0",`, 502, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			backend := fixedBackend(t, c.contentType, c.status, c.body)
			h := newHarness(t, harnessOptions{authorizer: engineFor(t, writePolicy(t, echoOnlyPolicy)), mutate: func(cfg *config.Config) {
				cfg.Backends["fixed"] = config.Backend{URL: backend, Paths: []string{"/fixed"}, AuthMethod: "none"}
				a := cfg.Agents["claude-code"]
				a.BackendAccess = append(a.BackendAccess, "fixed")
				cfg.Agents["claude-code"] = a
			}})
			tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
			resp := h.do(rawRequest{path: "/fixed", token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
			body := string(readAll(t, resp))
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, body, c.wantStatus)
			}
			if strings.Contains(body, "get_secret") {
				t.Fatalf("a hidden tool reached the client: %s", body)
			}
			if c.wantTools != "" && !strings.Contains(body, `"name":"`+c.wantTools+`"`) {
				t.Fatalf("reply %s lost the visible tool", body)
			}
		})
	}
}

const echoOnlyPolicy = `package mcp.gateway

decision := {"allow": true, "reasons": [], "status": 0}

visible_tools contains t.name if {
	some t in input.tools
	t.name == "echo"
}
visible_resources contains r.uri if some r in input.resources
visible_prompts contains p.name if some p in input.prompts
`

func writePolicy(t *testing.T, rego string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir+"/p.rego", rego)
	return dir
}

func fixedBackend(t *testing.T, contentType string, status int, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A replica that has not relayed a backend's tools/list decides a call on
// the same catalog entry as one that has: it lists the tools itself.
func TestFreshReplicaDecidesCallsOnTheBackendsOwnCatalog(t *testing.T) {
	h := newHarness(t, harnessOptions{authorizer: shippedEngine(t)})
	// An admin holding only the read scope may call a tool the backend
	// marks read-only (readOnlyHint), and "add" is read-only by annotation
	// alone, not by any name pattern of the shipped data.
	tok := h.token("alice", []string{"mcp:read"}, []string{"mcp-admins"}, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d %s: the call was decided without the tool's annotations", resp.StatusCode, readAll(t, resp))
	}
	msgs := rpcMessages(t, resp)
	if msgs[0]["error"] != nil || !strings.Contains(fmt.Sprint(msgs[0]["result"]), "5") {
		t.Fatalf("reply %v, want the sum", msgs[0])
	}
}
