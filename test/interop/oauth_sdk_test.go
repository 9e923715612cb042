package interop

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const sdkClientScript = "oauth/sdk-client.mjs"

// sdkClientRun is what oauth/sdk-client.mjs prints.
type sdkClientRun struct {
	Steps []struct {
		Step string `json:"step"`
	} `json:"steps"`
	Requests []struct {
		Step            string `json:"step"`
		Method          string `json:"method"`
		Path            string `json:"path"`
		Status          int    `json:"status"`
		RPC             string `json:"rpc"`
		GrantType       string `json:"grantType"`
		Resource        string `json:"resource"`
		ClientName      string `json:"clientName"`
		Error           string `json:"error"`
		WWWAuthenticate string `json:"wwwAuthenticate"`
	} `json:"requests"`
	Redirects []struct {
		Step                string `json:"step"`
		Endpoint            string `json:"endpoint"`
		ClientID            string `json:"clientId"`
		RedirectURI         string `json:"redirectUri"`
		Resource            string `json:"resource"`
		CodeChallengeMethod string `json:"codeChallengeMethod"`
		BrowserOpened       bool   `json:"browserOpened"`
		ConsentClientName   string `json:"consentClientName"`
		ConsentAgent        string `json:"consentAgent"`
		Returned            *struct {
			Code         bool   `json:"code"`
			StateMatches bool   `json:"stateMatches"`
			Iss          string `json:"iss"`
			Error        string `json:"error"`
		} `json:"returned"`
	} `json:"redirects"`
	TokensSaved []struct {
		Step         string `json:"step"`
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
		ExpiresIn    int    `json:"expiresIn"`
		TokenType    string `json:"tokenType"`
	} `json:"tokensSaved"`
	FirstConnect struct {
		Error *scriptError `json:"error"`
	} `json:"firstConnect"`
	ClientID  string `json:"clientId"`
	Discovery struct {
		AuthorizationServer  string `json:"authorizationServer"`
		Resource             string `json:"resource"`
		RegistrationEndpoint string `json:"registrationEndpoint"`
		RevocationEndpoint   string `json:"revocationEndpoint"`
	} `json:"discovery"`
	Tools                 []string `json:"tools"`
	FirstAccessToken      string   `json:"firstAccessToken"`
	FirstRefreshToken     string   `json:"firstRefreshToken"`
	RefreshedAccessToken  string   `json:"refreshedAccessToken"`
	RefreshedRefreshToken string   `json:"refreshedRefreshToken"`
	AfterExpiry           struct {
		Error   *scriptError `json:"error"`
		Text    string       `json:"text"`
		IsError bool         `json:"isError"`
	} `json:"afterExpiry"`
	Revoke struct {
		Status int `json:"status"`
	} `json:"revoke"`
	AfterRevoke struct {
		Error *scriptError `json:"error"`
	} `json:"afterRevoke"`
	Invalidated []struct {
		Step  string `json:"step"`
		Scope string `json:"scope"`
	} `json:"invalidated"`
	RedirectHits int          `json:"redirectHits"`
	Fatal        *scriptError `json:"fatal"`
}

// scriptError is an error a script caught and described.
type scriptError struct {
	Name         string `json:"name"`
	Message      string `json:"message"`
	Unauthorized bool   `json:"unauthorized"`
	Step         string `json:"step"`
	Stack        string `json:"stack"`
}

// sdkAccessTokenTTL is oauth.access_token_ttl in the SDK test: short, so
// the script sees its access token expire and the SDK refresh it.
const sdkAccessTokenTTL = 6 * time.Second

// TestOAuthTypeScriptSDKClient runs the official TypeScript SDK's OAuth
// client (@modelcontextprotocol/sdk, OAuthClientProvider + Streamable HTTP
// transport) against the gateway's authorization server, with alice
// approving the consent page and logging in at testidp in Chromium: from
// the first 401 through discovery, registration, login, tools, a refresh
// the SDK does itself and a revocation that ends access.
func TestOAuthTypeScriptSDKClient(t *testing.T) {
	p := findPeers(t)
	w := startOAuthWorld(t, oauthWorldOptions{accessTokenTTL: sdkAccessTokenTTL})
	mcpURL := w.url + "/" + oauthBackend
	const clientName = oauthClientPrefix + " TypeScript SDK client"

	var got sdkClientRun
	runBrowserScript(t, p, sdkClientScript, &got, "--mcp-url", mcpURL, "--username", oauthUser, "--password", oauthPassword,
		"--client-name", clientName, "--ttl-seconds", "6")
	if got.Fatal != nil {
		t.Fatalf("the script stopped at %s: %s: %s\n%s\nrequests: %+v\nfirst connect: %+v\nredirects: %+v", got.Fatal.Step, got.Fatal.Name, got.Fatal.Message, got.Fatal.Stack, got.Requests, got.FirstConnect.Error, got.Redirects)
	}
	t.Logf("requests the SDK made:")
	for _, r := range got.Requests {
		t.Logf("  [%s] %s %s%s → %d %s%s", r.Step, r.Method, r.Path, suffix(" ", r.RPC+r.GrantType), r.Status, r.Error, suffix(" WWW-Authenticate: ", r.WWWAuthenticate))
	}

	// 1. Discovery from the 401 alone, registration, the browser login.
	t.Run("discovery from the 401", func(t *testing.T) {
		var first []string
		for _, r := range got.Requests {
			if r.Step == "connect-unauthenticated" {
				first = append(first, r.Method+" "+r.Path+" "+itoa(r.Status))
			}
		}
		if len(first) == 0 || first[0] != "POST /notes 401" {
			t.Fatalf("the first request was not an MCP POST refused with 401: %v", first)
		}
		if !strings.Contains(got.Requests[0].WWWAuthenticate, w.url+"/.well-known/oauth-protected-resource/"+oauthBackend) {
			t.Errorf("401 challenge %q names no protected resource metadata", got.Requests[0].WWWAuthenticate)
		}
		want := []string{"GET /.well-known/oauth-protected-resource/notes 200", "GET /.well-known/oauth-authorization-server 200", "POST /oauth2/register 201"}
		if !isSubsequence(want, first) {
			t.Errorf("want %v in this order among the SDK's requests, got %v", want, first)
		}
		if got.Discovery.AuthorizationServer != w.url && got.Discovery.AuthorizationServer != w.url+"/" {
			t.Errorf("authorization server %q, want the gateway %q", got.Discovery.AuthorizationServer, w.url)
		}
		if got.Discovery.Resource != mcpURL {
			t.Errorf("protected resource %q, want %q", got.Discovery.Resource, mcpURL)
		}
		if got.FirstConnect.Error == nil || !got.FirstConnect.Error.Unauthorized {
			t.Errorf("the first connect: %+v, want UnauthorizedError (the SDK handed over to the browser)", got.FirstConnect.Error)
		}
	})
	t.Run("registered and logged in", func(t *testing.T) {
		if !strings.HasPrefix(got.ClientID, "mcpgw-") {
			t.Fatalf("client_id %q, want one the gateway issued (mcpgw-...)", got.ClientID)
		}
		if len(got.Redirects) == 0 {
			t.Fatal("the SDK never sent the person to the authorization endpoint")
		}
		r := got.Redirects[0]
		if r.Endpoint != w.url+"/oauth2/authorize" || r.ClientID != got.ClientID || r.CodeChallengeMethod != "S256" || r.Resource != mcpURL {
			t.Errorf("authorization request %+v: want the gateway's endpoint, the registered client, S256, resource %s", r, mcpURL)
		}
		if r.ConsentClientName != clientName || r.ConsentAgent != oauthAgent {
			t.Errorf("consent page showed client %q agent %q, want %q and %q", r.ConsentClientName, r.ConsentAgent, clientName, oauthAgent)
		}
		if r.Returned == nil || !r.Returned.Code || !r.Returned.StateMatches || r.Returned.Iss != w.url || r.Returned.Error != "" {
			t.Errorf("back at the redirect URI: %+v, want a code, the state and iss %s", r.Returned, w.url)
		}
	})

	// 2. The code redeemed by the SDK; tools listed through the gateway.
	t.Run("code redeemed, tools listed", func(t *testing.T) {
		redeemed := false
		for _, r := range got.Requests {
			if r.Step == "finish-auth" && r.Path == "/oauth2/token" && r.GrantType == "authorization_code" && r.Status == 200 {
				redeemed = true
			}
		}
		if !redeemed {
			t.Errorf("no successful authorization_code grant in finishAuth")
		}
		if len(got.TokensSaved) == 0 || got.TokensSaved[0].TokenType != "Bearer" || got.TokensSaved[0].ExpiresIn != int(sdkAccessTokenTTL.Seconds()) {
			t.Errorf("tokens saved: %+v, want a Bearer token living %s", got.TokensSaved, sdkAccessTokenTTL)
		}
		// alice is a viewer (mcp-viewers): the shipped policy shows her the
		// notes backend's read tools and hides the others (add, write_file).
		for _, tool := range []string{"echo", "list_files", "read_file"} {
			if !slices.Contains(got.Tools, tool) {
				t.Errorf("tools/list through the gateway lacks the notes backend's %q: %v", tool, got.Tools)
			}
		}
		if slices.Contains(got.Tools, "write_file") {
			t.Errorf("tools/list shows write_file to a viewer: %v", got.Tools)
		}
	})

	// 3. The SDK refreshes by itself when the expired token is refused.
	t.Run("refresh on expiry", func(t *testing.T) {
		var seen []string
		refreshed := false
		for _, r := range got.Requests {
			if r.Step != "call-after-expiry" {
				continue
			}
			seen = append(seen, r.Method+" "+r.Path+" "+r.GrantType+" "+itoa(r.Status))
			if r.Path == "/oauth2/token" && r.GrantType == "refresh_token" && r.Status == 200 {
				refreshed = true
			}
		}
		if !refreshed || !isSubsequence([]string{"POST /notes  401", "POST /oauth2/token refresh_token 200", "POST /notes  200"}, seen) {
			t.Errorf("after expiry the SDK sent %v; want the 401, a refresh_token grant, the retried call", seen)
		}
		if got.AfterExpiry.Error != nil || got.AfterExpiry.IsError || got.AfterExpiry.Text != "after refresh" {
			t.Errorf("the call after expiry: %+v", got.AfterExpiry)
		}
		if got.RefreshedAccessToken == "" || got.RefreshedAccessToken == got.FirstAccessToken {
			t.Errorf("access token after the refresh %q, before %q: want a new one", got.RefreshedAccessToken, got.FirstAccessToken)
		}
		if got.RefreshedRefreshToken == "" || got.RefreshedRefreshToken == got.FirstRefreshToken {
			t.Errorf("refresh token not rotated: %q before and after", got.FirstRefreshToken)
		}
	})

	// 4. Revocation ends access: the SDK's refresh is refused and it gives up
	// with UnauthorizedError, asking for a new authorization.
	t.Run("revocation ends access", func(t *testing.T) {
		if got.Revoke.Status != 200 {
			t.Errorf("revocation endpoint answered %d", got.Revoke.Status)
		}
		if got.AfterRevoke.Error == nil || !got.AfterRevoke.Error.Unauthorized {
			t.Fatalf("the call after revocation: %+v, want UnauthorizedError", got.AfterRevoke.Error)
		}
		var seen []string
		for _, r := range got.Requests {
			if r.Step == "call-after-revoke" {
				seen = append(seen, r.Method+" "+r.Path+" "+r.GrantType+" "+itoa(r.Status)+" "+r.Error)
			}
		}
		if !isSubsequence([]string{"POST /notes  401 ", "POST /oauth2/token refresh_token 400 invalid_grant"}, seen) {
			t.Errorf("after revocation the SDK sent %v; want the 401 and a refused refresh (invalid_grant)", seen)
		}
		for _, r := range seen {
			if strings.HasPrefix(r, "POST /notes ") && strings.Contains(r, " 200 ") {
				t.Errorf("an MCP request succeeded after revocation: %v", seen)
			}
		}
		last := got.Redirects[len(got.Redirects)-1]
		if len(got.Redirects) != 2 || last.Step != "call-after-revoke" || last.BrowserOpened {
			t.Errorf("after revocation the SDK should ask for a new authorization (recorded, not opened): %+v", got.Redirects)
		}
	})

	// The client is bound to the agent its registration rule names, and the
	// login (grant) is alice's and is revoked.
	t.Run("admin API: client bound to its agent", func(t *testing.T) {
		var clients struct {
			Clients []oauthAdminClientEntry `json:"clients"`
		}
		raw := w.adminGet(t, "/admin/v1/oauth/clients", &clients)
		i := slices.IndexFunc(clients.Clients, func(c oauthAdminClientEntry) bool { return c.ClientID == got.ClientID })
		if i < 0 || clients.Clients[i].Agent != oauthAgent || clients.Clients[i].Name != clientName {
			t.Fatalf("client %s: want it registered as %q bound to agent %q: %s", got.ClientID, clientName, oauthAgent, raw)
		}
		var grants struct {
			Grants []oauthAdminGrantEntry `json:"grants"`
		}
		raw = w.adminGet(t, "/admin/v1/oauth/grants?client_id="+url.QueryEscape(got.ClientID), &grants)
		if len(grants.Grants) != 1 {
			t.Fatalf("grants of %s: %s", got.ClientID, raw)
		}
		g := grants.Grants[0]
		if g.Agent != oauthAgent || g.Subject != oauthUserSubject || g.Resource != mcpURL || g.RevokedAt == nil {
			t.Errorf("grant %+v: want agent %s, subject %s, resource %s, revoked", g, oauthAgent, oauthUserSubject, mcpURL)
		}
	})
	if t.Failed() {
		t.Logf("script output: %+v", got)
	}
}

// isSubsequence reports whether want occurs in got in order (not
// necessarily adjacent).
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestOAuthTypeScriptSDKClientMetadataDocument: the SDK's other way in
// (SEP-991). With clientMetadataUrl set and the gateway's metadata saying
// client_id_metadata_document_supported, the SDK registers nothing and uses
// the URL as its client_id; the gateway fetches the document (https, here
// from a loopback test server it is told to trust), binds the client to
// the agent its name matches, and the login goes through as before.
func TestOAuthTypeScriptSDKClientMetadataDocument(t *testing.T) {
	p := findPeers(t)
	const clientName = oauthClientPrefix + " TypeScript SDK (metadata document)"
	redirectPort := freeLoopbackPort(t)
	var (
		mu      sync.Mutex
		fetches int
	)
	var docURL string
	docs := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/clients/sdk.json" {
			http.NotFound(rw, r)
			return
		}
		mu.Lock()
		fetches++
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"client_id": docURL, "client_name": clientName,
			"redirect_uris":              []string{"http://127.0.0.1:" + strconv.Itoa(redirectPort) + "/callback"},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none"})
	}))
	t.Cleanup(docs.Close)
	docURL = docs.URL + "/clients/sdk.json"
	w := startOAuthWorld(t, oauthWorldOptions{cimdTransport: docs.Client().Transport.(*http.Transport)})
	mcpURL := w.url + "/" + oauthBackend

	var got sdkClientRun
	runBrowserScript(t, p, sdkClientScript, &got, "--mcp-url", mcpURL, "--username", oauthUser, "--password", oauthPassword,
		"--client-name", "not used: the document names the client", "--ttl-seconds", "3600",
		"--client-metadata-url", docURL, "--redirect-port", strconv.Itoa(redirectPort), "--login-only")
	if got.Fatal != nil {
		t.Fatalf("the script stopped at %s: %s: %s\n%s\nrequests: %+v\nfirst connect: %+v", got.Fatal.Step, got.Fatal.Name, got.Fatal.Message,
			got.Fatal.Stack, got.Requests, got.FirstConnect.Error)
	}
	for _, r := range got.Requests {
		if r.Path == "/oauth2/register" {
			t.Errorf("the SDK registered although the gateway supports metadata documents: %+v", r)
		}
	}
	if got.ClientID != docURL {
		t.Errorf("client_id %q, want the document's URL %q", got.ClientID, docURL)
	}
	if len(got.Redirects) != 1 || got.Redirects[0].ClientID != docURL || got.Redirects[0].ConsentClientName != clientName ||
		got.Redirects[0].ConsentAgent != oauthAgent || got.Redirects[0].Returned == nil || !got.Redirects[0].Returned.Code {
		t.Errorf("authorization: %+v, want the document's client on the consent page as agent %s, and a code", got.Redirects, oauthAgent)
	}
	if !slices.Contains(got.Tools, "echo") {
		t.Errorf("tools/list through the gateway: %v", got.Tools)
	}
	mu.Lock()
	n := fetches
	mu.Unlock()
	if n == 0 {
		t.Errorf("the gateway never fetched the metadata document")
	}
	var clients struct {
		Clients []oauthAdminClientEntry `json:"clients"`
	}
	raw := w.adminGet(t, "/admin/v1/oauth/clients", &clients)
	i := slices.IndexFunc(clients.Clients, func(c oauthAdminClientEntry) bool { return c.ClientID == docURL })
	if i < 0 || clients.Clients[i].Agent != oauthAgent {
		t.Errorf("admin API: want %s bound to %s: %s", docURL, oauthAgent, raw)
	}
	if t.Failed() {
		t.Logf("script output: %+v", got)
	}
}
