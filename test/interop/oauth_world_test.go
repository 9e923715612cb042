package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// The world of the OAuth interop tests: a gateway whose authorization
// server is on (oauth.enabled), in front of the demo notes backend, with
// testidp as the IdP people log in at.
const (
	oauthAgent        = "ts-sdk"
	oauthClientPrefix = "mcpgw interop"     // registration rule: client_name "mcpgw interop*" → oauthAgent
	oauthUpstreamID   = "mcpgw-facade"      // the gateway's own client at testidp
	oauthUpstreamKey  = "facade-secret"     // its secret
	oauthAdminClient  = "admin-cli"         // the admins' client at testidp (admin API calls)
	oauthUser         = "alice"             // the person who logs in
	oauthPassword     = "correct horse"     // her password at testidp's form
	oauthUserSubject  = "00u-alice-interop" // her subject
	oauthBackend      = "notes"             // the backend behind the gateway
	oauthBrowserRun   = 4 * time.Minute     // one script run with a Chromium on a shared machine
)

type oauthWorld struct {
	url   string // the gateway's public URL (also its issuer)
	idp   *testidp.Server
	srv   *gateway.Server
	admin string // a super-admin's token for the admin API
}

type oauthWorldOptions struct {
	accessTokenTTL time.Duration // 0: the default (1h)
	// cimdTransport, set, lets the gateway fetch Client ID Metadata
	// Documents from loopback with these TLS settings (a test server's CA).
	cimdTransport *http.Transport
	// corsOrigins is oauth.cors_origins.
	corsOrigins []string
	// federatedPath is server.federated_path ("": off).
	federatedPath string
}

// startOAuthWorld starts testidp, the demo notes backend and an in-process
// gateway (gateway.Start, as `mcpgw serve` does, from a YAML config read by
// config.Load) on free loopback ports; all are stopped by t.Cleanup.
func startOAuthWorld(t *testing.T, opts oauthWorldOptions) *oauthWorld {
	t.Helper()
	p := findPeers(t)
	idp := startIdP(t)
	notes, err := demo.StartNotes(demo.Options{})
	if err != nil {
		t.Fatalf("start the demo notes backend: %v", err)
	}
	t.Cleanup(func() { _ = notes.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	base := "http://" + ln.Addr().String()
	q := strconv.Quote
	var b bytes.Buffer
	fmt.Fprintf(&b, "server: {listen: %s, public_url: %s, federated_path: %s}\n", q(ln.Addr().String()), q(base), q(opts.federatedPath))
	// No clock skew: the SDK test waits for its access token to expire.
	fmt.Fprintf(&b, "identity: {issuers: [{issuer: %s, audiences: [%s]}], clock_skew: 0s}\n", q(idp.Issuer()), q(gatewayAudience))
	// A generous policy timeout: two shared cores must not turn into denials.
	fmt.Fprintf(&b, "policy: {bundle: %s, allow_unsigned: true, timeout: 10s}\n", q(filepath.Join(p.repoRoot(), "policies")))
	b.WriteString("store: {dsn: \":memory:\"}\n")
	fmt.Fprintf(&b, "backends:\n  %s: {url: %s, paths: [%s], auth_method: none, timeout_seconds: 20}\n", oauthBackend, q(notes.URL), q("/"+oauthBackend))
	fmt.Fprintf(&b, "agents:\n  %s: {agent_id: %s, scopes: [mcp:read, mcp:write], backend_access: [%s]}\n", oauthAgent, q(oauthAgent), oauthBackend)
	fmt.Fprintf(&b, "  admin-console: {client_id: %s, scopes: [mcp:read]}\n", q(oauthAdminClient))
	b.WriteString("oauth:\n  enabled: true\n")
	fmt.Fprintf(&b, "  upstream: {issuer: %s, client_id: %s, client_secret: %s, scopes: [openid, profile, email]}\n",
		q(idp.Issuer()), q(oauthUpstreamID), q(oauthUpstreamKey))
	if opts.accessTokenTTL > 0 {
		fmt.Fprintf(&b, "  access_token_ttl: %s\n", opts.accessTokenTTL)
	}
	fmt.Fprintf(&b, "  registration: {rules: [{client_name: %s, agent: %s}]}\n", q(oauthClientPrefix+"*"), q(oauthAgent))
	if len(opts.corsOrigins) > 0 {
		quoted := make([]string, len(opts.corsOrigins))
		for i, o := range opts.corsOrigins {
			quoted[i] = q(o)
		}
		fmt.Fprintf(&b, "  cors_origins: [%s]\n", strings.Join(quoted, ", "))
	}
	if opts.cimdTransport != nil {
		b.WriteString("  client_metadata_documents: {allow_private_addresses: true}\n")
	}

	dir := t.TempDir()
	configPath := filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(configPath, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(configPath, nil)
	if err != nil {
		t.Fatalf("gateway config:\n%s\n%v", b.String(), err)
	}
	logs := &tailBuffer{}
	srv, err := gateway.Start(t.Context(), cfg, gateway.StartOptions{
		Listener:      ln,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		CIMDTransport: opts.cimdTransport,
	})
	if err != nil {
		t.Fatalf("start gateway: %v\nconfig:\n%s", err, b.String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		if t.Failed() {
			t.Logf("gateway log (warnings and errors, last %d bytes at most):\n%s", outputTailBytes, logs.String())
		}
	})

	if err := idp.RegisterClient(testidp.Client{ID: oauthUpstreamID, Secret: oauthUpstreamKey,
		Scopes: []string{"openid", "profile", "email"}, RedirectURIs: []string{base + "/oauth2/callback"}}); err != nil {
		t.Fatal(err)
	}
	if err := idp.AddUser(testidp.User{Username: oauthUser, Password: oauthPassword, Subject: oauthUserSubject,
		Email: "alice@example.com", Name: "Alice Example", Groups: []string{"mcp-viewers"}}); err != nil {
		t.Fatal(err)
	}
	admin, err := idp.MintUser("root", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, map[string]any{"cid": oauthAdminClient})
	if err != nil {
		t.Fatal(err)
	}
	return &oauthWorld{url: base, idp: idp, srv: srv, admin: admin}
}

// oauthAdminClientEntry is one client of GET /admin/v1/oauth/clients.
type oauthAdminClientEntry struct {
	ClientID string `json:"client_id"`
	Agent    string `json:"agent"`
	Name     string `json:"client_name"`
}

// oauthAdminGrantEntry is one grant (token family) of GET /admin/v1/oauth/grants.
type oauthAdminGrantEntry struct {
	ClientID  string     `json:"client_id"`
	Agent     string     `json:"agent"`
	Subject   string     `json:"subject"`
	Resource  string     `json:"resource"`
	RevokedAt *time.Time `json:"revoked_at"`
	Reason    string     `json:"revoked_reason"`
}

// adminGet reads path of the admin API as a super-admin into v and returns
// the raw body for failure messages.
func (w *oauthWorld) adminGet(t *testing.T, path string, v any) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin API: %v", err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", path, resp.StatusCode, raw.Bytes())
	}
	if err := json.Unmarshal(raw.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, raw.Bytes())
	}
	return raw.Bytes()
}

// runBrowserScript runs a node script of oauth/ (it starts a Chromium) and
// decodes the one JSON object it prints into out.
func runBrowserScript(t *testing.T, p peers, script string, out any, args ...string) {
	t.Helper()
	if _, err := os.Stat(chromiumBinary); err != nil {
		t.Fatalf("Chromium is needed for the browser tests (`make interop-deps` installs Debian's): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), oauthBrowserRun)
	defer cancel()
	res := run(ctx, script, command(ctx, p.dir, peerEnv(t), p.node, append([]string{p.path(script)}, args...)...))
	if res.err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if err := json.Unmarshal(res.stdout, out); err != nil {
		t.Fatalf("%s printed %q: %v\nstderr:\n%s", script, res.stdout, err, res.stderr)
	}
	if len(res.stderr) > 0 {
		t.Logf("%s stderr:\n%s", script, res.stderr)
	}
}
