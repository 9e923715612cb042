package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// catcher is a server an admin might re-point a backend at: it records every
// request's headers and body, so a test can tell whether a stored secret
// reached it.
type catcher struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func startCatcher(t *testing.T) *catcher {
	t.Helper()
	c := &catcher{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var sb strings.Builder
		_ = r.Header.Write(&sb)
		c.mu.Lock()
		c.seen = append(c.seen, sb.String()+string(body))
		c.mu.Unlock()
		http.Error(w, "caught", http.StatusUnauthorized)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *catcher) received(secret string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.seen {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

// A PUT that keeps a stored secret ("[REDACTED]", or auth_config left out)
// while changing where the backend's requests go would send that secret to
// the new destination: an admin who may write backends but was never told
// the key could read it off a server of their own. The secret must be given
// again.
func TestAdminRepointingABackendNeedsItsSecretAgain(t *testing.T) {
	w := newAdminWorld(t)
	catch := startCatcher(t)
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/vault", w.root, toJSON(map[string]any{
		"url": w.notes.URL, "auth_method": "pre-shared-key", "auth_config": map[string]any{"api_key": "psk-123", "header_name": "X-Vault-Key"},
	}))
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/reports", w.root, toJSON(map[string]any{
		"url": w.notes.URL, "auth_method": "client-credentials",
		"auth_config": map[string]any{"token_endpoint": "http://127.0.0.1:9/token", "client_id": "mcpgw", "client_secret": "cc-123"},
	}))
	for _, tc := range []struct {
		name, backend string
		body          map[string]any
		want          int
		inBody        string
	}{
		{"url changed, api_key kept by the redaction marker", "vault", map[string]any{
			"url": catch.URL, "auth_method": "pre-shared-key", "auth_config": map[string]any{"api_key": secrets.Placeholder, "header_name": "X-Vault-Key"},
		}, 400, "backends.vault.auth_config.api_key: the destination changed (url); give the secret again"},
		{"url changed, auth_config left out", "vault", map[string]any{
			"url": catch.URL, "auth_method": "pre-shared-key",
		}, 400, "backends.vault.auth_config.api_key: the destination changed (url); give the secret again"},
		{"token endpoint changed, client_secret kept", "reports", map[string]any{
			"url": w.notes.URL, "auth_method": "client-credentials",
			"auth_config": map[string]any{"token_endpoint": catch.URL + "/token", "client_id": "mcpgw", "client_secret": secrets.Placeholder},
		}, 400, "backends.reports.auth_config.client_secret: the destination changed (auth_config.token_endpoint); give the secret again"},
		{"token endpoint and url changed, auth_config left out", "reports", map[string]any{
			"url": catch.URL, "auth_method": "client-credentials",
		}, 400, "backends.reports.auth_config.client_secret: the destination changed (url); give the secret again"},
		{"same destination, secret kept", "vault", map[string]any{
			"url": w.notes.URL, "auth_method": "pre-shared-key", "description": "edited",
			"auth_config": map[string]any{"api_key": secrets.Placeholder, "header_name": "X-Vault-Key"},
		}, 200, `"description":"edited"`},
		{"same destination, auth_config left out", "reports", map[string]any{
			"url": w.notes.URL, "auth_method": "client-credentials", "description": "edited",
		}, 200, `"description":"edited"`},
		{"url changed, secret given again", "vault", map[string]any{
			"url": catch.URL, "auth_method": "pre-shared-key", "auth_config": map[string]any{"api_key": "psk-new", "header_name": "X-Vault-Key"},
		}, 200, catch.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.revision()
			status, _, body := w.api(http.MethodPut, "/admin/v1/backends/"+tc.backend, w.root, toJSON(tc.body))
			if status != tc.want || !strings.Contains(string(body), tc.inBody) {
				t.Fatalf("status %d body %s, want %d containing %q", status, body, tc.want, tc.inBody)
			}
			if tc.want == http.StatusOK {
				return
			}
			if after := w.revision(); after != before {
				t.Fatalf("a refused re-pointing was written: revision %d -> %d", before, after)
			}
			stored, err := w.srv.Store.GetBackend(context.Background(), tc.backend)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Value.URL != w.notes.URL {
				t.Fatalf("stored url %q after a refused write", stored.Value.URL)
			}
		})
	}
	// A call through the re-pointed backend carries the key given with the
	// new url, never the old one.
	user := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	w.must(http.StatusOK, http.MethodPut, "/admin/v1/agents/claude-code", w.root,
		`{"agent_id":"claude-code","client_id":"claude-client","scopes":["mcp:read","mcp:write"],"backend_access":["notes","vault","reports"]}`)
	_, _ = mcpEchoOnce(w.url, "/vault", user, "claude-code", "to the catcher")
	if !catch.received("psk-new") {
		t.Fatal("the catcher saw no call with the new key: the check below proves nothing")
	}
	for _, secret := range []string{"psk-123", "cc-123"} {
		if catch.received(secret) {
			t.Errorf("stored secret %q reached the new destination", secret)
		}
	}
}

// A caller who may not write must learn nothing from the answer: the same
// for a name that exists and one that does not, and given before the write
// lock is taken (nor a reload made), so such callers cannot hold up the
// admins' writes either.
func TestAdminWriteDenialDoesNotRevealExistence(t *testing.T) {
	w := newAdminWorld(t)
	// While the reload lock is held, a write that takes the admin lock
	// waits: a denial must come first, and so at once.
	w.srv.reloadMu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			w.srv.reloadMu.Unlock()
		}
	}
	defer unlock()
	client := &http.Client{Timeout: 3 * time.Second}
	call := func(method, path, token, body string) (int, apiError, error) {
		req, _ := http.NewRequest(method, w.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, apiError{}, err
		}
		defer resp.Body.Close()
		var e apiError
		decodeJSON(t, readAll(t, resp), &e)
		return resp.StatusCode, e, nil
	}
	backend := `{"url":"http://127.0.0.1:9/mcp","auth_method":"none"}`
	for _, tc := range []struct {
		name, who, token, method, kind, existing, missing, body string
	}{
		{"admin writes a backend", "admin", w.admin, http.MethodPut, "backends", "notes", "ghost", backend},
		{"admin writes an agent", "admin", w.admin, http.MethodPut, "agents", "claude-code", "ghost", `{"scopes":["mcp:read"]}`},
		{"viewer writes a backend", "viewer", w.viewer, http.MethodPut, "backends", "notes", "ghost", backend},
		{"no role writes an agent", "nobody", w.nobody, http.MethodPut, "agents", "claude-code", "ghost", `{}`},
		{"admin deletes a backend", "admin", w.admin, http.MethodDelete, "backends", "notes", "ghost", ""},
		{"viewer deletes an agent", "viewer", w.viewer, http.MethodDelete, "agents", "claude-code", "ghost", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type answer struct {
				status  int
				error   string
				desc    string
				reasons string
			}
			var answers []answer
			for _, name := range []string{tc.existing, tc.missing} {
				status, e, err := call(tc.method, "/admin/v1/"+tc.kind+"/"+name, tc.token, tc.body)
				if errors.Is(err, context.DeadlineExceeded) || (err != nil && strings.Contains(err.Error(), "Timeout")) {
					t.Fatalf("%s %s: no answer while the write lock was busy: authorization waits for the lock", tc.method, name)
				}
				if err != nil {
					t.Fatal(err)
				}
				// The name is in the URL, so the caller knows it; it is
				// the only thing allowed to differ.
				answers = append(answers, answer{status, e.Error,
					strings.ReplaceAll(e.Description, "/"+name, "/NAME"), strings.ReplaceAll(strings.Join(e.Reasons, "; "), "/"+name, "/NAME")})
			}
			if answers[0].status != http.StatusForbidden || answers[0].error != "access_denied" {
				t.Fatalf("%s: %+v, want 403 access_denied", tc.existing, answers[0])
			}
			if answers[0] != answers[1] {
				t.Fatalf("the denial tells an existing name from a missing one:\n%s: %+v\n%s: %+v", tc.existing, answers[0], tc.missing, answers[1])
			}
		})
	}
	unlock()
	// Authorized writes still record whether they created or updated.
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/ghost", w.root, backend)
	w.must(http.StatusOK, http.MethodPut, "/admin/v1/backends/ghost", w.root, backend)
	recs, _ := w.auditPage(w.root, "kind=change&backend=ghost")
	if len(recs) != 2 || recs[0].Action != audit.ActionUpdate || recs[1].Action != audit.ActionCreate {
		t.Fatalf("change records of ghost: %+v, want update then create (newest first)", recs)
	}
}

// Backend URLs at link-local addresses and cloud metadata services are
// refused by the shipped admin policy, which sees each write's target and
// its address class; other classes stay the policy's choice.
func TestAdminBackendURLAddressClasses(t *testing.T) {
	w := newAdminWorld(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(w.notes.URL, "http://"))
	port, _, _ = strings.Cut(port, "/")
	refused := func(host, class string) string {
		return "backend url host " + host + " is a " + class + " address, which data.mcpgw.admin.refused_address_classes refuses"
	}
	for _, tc := range []struct {
		name, url string
		want      int
		inBody    string
	}{
		{"AWS, Azure, GCP metadata", "http://169.254.169.254/latest/meta-data/", 403, refused("169.254.169.254", "metadata")},
		{"AWS metadata over IPv6", "http://[fd00:ec2::254]/latest/", 403, refused("fd00:ec2::254", "metadata")},
		{"GCP metadata by name", "http://metadata.google.internal/computeMetadata/v1/", 403, refused("metadata.google.internal", "metadata")},
		{"GCP metadata by name, upper case and a final dot", "http://METADATA.Google.Internal./x", 403, refused("METADATA.Google.Internal.", "metadata")},
		{"metadata as an IPv4-mapped IPv6 address", "http://[::ffff:169.254.169.254]/", 403, refused("::ffff:169.254.169.254", "metadata")},
		{"metadata through NAT64", "http://[64:ff9b::a9fe:a9fe]/", 403, refused("64:ff9b::a9fe:a9fe", "metadata")},
		{"link-local IPv4", "http://169.254.10.1:8080/mcp", 403, refused("169.254.10.1", "link-local")},
		{"link-local IPv6", "http://[fe80::1]:8080/mcp", 403, refused("fe80::1", "link-local")},
		{"secrets in the url do not hide the host", "http://169.254.169.254/x?access_token=secret-token-value", 403, refused("169.254.169.254", "metadata")},
		{"loopback literal", w.notes.URL, 201, `"name":"b`},
		{"loopback by name", "http://localhost:" + port + "/mcp", 201, `"name":"b`},
		{"private", "http://10.1.2.3/mcp", 201, `"name":"b`},
		{"public", "https://203.0.113.10/mcp", 201, `"name":"b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.revision()
			name := "b" + strings.NewReplacer(" ", "-", ",", "", ".", "").Replace(tc.name)
			status, _, body := w.api(http.MethodPut, "/admin/v1/backends/"+name, w.root, toJSON(map[string]any{"url": tc.url, "auth_method": "none"}))
			if status != tc.want || !strings.Contains(string(body), tc.inBody) {
				t.Fatalf("status %d body %s, want %d containing %q", status, body, tc.want, tc.inBody)
			}
			if tc.want == http.StatusForbidden {
				// Not a hex-looking secret: the decision id is a random UUID.
				if strings.Contains(string(body), "secret-token-value") {
					t.Fatalf("the denial shows the url's secret: %s", body)
				}
				if after := w.revision(); after != before {
					t.Fatalf("a refused backend was written: revision %d -> %d", before, after)
				}
			}
		})
	}
	// An existing backend cannot be moved there either.
	status, _, body := w.api(http.MethodPut, "/admin/v1/backends/notes", w.root, `{"url":"http://169.254.169.254/","auth_method":"none"}`)
	if status != http.StatusForbidden || !strings.Contains(string(body), refused("169.254.169.254", "metadata")) {
		t.Fatalf("re-pointing notes at the metadata service: %d %s", status, body)
	}
}

func TestClassifyHost(t *testing.T) {
	// No DNS server: a name that is not in /etc/hosts does not resolve,
	// quickly and on every machine.
	offline := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	for _, tc := range []struct{ host, want string }{
		{"169.254.169.254", classMetadata},
		{"fd00:ec2::254", classMetadata},
		{"100.100.100.200", classMetadata},
		{"metadata.google.internal", classMetadata},
		{"Metadata.Google.Internal.", classMetadata},
		{"::ffff:169.254.169.254", classMetadata},
		{"64:ff9b::a9fe:a9fe", classMetadata},
		{"169.254.0.1", classLinkLocal},
		{"fe80::1%eth0", classLinkLocal},
		{"ff02::1", classLinkLocal},
		{"127.0.0.1", classLoopback},
		{"127.9.9.9", classLoopback},
		{"::1", classLoopback},
		{"0.0.0.0", classLoopback},
		{"::", classLoopback},
		{"localhost", classLoopback},
		{"10.0.0.1", classPrivate},
		{"172.16.5.4", classPrivate},
		{"192.168.1.1", classPrivate},
		{"100.64.0.1", classPrivate},
		{"fd12:3456::1", classPrivate},
		{"203.0.113.10", classPublic},
		{"2001:db8::1", classPublic},
		{"no-such-host.invalid", classUnresolved},
		{"", classUnresolved},
	} {
		if got := classifyHost(context.Background(), offline, tc.host); got != tc.want {
			t.Errorf("classifyHost(%q) = %s, want %s", tc.host, got, tc.want)
		}
	}
}

func TestBackendTarget(t *testing.T) {
	for _, tc := range []struct {
		name, body       string
		wantNil          bool
		url, host, class string
		mustNotContain   string
	}{
		{name: "metadata with secrets", body: `{"url":"http://u:pw@169.254.169.254/x?access_token=abc","auth_method":"none"}`,
			url: "http://REDACTED@169.254.169.254/x?access_token=REDACTED", host: "169.254.169.254", class: classMetadata, mustNotContain: "abc"},
		{name: "the last of duplicate urls, as the write reads it", body: `{"url":"http://203.0.113.1/","url":"http://[fe80::2]/"}`,
			url: "http://[fe80::2]/", host: "fe80::2", class: classLinkLocal},
		{name: "no url", body: `{"auth_method":"none"}`, wantNil: true},
		{name: "a url member that is not exactly url", body: `{"URL":"http://169.254.169.254/"}`, wantNil: true},
		{name: "not JSON", body: `{"url":`, wantNil: true},
		{name: "unparsable url", body: `{"url":"http://[::1"}`, url: "http://[::1", class: classUnresolved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := backendTarget(context.Background(), []byte(tc.body))
			if tc.wantNil {
				if got != nil {
					t.Fatalf("target %+v, want none", got)
				}
				return
			}
			if got == nil || got.URL != tc.url || got.Host != tc.host || got.AddressClass != tc.class {
				t.Fatalf("target %+v, want url %q host %q class %s", got, tc.url, tc.host, tc.class)
			}
			if tc.mustNotContain != "" && strings.Contains(got.URL, tc.mustNotContain) {
				t.Fatalf("target url %q shows a secret", got.URL)
			}
		})
	}
}
