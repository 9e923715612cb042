package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// oauthWorld is a gateway with its authorization server on, in front of
// testidp, which has a person (alice) who logs in at its form.
type oauthWorld struct {
	*adminWorld
	gwClient string // the gateway's client at testidp
}

const (
	oauthRedirect = "http://127.0.0.1:53682/callback"
	alicePassword = "correct horse"
)

func newOAuthWorld(t *testing.T, mutate ...func(*config.Config)) *oauthWorld {
	return newOAuthWorldWith(t, testidp.Client{ID: "mcpgw-facade", Secret: "facade-secret"}, mutate...)
}

// newOAuthWorldWith registers facade as the gateway's client at the IdP
// (its secret or its key is what oauth.upstream must use).
func newOAuthWorldWith(t *testing.T, facade testidp.Client, mutate ...func(*config.Config)) *oauthWorld {
	t.Helper()
	all := append([]func(*config.Config){func(cfg *config.Config) {
		cfg.OAuth = config.OAuth{
			Enabled: true,
			Upstream: config.OAuthUpstream{Issuer: cfg.Identity.Issuers[0].Issuer, ClientID: facade.ID, ClientSecret: facade.Secret,
				Scopes: []string{"openid", "profile", "email"}},
			Registration: config.OAuthRegistration{Rules: []config.OAuthRegistrationRule{{ClientName: "Claude Code*", Agent: "claude-code"}}},
		}
	}}, mutate...)
	w := &oauthWorld{adminWorld: newAdminWorld(t, all...), gwClient: facade.ID}
	facade.Scopes = []string{"openid", "profile", "email"}
	facade.RedirectURIs = []string{w.url + "/oauth2/callback"}
	if err := w.idp.RegisterClient(facade); err != nil {
		t.Fatal(err)
	}
	if err := w.idp.AddUser(testidp.User{Username: "alice", Password: alicePassword, Subject: "alice-sub", Email: "alice@example.com",
		Name: "Alice", Groups: []string{"mcp-viewers"}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// register registers a client as an MCP client would.
func (w *oauthWorld) register(t *testing.T, meta map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(meta)
	resp, err := http.Post(w.url+"/oauth2/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (w *oauthWorld) registerClaude(t *testing.T) string {
	t.Helper()
	status, out := w.register(t, map[string]any{"client_name": "Claude Code (mcpgw test)", "redirect_uris": []string{oauthRedirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"})
	if status != http.StatusCreated {
		t.Fatalf("register: HTTP %d %v", status, out)
	}
	return out["client_id"].(string)
}

type authParams struct {
	clientID, redirect, challenge, resource, scope, state string
}

func (w *oauthWorld) authorizeURL(p authParams) string {
	q := url.Values{"response_type": {"code"}, "client_id": {p.clientID}, "redirect_uri": {p.redirect},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "state": {p.state}}
	if p.resource != "" {
		q.Set("resource", p.resource)
	}
	if p.scope != "" {
		q.Set("scope", p.scope)
	}
	return w.url + "/oauth2/authorize?" + q.Encode()
}

// login walks a person through the whole login; it returns where the
// client is sent.
func (w *oauthWorld) login(t *testing.T, b *testutil.Browser, p authParams, password string) *url.URL {
	t.Helper()
	return b.GatewayLogin(w.url, w.idp.Issuer(), w.authorizeURL(p), "alice", password)
}

func (w *oauthWorld) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(w.url+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// fullLogin registers Claude Code and logs alice in; it returns the client
// id, the token response and the verifier.
func (w *oauthWorld) fullLogin(t *testing.T, resource string) (string, map[string]any) {
	t.Helper()
	clientID := w.registerClaude(t)
	verifier, challenge := testutil.PKCE()
	back := w.login(t, testutil.NewBrowser(t), authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge, resource: resource, state: "s1"}, alicePassword)
	code := back.Query().Get("code")
	if code == "" || back.Query().Get("state") != "s1" || back.Query().Get("iss") != w.url {
		t.Fatalf("client sent to %s: want code, state s1, iss", back)
	}
	status, tok := w.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oauthRedirect},
		"client_id": {clientID}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("token: HTTP %d %v", status, tok)
	}
	return clientID, tok
}

// listTools calls tools/list on /notes with a bearer token.
func (w *oauthWorld) listTools(token string) (int, error) {
	sid, err := mcpSession(w.url, "/notes", token, "")
	if err != nil {
		if f, ok := err.(*mcpFailure); ok {
			return f.status, nil
		}
		return 0, err
	}
	status, _, body, err := mcpPost(w.url, "/notes", token, "", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err == nil && !strings.Contains(body, `"tools"`) {
		return status, fmt.Errorf("tools/list answered %s", body)
	}
	return status, err
}

func TestOAuthFlowEndToEnd(t *testing.T) {
	w := newOAuthWorld(t)

	// Discovery from nothing but the URL: the 401 names the resource
	// metadata, which names the gateway as authorization server.
	resp, err := http.Post(w.url+"/notes", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "/.well-known/oauth-protected-resource/notes") {
		t.Fatalf("401 challenge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var prm struct {
		Resource string   `json:"resource"`
		AS       []string `json:"authorization_servers"`
	}
	getJSON(t, w.url+"/.well-known/oauth-protected-resource/notes", &prm)
	if prm.Resource != w.url+"/notes" || len(prm.AS) != 1 || prm.AS[0] != w.url {
		t.Fatalf("protected resource metadata: %+v", prm)
	}
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
		"/.well-known/oauth-authorization-server/notes", "/.well-known/openid-configuration/notes", "/notes/.well-known/openid-configuration"} {
		var md map[string]any
		getJSON(t, w.url+p, &md)
		if md["issuer"] != w.url || md["token_endpoint"] != w.url+"/oauth2/token" || md["registration_endpoint"] != w.url+"/oauth2/register" ||
			md["client_id_metadata_document_supported"] != true || fmt.Sprint(md["code_challenge_methods_supported"]) != "[S256]" {
			t.Fatalf("%s: %v", p, md)
		}
	}

	clientID, tok := w.fullLogin(t, w.url+"/notes")
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	if status, err := w.listTools(access); err != nil || status != http.StatusOK {
		t.Fatalf("tools/list with the gateway's token: %d %v", status, err)
	}
	// The agent bound at registration wins over a header naming another.
	if _, err := mcpSession(w.url, "/notes", access, "cursor"); err != nil {
		t.Fatalf("a header naming another agent must not override the token's: %v", err)
	}

	// The admin API takes the IdP's tokens only: a client's token opens
	// the backends it was issued for, never the gateway's administration.
	if status, _, _ := w.api("GET", "/admin/v1/agents", access, ""); status != http.StatusUnauthorized {
		t.Fatalf("admin API with a gateway token: HTTP %d, want 401", status)
	}

	// userinfo speaks for the login.
	req, _ := http.NewRequest("GET", w.url+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	var ui map[string]any
	doJSON(t, req, &ui)
	if ui["sub"] != "alice-sub" || ui["email"] != "alice@example.com" || fmt.Sprint(ui["groups"]) != "[mcp-viewers]" {
		t.Fatalf("userinfo: %v", ui)
	}

	// A refresh rotates the refresh token and carries the IdP's current groups.
	if err := w.idp.SetUserGroups("alice", []string{"mcp-viewers", "engineering"}); err != nil {
		t.Fatal(err)
	}
	status, tok2 := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}})
	if status != http.StatusOK || tok2["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	req, _ = http.NewRequest("GET", w.url+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok2["access_token"].(string))
	doJSON(t, req, &ui)
	if fmt.Sprint(ui["groups"]) != "[mcp-viewers engineering]" {
		t.Fatalf("groups after refresh: %v", ui["groups"])
	}

	// The client revokes: the refresh token and every access token of the
	// login stop working.
	resp, err = http.PostForm(w.url+"/oauth2/revoke", url.Values{"token": {tok2["refresh_token"].(string)}, "client_id": {clientID}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	if status, _ := w.listTools(tok2["access_token"].(string)); status != http.StatusUnauthorized {
		t.Fatalf("tools/list after revocation: HTTP %d, want 401", status)
	}
	if status, out := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}}); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("refresh after revocation: %d %v", status, out)
	}

	// Everything was audited, under kind oauth.
	var actions []string
	for _, r := range w.sink.all() {
		if r.Kind == audit.KindOAuth {
			actions = append(actions, string(r.Action))
		}
	}
	for _, want := range []string{"register", "consent", "login", "token", "refresh", "revoke", "refuse"} {
		if !slices.Contains(actions, want) {
			t.Errorf("no oauth audit record %q among %v", want, actions)
		}
	}
}

func getJSON(t *testing.T, target string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	doJSON(t, req, v)
}

func doJSON(t *testing.T, req *http.Request, v any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: HTTP %d: %s", req.Method, req.URL, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", req.URL, err)
	}
}

// TestOAuthRefusals: each way a login or a token request can be wrong is
// refused, and refused the way RFC 6749 and the MCP authorization spec say.
func TestOAuthRefusals(t *testing.T) {
	w := newOAuthWorld(t, func(cfg *config.Config) {
		cfg.Backends["notes2"] = config.Backend{URL: cfg.Backends["notes"].URL, Paths: []string{"/notes2"}, AuthMethod: "none", TimeoutSeconds: 5}
		a := cfg.Agents["claude-code"]
		a.BackendAccess = []string{"notes", "notes2"}
		cfg.Agents["claude-code"] = a
	})
	clientID := w.registerClaude(t)

	// codeFor logs alice in and returns a fresh code and its verifier.
	codeFor := func(t *testing.T, b *testutil.Browser, resource string) (string, string) {
		verifier, challenge := testutil.PKCE()
		back := w.login(t, b, authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge, resource: resource, state: "x"}, alicePassword)
		return back.Query().Get("code"), verifier
	}
	redeem := func(code, verifier string) (int, map[string]any) {
		return w.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oauthRedirect},
			"client_id": {clientID}, "code_verifier": {verifier}})
	}

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		code, _ := codeFor(t, testutil.NewBrowser(t), "")
		other, _ := testutil.PKCE()
		status, out := redeem(code, other)
		if status != http.StatusBadRequest || out["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(out["error_description"]), "PKCE") {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("replayed code revokes what it produced", func(t *testing.T) {
		code, verifier := codeFor(t, testutil.NewBrowser(t), "")
		status, tok := redeem(code, verifier)
		if status != http.StatusOK {
			t.Fatalf("first redemption: %d %v", status, tok)
		}
		if status, out := redeem(code, verifier); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("replay: %d %v", status, out)
		}
		if status, _ := w.listTools(tok["access_token"].(string)); status != http.StatusUnauthorized {
			t.Fatalf("access token of a replayed code: HTTP %d, want 401", status)
		}
		if status, _ := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}); status != http.StatusBadRequest {
			t.Fatalf("refresh token of a replayed code: HTTP %d, want 400", status)
		}
		revokedInTrail := func(r audit.Record) bool {
			return r.Kind == audit.KindOAuth && r.Action == "refuse" &&
				slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.HasPrefix(s, "revoked grant ") })
		}
		if !slices.ContainsFunc(w.sink.all(), revokedInTrail) {
			t.Fatal("the refusal of the replayed code does not name the grant it revoked in the audit trail")
		}
	})
	t.Run("code redeemed by another client", func(t *testing.T) {
		code, verifier := codeFor(t, testutil.NewBrowser(t), "")
		other := w.registerClaude(t)
		status, out := w.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oauthRedirect},
			"client_id": {other}, "code_verifier": {verifier}})
		if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("refresh replay revokes the family", func(t *testing.T) {
		code, verifier := codeFor(t, testutil.NewBrowser(t), "")
		_, tok := redeem(code, verifier)
		first := tok["refresh_token"].(string)
		status, tok2 := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}, "client_id": {clientID}})
		if status != http.StatusOK {
			t.Fatalf("rotation: %d %v", status, tok2)
		}
		if status, out := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}, "client_id": {clientID}}); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v", status, out)
		}
		if status, _ := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}}); status != http.StatusBadRequest {
			t.Fatalf("the rotated token after a reuse: HTTP %d, want 400 (family revoked)", status)
		}
		if status, _ := w.listTools(tok2["access_token"].(string)); status != http.StatusUnauthorized {
			t.Fatalf("access token of a revoked family: HTTP %d, want 401", status)
		}
	})
	t.Run("revocation by access token ends the login", func(t *testing.T) {
		code, verifier := codeFor(t, testutil.NewBrowser(t), "")
		_, tok := redeem(code, verifier)
		resp, err := http.PostForm(w.url+"/oauth2/revoke", url.Values{"token": {tok["access_token"].(string)}, "token_type_hint": {"access_token"}, "client_id": {clientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if status, _ := w.listTools(tok["access_token"].(string)); status != http.StatusUnauthorized {
			t.Fatalf("access token after its revocation: HTTP %d, want 401", status)
		}
		if status, _ := w.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}); status != http.StatusBadRequest {
			t.Fatalf("refresh after the access token's revocation: HTTP %d, want 400", status)
		}
	})
	t.Run("token for one backend refused at another", func(t *testing.T) {
		code, verifier := codeFor(t, testutil.NewBrowser(t), w.url+"/notes")
		_, tok := redeem(code, verifier)
		access := tok["access_token"].(string)
		if _, err := mcpSession(w.url, "/notes", access, ""); err != nil {
			t.Fatalf("own resource: %v", err)
		}
		_, err := mcpSession(w.url, "/notes2", access, "")
		if f, ok := err.(*mcpFailure); !ok || f.status != http.StatusUnauthorized || !strings.Contains(f.body, "another resource") {
			t.Fatalf("other resource: %v", err)
		}
	})
	t.Run("secret on a public client", func(t *testing.T) {
		status, out := w.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {clientID}, "client_secret": {"s"}})
		if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", status, out)
		}
	})

	b := testutil.NewBrowser(t)
	_, challenge := testutil.PKCE()
	pages := []struct {
		name   string
		params authParams
		want   string
	}{
		{"unknown client", authParams{clientID: "mcpgw-nobody", redirect: oauthRedirect, challenge: challenge}, "not registered"},
		{"redirect mismatch", authParams{clientID: clientID, redirect: "http://127.0.0.1:1/elsewhere", challenge: challenge}, "redirect_uri"},
		{"metadata document at a private address", authParams{clientID: "https://127.0.0.1:9/client.json", redirect: oauthRedirect, challenge: challenge}, "not a public address"},
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, page := b.Do("GET", w.authorizeURL(tc.params), nil, "")
			if status != http.StatusBadRequest || hdr.Get("Location") != "" || !strings.Contains(page, tc.want) {
				t.Fatalf("HTTP %d Location %q: %s", status, hdr.Get("Location"), page)
			}
		})
	}
	t.Run("no PKCE goes back to the client", func(t *testing.T) {
		status, hdr, _ := b.Do("GET", w.authorizeURL(authParams{clientID: clientID, redirect: oauthRedirect, state: "st"}), nil, "")
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "st" {
			t.Fatalf("HTTP %d %q", status, hdr.Get("Location"))
		}
	})
	t.Run("resource of another server", func(t *testing.T) {
		_, hdr, _ := b.Do("GET", w.authorizeURL(authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge, resource: "https://evil.example/mcp"}), nil, "")
		if loc, _ := url.Parse(hdr.Get("Location")); loc == nil || loc.Query().Get("error") != "invalid_target" {
			t.Fatalf("Location %q", hdr.Get("Location"))
		}
	})

	consentForm := func(t *testing.T, b *testutil.Browser) url.Values {
		status, _, page := b.Do("GET", w.authorizeURL(authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge, state: "c"}), nil, "")
		if status != http.StatusOK || !strings.Contains(page, "Claude Code (mcpgw test)") || !strings.Contains(page, "claude-code") {
			t.Fatalf("consent page: HTTP %d: %s", status, page)
		}
		return testutil.HiddenFields(page)
	}
	t.Run("consent without CSRF token", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		form := consentForm(t, b)
		form.Del("csrf")
		form.Set("decision", "approve")
		if status, hdr, _ := b.Do("POST", w.url+"/oauth2/consent", form, w.url); status != http.StatusForbidden || hdr.Get("Location") != "" {
			t.Fatalf("HTTP %d %q", status, hdr.Get("Location"))
		}
	})
	t.Run("consent with another browser's CSRF token", func(t *testing.T) {
		form := consentForm(t, testutil.NewBrowser(t))
		form.Set("decision", "approve")
		victim := testutil.NewBrowser(t)
		consentForm(t, victim) // the victim has a CSRF cookie of its own
		if status, _, _ := victim.Do("POST", w.url+"/oauth2/consent", form, w.url); status != http.StatusForbidden {
			t.Fatalf("HTTP %d, want 403", status)
		}
	})
	t.Run("consent posted from another site", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		form := consentForm(t, b)
		form.Set("decision", "approve")
		if status, _, _ := b.Do("POST", w.url+"/oauth2/consent", form, "https://evil.example"); status != http.StatusForbidden {
			t.Fatalf("HTTP %d, want 403", status)
		}
	})
	t.Run("consent denied", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		form := consentForm(t, b)
		form.Set("decision", "deny")
		status, hdr, _ := b.Do("POST", w.url+"/oauth2/consent", form, w.url)
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusSeeOther || loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "c" {
			t.Fatalf("HTTP %d %q", status, hdr.Get("Location"))
		}
	})
	t.Run("consent remembered", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		codeFor(t, b, "")
		status, hdr, _ := b.Do("GET", w.authorizeURL(authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge}), nil, "")
		if status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), w.idp.Issuer()) {
			t.Fatalf("second authorize: HTTP %d %q, want straight to the IdP", status, hdr.Get("Location"))
		}
	})
	t.Run("callback with an unknown state", func(t *testing.T) {
		status, hdr, page := testutil.NewBrowser(t).Do("GET", w.url+"/oauth2/callback?code=x&state=forged", nil, "")
		if status != http.StatusBadRequest || hdr.Get("Location") != "" || !strings.Contains(page, "expired or was already used") {
			t.Fatalf("HTTP %d: %s", status, page)
		}
	})
}

func TestOAuthRegistration(t *testing.T) {
	w := newOAuthWorld(t)
	tests := []struct {
		name  string
		meta  map[string]any
		want  int
		error string
	}{
		{"rule matches", map[string]any{"client_name": "Claude Code 2", "redirect_uris": []string{"http://localhost:33418/cb"}}, 201, ""},
		{"https redirect", map[string]any{"client_name": "Claude Code web", "redirect_uris": []string{"https://claude.ai/api/mcp/auth_callback"}}, 201, ""},
		{"no rule matches", map[string]any{"client_name": "Unknown tool", "redirect_uris": []string{oauthRedirect}}, 400, "invalid_client_metadata"},
		{"http redirect off loopback", map[string]any{"client_name": "Claude Code", "redirect_uris": []string{"http://example.com/cb"}}, 400, "invalid_redirect_uri"},
		{"no redirect", map[string]any{"client_name": "Claude Code"}, 400, "invalid_redirect_uri"},
		{"fragment", map[string]any{"client_name": "Claude Code", "redirect_uris": []string{"https://a.example/cb#x"}}, 400, "invalid_redirect_uri"},
		{"confidential client", map[string]any{"client_name": "Claude Code", "redirect_uris": []string{oauthRedirect}, "token_endpoint_auth_method": "client_secret_basic"}, 400, "invalid_client_metadata"},
		{"implicit grant", map[string]any{"client_name": "Claude Code", "redirect_uris": []string{oauthRedirect}, "grant_types": []string{"implicit"}}, 400, "invalid_client_metadata"},
		{"client_id chosen by the client", map[string]any{"client_id": "mine", "client_name": "Claude Code", "redirect_uris": []string{oauthRedirect}}, 400, "invalid_client_metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := w.register(t, tc.meta)
			if status != tc.want || (tc.error != "" && out["error"] != tc.error) {
				t.Fatalf("HTTP %d %v, want %d %s", status, out, tc.want, tc.error)
			}
		})
	}
	// The Okta adapter's registration facade: its agent header picks the agent.
	req, _ := http.NewRequest("POST", w.url+"/.well-known/oauth/registration", strings.NewReader(`{"client_name":"anything","redirect_uris":["`+oauthRedirect+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-MCP-Agent", "claude-code")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("adapter registration: HTTP %d", resp.StatusCode)
	}
	// The admin API lists what registered, bound to its agent.
	body := w.must(http.StatusOK, "GET", "/admin/v1/oauth/clients", w.admin, "")
	var list struct {
		Clients []struct {
			ClientID string `json:"client_id"`
			Agent    string `json:"agent"`
		} `json:"clients"`
	}
	decodeJSON(t, body, &list)
	if len(list.Clients) != 3 || list.Clients[0].Agent != "claude-code" {
		t.Fatalf("admin clients: %s", body)
	}
	// Admins read; only super-admins end things; viewers see nothing.
	w.must(http.StatusForbidden, "GET", "/admin/v1/oauth/clients", w.viewer, "")
	w.must(http.StatusForbidden, "DELETE", "/admin/v1/oauth/clients/"+list.Clients[0].ClientID, w.admin, "")
	w.must(http.StatusNoContent, "DELETE", "/admin/v1/oauth/clients/"+list.Clients[0].ClientID, w.root, "")
	w.must(http.StatusNotFound, "DELETE", "/admin/v1/oauth/clients/"+list.Clients[0].ClientID, w.root, "")
}

// TestOAuthCrossAppAccess: a person who logged in through the gateway
// reaches an okta-cross-app backend with the IdP's ID token of that login
// as subject token and the gateway's own client as the requesting app;
// the backend accepts only the resource server's token.
func TestOAuthCrossAppAccess(t *testing.T) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "facade.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(raw.Public())
	if err != nil {
		t.Fatal(err)
	}
	const resource, resourceClient = "https://hr.example.com/mcp", "hr-client"
	var ras *testidp.Server
	// The ID-JAG names the gateway's client at the resource server, as an
	// Okta managed connection maps it.
	resourceIDs := map[string]string{}
	w := newOAuthWorldWith(t, testidp.Client{ID: "mcpgw-facade", PublicKey: pub, ResourceClientIDs: resourceIDs}, func(cfg *config.Config) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		var err error
		if ras, err = testidp.Start(ctx, testidp.Options{ResourceAS: &testidp.ResourceASOptions{TrustedIssuer: cfg.Identity.Issuers[0].Issuer}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ras.Close() })
		resourceIDs[ras.Issuer()] = resourceClient
		if err := ras.RegisterClient(testidp.Client{ID: resourceClient, Secret: "hr-secret", Scopes: []string{"hr:read"}}); err != nil {
			t.Fatal(err)
		}
		backendTokens, err := identity.NewVerifier(ctx, config.Identity{Issuers: []config.Issuer{{Issuer: ras.Issuer(), Audiences: []string{resource}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(backendTokens.Close)
		hr, err := demo.StartEmployees(demo.Options{Stateless: true, Wrap: demo.RequireBearer(backendTokens, resource)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hr.Close() })
		cfg.Backends["hr"] = config.Backend{URL: hr.URL, Paths: []string{"/hr"}, AuthMethod: "okta-cross-app", TimeoutSeconds: 5,
			AuthConfig: map[string]any{"target_authorization_server": ras.Issuer(), "target_audience": resource,
				"target_client_id": resourceClient, "target_client_secret": "hr-secret",
				"idp_token_endpoint": cfg.Identity.Issuers[0].Issuer + testidp.PathToken, "scopes": []any{"hr:read"}}}
		_, agentJWK := newTestAgentKey(t)
		a := cfg.Agents["claude-code"]
		a.BackendAccess = []string{"notes", "hr"}
		a.PrivateKey = agentJWK // the agent's own exchanges (tokens straight from the IdP) still sign with it
		cfg.Agents["claude-code"] = a
		cfg.OAuth.Upstream.ClientSecret, cfg.OAuth.Upstream.PrivateKeyFile = "", keyFile
	})
	_, tok := w.fullLogin(t, w.url+"/hr")
	before := w.idp.TokenRequests("urn:ietf:params:oauth:grant-type:token-exchange")
	// The backend is stateless: no session to keep.
	status, _, body, err := mcpPost(w.url, "/hr", tok["access_token"].(string), "", "", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err != nil || status != http.StatusOK || !strings.Contains(body, `"tools"`) {
		t.Fatalf("tools/list: %d %s %v", status, body, err)
	}
	if w.idp.TokenRequests("urn:ietf:params:oauth:grant-type:token-exchange") <= before {
		t.Fatal("no token exchange reached the IdP")
	}
	if ras.TokenRequests("urn:ietf:params:oauth:grant-type:jwt-bearer") == 0 {
		t.Fatal("no ID-JAG reached the resource server")
	}
}

func newTestAgentKey(t *testing.T) (jwk.Key, string) {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = jwk.AssignKeyID(key)
	js, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(js)
}

// TestOAuthReplicas: two replicas behind one public URL share the
// authorization server's state through PostgreSQL: a code issued by one is
// redeemed at the other, the other's tokens work on the first, and a
// revocation at one ends access at both.
func TestOAuthReplicas(t *testing.T) {
	dsn, idp, notes, ok := replicaWorld(t)
	if !ok {
		return
	}
	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(raw)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var public string
	oauthOn := func(cfg *config.Config) {
		if public == "" {
			public = cfg.Server.PublicURL
		}
		cfg.Server.PublicURL = public
		cfg.Agents["claude-code"] = config.Agent{AgentID: "claude-code", ClientID: "claude-client", Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"notes"}}
		cfg.OAuth = config.OAuth{Enabled: true, SigningKeyFile: keyFile,
			Upstream:     config.OAuthUpstream{Issuer: idp.Issuer(), ClientID: "mcpgw-facade", ClientSecret: "facade-secret", Scopes: []string{"openid"}},
			Registration: config.OAuthRegistration{Rules: []config.OAuthRegistrationRule{{ClientName: "Claude Code*", Agent: "claude-code"}}}}
	}
	one := startReplica(t, dsn, idp, notes.URL, oauthOn)
	two := startReplica(t, dsn, idp, notes.URL, oauthOn)
	if err := idp.RegisterClient(testidp.Client{ID: "mcpgw-facade", Secret: "facade-secret", Scopes: []string{"openid"}, RedirectURIs: []string{public + "/oauth2/callback"}}); err != nil {
		t.Fatal(err)
	}
	if err := idp.AddUser(testidp.User{Username: "alice", Password: alicePassword, Subject: "alice-sub"}); err != nil {
		t.Fatal(err)
	}
	at := func(s *Server) *oauthWorld {
		return &oauthWorld{adminWorld: &adminWorld{harness: &harness{t: t, idp: idp, url: s.URL}}}
	}
	w1, w2 := at(one), at(two)

	clientID := w2.registerClaude(t) // registered at two
	verifier, challenge := testutil.PKCE()
	back := w1.login(t, testutil.NewBrowser(t), authParams{clientID: clientID, redirect: oauthRedirect, challenge: challenge}, alicePassword)
	status, tok := w2.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {oauthRedirect},
		"client_id": {clientID}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("redeem at the other replica: %d %v", status, tok)
	}
	access := tok["access_token"].(string)
	for _, w := range []*oauthWorld{w1, w2} {
		if status, err := w.listTools(access); err != nil || status != http.StatusOK {
			t.Fatalf("tools/list at %s: %d %v", w.url, status, err)
		}
	}
	status, tok2 := w1.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}})
	if status != http.StatusOK {
		t.Fatalf("refresh at the first replica: %d %v", status, tok2)
	}
	resp, err := http.PostForm(w2.url+"/oauth2/revoke", url.Values{"token": {tok2["refresh_token"].(string)}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The first replica remembers the grant as active for a few seconds.
	testutil.Eventually(t, 30*time.Second, "revocation seen by the other replica", func() bool {
		status, _ := w1.listTools(tok2["access_token"].(string))
		return status == http.StatusUnauthorized
	})
}

// TestOAuthAdminAndCORS: administrators see and end logins and consents; a
// configured browser origin may call the token endpoint, another may not.
func TestOAuthAdminAndCORS(t *testing.T) {
	w := newOAuthWorld(t, func(cfg *config.Config) {
		cfg.OAuth.CORSOrigins = []string{"http://localhost:6274"}
		cfg.Server.AllowedOrigins = []string{"http://localhost:6274"}
	})
	_, tok := w.fullLogin(t, "")
	access := tok["access_token"].(string)

	var grants struct {
		Grants []struct {
			ID      string  `json:"id"`
			Subject string  `json:"subject"`
			Agent   string  `json:"agent"`
			Revoked *string `json:"revoked_at"`
		} `json:"grants"`
	}
	decodeJSON(t, w.must(http.StatusOK, "GET", "/admin/v1/oauth/grants?subject=alice-sub", w.admin, ""), &grants)
	if len(grants.Grants) != 1 || grants.Grants[0].Agent != "claude-code" || grants.Grants[0].Revoked != nil {
		t.Fatalf("grants: %+v", grants)
	}
	var consents struct {
		Consents []struct {
			ID      string `json:"id"`
			Subject string `json:"subject"`
		} `json:"consents"`
	}
	decodeJSON(t, w.must(http.StatusOK, "GET", "/admin/v1/oauth/consents", w.admin, ""), &consents)
	if len(consents.Consents) != 1 || consents.Consents[0].Subject != "alice-sub" {
		t.Fatalf("consents: %+v", consents)
	}
	w.must(http.StatusNoContent, "DELETE", "/admin/v1/oauth/grants/"+grants.Grants[0].ID, w.root, "")
	if status, _ := w.listTools(access); status != http.StatusUnauthorized {
		t.Fatalf("tools/list after an administrator revoked the login: HTTP %d", status)
	}
	w.must(http.StatusNoContent, "DELETE", "/admin/v1/oauth/consents/"+consents.Consents[0].ID, w.root, "")

	// The admin API validates the topology as the config file is: no
	// backend at the authorization server's paths, no agent a registration
	// rule names deleted from under it.
	body := w.must(http.StatusBadRequest, "PUT", "/admin/v1/backends/shadow", w.root, `{"url":"http://127.0.0.1:9/mcp","paths":["/oauth2/x"],"auth_method":"none"}`)
	if !strings.Contains(string(body), "authorization server") {
		t.Fatalf("backend at /oauth2/x: %s", body)
	}
	body = w.must(http.StatusConflict, "DELETE", "/admin/v1/agents/claude-code", w.root, "")
	if !strings.Contains(string(body), "oauth.registration.rules[0].agent") {
		t.Fatalf("deleting the agent a registration rule names: %s", body)
	}
	decodeJSON(t, w.must(http.StatusOK, "GET", "/admin/v1/oauth/consents", w.admin, ""), &consents)
	if len(consents.Consents) != 0 {
		t.Fatalf("consent still listed: %+v", consents)
	}

	// A browser client of an allowed origin starts its login by reading
	// the MCP endpoint's 401: the preflight and the challenge are readable.
	req, _ := http.NewRequest(http.MethodOptions, w.url+"/notes", nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:6274" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("MCP preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodPost, w.url+"/notes", strings.NewReader(`{}`))
	req.Header.Set("Origin", "http://localhost:6274")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("MCP 401 to a browser: %d %v", resp.StatusCode, resp.Header)
	}

	for origin, allowed := range map[string]bool{"http://localhost:6274": true, "https://evil.example": false} {
		req, _ := http.NewRequest(http.MethodOptions, w.url+"/oauth2/token", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin") == origin; got != allowed {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q", origin, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// TestOAuthRegistrationsPerAddress: registration needs no credential, so
// one address may register only oauth.registration.per_minute clients a
// minute.
func TestOAuthRegistrationsPerAddress(t *testing.T) {
	w := newOAuthWorld(t, func(cfg *config.Config) { cfg.OAuth.Registration.PerMinute = 2 })
	meta := map[string]any{"client_name": "Claude Code", "redirect_uris": []string{oauthRedirect}}
	for i := range 2 {
		if status, out := w.register(t, meta); status != http.StatusCreated {
			t.Fatalf("registration %d: HTTP %d %v", i+1, status, out)
		}
	}
	status, out := w.register(t, meta)
	if status != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(out["error_description"]), "per_minute") {
		t.Fatalf("third registration in a minute: HTTP %d %v", status, out)
	}
}

// TestOAuthFederatedResource: the federated endpoint is a resource of its
// own (protected resource metadata, RFC 8707 resource), and a token issued
// for it serves every backend behind it.
func TestOAuthFederatedResource(t *testing.T) {
	w := newOAuthWorld(t, func(cfg *config.Config) { cfg.Server.FederatedPath = "/mcp" })
	var prm struct {
		Resource string   `json:"resource"`
		AS       []string `json:"authorization_servers"`
	}
	getJSON(t, w.url+"/.well-known/oauth-protected-resource/mcp", &prm)
	if prm.Resource != w.url+"/mcp" || len(prm.AS) != 1 || prm.AS[0] != w.url {
		t.Fatalf("federated resource metadata: %+v", prm)
	}
	_, tok := w.fullLogin(t, w.url+"/mcp")
	sid, err := mcpSession(w.url, "/mcp", tok["access_token"].(string), "")
	if err != nil {
		t.Fatalf("initialize on /mcp with a token for it: %v", err)
	}
	status, _, body, err := mcpPost(w.url, "/mcp", tok["access_token"].(string), "", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err != nil || status != http.StatusOK || !strings.Contains(body, `"notes__`) {
		t.Fatalf("federated tools/list: %d %s %v", status, body, err)
	}
}
