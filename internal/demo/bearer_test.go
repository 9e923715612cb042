package demo

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

func startAS(t *testing.T) *testidp.Server {
	t.Helper()
	s, err := testidp.Start(t.Context(), testidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRequireBearer(t *testing.T) {
	const resource = "https://hr.example/mcp"
	as := startAS(t)    // the backend's own authorization server
	other := startAS(t) // the user's IdP
	v, err := identity.NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{{Issuer: as.Issuer(), Audiences: []string{resource, "api://also-trusted"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)

	var seen string
	b, err := StartEmployees(Options{Stateless: true, Wrap: func(next http.Handler) http.Handler {
		return RequireBearer(v, resource)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := BearerPrincipal(r.Context())
			if ok {
				seen = p.Subject
			}
			next.ServeHTTP(w, r)
		}))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	mint := func(s *testidp.Server, claims map[string]any) string {
		t.Helper()
		tok, err := s.Mint(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(as, map[string]any{"sub": "alice", "aud": resource})
	tests := []struct {
		name          string
		authorization string
		status        int
		wwwAuth       string
	}{
		{name: "exchanged token", authorization: "Bearer " + good, status: http.StatusOK},
		{name: "scheme is case-insensitive", authorization: "bearer " + good, status: http.StatusOK},
		{name: "no credentials", status: http.StatusUnauthorized, wwwAuth: `Bearer realm="demo"`},
		{name: "basic credentials", authorization: "Basic YTpi", status: http.StatusUnauthorized, wwwAuth: `Bearer realm="demo"`},
		{name: "empty bearer", authorization: "Bearer ", status: http.StatusUnauthorized, wwwAuth: `Bearer realm="demo"`},
		{name: "the user's own token (another issuer)", authorization: "Bearer " + mint(other, map[string]any{"sub": "alice", "aud": resource}),
			status: http.StatusUnauthorized, wwwAuth: `error="invalid_token"`},
		{name: "trusted issuer, another audience the verifier accepts", authorization: "Bearer " + mint(as, map[string]any{"sub": "alice", "aud": "api://also-trusted"}),
			status: http.StatusUnauthorized, wwwAuth: `error="invalid_token"`},
		{name: "expired", authorization: "Bearer " + mint(as, map[string]any{"sub": "alice", "aud": resource, "exp": time.Now().Add(-time.Hour)}),
			status: http.StatusUnauthorized, wwwAuth: `error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = ""
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.URL,
				strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_employee","arguments":{"id":"e2"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.status == http.StatusOK {
				if !strings.Contains(string(body), "Grace Hopper") || seen != "alice" {
					t.Errorf("body %s, principal %q", body, seen)
				}
				return
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wwwAuth) {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wwwAuth)
			}
			if seen != "" || strings.Contains(string(body), "eyJ") {
				t.Errorf("refused request reached the server or echoed the token: %q %s", seen, body)
			}
		})
	}
}
