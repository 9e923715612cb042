package oauthserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

func TestRedirectURIs(t *testing.T) {
	tests := []struct {
		uri string
		ok  bool
	}{
		{"https://app.example.com/cb", true},
		{"http://127.0.0.1:8080/cb", true},
		{"http://[::1]/cb", true},
		{"http://localhost:3000/callback", true},
		{"http://app.example.com/cb", false},
		{"https://app.example.com/cb#frag", false},
		{"https://user:pw@app.example.com/cb", false},
		{"cursor://anysphere/cb", false},
		{"/relative", false},
		{"http://127.0.0.1.evil.example/cb", false},
	}
	for _, tc := range tests {
		if err := checkRedirectURI(tc.uri); (err == nil) != tc.ok {
			t.Errorf("checkRedirectURI(%q) = %v, want ok %v", tc.uri, err, tc.ok)
		}
	}
}

func TestRedirectMatches(t *testing.T) {
	tests := []struct {
		registered, requested string
		want                  bool
	}{
		{"https://a.example/cb", "https://a.example/cb", true},
		{"https://a.example/cb", "https://a.example/cb/", false},
		{"https://a.example:443/cb", "https://a.example:8443/cb", false},
		{"http://127.0.0.1:1234/cb", "http://127.0.0.1:5678/cb", true}, // RFC 8252 §7.3
		{"http://127.0.0.1:1234/cb", "http://127.0.0.1:5678/other", false},
		{"http://127.0.0.1/cb", "http://localhost/cb", false},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:9/cb?a=2", false},
	}
	for _, tc := range tests {
		if got := redirectMatches(tc.registered, tc.requested); got != tc.want {
			t.Errorf("redirectMatches(%q, %q) = %v, want %v", tc.registered, tc.requested, got, tc.want)
		}
	}
}

func TestPKCE(t *testing.T) {
	verifier := strings.Repeat("a", 43)
	if !pkceMatches(verifier, s256(verifier)) {
		t.Fatal("a verifier does not match its own challenge")
	}
	for _, v := range []string{strings.Repeat("b", 43), "short", strings.Repeat("a", 129), strings.Repeat("a", 42) + "!"} {
		if pkceMatches(v, s256(verifier)) {
			t.Errorf("verifier %q matched", v)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fd00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false, "224.0.0.1": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestIsMetadataPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/.well-known/oauth-authorization-server":       true,
		"/.well-known/oauth-authorization-server/notes": true,
		"/.well-known/openid-configuration":             true,
		"/notes/.well-known/openid-configuration":       true,
		"/notes/.well-known/oauth-authorization-server": true,
		"/.well-known/oauth-protected-resource/notes":   false,
		"/notes": false,
	} {
		if got := IsMetadataPath(path); got != want {
			t.Errorf("IsMetadataPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestSigningKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, key any) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name, file string
		ok         bool
	}{
		{"generated", "", true},
		{"P-256", write("p256.pem", p256), true},
		{"RSA 2048", write("rsa2048.pem", rsa2048), true},
		{"P-384", write("p384.pem", p384), false},
		{"RSA 1024", write("rsa1024.pem", rsa1024), false},
		{"missing", filepath.Join(dir, "none.pem"), false},
	}
	for _, tc := range tests {
		if err := CheckSigningKey(tc.file); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// newTestServer is a Server over an in-memory store whose only agent is
// claude-code; its IdP is testidp.
func newTestServer(t *testing.T, mutate func(*Options)) (*Server, *testidp.Server) {
	t.Helper()
	ctx := t.Context()
	idp, err := testidp.Start(ctx, testidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	st, err := store.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts := Options{
		Config: config.OAuth{Enabled: true, Upstream: config.OAuthUpstream{Issuer: idp.Issuer(), ClientID: "mcpgw", ClientSecret: "s"},
			Registration: config.OAuthRegistration{DefaultAgent: "claude-code"}},
		Issuer: "https://gw.example.com", SecretKey: make([]byte, 32), Store: st,
		Agent:     func(name string) (config.Agent, bool) { return config.Agent{Name: name}, name == "claude-code" },
		Resources: func() []string { return []string{"https://gw.example.com/notes"} },
	}
	if mutate != nil {
		mutate(&opts)
	}
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, idp
}

func TestClientIDMetadataDocuments(t *testing.T) {
	var fetches atomic.Int32
	var doc func(self string) (int, string, string)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path == "/redirect.json" {
			http.Redirect(w, r, "/client.json", http.StatusFound)
			return
		}
		status, ctype, body := doc("https://" + r.Host + r.URL.Path)
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	good := func(self string) (int, string, string) {
		b, _ := json.Marshal(map[string]any{"client_id": self, "client_name": "Web client", "redirect_uris": []string{"https://app.example/cb"}})
		return 200, "application/json", string(b)
	}
	tests := []struct {
		name  string
		path  string
		doc   func(string) (int, string, string)
		allow bool
		want  string // "" for success
	}{
		{"described", "/client.json", good, true, ""},
		{"private address refused", "/client.json", good, false, "not a public address"},
		{"redirect not followed", "/redirect.json", good, true, "redirects are not followed"},
		{"names another client", "/client.json", func(string) (int, string, string) {
			return 200, "application/json", `{"client_id":"https://other.example/c.json","redirect_uris":["https://app.example/cb"]}`
		}, true, "not its own URL"},
		{"not JSON", "/client.json", func(string) (int, string, string) { return 200, "text/html", "<html>" }, true, "Content-Type"},
		{"too large", "/client.json", func(self string) (int, string, string) {
			return 200, "application/json", `{"client_id":"` + self + `","x":"` + strings.Repeat("a", 20<<10) + `"}`
		}, true, "larger than"},
		{"http redirect URI", "/client.json", func(self string) (int, string, string) {
			return 200, "application/json", `{"client_id":"` + self + `","redirect_uris":["http://app.example/cb"]}`
		}, true, "redirect_uris"},
		{"not found", "/client.json", func(string) (int, string, string) { return 404, "application/json", "{}" }, true, "HTTP 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc = tc.doc
			s, _ := newTestServer(t, func(o *Options) {
				o.Config.CIMD.AllowPrivateAddresses = tc.allow
				o.CIMDTransport = srv.Client().Transport.(*http.Transport)
			})
			id := srv.URL + tc.path
			cl, err := s.client(context.Background(), id)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("client(%s) = %v, want an error with %q", id, err, tc.want)
				}
				return
			}
			if err != nil || !cl.CIMD || cl.Agent != "claude-code" || cl.Name != "Web client" {
				t.Fatalf("client = %+v, %v", cl, err)
			}
			n := fetches.Load()
			if _, err := s.client(context.Background(), id); err != nil || fetches.Load() != n {
				t.Fatalf("a cached document was fetched again (%v)", err)
			}
		})
	}
	for _, bad := range []string{"https://a.example", "https://a.example/", "https://a.example/../x", "https://u:p@a.example/c", "https://a.example/c#f"} {
		if _, err := checkCIMDURL(bad); err == nil {
			t.Errorf("checkCIMDURL(%q) accepted", bad)
		}
	}
}

// An ID token the IdP issued to another client is not a login at the
// gateway, whatever its signature.
func TestIDTokenOfAnotherClientRefused(t *testing.T) {
	s, idp := newTestServer(t, nil)
	now := time.Now()
	mint := func(aud string) string {
		tok, err := idp.Mint(map[string]any{"sub": "alice", "aud": aud, "nonce": "n1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := s.idp.verifyIDToken(t.Context(), mint("mcpgw"), "n1"); err != nil {
		t.Fatalf("the gateway's own ID token: %v", err)
	}
	if _, err := s.idp.verifyIDToken(t.Context(), mint("other-client"), "n1"); err == nil {
		t.Fatal("an ID token of another client was accepted")
	}
	if _, err := s.idp.verifyIDToken(t.Context(), mint("mcpgw"), "other-nonce"); err == nil {
		t.Fatal("an ID token of another login (nonce) was accepted")
	}
}

// isOurs routes by the JOSE header's key id alone: the gateway's own
// tokens to its verifier, every other token (an IdP's, garbage) onward.
func TestIsOurs(t *testing.T) {
	s, idp := newTestServer(t, nil)
	now := time.Now()
	ours, _, err := s.mintAccess(store.OAuthGrant{ID: "g", ClientID: "c", Agent: "claude-code", Subject: "alice", Issuer: "https://idp",
		ExpiresAt: now.Add(time.Hour)}, "https://gw.example.com/notes", now)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := idp.MintUser("alice", []string{"mcp:read"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]bool{ours: true, theirs: false, "not.a.jwt": false, "": false, strings.Repeat("a", 5000) + ".x.y": false} {
		if got := s.isOurs(tok); got != want {
			t.Errorf("isOurs(%.30q…) = %v, want %v", tok, got, want)
		}
	}
}
