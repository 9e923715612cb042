package oauthserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// authRequest is an authorization request the gateway accepted, carried
// through the consent form (authenticated by the server's key, so the page
// costs the store nothing) and then kept in the store as a pending login.
type authRequest struct {
	ClientID    string `json:"c"`
	RedirectURI string `json:"r"`
	State       string `json:"s,omitempty"`
	Challenge   string `json:"cc"`
	Resource    string `json:"res"`
	Scope       string `json:"sc,omitempty"`
	Expires     int64  `json:"exp"`
}

// redirectError is an error sent back to the client's (validated) redirect
// URI, RFC 6749 §4.1.2.1.
type redirectError struct{ code, desc string }

func (e *redirectError) Error() string { return e.code + ": " + e.desc }

func (s *Server) handleAuthorize(c *fiber.Ctx) error {
	ctx := c.UserContext()
	q := func(k string) (string, error) {
		vs := c.Context().QueryArgs().PeekMulti(k)
		switch len(vs) {
		case 0:
			return "", nil
		case 1:
			return string(vs[0]), nil
		}
		return "", fmt.Errorf("%s is given more than once", k)
	}
	clientID, err := q("client_id")
	if err != nil || clientID == "" {
		return s.errorPage(c, fiber.StatusBadRequest, "client_id is missing or repeated.", nil)
	}
	cl, err := s.client(ctx, clientID)
	if err != nil {
		return s.errorPage(c, fiber.StatusBadRequest, "Unknown client: "+err.Error(), &audit.Record{ObjectName: clientID})
	}
	redirect, err := q("redirect_uri")
	if err != nil {
		return s.errorPage(c, fiber.StatusBadRequest, err.Error(), &audit.Record{ObjectName: cl.ID, Agent: cl.Agent})
	}
	if redirect == "" && len(cl.RedirectURIs) == 1 {
		redirect = cl.RedirectURIs[0]
	}
	if !slices.ContainsFunc(cl.RedirectURIs, func(r string) bool { return redirectMatches(r, redirect) }) {
		return s.errorPage(c, fiber.StatusBadRequest, "redirect_uri is not one the client registered.", &audit.Record{ObjectName: cl.ID, Agent: cl.Agent})
	}
	state, _ := q("state")
	req, rerr := s.checkAuthRequest(c, cl, q)
	if rerr != nil {
		s.record(ctx, c, audit.Record{Action: "refuse", Method: "authorize", ObjectName: cl.ID, Agent: cl.Agent, Reasons: []string{rerr.Error()}})
		return c.Redirect(s.clientRedirect(redirect, url.Values{"error": {rerr.code}, "error_description": {rerr.desc}}, state), fiber.StatusFound)
	}
	req.RedirectURI, req.State = redirect, state
	if consent, ok := s.rememberedConsent(ctx, c, cl.ID); ok {
		return s.toIdP(c, req, consent)
	}
	return s.consentPage(c, cl, req)
}

// checkAuthRequest validates what is checked after the redirect URI is
// known, so failures go back to the client.
func (s *Server) checkAuthRequest(c *fiber.Ctx, cl store.OAuthClient, q func(string) (string, error)) (authRequest, *redirectError) {
	get := func(k string) (string, *redirectError) {
		v, err := q(k)
		if err != nil {
			return "", &redirectError{"invalid_request", err.Error()}
		}
		return v, nil
	}
	rt, e := get("response_type")
	if e != nil {
		return authRequest{}, e
	}
	if rt != "code" {
		return authRequest{}, &redirectError{"unsupported_response_type", "response_type must be code"}
	}
	challenge, e := get("code_challenge")
	if e != nil {
		return authRequest{}, e
	}
	method, e := get("code_challenge_method")
	if e != nil {
		return authRequest{}, e
	}
	if challenge == "" || method != "S256" {
		return authRequest{}, &redirectError{"invalid_request", "PKCE is required: code_challenge with code_challenge_method S256"}
	}
	if len(challenge) != 43 {
		return authRequest{}, &redirectError{"invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)"}
	}
	resource, e := get("resource")
	if e != nil {
		return authRequest{}, &redirectError{"invalid_target", "give one resource"}
	}
	resource, err := s.checkResource(resource)
	if err != nil {
		return authRequest{}, &redirectError{"invalid_target", err.Error()}
	}
	scope, e := get("scope")
	if e != nil {
		return authRequest{}, e
	}
	if _, err := s.clientAgent(cl); err != nil {
		return authRequest{}, &redirectError{"access_denied", err.Error()}
	}
	return authRequest{ClientID: cl.ID, Challenge: challenge, Resource: resource, Scope: scope}, nil
}

// checkResource accepts one of the gateway's resources (RFC 8707); none
// means the whole gateway (clients older than RFC 8707 support).
func (s *Server) checkResource(r string) (string, error) {
	if r == "" {
		return s.issuer, nil
	}
	want := strings.TrimRight(r, "/")
	if want == s.issuer {
		return s.issuer, nil
	}
	for _, have := range s.resources() {
		if strings.TrimRight(have, "/") == want {
			return want, nil
		}
	}
	return "", fmt.Errorf("resource %q is not served by this gateway", secrets.Foreign(r, 200))
}

// clientRedirect adds params (and the state and RFC 9207 iss) to the
// client's redirect URI.
func (s *Server) clientRedirect(redirect string, params url.Values, state string) string {
	u, err := url.Parse(redirect)
	if err != nil {
		return redirect
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// Cookies: __Host- (Secure, Path=/, no Domain) when the gateway is served
// over https; plain names on an http loopback gateway, where browsers keep
// no Secure cookie.
func (s *Server) cookieName(base string) string {
	if s.secure {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	c.Cookie(&fiber.Cookie{Name: s.cookieName(name), Value: value, Path: "/", Secure: s.secure, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, MaxAge: int(maxAge.Seconds())})
}

const (
	cookieConsent = "mcpgw-consent"
	cookieCSRF    = "mcpgw-csrf"
	maxConsents   = 10
)

// rememberedConsent finds, among this browser's consent ids, a live one
// for clientID.
func (s *Server) rememberedConsent(ctx context.Context, c *fiber.Ctx, clientID string) (store.OAuthConsent, bool) {
	for _, id := range consentIDs(c.Cookies(s.cookieName(cookieConsent))) {
		con, err := s.st.GetOAuthConsent(ctx, id, s.now())
		if err == nil && con.ClientID == clientID {
			return con, true
		}
	}
	return store.OAuthConsent{}, false
}

func consentIDs(cookie string) []string {
	var ids []string
	for _, id := range strings.Split(cookie, ".") {
		if len(id) == 43 {
			ids = append(ids, id)
		}
	}
	if len(ids) > maxConsents {
		ids = ids[len(ids)-maxConsents:]
	}
	return ids
}

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Allow {{.ClientName}}?</title>
<style nonce="{{.Nonce}}">body{font:16px system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#222}
dt{font-weight:600;margin-top:.8em}dd{margin:0}code{background:#f3f3f3;padding:0 .2em}
.actions{margin-top:2em;display:flex;gap:1em}button{font-size:1em;padding:.5em 1.5em}</style></head>
<body><h1>Allow <span id="client-name">{{.ClientName}}</span> to act for you?</h1>
<p>An MCP client asks to use the company's MCP servers through this gateway, as you.</p>
<dl>
<dt>Client</dt><dd id="client-id"><code>{{.ClientID}}</code>{{if .CIMD}} (described by its own metadata document){{end}}</dd>
<dt>It becomes the agent</dt><dd id="agent"><code>{{.Agent}}</code>{{if .AgentDescription}}: {{.AgentDescription}}{{end}}</dd>
<dt>Servers it may reach (policy decides each call)</dt><dd id="backends">{{range $i, $b := .Backends}}{{if $i}}, {{end}}<code>{{$b}}</code>{{else}}none{{end}}</dd>
<dt>Resource</dt><dd id="resource"><code>{{.Resource}}</code></dd>
<dt>Scopes</dt><dd id="scopes">{{range $i, $s := .Scopes}}{{if $i}}, {{end}}<code>{{$s}}</code>{{end}}</dd>
<dt>After you log in, you return to</dt><dd id="redirect"><code>{{.RedirectURI}}</code></dd>
</dl>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions"><button type="submit" id="approve" name="decision" value="approve">Allow</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button></div>
</form>
<p><small>You will be remembered for this client for {{.Remember}}.</small></p>
</body></html>`))

// pageHeaders: the page must not be framed (clickjacking the Allow
// button), cached, or run script.
func pageHeaders(c *fiber.Ctx, nonce string) {
	style := "'none'"
	if nonce != "" {
		style = "'nonce-" + nonce + "'"
	}
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src "+style+"; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
}

func (s *Server) consentPage(c *fiber.Ctx, cl store.OAuthClient, req authRequest) error {
	req.Expires = s.now().Add(formTTL).Unix()
	raw, err := json.Marshal(req)
	if err != nil {
		return err
	}
	blob := base64.RawURLEncoding.EncodeToString(raw)
	csrf := c.Cookies(s.cookieName(cookieCSRF))
	if len(csrf) != 43 {
		csrf = randomToken()
		s.setCookie(c, cookieCSRF, csrf, formTTL)
	}
	agent, _ := s.agent(cl.Agent)
	name := cl.Name
	if name == "" {
		name = "an unnamed client"
	}
	scopes := s.grantScopes(cl.Agent, req.Scope)
	nonce := randomToken()
	pageHeaders(c, nonce)
	return consentTemplate.Execute(c.Response().BodyWriter(), map[string]any{
		"ClientName": name, "ClientID": cl.ID, "CIMD": cl.CIMD, "Agent": cl.Agent, "AgentDescription": agent.Description,
		"Backends": agent.BackendAccess, "Resource": req.Resource, "Scopes": scopes, "RedirectURI": req.RedirectURI,
		"Action": s.issuer + PathConsent, "Request": blob, "CSRF": s.mac("consent", blob, csrf),
		"Remember": s.cfg.ConsentTTL.String(), "Nonce": nonce,
	})
}

// grantScopes: the requested scopes the agent may have (all it may have
// when none are requested). Scopes the gateway does not know (openid,
// offline_access) are dropped, as RFC 6749 §3.3 allows.
func (s *Server) grantScopes(agentName, requested string) []string {
	allowed := s.cfg.Scopes
	if a, ok := s.agent(agentName); ok && a.Scopes != nil {
		allowed = a.Scopes
	}
	if strings.TrimSpace(requested) == "" {
		return slices.Clone(allowed)
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if slices.Contains(allowed, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (s *Server) handleConsent(c *fiber.Ctx) error {
	ctx := c.UserContext()
	// The form is posted by the gateway's own page: another origin posting
	// it is a forgery even before the CSRF token is looked at.
	if o := c.Get(fiber.HeaderOrigin); o != "" && o != "null" && o != originOf(s.issuer) {
		return s.errorPage(c, fiber.StatusForbidden, "The consent form was posted from another site.", &audit.Record{Reasons: []string{"consent: foreign Origin " + secrets.Foreign(o, 100)}})
	}
	blob, mac, decision := c.FormValue("request"), c.FormValue("csrf"), c.FormValue("decision")
	cookie := c.Cookies(s.cookieName(cookieCSRF))
	if cookie == "" || !s.macOK(mac, "consent", blob, cookie) {
		return s.errorPage(c, fiber.StatusForbidden, "The consent form is not valid (CSRF check failed). Start again from your MCP client.", &audit.Record{Reasons: []string{"consent: CSRF token invalid"}})
	}
	raw, err := base64.RawURLEncoding.DecodeString(blob)
	var req authRequest
	if err != nil || json.Unmarshal(raw, &req) != nil {
		return s.errorPage(c, fiber.StatusBadRequest, "The consent form is malformed.", nil)
	}
	if s.now().Unix() > req.Expires {
		return s.errorPage(c, fiber.StatusBadRequest, "The consent form expired. Start again from your MCP client.", &audit.Record{ObjectName: req.ClientID, Reasons: []string{"consent: form expired"}})
	}
	cl, err := s.client(ctx, req.ClientID)
	if err != nil {
		return s.errorPage(c, fiber.StatusBadRequest, "Unknown client: "+err.Error(), &audit.Record{ObjectName: req.ClientID})
	}
	switch decision {
	case "approve":
	case "deny":
		s.record(ctx, c, audit.Record{Action: "consent", ObjectName: cl.ID, Agent: cl.Agent, Allow: false, Reasons: []string{"the person denied the client"}})
		return c.Redirect(s.clientRedirect(req.RedirectURI, url.Values{"error": {"access_denied"}, "error_description": {"the person denied access"}}, req.State), fiber.StatusSeeOther)
	default:
		return s.errorPage(c, fiber.StatusBadRequest, "decision must be approve or deny.", nil)
	}
	now := s.now()
	con := store.OAuthConsent{ID: randomToken(), ClientID: cl.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.ConsentTTL)}
	if err := s.st.PutOAuthConsent(ctx, con); err != nil {
		return fmt.Errorf("store consent: %w", err)
	}
	ids := append(consentIDs(c.Cookies(s.cookieName(cookieConsent))), con.ID)
	if len(ids) > maxConsents {
		ids = ids[len(ids)-maxConsents:]
	}
	s.setCookie(c, cookieConsent, strings.Join(ids, "."), s.cfg.ConsentTTL)
	s.record(ctx, c, audit.Record{Action: "consent", ObjectName: cl.ID, Agent: cl.Agent, Allow: true})
	return s.toIdP(c, req, con)
}

// toIdP keeps the request as a pending login and sends the browser to the
// IdP with the gateway's own PKCE, state and nonce.
func (s *Server) toIdP(c *fiber.Ctx, req authRequest, con store.OAuthConsent) error {
	ctx := c.UserContext()
	verifier, nonce := randomToken(), randomToken()
	id := randomToken()
	secret, _ := json.Marshal(pendingSecret{Verifier: verifier, Nonce: nonce})
	sealed, err := s.seal(secret, "pending:"+id)
	if err != nil {
		return err
	}
	p := store.OAuthPending{ID: id, ClientID: req.ClientID, RedirectURI: req.RedirectURI, State: req.State,
		CodeChallenge: req.Challenge, Resource: req.Resource, Scope: req.Scope, ConsentID: con.ID,
		Secret: sealed, ExpiresAt: s.now().Add(pendingTTL)}
	if err := s.st.PutOAuthPending(ctx, p); err != nil {
		return fmt.Errorf("store pending login: %w", err)
	}
	target, err := s.idp.authorizeURL(ctx, id, nonce, s256(verifier))
	if err != nil {
		s.log.Warn("IdP unavailable for login", "err", err)
		return s.errorPage(c, fiber.StatusBadGateway, "The identity provider cannot be reached. Try again shortly.", nil)
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

type pendingSecret struct {
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cannot continue</title></head>
<body><h1>Cannot continue</h1><p id="error">{{.}}</p></body></html>`))

// errorPage is shown when the client cannot be told (its redirect URI is
// not known to be its own); rec, when given, is audited as a refusal.
func (s *Server) errorPage(c *fiber.Ctx, status int, msg string, rec *audit.Record) error {
	if rec != nil {
		r := *rec
		r.Action = "refuse"
		if r.Method == "" {
			r.Method = strings.Clone(strings.TrimPrefix(c.Path(), "/oauth2/"))
		}
		if len(r.Reasons) == 0 {
			r.Reasons = []string{msg}
		}
		s.record(c.UserContext(), c, r)
	}
	pageHeaders(c, "")
	c.Status(status)
	return errorTemplate.Execute(c.Response().BodyWriter(), msg)
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme + "://" + p.Host
}
