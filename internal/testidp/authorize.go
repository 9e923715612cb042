package testidp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Endpoints of the authorization code flow, relative to the issuer.
const (
	// PathAuthorize is the authorization endpoint (RFC 6749 §3.1).
	PathAuthorize = "/authorize"
	// PathLogin takes the login form's POST.
	PathLogin = "/login"
	// PathUserinfo is the OIDC userinfo endpoint.
	PathUserinfo = "/userinfo"
)

// The login form, as a browser test finds it: input names (also their
// ids) and the id (and name) of the submit button, and the id of the
// message shown after a failed attempt.
const (
	LoginFieldUsername = "username"
	LoginFieldPassword = "password"
	// LoginFieldRequest is the hidden field naming the pending authorization
	// request: a random id of a request the server keeps, so nothing in the
	// form can be tampered with.
	LoginFieldRequest = "request"
	LoginButtonID     = "login"
	LoginErrorID      = "login-error"
)

// Lifetimes of the authorization code flow's artifacts.
const (
	// AuthCodeTTL is how long an authorization code can be redeemed.
	AuthCodeTTL = time.Minute
	// LoginRequestTTL is how long a login form can be submitted.
	LoginRequestTTL = 10 * time.Minute
	// RefreshTokenTTL is how long a refresh token is good for.
	RefreshTokenTTL = 24 * time.Hour
)

// OIDC scopes every client may request at the authorization endpoint, on
// top of its own Scopes.
var oidcScopes = []string{"openid", "profile", "email", "groups", "offline_access"}

// pkceChallengeLen is the length of a base64url SHA-256 without padding.
const pkceChallengeLen = 43

// maxLoginFormBytes bounds a login POST.
const maxLoginFormBytes = 16 << 10

// authRequest is a validated authorization request waiting for its user.
type authRequest struct {
	ClientID, RedirectURI, State, Nonce, CodeChallenge string
	Scopes                                             []string
	expires                                            time.Time
}

// handleAuthorize is the authorization endpoint: response_type=code with
// PKCE S256 only. Until client_id and redirect_uri are known good, errors are
// shown here; after, they go back to the client (RFC 6749 §4.1.2.1).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(q[name]) > 1 {
			s.errorPage(w, http.StatusBadRequest, name+" is repeated")
			return
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		s.errorPage(w, http.StatusBadRequest, "client_id is required")
		return
	}
	c, ok := s.clients.get(clientID)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "unknown client_id")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		s.errorPage(w, http.StatusBadRequest, "redirect_uri is required")
		return
	}
	// Exact string comparison (RFC 9700 §4.1.3): no prefix, no normalization.
	if !slices.Contains(c.RedirectURIs, redirectURI) {
		s.errorPage(w, http.StatusBadRequest, "redirect_uri is not registered for this client")
		return
	}

	req := &authRequest{ClientID: clientID, RedirectURI: redirectURI, State: q.Get("state"), Nonce: q.Get("nonce")}
	fail := func(code, description string) {
		s.log.Info("authorization request refused", "client_id", clientID, "error", code, "description", description)
		s.redirect(w, r, req, url.Values{"error": {code}, "error_description": {description}})
	}
	for name, values := range q {
		if len(values) > 1 {
			// The state is not trusted either when repeated.
			req.State = ""
			fail("invalid_request", name+" is repeated")
			return
		}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		fail("invalid_request", "response_type is required")
		return
	default:
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	switch m := q.Get("code_challenge_method"); m {
	case "S256":
	case "":
		fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
		return
	case "plain":
		fail("invalid_request", "code_challenge_method plain is not allowed: use S256")
		return
	default:
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	req.CodeChallenge = q.Get("code_challenge")
	if !isPKCEChallenge(req.CodeChallenge) {
		fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		fail("invalid_scope", "scope is required")
		return
	}
	for _, sc := range scopes {
		if !slices.Contains(oidcScopes, sc) && !slices.Contains(c.Scopes, sc) {
			fail("invalid_scope", "scope "+sc+" is not allowed for this client")
			return
		}
	}
	slices.Sort(scopes)
	req.Scopes = slices.Compact(scopes)

	if s.opts.AutoLogin != "" {
		u, ok := s.users.get(s.opts.AutoLogin)
		if !ok {
			fail("server_error", "the AutoLogin user does not exist")
			return
		}
		s.completeLogin(w, r, req, u)
		return
	}
	id := s.authz.addPending(req)
	s.loginPage(w, http.StatusOK, loginView{RequestID: id, ClientID: clientID})
}

// handleLogin takes the login form. A wrong password shows the form again;
// a right one sends the browser to the client with a code.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "malformed login form")
		return
	}
	id := r.PostForm.Get(LoginFieldRequest)
	req, ok := s.authz.pending(id)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "this sign-in request is unknown or has expired: start again from the application")
		return
	}
	username := r.PostForm.Get(LoginFieldUsername)
	u, ok := s.users.check(username, r.PostForm.Get(LoginFieldPassword))
	if !ok {
		s.log.Info("login failed", "client_id", req.ClientID, "username", username)
		s.loginPage(w, http.StatusOK, loginView{RequestID: id, ClientID: req.ClientID, Username: username, Error: "Wrong username or password."})
		return
	}
	// The request is used once: a second submission (a double click, a
	// replayed form) finds nothing.
	if !s.authz.takePending(id) {
		s.errorPage(w, http.StatusBadRequest, "this sign-in request was already completed")
		return
	}
	s.completeLogin(w, r, req, u)
}

// completeLogin issues a code for u and sends the browser to the client.
func (s *Server) completeLogin(w http.ResponseWriter, r *http.Request, req *authRequest, u User) {
	code := randomToken()
	s.authz.addCode(code, &codeGrant{
		session: session{
			ClientID: req.ClientID, Username: u.Username, Scopes: req.Scopes,
			AuthTime: time.Now(), Family: randomToken(),
		},
		RedirectURI:   req.RedirectURI,
		CodeChallenge: req.CodeChallenge,
		Nonce:         req.Nonce,
		expires:       time.Now().Add(AuthCodeTTL),
	})
	s.log.Info("login", "client_id", req.ClientID, "username", u.Username)
	s.redirect(w, r, req, url.Values{"code": {code}})
}

// redirect sends the browser to the request's (validated) redirect URI with
// params, the state and the issuer (RFC 9207) added to its query.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, req *authRequest, params url.Values) {
	u, err := url.Parse(req.RedirectURI)
	if err != nil {
		// Registered URIs are checked by RegisterClient.
		s.errorPage(w, http.StatusInternalServerError, "the registered redirect_uri does not parse")
		return
	}
	query := u.Query()
	for k, v := range params {
		query[k] = v
	}
	if req.State != "" {
		query.Set("state", req.State)
	}
	query.Set("iss", s.issuer)
	u.RawQuery = query.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// isPKCEChallenge reports whether c can be an S256 code challenge.
func isPKCEChallenge(c string) bool {
	if len(c) != pkceChallengeLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// randomToken is 256 random bits, base64url: codes, refresh tokens, form ids.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pageSecurityHeaders are on every HTML page: no script at all, no external
// resources, no framing. form-action is deliberately absent: Chromium
// applies it to the redirect that follows the form's POST, which goes to the
// client's redirect URI, any origin or scheme.
func pageSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

type loginView struct {
	RequestID, ClientID, Username, Error string
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in - testidp</title></head>
<body>
<main>
<h1>Sign in</h1>
<p>to continue to <strong>{{.ClientID}}</strong></p>
{{if .Error}}<p id="` + LoginErrorID + `" role="alert">{{.Error}}</p>
{{end}}<form method="post" action="` + PathLogin + `">
<input type="hidden" name="` + LoginFieldRequest + `" value="{{.RequestID}}">
<p><label for="` + LoginFieldUsername + `">Username</label>
<input id="` + LoginFieldUsername + `" name="` + LoginFieldUsername + `" autocomplete="username" required value="{{.Username}}"></p>
<p><label for="` + LoginFieldPassword + `">Password</label>
<input id="` + LoginFieldPassword + `" name="` + LoginFieldPassword + `" type="password" autocomplete="current-password" required></p>
<p><button id="` + LoginButtonID + `" name="` + LoginButtonID + `" type="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
`))

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign-in error - testidp</title></head>
<body>
<main>
<h1>Sign-in error</h1>
<p id="error">{{.}}</p>
</main>
</body>
</html>
`))

func (s *Server) loginPage(w http.ResponseWriter, status int, v loginView) {
	s.page(w, status, loginTemplate, v)
}

// errorPage shows an error in the browser: used for whatever cannot be sent
// back to a validated redirect URI.
func (s *Server) errorPage(w http.ResponseWriter, status int, message string) {
	s.log.Info("authorization error page", "status", status, "message", message)
	s.page(w, status, errorTemplate, message)
}

func (s *Server) page(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.log.Error("render page", "template", t.Name(), "err", err)
		http.Error(w, "page unavailable", http.StatusInternalServerError)
		return
	}
	pageSecurityHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
