package interop

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const corsProbeScript = "oauth/cors-probe.mjs"

// corsResult is one fetch of cors-probe.mjs: what the page could read, or
// Blocked when the browser refused it.
type corsResult struct {
	Blocked              string   `json:"blocked"`
	Status               int      `json:"status"`
	WWWAuthenticate      string   `json:"wwwAuthenticate"`
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorizationServers"`
	Issuer               string   `json:"issuer"`
	ClientID             string   `json:"clientID"`
	Error                string   `json:"error"`
}

// TestOAuthBrowserClientCORS: a browser-based client (the MCP Inspector's
// web UI, a web app) runs the OAuth flow's requests from its own origin.
// From an origin in oauth.cors_origins Chromium lets it read the metadata,
// register (after a preflight) and use the token and revocation endpoints;
// from any other origin it refuses, as the issue asks ("CORS preflight
// answered for configured origins").
func TestOAuthBrowserClientCORS(t *testing.T) {
	p := findPeers(t)
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>web client</title><p>a browser-based MCP client</p>"))
	}
	allowed := httptest.NewServer(http.HandlerFunc(page))
	t.Cleanup(allowed.Close)
	other := httptest.NewServer(http.HandlerFunc(page))
	t.Cleanup(other.Close)
	w := startOAuthWorld(t, oauthWorldOptions{corsOrigins: []string{allowed.URL}})

	var got map[string]map[string]corsResult
	runBrowserScript(t, p, corsProbeScript, &got, "--gateway", w.url, "--page", "allowed="+allowed.URL+"/", "--page", "other="+other.URL+"/")
	for _, name := range slices.Sorted(maps.Keys(got)) {
		for _, step := range slices.Sorted(maps.Keys(got[name])) {
			t.Logf("%s origin, %s: %+v", name, step, got[name][step])
		}
	}
	a, o := got["allowed"], got["other"]
	if a == nil || o == nil {
		t.Fatalf("script output: %+v", got)
	}

	t.Run("allowed origin", func(t *testing.T) {
		if r := a["protectedResource"]; r.Blocked != "" || r.Status != 200 || r.Resource != w.url+"/"+oauthBackend {
			t.Errorf("protected resource metadata: %+v", r)
		}
		if r := a["metadata"]; r.Blocked != "" || r.Status != 200 || r.Issuer != w.url {
			t.Errorf("authorization server metadata: %+v", r)
		}
		if r := a["register"]; r.Blocked != "" || r.Status != http.StatusCreated || !strings.HasPrefix(r.ClientID, "mcpgw-") {
			t.Errorf("registration (JSON, preflighted): %+v", r)
		}
		if r := a["token"]; r.Blocked != "" || r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("token endpoint (a bogus code): %+v, want a readable 400 invalid_grant", r)
		}
		if r := a["revoke"]; r.Blocked != "" || r.Status != http.StatusOK {
			t.Errorf("revocation endpoint: %+v", r)
		}
	})
	// Not asserted, reported: the MCP endpoint itself answers no CORS
	// headers (server.allowed_origins is Origin checking, not CORS), so a
	// page of an allowed origin cannot read the 401 and its WWW-Authenticate,
	// where a browser client's discovery starts, nor talk MCP directly; the
	// Inspector's web UI needs its local proxy for that part.
	if r := a["mcp"]; r.Blocked != "" {
		t.Logf("note: the MCP endpoint's 401 is not readable from %s either (%s): browser clients cannot start discovery from it", allowed.URL, r.Blocked)
	}
	t.Run("other origin refused", func(t *testing.T) {
		for _, step := range []string{"metadata", "register", "token", "revoke"} {
			if r := o[step]; r.Blocked == "" {
				t.Errorf("%s from an origin not in cors_origins was readable: %+v", step, r)
			}
		}
	})
}
