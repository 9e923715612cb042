package gateway

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
)

// pathLog is a backend that answers every JSON-RPC request with an empty
// result and keeps the path and query each request arrived with.
type pathLog struct {
	mu   sync.Mutex
	last [2]string // escaped path, raw query
}

func (p *pathLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.last = [2]string{r.URL.EscapedPath(), r.URL.RawQuery}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
}

func (p *pathLog) take() [2]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.last
	p.last = [2]string{}
	return out
}

// A backend URL with a query, below which sub-paths are forwarded: the
// sub-path joins the URL's path and the query stays after it.
func TestForwardURLKeepsTheQueryAfterTheSubPath(t *testing.T) {
	rec := &pathLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rec, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	base := "http://" + ln.Addr().String()
	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		c.Backends["keyed"] = config.Backend{URL: base + "/mcp?api_key=K-1&x=2", Paths: []string{"/keyed"}, AuthMethod: "none", TimeoutSeconds: 5, ForwardSubpaths: true}
		c.Backends["slashed"] = config.Backend{URL: base + "/mcp/?api_key=K-2", Paths: []string{"/slashed"}, AuthMethod: "none", TimeoutSeconds: 5, ForwardSubpaths: true}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "keyed", "slashed")
		c.Agents["claude-code"] = a
	}})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	for _, tc := range []struct {
		path, wantPath, wantQuery string
	}{
		{"/keyed", "/mcp", "api_key=K-1&x=2"},
		{"/keyed/sub", "/mcp/sub", "api_key=K-1&x=2"},
		{"/keyed/sub/deeper", "/mcp/sub/deeper", "api_key=K-1&x=2"},
		{"/keyed/a%20b", "/mcp/a%20b", "api_key=K-1&x=2"},
		{"/slashed", "/mcp/", "api_key=K-2"},
		{"/slashed/sub", "/mcp/sub", "api_key=K-2"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := h.do(rawRequest{path: tc.path, token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			if got := rec.take(); got != [2]string{tc.wantPath, tc.wantQuery} {
				t.Fatalf("backend got path %q query %q, want %q %q", got[0], got[1], tc.wantPath, tc.wantQuery)
			}
		})
	}
}
