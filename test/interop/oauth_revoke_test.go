package interop

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// oauthLogin is a finished login of a public client: alice approved and
// logged in through Chromium, and the code was redeemed.
type oauthLogin struct {
	clientID string
	tokens   map[string]any
}

// loginThroughBrowser registers a public client whose redirect URI is a
// loopback listener of this test, sends alice through the consent page and
// testidp in Chromium (oauth/approve-login.mjs) and redeems the code.
func loginThroughBrowser(t *testing.T, p peers, w *oauthWorld, name string) oauthLogin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		codes []url.Values
	)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // Chromium also asks for /favicon.ico
			http.NotFound(rw, r)
			return
		}
		mu.Lock()
		codes = append(codes, r.URL.Query())
		mu.Unlock()
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = rw.Write([]byte("<!doctype html><p>Signed in.</p>"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	redirectURI := "http://" + ln.Addr().String() + "/callback"
	clientID := registerPublicClient(t, w.url, name, redirectURI)

	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {w.url + "/" + oauthBackend}}
	var login approveLogin
	runBrowserScript(t, p, approveLoginScript, &login, "--url", w.url+"/oauth2/authorize?"+q.Encode(),
		"--redirect-prefix", redirectURI, "--username", oauthUser, "--password", oauthPassword)
	if login.Fatal != nil || !login.Redirect.Code {
		t.Fatalf("browser login: %+v", login)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(codes) != 1 || codes[0].Get("state") != state || codes[0].Get("code") == "" {
		t.Fatalf("the redirect URI was called with %v, want one code for state %s", codes, state)
	}
	status, tokens := postForm(t, w.url+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {codes[0].Get("code")},
		"redirect_uri": {redirectURI}, "client_id": {clientID}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("redeem the code: HTTP %d %v", status, tokens)
	}
	return oauthLogin{clientID: clientID, tokens: tokens}
}

func postForm(t *testing.T, target string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(target, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// mcpInitialize posts an MCP initialize with token and returns the status.
func mcpInitialize(t *testing.T, endpoint, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"interop","version":"1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOAuthRevokeAccessToken: RFC 7009 lets a client revoke either of its
// tokens, and the gateway's revocation endpoint says an access token ends
// its whole grant, as a refresh token does (internal/oauthserver/revoke.go).
// A client that hands back the access token it holds (token_type_hint
// access_token) must find both tokens dead afterwards.
//
// Fails on the facade as committed (4f3997a): /oauth2/revoke answers 200 and
// revokes nothing. handleRevoke finds an access token's grant through
// parseAccessIgnoringExpiry, which validates the JWT with a clock set to the
// Unix epoch so that exp never fails; but jwx then finds iat (and nbf) in
// the future, the parse fails ("iat" not satisfied), found stays false, and
// the 200 of RFC 7009 §2.2 hides it. The access token keeps opening the MCP
// endpoint and the refresh token keeps refreshing.
func TestOAuthRevokeAccessToken(t *testing.T) {
	p := findPeers(t)
	w := startOAuthWorld(t, oauthWorldOptions{})
	login := loginThroughBrowser(t, p, w, oauthClientPrefix+" access token revoker")
	access, _ := login.tokens["access_token"].(string)
	refresh, _ := login.tokens["refresh_token"].(string)
	endpoint := w.url + "/" + oauthBackend
	if status := mcpInitialize(t, endpoint, access); status != http.StatusOK {
		t.Fatalf("initialize with the new access token: HTTP %d", status)
	}
	status, body := postForm(t, w.url+"/oauth2/revoke", url.Values{"token": {access}, "token_type_hint": {"access_token"}, "client_id": {login.clientID}})
	if status != http.StatusOK {
		t.Fatalf("revoke the access token: HTTP %d %v", status, body)
	}
	if status := mcpInitialize(t, endpoint, access); status != http.StatusUnauthorized {
		t.Errorf("initialize with the revoked access token: HTTP %d, want 401", status)
	}
	if status, out := postForm(t, w.url+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {login.clientID}}); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("refresh after the access token was revoked: HTTP %d %v, want 400 invalid_grant (the grant ended)", status, out)
	}
	var grants struct {
		Grants []oauthAdminGrantEntry `json:"grants"`
	}
	raw := w.adminGet(t, "/admin/v1/oauth/grants?client_id="+url.QueryEscape(login.clientID), &grants)
	if len(grants.Grants) != 1 || grants.Grants[0].RevokedAt == nil {
		t.Errorf("the grant after revoking its access token: %s, want it revoked", raw)
	}
}
