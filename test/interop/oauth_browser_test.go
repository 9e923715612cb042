package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testidp"
)

// The browser harness (oauth/browser.mjs) and the script that proves it.
const (
	browserHarness    = "oauth/browser.mjs"
	idpLoginScript    = "oauth/idp-login.mjs"
	playwrightPackage = "node_modules/playwright-core/package.json"
	chromiumBinary    = "/usr/bin/chromium"
	// browserRunTimeout bounds one script run: Chromium starts in ~3 s here,
	// more on a loaded machine.
	browserRunTimeout = 2 * time.Minute
)

// browserLogin is what idp-login.mjs prints.
type browserLogin struct {
	Outcome string `json:"outcome"`
	// login-refused
	Error          string `json:"error"`
	PageURL        string `json:"pageURL"`
	FormShownAgain bool   `json:"formShownAgain"`
	RedirectHits   int    `json:"redirectHits"`
	// tokens
	Redirect struct {
		Iss      string `json:"iss"`
		Hits     int    `json:"hits"`
		PageText string `json:"pageText"`
	} `json:"redirect"`
	Nonce             string         `json:"nonce"`
	TokenType         string         `json:"tokenType"`
	Scope             string         `json:"scope"`
	IDToken           map[string]any `json:"idToken"`
	ReplayedCodeError string         `json:"replayedCodeError"`
	Refreshed         struct {
		IDToken map[string]any `json:"idToken"`
		Rotated bool           `json:"rotated"`
	} `json:"refreshed"`
	ReusedRefreshError string `json:"reusedRefreshError"`
}

// TestOAuthBrowserLogin signs a user in at testidp through a real Chromium
// (authorization code + PKCE), the way the gateway's OAuth tests will.
func TestOAuthBrowserLogin(t *testing.T) {
	p := findPeers(t)
	for _, rel := range []string{browserHarness, idpLoginScript, playwrightPackage} {
		if _, err := os.Stat(p.path(rel)); err != nil {
			t.Fatalf("browser harness file missing (run `make interop-deps`): %v", err)
		}
	}
	if _, err := os.Stat(chromiumBinary); err != nil {
		t.Fatalf("Chromium is needed for the browser tests (`make interop-deps` installs Debian's): %v", err)
	}

	const clientID, clientSecret = "mcp-gateway", "gateway-secret"
	alice := testidp.User{Username: "alice", Password: "correct horse", Subject: "00u-alice", Email: "alice@example.com",
		Name: "Alice Example", Groups: []string{"mcp-viewers"}}
	idp, err := testidp.Start(t.Context(), testidp.Options{Users: []testidp.User{alice}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	redirectPort := freeLoopbackPort(t)
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(redirectPort) + "/callback"
	if err := idp.RegisterClient(testidp.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}); err != nil {
		t.Fatal(err)
	}
	// The script calls this between login and refresh: the refreshed tokens
	// must carry the groups the user has then.
	newGroups := []string{"mcp-admins", "hr"}
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := idp.SetUserGroups("alice", newGroups); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(control.Close)

	login := func(t *testing.T, password string) browserLogin {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), browserRunTimeout)
		defer cancel()
		res := run(ctx, "idp-login.mjs", command(ctx, p.dir, peerEnv(t), p.node, p.path(idpLoginScript),
			"--issuer", idp.Issuer(), "--client-id", clientID, "--client-secret", clientSecret,
			"--redirect-port", strconv.Itoa(redirectPort), "--username", "alice", "--password", password,
			"--before-refresh", control.URL))
		if res.err != nil {
			t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
		}
		var out browserLogin
		if err := json.Unmarshal(res.stdout, &out); err != nil {
			t.Fatalf("idp-login.mjs printed %q: %v\nstderr:\n%s", res.stdout, err, res.stderr)
		}
		return out
	}

	// Sequential: each run starts a Chromium, and the machine has two cores.
	t.Run("wrong password shows the form again", func(t *testing.T) {
		got := login(t, "wrong")
		if got.Outcome != "login-refused" || got.Error != "Wrong username or password." || !got.FormShownAgain {
			t.Errorf("got %+v, want the login form again with its error", got)
		}
		if got.RedirectHits != 0 || !strings.HasPrefix(got.PageURL, idp.Issuer()+testidp.PathLogin) {
			t.Errorf("the browser left the IdP: at %s, %d requests to the redirect URI", got.PageURL, got.RedirectHits)
		}
	})

	t.Run("code flow with PKCE, then refresh", func(t *testing.T) {
		got := login(t, alice.Password)
		if got.Outcome != "tokens" {
			t.Fatalf("got %+v", got)
		}
		if got.Redirect.Iss != idp.Issuer() || got.Redirect.Hits != 1 || got.Redirect.PageText == "" {
			t.Errorf("redirect %+v: want iss, one request to the redirect URI and its page shown", got.Redirect)
		}
		if got.TokenType != "Bearer" || got.Scope != "email groups openid profile" {
			t.Errorf("token_type %q scope %q", got.TokenType, got.Scope)
		}
		claims := got.IDToken
		for name, want := range map[string]any{"iss": idp.Issuer(), "aud": clientID, "sub": alice.Subject, "nonce": got.Nonce,
			"email": alice.Email, "name": alice.Name} {
			if claims[name] != want {
				t.Errorf("ID token %s = %v, want %v", name, claims[name], want)
			}
		}
		if got.Nonce == "" || !slices.Equal(groupsOf(claims), alice.Groups) {
			t.Errorf("nonce %q, ID token groups %v", got.Nonce, claims["groups"])
		}
		if got.ReplayedCodeError != "invalid_grant" {
			t.Errorf("replayed code: error %q, want invalid_grant", got.ReplayedCodeError)
		}
		refreshed := got.Refreshed.IDToken
		if !got.Refreshed.Rotated || refreshed["sub"] != alice.Subject || !slices.Equal(groupsOf(refreshed), newGroups) {
			t.Errorf("refresh: rotated %v, sub %v, groups %v (want %v)", got.Refreshed.Rotated, refreshed["sub"], refreshed["groups"], newGroups)
		}
		if got.ReusedRefreshError != "invalid_grant" {
			t.Errorf("reused refresh token: error %q, want invalid_grant", got.ReusedRefreshError)
		}
	})
}

func groupsOf(claims map[string]any) []string {
	var out []string
	list, _ := claims["groups"].([]any)
	for _, g := range list {
		s, _ := g.(string)
		out = append(out, s)
	}
	return out
}
