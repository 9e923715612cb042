package interop

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const consentPageScript = "oauth/consent-page.mjs"

// consentPageRun is what oauth/consent-page.mjs prints.
type consentPageRun struct {
	Render struct {
		Status        int             `json:"status"`
		URL           string          `json:"url"`
		ClientName    string          `json:"clientName"`
		ClientID      string          `json:"clientID"`
		Agent         string          `json:"agent"`
		Redirect      string          `json:"redirect"`
		Resource      string          `json:"resource"`
		ApproveButton string          `json:"approveButton"`
		DenyButton    string          `json:"denyButton"`
		FormAction    string          `json:"formAction"`
		FormMethod    string          `json:"formMethod"`
		HiddenFields  []string        `json:"hiddenFields"`
		CSP           string          `json:"csp"`
		XFrameOptions string          `json:"xFrameOptions"`
		Cookies       []browserCookie `json:"cookies"`
	} `json:"render"`
	Deny struct {
		Error string `json:"error"`
		State string `json:"state"`
		Iss   string `json:"iss"`
		Code  string `json:"code"`
	} `json:"deny"`
	CSRF struct {
		OriginalLength int    `json:"originalLength"`
		Status         int    `json:"status"`
		Location       string `json:"location"`
		PageURL        string `json:"pageURL"`
		Message        string `json:"message"`
		ApproveShown   bool   `json:"approveShown"`
		RedirectHits   int    `json:"redirectHits"`
		ReachedIdP     bool   `json:"reachedIdP"`
	} `json:"csrf"`
	Frame struct {
		FramerOrigin string `json:"framerOrigin"`
		Frames       []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"frames"`
		ConsentFrameURL  string   `json:"consentFrameURL"`
		ConsentRendered  *bool    `json:"consentRendered"`
		ConsentFrameText string   `json:"consentFrameText"`
		ControlRendered  *bool    `json:"controlRendered"`
		GatewayAnswered  []int    `json:"gatewayAnswered"`
		Console          []string `json:"console"`
	} `json:"frame"`
	Approve struct {
		LoginPage struct {
			URL  string `json:"url"`
			Form bool   `json:"form"`
		} `json:"loginPage"`
		LoginError string `json:"loginError"`
		Code       bool   `json:"code"`
		State      string `json:"state"`
		Iss        string `json:"iss"`
		Error      string `json:"error"`
		Token      struct {
			Status          int    `json:"status"`
			TokenType       string `json:"tokenType"`
			HasAccessToken  bool   `json:"hasAccessToken"`
			HasRefreshToken bool   `json:"hasRefreshToken"`
			Error           string `json:"error"`
		} `json:"token"`
		ConsentCookie bool `json:"consentCookie"`
	} `json:"approve"`
	Remembered struct {
		ConsentShown      bool   `json:"consentShown"`
		AtIdP             bool   `json:"atIdP"`
		LoginError        string `json:"loginError"`
		Code              bool   `json:"code"`
		State             string `json:"state"`
		AuthorizeStatuses []int  `json:"authorizeStatuses"`
	} `json:"remembered"`
	Navigations []struct {
		Step   string `json:"step"`
		Method string `json:"method"`
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"navigations"`
	Fatal *scriptError `json:"fatal"`
}

// browserCookie is a cookie as playwright reports it.
type browserCookie struct {
	Name     string `json:"name"`
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
	Secure   bool   `json:"secure"`
}

// TestOAuthConsentPageInChromium drives the gateway's consent page in a real
// Chromium: what it shows, Allow and Deny, a forged CSRF token, framing by
// another origin, and the consent remembered for the next login.
func TestOAuthConsentPageInChromium(t *testing.T) {
	p := findPeers(t)
	w := startOAuthWorld(t, oauthWorldOptions{})
	const clientName = oauthClientPrefix + " consent page"
	port := freeLoopbackPort(t)
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	clientID := registerPublicClient(t, w.url, clientName, redirectURI)

	var got consentPageRun
	runBrowserScript(t, p, consentPageScript, &got, "--gateway", w.url, "--idp", w.idp.Issuer(), "--client-id", clientID,
		"--redirect-port", strconv.Itoa(port), "--username", oauthUser, "--password", oauthPassword)
	if got.Fatal != nil {
		t.Fatalf("the script stopped at %s: %s\n%s\nnavigations: %+v", got.Fatal.Step, got.Fatal.Message, got.Fatal.Stack, got.Navigations)
	}
	for _, n := range got.Navigations {
		t.Logf("  [%s] %s %s → %d", n.Step, n.Method, n.URL, n.Status)
	}

	t.Run("renders", func(t *testing.T) {
		r := got.Render
		if r.Status != http.StatusOK || !strings.HasPrefix(r.URL, w.url+"/oauth2/authorize?") {
			t.Fatalf("authorize answered %d at %s, want the consent page", r.Status, r.URL)
		}
		if r.ClientName != clientName || r.ClientID != clientID || r.Agent != oauthAgent || r.Redirect != redirectURI || r.Resource != w.url+"/"+oauthBackend {
			t.Errorf("the page shows client %q (%q), agent %q, redirect %q, resource %q; want %q (%q), %q, %q, %s/%s",
				r.ClientName, r.ClientID, r.Agent, r.Redirect, r.Resource, clientName, clientID, oauthAgent, redirectURI, w.url, oauthBackend)
		}
		if r.ApproveButton == "" || r.DenyButton == "" || r.FormAction != w.url+"/oauth2/consent" || !strings.EqualFold(r.FormMethod, "post") {
			t.Errorf("buttons %q/%q, form %s %q: want Allow and Deny posting to /oauth2/consent", r.ApproveButton, r.DenyButton, r.FormMethod, r.FormAction)
		}
		if !slices.Equal(r.HiddenFields, []string{"request", "csrf"}) {
			t.Errorf("hidden fields %v, want request and csrf", r.HiddenFields)
		}
		if !strings.Contains(r.CSP, "frame-ancestors 'none'") || r.XFrameOptions != "DENY" {
			t.Errorf("CSP %q, X-Frame-Options %q: want frame-ancestors 'none' and DENY", r.CSP, r.XFrameOptions)
		}
		i := slices.IndexFunc(r.Cookies, func(c browserCookie) bool { return c.Name == "mcpgw-csrf" })
		// On an http loopback gateway the cookie has its plain name (no __Host-, which needs Secure).
		if i < 0 || !r.Cookies[i].HTTPOnly || r.Cookies[i].SameSite != "Lax" {
			t.Errorf("cookies %+v: want an HttpOnly, SameSite=Lax mcpgw-csrf", r.Cookies)
		}
	})
	t.Run("deny goes back with access_denied", func(t *testing.T) {
		d := got.Deny
		if d.Error != "access_denied" || d.State != "s-render" || d.Iss != w.url || d.Code != "" {
			t.Errorf("after Deny the client got %+v, want error=access_denied, state s-render, iss %s, no code", d, w.url)
		}
	})
	t.Run("forged CSRF token refused", func(t *testing.T) {
		c := got.CSRF
		if c.OriginalLength != 43 {
			t.Errorf("the page's CSRF token has %d characters, want 43", c.OriginalLength)
		}
		if c.Status != http.StatusForbidden || c.Location != "" || !strings.Contains(c.Message, "CSRF") {
			t.Errorf("POST /oauth2/consent with a forged token: HTTP %d, Location %q, page %q; want 403 and the CSRF message", c.Status, c.Location, c.Message)
		}
		if c.RedirectHits != 0 || c.ReachedIdP || !strings.HasPrefix(c.PageURL, w.url+"/oauth2/consent") || c.ApproveShown {
			t.Errorf("after the forged post the browser is at %s (redirect hits %d, IdP reached %v): want it to stay on the 403 page", c.PageURL, c.RedirectHits, c.ReachedIdP)
		}
	})
	t.Run("framing refused", func(t *testing.T) {
		f := got.Frame
		if f.ControlRendered == nil || !*f.ControlRendered {
			t.Fatalf("the control frame did not render either (frames %+v): the check cannot tell", f.Frames)
		}
		if f.ConsentRendered == nil {
			t.Fatalf("no consent frame found among %+v", f.Frames)
		}
		if *f.ConsentRendered || strings.Contains(f.ConsentFrameText, "Allow") {
			t.Errorf("the consent page rendered inside a page of %s: frame %s, text %q", f.FramerOrigin, f.ConsentFrameURL, f.ConsentFrameText)
		}
		if strings.HasPrefix(f.ConsentFrameURL, w.url) {
			t.Errorf("the consent frame is at %s: want Chromium's error page (chrome-error:) or about:blank", f.ConsentFrameURL)
		}
		if !slices.ContainsFunc(f.Console, func(m string) bool { return strings.Contains(m, "frame-ancestors 'none'") }) {
			t.Errorf("Chromium's console does not name frame-ancestors as the reason: %q", f.Console)
		}
		t.Logf("framed consent: frame at %q, gateway answered %v, console %q", f.ConsentFrameURL, f.GatewayAnswered, f.Console)
	})
	t.Run("approve, login, code", func(t *testing.T) {
		a := got.Approve
		if !strings.HasPrefix(a.LoginPage.URL, w.idp.Issuer()) || !a.LoginPage.Form {
			t.Errorf("Allow led to %s (login form %v), want testidp's login", a.LoginPage.URL, a.LoginPage.Form)
		}
		if a.LoginError != "" || !a.Code || a.State != "s-approve" || a.Iss != w.url || a.Error != "" {
			t.Errorf("after the login the client got %+v, want a code, state s-approve, iss %s", a, w.url)
		}
		if a.Token.Status != http.StatusOK || a.Token.TokenType != "Bearer" || !a.Token.HasAccessToken || !a.Token.HasRefreshToken {
			t.Errorf("the code's redemption: %+v", a.Token)
		}
		if !a.ConsentCookie {
			t.Errorf("no mcpgw-consent cookie after Allow")
		}
	})
	t.Run("consent remembered", func(t *testing.T) {
		r := got.Remembered
		if r.ConsentShown || !r.AtIdP || !slices.Equal(r.AuthorizeStatuses, []int{http.StatusSeeOther}) {
			t.Errorf("second authorization: consent shown %v, at the IdP %v, authorize answered %v; want a 303 straight to the IdP", r.ConsentShown, r.AtIdP, r.AuthorizeStatuses)
		}
		if r.LoginError != "" || !r.Code || r.State != "s-again" {
			t.Errorf("second login: %+v, want a code for state s-again", r)
		}
	})
	if t.Failed() {
		raw, _ := json.Marshal(got)
		t.Logf("script output: %s", raw)
	}
}

// registerPublicClient registers a public client at the gateway (RFC 7591)
// and returns its client_id.
func registerPublicClient(t *testing.T, gatewayURL, name, redirectURI string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"})
	resp, err := http.Post(gatewayURL+"/oauth2/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
		Error    string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.ClientID == "" {
		t.Fatalf("register %q: HTTP %d %+v", name, resp.StatusCode, out)
	}
	return out.ClientID
}
