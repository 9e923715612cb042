package testutil

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Browser is a person's browser for OAuth login tests without a real one: it
// keeps cookies and follows no redirect by itself, so each hop can be
// looked at. (Real Chromium runs in test/interop.)
type Browser struct {
	t    testing.TB
	http *http.Client
}

func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, http: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Do sends one request (a form when form is not nil, with an Origin when
// origin is set, as a browser posting a page's form does).
func (b *Browser) Do(method, target string, form url.Values, origin string) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// HiddenFields are a page's hidden form inputs.
func HiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// PKCE returns a verifier and its S256 challenge.
func PKCE() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// GatewayLogin walks a person through the gateway's authorize (approving
// the consent page when shown), the IdP's login form (testidp's) and the
// gateway's callback, and returns where the client is sent back.
func (b *Browser) GatewayLogin(gateway, idpIssuer, authorizeURL, username, password string) *url.URL {
	b.t.Helper()
	status, hdr, page := b.Do("GET", authorizeURL, nil, "")
	if status == http.StatusOK {
		form := HiddenFields(page)
		form.Set("decision", "approve")
		status, hdr, page = b.Do("POST", gateway+"/oauth2/consent", form, gateway)
	}
	if status != http.StatusSeeOther {
		b.t.Fatalf("authorize/consent: HTTP %d, want 303 to the IdP: %s", status, page)
	}
	idpLogin := hdr.Get("Location")
	if !strings.HasPrefix(idpLogin, idpIssuer) {
		b.t.Fatalf("sent to %q, not the IdP", idpLogin)
	}
	status, _, page = b.Do("GET", idpLogin, nil, "")
	if status != http.StatusOK {
		b.t.Fatalf("IdP authorize: HTTP %d: %s", status, page)
	}
	form := HiddenFields(page)
	form.Set("username", username)
	form.Set("password", password)
	status, hdr, page = b.Do("POST", idpIssuer+"/login", form, idpIssuer)
	if status != http.StatusFound && status != http.StatusSeeOther {
		b.t.Fatalf("IdP login: HTTP %d: %s", status, page)
	}
	status, hdr, page = b.Do("GET", hdr.Get("Location"), nil, "")
	if status != http.StatusSeeOther {
		b.t.Fatalf("callback: HTTP %d: %s", status, page)
	}
	u, err := url.Parse(hdr.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}
