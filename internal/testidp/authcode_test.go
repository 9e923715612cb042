package testidp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

const (
	appID       = "app"
	appSecret   = "app-secret"
	otherID     = "other-app"
	otherSecret = "other-secret"
	appCallback = "http://127.0.0.1:9/callback"
)

var alice = User{Username: "alice", Password: "alice-pw", Subject: "00u-alice", Email: "alice@example.com", Name: "Alice Example", Groups: []string{"mcp-viewers"}}

// startAuthCode starts a server with alice and two confidential clients
// that share a redirect URI, so that only the client binding tells them apart.
func startAuthCode(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Users = append(opts.Users, alice, User{Username: "bob", Password: "bob-pw"})
	s := startServer(t, opts)
	for _, c := range []Client{
		{ID: appID, Secret: appSecret, Scopes: []string{"mcp:read"}, RedirectURIs: []string{appCallback, "http://127.0.0.1:9/other?x=1"}},
		{ID: otherID, Secret: otherSecret, RedirectURIs: []string{appCallback}},
	} {
		if err := s.RegisterClient(c); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location(t *testing.T) *url.URL {
	t.Helper()
	if p.status != http.StatusFound {
		t.Fatalf("status %d, want 302; body:\n%s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func fetch(t *testing.T, method, target string, form url.Values) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// pkcePair is a fresh verifier and its S256 challenge.
func pkcePair() (verifier, challenge string) {
	verifier = randomToken()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams is a valid authorization request of appID; extra overrides
// (an empty value removes a parameter).
func authParams(challenge string, extra url.Values) url.Values {
	q := url.Values{
		"response_type": {"code"}, "client_id": {appID}, "redirect_uri": {appCallback},
		"scope": {"openid email profile groups mcp:read"}, "state": {"st-123"}, "nonce": {"n-456"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
			continue
		}
		q[k] = v
	}
	return q
}

var requestField = regexp.MustCompile(`name="` + LoginFieldRequest + `" value="([^"]+)"`)

// loginForm requests the authorization endpoint and returns the login
// form's request id.
func loginForm(t *testing.T, s *Server, q url.Values) string {
	t.Helper()
	p := fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+q.Encode(), nil)
	if p.status != http.StatusOK {
		t.Fatalf("authorize: status %d, want the login form; Location %q; body:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	m := requestField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no request field in the login form:\n%s", p.body)
	}
	return m[1]
}

func submitLogin(t *testing.T, s *Server, id, username, password string) page {
	t.Helper()
	return fetch(t, http.MethodPost, s.Issuer()+PathLogin, url.Values{
		LoginFieldRequest: {id}, LoginFieldUsername: {username}, LoginFieldPassword: {password},
	})
}

// signIn runs the front channel for u and returns the code.
func signIn(t *testing.T, s *Server, q url.Values, u User) string {
	t.Helper()
	loc := submitLogin(t, s, loginForm(t, s, q), u.Username, u.Password).location(t)
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect without code: %s", loc)
	}
	return code
}

func codeForm(code, verifier string, extra url.Values) url.Values {
	f := url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "redirect_uri": {appCallback}, "code_verifier": {verifier}}
	for k, v := range extra {
		if len(v) == 0 {
			delete(f, k)
			continue
		}
		f[k] = v
	}
	return f
}

// verifyIDToken checks an ID token as a relying party does: signature over
// the published JWKS, iss, aud, exp; and returns its claims.
func verifyIDToken(t *testing.T, s *Server, raw, clientID string) map[string]any {
	t.Helper()
	if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(fetchKeys(t, s)), jwt.WithValidate(true),
		jwt.WithIssuer(s.Issuer()), jwt.WithAudience(clientID), jwt.WithRequiredClaim(jwt.IssuedAtKey)); err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	return verify(t, s, raw)
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestAuthorizationCodeFlow(t *testing.T) {
	s := startAuthCode(t, Options{Audience: "api://gw", TokenTTL: 10 * time.Minute})
	verifier, challenge := pkcePair()
	id := loginForm(t, s, authParams(challenge, nil))

	// A wrong password shows the form again, with the error and no redirect.
	wrong := submitLogin(t, s, id, "alice", "not-her-password")
	if wrong.status != http.StatusOK || wrong.header.Get("Location") != "" {
		t.Fatalf("wrong password: status %d, Location %q", wrong.status, wrong.header.Get("Location"))
	}
	if !strings.Contains(wrong.body, `id="`+LoginErrorID+`"`) || !requestField.MatchString(wrong.body) || !strings.Contains(wrong.body, `value="alice"`) {
		t.Fatalf("wrong password: want the form again with the error and the username kept:\n%s", wrong.body)
	}
	loc := submitLogin(t, s, id, alice.Username, alice.Password).location(t)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != appCallback {
		t.Errorf("redirected to %s, want %s", got, appCallback)
	}
	if loc.Query().Get("state") != "st-123" || loc.Query().Get("iss") != s.Issuer() {
		t.Errorf("redirect query %v: want the state echoed and iss", loc.Query())
	}
	// The form was used: submitting it again finds nothing.
	if again := submitLogin(t, s, id, alice.Username, alice.Password); again.status != http.StatusBadRequest {
		t.Errorf("second submission: status %d, want 400", again.status)
	}

	r := callToken(t, s, tokenCall{form: codeForm(loc.Query().Get("code"), verifier, nil), basicID: appID, basicSecret: appSecret})
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.body["token_type"] != "Bearer" || r.body["expires_in"] != 600.0 ||
		r.body["scope"] != "email groups mcp:read openid profile" {
		t.Errorf("token response %v (Cache-Control %q)", r.body, r.header.Get("Cache-Control"))
	}
	if rt, _ := r.body["refresh_token"].(string); len(rt) < 40 {
		t.Errorf("refresh_token = %q, want an opaque random token", rt)
	}

	idt := verifyIDToken(t, s, r.body["id_token"].(string), appID)
	for claim, want := range map[string]any{"sub": alice.Subject, "aud": appID, "nonce": "n-456", "email": alice.Email,
		"name": alice.Name, "preferred_username": "alice", "iss": s.Issuer()} {
		if idt[claim] != want {
			t.Errorf("ID token %s = %v, want %v", claim, idt[claim], want)
		}
	}
	if g := strs(idt["groups"]); !slices.Equal(g, alice.Groups) {
		t.Errorf("ID token groups = %v", g)
	}
	if iat, exp := idt["iat"].(float64), idt["exp"].(float64); exp-iat != 600 {
		t.Errorf("ID token iat %v exp %v", iat, exp)
	}
	if _, ok := idt["auth_time"].(float64); !ok {
		t.Errorf("ID token has no auth_time: %v", idt)
	}

	at := verify(t, s, r.body["access_token"].(string))
	for claim, want := range map[string]any{"sub": alice.Subject, "aud": "api://gw", "cid": appID, "client_id": appID} {
		if at[claim] != want {
			t.Errorf("access token %s = %v, want %v", claim, at[claim], want)
		}
	}
	if !slices.Equal(strs(at["groups"]), alice.Groups) || !slices.Equal(strs(at["scp"]), []string{"email", "groups", "mcp:read", "openid", "profile"}) {
		t.Errorf("access token groups %v scp %v", at["groups"], at["scp"])
	}
}

func TestAuthorizeShowsErrorsBeforeTheRedirectURIIsKnown(t *testing.T) {
	s := startAuthCode(t, Options{})
	_, challenge := pkcePair()
	tests := []struct {
		name  string
		extra url.Values
		raw   string // appended to the query as is
	}{
		{name: "no client_id", extra: url.Values{"client_id": {""}}},
		{name: "unknown client", extra: url.Values{"client_id": {"nobody"}}},
		{name: "no redirect_uri", extra: url.Values{"redirect_uri": {""}}},
		{name: "unregistered redirect_uri", extra: url.Values{"redirect_uri": {"http://127.0.0.1:9/evil"}}},
		{name: "prefix of a registered one", extra: url.Values{"redirect_uri": {"http://127.0.0.1:9/callback/x"}}},
		{name: "trailing slash", extra: url.Values{"redirect_uri": {appCallback + "/"}}},
		{name: "query differs", extra: url.Values{"redirect_uri": {"http://127.0.0.1:9/other?x=2"}}},
		{name: "another client's", extra: url.Values{"client_id": {"plain"}}},
		{name: "repeated redirect_uri", raw: "&redirect_uri=" + url.QueryEscape("http://127.0.0.1:9/evil")},
	}
	if err := s.RegisterClient(Client{ID: "plain", Secret: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+authParams(challenge, tt.extra).Encode()+tt.raw, nil)
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q: want 400 and no redirect", p.status, p.header.Get("Location"))
			}
			if !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, `id="error"`) {
				t.Errorf("want an HTML error page, got %q:\n%s", p.header.Get("Content-Type"), p.body)
			}
		})
	}
}

func TestAuthorizeRedirectsErrors(t *testing.T) {
	s := startAuthCode(t, Options{})
	_, challenge := pkcePair()
	tests := []struct {
		name      string
		extra     url.Values
		raw       string
		wantError string
		wantState string
	}{
		{name: "no response_type", extra: url.Values{"response_type": {""}}, wantError: "invalid_request", wantState: "st-123"},
		{name: "implicit", extra: url.Values{"response_type": {"token"}}, wantError: "unsupported_response_type", wantState: "st-123"},
		{name: "no PKCE", extra: url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, wantError: "invalid_request", wantState: "st-123"},
		{name: "plain PKCE", extra: url.Values{"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}, wantError: "invalid_request", wantState: "st-123"},
		{name: "method without challenge", extra: url.Values{"code_challenge": {""}}, wantError: "invalid_request", wantState: "st-123"},
		{name: "short challenge", extra: url.Values{"code_challenge": {"abc"}}, wantError: "invalid_request", wantState: "st-123"},
		{name: "no scope", extra: url.Values{"scope": {""}}, wantError: "invalid_scope", wantState: "st-123"},
		{name: "scope not the client's", extra: url.Values{"scope": {"openid mcp:write"}}, wantError: "invalid_scope", wantState: "st-123"},
		{name: "repeated state", raw: "&state=again", wantError: "invalid_request"},
		{name: "no state", extra: url.Values{"state": {""}, "response_type": {"token"}}, wantError: "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+authParams(challenge, tt.extra).Encode()+tt.raw, nil)
			loc := p.location(t)
			q := loc.Query()
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != appCallback {
				t.Errorf("redirected to %s", got)
			}
			if q.Get("error") != tt.wantError || q.Get("error_description") == "" || q.Get("code") != "" {
				t.Errorf("query %v: want error %s with a description and no code", q, tt.wantError)
			}
			if _, has := q["state"]; q.Get("state") != tt.wantState || has != (tt.wantState != "") {
				t.Errorf("state = %q, want %q", q.Get("state"), tt.wantState)
			}
			if q.Get("iss") != s.Issuer() {
				t.Errorf("iss = %q", q.Get("iss"))
			}
		})
	}
}

func TestRedirectURIKeepsItsQuery(t *testing.T) {
	s := startAuthCode(t, Options{})
	_, challenge := pkcePair()
	q := authParams(challenge, url.Values{"redirect_uri": {"http://127.0.0.1:9/other?x=1"}})
	loc := submitLogin(t, s, loginForm(t, s, q), alice.Username, alice.Password).location(t)
	if loc.Path != "/other" || loc.Query().Get("x") != "1" || loc.Query().Get("code") == "" {
		t.Errorf("redirect %s: want /other?x=1 plus code", loc)
	}
}

func TestAuthorizationCodeRefusals(t *testing.T) {
	s := startAuthCode(t, Options{})
	tests := []struct {
		name           string
		form           func(code, verifier string) url.Values
		id, secret     string
		wantStatus     int
		wantError      string
		redeemFirst    bool // the code was redeemed once already
		wantDescribing string
	}{
		{name: "wrong verifier", form: func(c, _ string) url.Values { v, _ := pkcePair(); return codeForm(c, v, nil) },
			wantError: "invalid_grant", wantDescribing: "code_verifier"},
		{name: "verifier too short", form: func(c, _ string) url.Values { return codeForm(c, "short", nil) },
			wantError: "invalid_grant", wantDescribing: "code_verifier"},
		{name: "no verifier", form: func(c, _ string) url.Values {
			return codeForm(c, "", url.Values{"code_verifier": nil})
		}, wantError: "invalid_request", wantDescribing: "code_verifier"},
		{name: "challenge as verifier", form: func(c, v string) url.Values {
			sum := sha256.Sum256([]byte(v))
			return codeForm(c, base64.RawURLEncoding.EncodeToString(sum[:]), nil)
		}, wantError: "invalid_grant", wantDescribing: "code_verifier"},
		{name: "replayed code", form: func(c, v string) url.Values { return codeForm(c, v, nil) }, redeemFirst: true,
			wantError: "invalid_grant", wantDescribing: "already used"},
		{name: "another client redeems", form: func(c, v string) url.Values { return codeForm(c, v, nil) },
			id: otherID, secret: otherSecret, wantError: "invalid_grant", wantDescribing: "another client"},
		{name: "redirect_uri differs", form: func(c, v string) url.Values {
			return codeForm(c, v, url.Values{"redirect_uri": {"http://127.0.0.1:9/other?x=1"}})
		}, wantError: "invalid_grant", wantDescribing: "redirect_uri"},
		{name: "no redirect_uri", form: func(c, v string) url.Values { return codeForm(c, v, url.Values{"redirect_uri": nil}) },
			wantError: "invalid_request", wantDescribing: "redirect_uri"},
		{name: "unknown code", form: func(_, v string) url.Values { return codeForm(randomToken(), v, nil) },
			wantError: "invalid_grant", wantDescribing: "unknown"},
		{name: "wrong client secret", form: func(c, v string) url.Values { return codeForm(c, v, nil) },
			secret: "nope", wantStatus: http.StatusUnauthorized, wantError: "invalid_client"},
		{name: "no client authentication", form: func(c, v string) url.Values {
			return codeForm(c, v, url.Values{"client_id": {appID}})
		}, id: "-", wantStatus: http.StatusUnauthorized, wantError: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifier, challenge := pkcePair()
			code := signIn(t, s, authParams(challenge, nil), alice)
			if tt.redeemFirst {
				if r := callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret}); r.status != http.StatusOK {
					t.Fatalf("first redemption: %d %v", r.status, r.body)
				}
			}
			call := tokenCall{form: tt.form(code, verifier), basicID: appID, basicSecret: appSecret}
			switch {
			case tt.id == "-":
				call.basicID, call.basicSecret = "", ""
			case tt.id != "":
				call.basicID, call.basicSecret = tt.id, tt.secret
			case tt.secret != "":
				call.basicSecret = tt.secret
			}
			r := callToken(t, s, call)
			want := tt.wantStatus
			if want == 0 {
				want = http.StatusBadRequest
			}
			if r.status != want || r.body["error"] != tt.wantError {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, want, tt.wantError)
			}
			if d, _ := r.body["error_description"].(string); !strings.Contains(d, tt.wantDescribing) {
				t.Errorf("error_description %q does not mention %q", d, tt.wantDescribing)
			}
			if tt.wantError == "invalid_grant" && tt.name != "unknown code" && !tt.redeemFirst {
				// A code is spent by its first presentation, whatever came of it.
				r := callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret})
				if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
					t.Errorf("the right redemption after a refused one: %d %v, want invalid_grant", r.status, r.body)
				}
			}
		})
	}
}

func TestClientSecretPostAndNoOpenID(t *testing.T) {
	s := startAuthCode(t, Options{})
	verifier, challenge := pkcePair()
	code := signIn(t, s, authParams(challenge, url.Values{"scope": {"mcp:read"}}), alice)
	r := callToken(t, s, tokenCall{form: codeForm(code, verifier, url.Values{"client_id": {appID}, "client_secret": {appSecret}})})
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	if _, has := r.body["id_token"]; has || r.body["scope"] != "mcp:read" || r.body["refresh_token"] == nil {
		t.Errorf("without openid: want no id_token, scope mcp:read and a refresh token; got %v", r.body)
	}
}

func TestRefreshToken(t *testing.T) {
	s := startAuthCode(t, Options{})
	// login returns a fresh session's token response.
	login := func(t *testing.T) map[string]any {
		t.Helper()
		verifier, challenge := pkcePair()
		code := signIn(t, s, authParams(challenge, nil), alice)
		r := callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret})
		if r.status != http.StatusOK {
			t.Fatalf("token: %d %v", r.status, r.body)
		}
		return r.body
	}
	refresh := func(t *testing.T, rt, id, secret string, extra url.Values) tokenReply {
		t.Helper()
		f := url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {rt}}
		for k, v := range extra {
			f[k] = v
		}
		return callToken(t, s, tokenCall{form: f, basicID: id, basicSecret: secret})
	}
	ok := func(t *testing.T, r tokenReply) map[string]any {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("refresh: %d %v", r.status, r.body)
		}
		return r.body
	}
	refused := func(t *testing.T, r tokenReply, wantError, describing string) {
		t.Helper()
		if r.status != http.StatusBadRequest || r.body["error"] != wantError {
			t.Fatalf("got %d %v, want %s", r.status, r.body, wantError)
		}
		if d, _ := r.body["error_description"].(string); !strings.Contains(d, describing) {
			t.Errorf("error_description %q does not mention %q", d, describing)
		}
	}

	t.Run("rotation, current groups, no nonce", func(t *testing.T) {
		first := login(t)
		if err := s.SetUserGroups("alice", []string{"mcp-admins", "hr"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.SetUserGroups("alice", alice.Groups) })
		second := ok(t, refresh(t, first["refresh_token"].(string), appID, appSecret, nil))
		if second["refresh_token"] == first["refresh_token"] || second["refresh_token"] == nil {
			t.Errorf("refresh token not rotated: %v", second["refresh_token"])
		}
		idt := verifyIDToken(t, s, second["id_token"].(string), appID)
		at := verify(t, s, second["access_token"].(string))
		for name, claims := range map[string]map[string]any{"ID token": idt, "access token": at} {
			if g := strs(claims["groups"]); !slices.Equal(g, []string{"mcp-admins", "hr"}) {
				t.Errorf("%s groups = %v, want the current ones", name, g)
			}
			if claims["sub"] != alice.Subject {
				t.Errorf("%s sub = %v", name, claims["sub"])
			}
		}
		if _, has := idt["nonce"]; has {
			t.Errorf("refreshed ID token carries a nonce: %v", idt["nonce"])
		}
		first0 := verifyIDToken(t, s, first["id_token"].(string), appID)
		if idt["auth_time"] != first0["auth_time"] {
			t.Errorf("auth_time changed on refresh: %v then %v", first0["auth_time"], idt["auth_time"])
		}
		// The third in the line works too.
		ok(t, refresh(t, second["refresh_token"].(string), appID, appSecret, nil))
	})

	t.Run("reuse revokes the family", func(t *testing.T) {
		first := login(t)
		second := ok(t, refresh(t, first["refresh_token"].(string), appID, appSecret, nil))
		refused(t, refresh(t, first["refresh_token"].(string), appID, appSecret, nil), "invalid_grant", "already used")
		refused(t, refresh(t, second["refresh_token"].(string), appID, appSecret, nil), "invalid_grant", "already used")
		// Another session of the same user is untouched.
		other := login(t)
		ok(t, refresh(t, other["refresh_token"].(string), appID, appSecret, nil))
	})

	t.Run("another client", func(t *testing.T) {
		first := login(t)
		refused(t, refresh(t, first["refresh_token"].(string), otherID, otherSecret, nil), "invalid_grant", "another client")
		ok(t, refresh(t, first["refresh_token"].(string), appID, appSecret, nil))
	})

	t.Run("scope narrows, never widens", func(t *testing.T) {
		first := login(t)
		refused(t, refresh(t, first["refresh_token"].(string), appID, appSecret, url.Values{"scope": {"openid offline_access"}}), "invalid_scope", "offline_access")
		narrow := ok(t, refresh(t, first["refresh_token"].(string), appID, appSecret, url.Values{"scope": {"mcp:read"}}))
		if narrow["scope"] != "mcp:read" || narrow["id_token"] != nil {
			t.Errorf("narrowed: %v", narrow)
		}
		// The next refresh token keeps the session's whole scope.
		wide := ok(t, refresh(t, narrow["refresh_token"].(string), appID, appSecret, nil))
		if wide["scope"] != "email groups mcp:read openid profile" {
			t.Errorf("scope after a narrowed refresh = %v", wide["scope"])
		}
	})

	t.Run("replayed code revokes its refresh tokens", func(t *testing.T) {
		verifier, challenge := pkcePair()
		code := signIn(t, s, authParams(challenge, nil), alice)
		first := ok(t, callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret}))
		refused(t, callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret}), "invalid_grant", "already used")
		refused(t, refresh(t, first["refresh_token"].(string), appID, appSecret, nil), "invalid_grant", "already used")
	})

	t.Run("unknown and missing", func(t *testing.T) {
		refused(t, refresh(t, randomToken(), appID, appSecret, nil), "invalid_grant", "unknown")
		refused(t, refresh(t, "", appID, appSecret, nil), "invalid_request", "refresh_token")
	})
}

func TestAutoLogin(t *testing.T) {
	s := startAuthCode(t, Options{AutoLogin: "alice"})
	verifier, challenge := pkcePair()
	loc := fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+authParams(challenge, nil).Encode(), nil).location(t)
	r := callToken(t, s, tokenCall{form: codeForm(loc.Query().Get("code"), verifier, nil), basicID: appID, basicSecret: appSecret})
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	if idt := verifyIDToken(t, s, r.body["id_token"].(string), appID); idt["sub"] != alice.Subject || idt["nonce"] != "n-456" {
		t.Errorf("ID token %v", idt)
	}
	// Refusals still come first.
	loc = fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+authParams(challenge, url.Values{"code_challenge_method": {"plain"}}).Encode(), nil).location(t)
	if loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" {
		t.Errorf("plain PKCE with AutoLogin: %s", loc)
	}

	if _, err := Start(t.Context(), Options{AutoLogin: "nobody"}); err == nil {
		t.Error("Start took an AutoLogin user that does not exist")
	}
}

func TestLoginPage(t *testing.T) {
	s := startAuthCode(t, Options{})
	_, challenge := pkcePair()
	p := fetch(t, http.MethodGet, s.AuthorizationEndpoint()+"?"+authParams(challenge, nil).Encode(), nil)
	if p.status != http.StatusOK {
		t.Fatalf("status %d", p.status)
	}
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if p.header.Get("Cache-Control") != "no-store" || p.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", p.header)
	}
	for _, want := range []string{`action="/login"`, `method="post"`, `id="username" name="username"`, `id="password" name="password" type="password"`,
		`id="login" name="login" type="submit"`, appID} {
		if !strings.Contains(p.body, want) {
			t.Errorf("login page lacks %s:\n%s", want, p.body)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://", "style="} {
		if strings.Contains(p.body, banned) {
			t.Errorf("login page contains %q", banned)
		}
	}

	// A request id the server did not give out is refused without a redirect.
	for _, id := range []string{"", randomToken(), requestField.FindStringSubmatch(p.body)[1] + "x"} {
		if got := submitLogin(t, s, id, alice.Username, alice.Password); got.status != http.StatusBadRequest || got.header.Get("Location") != "" {
			t.Errorf("tampered request %q: status %d, Location %q", id, got.status, got.header.Get("Location"))
		}
	}
	// An unknown user is the same wrong-password form.
	if got := submitLogin(t, s, requestField.FindStringSubmatch(p.body)[1], "mallory", "x"); got.status != http.StatusOK || !strings.Contains(got.body, LoginErrorID) {
		t.Errorf("unknown user: status %d", got.status)
	}
}

func TestUserinfo(t *testing.T) {
	s := startAuthCode(t, Options{})
	verifier, challenge := pkcePair()
	code := signIn(t, s, authParams(challenge, nil), alice)
	r := callToken(t, s, tokenCall{form: codeForm(code, verifier, nil), basicID: appID, basicSecret: appSecret})
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	userinfo := func(t *testing.T, token string) (int, Userinfo) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.UserinfoEndpoint(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		var ui Userinfo
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &ui); err != nil {
				t.Fatal(err)
			}
		} else if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("status %d without a Bearer challenge", resp.StatusCode)
		}
		return resp.StatusCode, ui
	}
	access := r.body["access_token"].(string)
	status, ui := userinfo(t, access)
	if status != http.StatusOK || ui.Subject != alice.Subject || ui.Email != alice.Email || ui.Name != alice.Name ||
		ui.PreferredUsername != "alice" || !slices.Equal(ui.Groups, alice.Groups) {
		t.Errorf("userinfo %d %+v", status, ui)
	}
	if err := s.SetUserGroups("alice", nil); err != nil {
		t.Fatal(err)
	}
	if _, ui := userinfo(t, access); ui.Groups == nil || len(ui.Groups) != 0 {
		t.Errorf("userinfo groups after they were removed = %#v, want []", ui.Groups)
	}
	if err := s.SetUserGroups("nobody", nil); err == nil {
		t.Error("SetUserGroups took an unknown user")
	}
	stranger, err := s.MintUser("not-a-user", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"none": "", "not a user": stranger, "garbage": "abc.def.ghi"} {
		if status, _ := userinfo(t, token); status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, status)
		}
	}
}

// The gateway exchanges the ID token it got at login for an ID-JAG (Okta
// Cross App Access), authenticating with private_key_jwt while it redeemed
// the code with its secret.
func TestIDTokenFromLoginExchangesForIDJAG(t *testing.T) {
	idp, ras, _ := startXAA(t)
	key := newECKey(t)
	if err := idp.AddUser(alice); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Client{
		{ID: "gateway", Secret: "gw-secret", PublicKey: key, RedirectURIs: []string{appCallback}, ResourceClientIDs: map[string]string{ras.Issuer(): resourceAgent}},
		{ID: "someone-else", Secret: "x", PublicKey: key},
	} {
		if err := idp.RegisterClient(c); err != nil {
			t.Fatal(err)
		}
	}
	verifier, challenge := pkcePair()
	code := signIn(t, idp, authParams(challenge, url.Values{"client_id": {"gateway"}, "scope": {"openid"}}), alice)
	r := callToken(t, idp, tokenCall{form: codeForm(code, verifier, nil), basicID: "gateway", basicSecret: "gw-secret"})
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	idToken := r.body["id_token"].(string)
	exchange := func(t *testing.T, clientID, subjectType string) tokenReply {
		t.Helper()
		f := idJAGForm(assertion(t, idp, key, jwa.ES256(), clientID, nil), idToken, url.Values{
			"subject_token_type": {subjectType}, "audience": {ras.Issuer()}, "resource": {resourceURL}, "scope": {"hr:read"},
		})
		return callToken(t, idp, tokenCall{form: f})
	}

	got := exchange(t, "gateway", TokenTypeIDToken)
	if got.status != http.StatusOK || got.body["issued_token_type"] != TokenTypeIDJAG {
		t.Fatalf("ID-JAG for the login's ID token: %d %v", got.status, got.body)
	}
	grant := verify(t, idp, got.body["access_token"].(string))
	if grant["sub"] != alice.Subject || grant["client_id"] != resourceAgent || grant["aud"] != ras.Issuer() {
		t.Errorf("ID-JAG claims %v", grant)
	}
	// The resource AS takes it: the whole Cross App Access chain from a browser login.
	final := callToken(t, ras, tokenCall{form: url.Values{"grant_type": {GrantJWTBearer}, "assertion": {got.body["access_token"].(string)}},
		basicID: resourceAgent, basicSecret: "ras-secret"})
	if final.status != http.StatusOK || verify(t, ras, final.body["access_token"].(string))["sub"] != alice.Subject {
		t.Fatalf("jwt-bearer at the resource AS: %d %v", final.status, final.body)
	}

	for name, tt := range map[string]struct{ client, typ string }{
		"another client's ID token":       {"someone-else", TokenTypeIDToken},
		"ID token presented as an access": {"gateway", TokenTypeAccessToken},
	} {
		t.Run(name, func(t *testing.T) {
			if r := exchange(t, tt.client, tt.typ); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
				t.Errorf("got %d %v, want invalid_grant", r.status, r.body)
			}
		})
	}
}

func TestAuthorizationCodeDiscoveryAndRegistration(t *testing.T) {
	s := startAuthCode(t, Options{})
	var md Metadata
	getJSON(t, s.Issuer()+PathOIDCDiscovery, &md)
	if md.AuthorizationEndpoint != s.AuthorizationEndpoint() || md.UserinfoEndpoint != s.UserinfoEndpoint() ||
		!slices.Equal(md.CodeChallengeMethodsSupported, []string{"S256"}) || !slices.Equal(md.ResponseTypesSupported, []string{"code"}) ||
		!md.AuthorizationResponseISSParameterSupported {
		t.Errorf("metadata %+v", md)
	}
	for _, g := range []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantTokenExchange} {
		if !slices.Contains(md.GrantTypesSupported, g) {
			t.Errorf("grant_types_supported %v lacks %s", md.GrantTypesSupported, g)
		}
	}
	for _, sc := range []string{"openid", "offline_access", "mcp:read"} {
		if !slices.Contains(md.ScopesSupported, sc) {
			t.Errorf("scopes_supported %v lacks %s", md.ScopesSupported, sc)
		}
	}

	for _, uri := range []string{"/relative", "http://127.0.0.1/cb#frag", "::"} {
		if err := s.RegisterClient(Client{ID: "bad", Secret: "x", RedirectURIs: []string{uri}}); err == nil {
			t.Errorf("RegisterClient took redirect URI %q", uri)
		}
	}
	for _, u := range []User{{Password: "x"}, {Username: "x"}, {Username: "eve", Password: "x", Subject: alice.Subject}} {
		if err := s.AddUser(u); err == nil {
			t.Errorf("AddUser took %+v", u)
		}
	}
}
