package oauthserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// tokenError is an RFC 6749 §5.2 refusal of the token endpoint.
type tokenError struct {
	status    int
	code      string
	desc      string
	grantID   string // the grant the refusal revoked, if any
	clientID  string
	grantType string
}

func (e *tokenError) Error() string { return e.code + ": " + e.desc }

func invalidGrant(desc string) *tokenError {
	return &tokenError{status: fiber.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func (s *Server) handleToken(c *fiber.Ctx) error {
	s.cors(c)
	ctx := c.UserContext()
	form, err := s.tokenForm(c)
	if err != nil {
		return s.refuseToken(c, err)
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return s.refuseToken(c, &tokenError{status: fiber.StatusUnauthorized, code: "invalid_client", desc: "client_id is required (public clients send it in the form)"})
	}
	var (
		resp map[string]any
		terr *tokenError
	)
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		resp, terr = s.redeemCode(ctx, form)
	case "refresh_token":
		resp, terr = s.refreshGrant(ctx, form)
	case "":
		terr = &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "grant_type is required"}
	default:
		terr = &tokenError{status: fiber.StatusBadRequest, code: "unsupported_grant_type", desc: fmt.Sprintf("grant_type %q is not supported", secrets.Foreign(gt, 80))}
	}
	if terr != nil {
		terr.clientID, terr.grantType = clientID, form.Get("grant_type")
		return s.refuseToken(c, terr)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(resp)
}

// tokenForm reads the form once, refusing repeated parameters (RFC 6749
// §3.2: parameters must not be included more than once) and a client
// secret: every client here is public.
func (s *Server) tokenForm(c *fiber.Ctx) (url.Values, error) {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "Content-Type must be application/x-www-form-urlencoded"}
	}
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "the form body is malformed"}
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: k + " is given more than once"}
		}
	}
	if auth := c.Get(fiber.HeaderAuthorization); auth != "" {
		id, secret, ok := basicAuth(auth)
		if !ok || secret != "" {
			return nil, &tokenError{status: fiber.StatusUnauthorized, code: "invalid_client", desc: "clients of this gateway are public (token_endpoint_auth_method none): send client_id in the form, no secret"}
		}
		if f := form.Get("client_id"); f != "" && f != id {
			return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "client_id differs between Authorization and the form"}
		}
		form.Set("client_id", id)
	}
	if form.Get("client_secret") != "" || form.Get("client_assertion") != "" {
		return nil, &tokenError{status: fiber.StatusUnauthorized, code: "invalid_client", desc: "clients of this gateway are public: no client secret or assertion"}
	}
	return form, nil
}

func basicAuth(h string) (id, secret string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	id, secret, found = strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	return id, secret, found && err1 == nil && err2 == nil
}

func (s *Server) redeemCode(ctx context.Context, form url.Values) (map[string]any, *tokenError) {
	code := form.Get("code")
	if code == "" {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "code is required"}
	}
	now := s.now()
	rec, err := s.st.RedeemOAuthCode(ctx, hashOf("code", code), now)
	switch {
	case errors.Is(err, store.ErrReplayed):
		// RFC 6749 §4.1.2: a code used twice revokes what it produced.
		if rerr := s.revoke(ctx, rec.GrantID, "authorization code replayed"); rerr != nil {
			s.log.Error("revoke grant of a replayed code", "err", rerr)
		}
		e := invalidGrant("the authorization code was already used; every token it produced is revoked")
		e.grantID = rec.GrantID
		return nil, e
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidGrant("the authorization code is unknown or expired")
	case err != nil:
		return nil, &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the code could not be redeemed"}
	}
	switch {
	case form.Get("client_id") != rec.ClientID:
		return nil, invalidGrant("the authorization code was issued to another client")
	case form.Get("redirect_uri") != "" && form.Get("redirect_uri") != rec.RedirectURI:
		return nil, invalidGrant("redirect_uri differs from the authorization request's")
	case !pkceMatches(form.Get("code_verifier"), rec.CodeChallenge):
		return nil, invalidGrant("code_verifier does not match the code_challenge (PKCE)")
	}
	if r := form.Get("resource"); r != "" && strings.TrimRight(r, "/") != rec.Resource {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_target", desc: "resource differs from the authorization request's"}
	}
	refresh := randomToken()
	g, err := s.st.RotateOAuthRefresh(ctx, hashOf("code-seed", code), hashOf("refresh", refresh), now, nil)
	if err != nil {
		return nil, s.rotationError(ctx, rec.GrantID, err)
	}
	return s.issue(ctx, g, refresh, "token")
}

func (s *Server) refreshGrant(ctx context.Context, form url.Values) (map[string]any, *tokenError) {
	old := form.Get("refresh_token")
	if old == "" {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_request", desc: "refresh_token is required"}
	}
	oldHash := hashOf("refresh", old)
	g, err := s.st.GrantByRefresh(ctx, oldHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidGrant("the refresh token is unknown, expired or revoked")
	}
	if err != nil {
		return nil, &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the refresh token could not be looked up"}
	}
	if g.ClientID != form.Get("client_id") {
		return nil, invalidGrant("the refresh token was issued to another client")
	}
	if !g.RevokedAt.IsZero() {
		return nil, invalidGrant("the refresh token's grant was revoked")
	}
	if r := form.Get("resource"); r != "" && strings.TrimRight(r, "/") != g.Resource {
		return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_target", desc: "resource differs from the grant's"}
	}
	if sc := form.Get("scope"); sc != "" {
		for _, want := range strings.Fields(sc) {
			if !slices.Contains(g.Scopes, want) {
				return nil, &tokenError{status: fiber.StatusBadRequest, code: "invalid_scope", desc: fmt.Sprintf("scope %q was not granted", secrets.Foreign(want, 60))}
			}
		}
	}
	// The person's groups come from the IdP again, so a refresh never
	// carries a membership the IdP has since removed.
	upd, terr := s.refreshUpstream(ctx, g)
	if terr != nil {
		return nil, terr
	}
	refresh := randomToken()
	now := s.now()
	g, err = s.st.RotateOAuthRefresh(ctx, oldHash, hashOf("refresh", refresh), now, func(cur *store.OAuthGrant) error {
		if upd != nil {
			cur.Groups, cur.Claims, cur.Upstream = upd.Groups, upd.Claims, upd.Upstream
		}
		if sc := form.Get("scope"); sc != "" {
			cur.Scopes = strings.Fields(sc)
		}
		cur.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, s.rotationError(ctx, g.ID, err)
	}
	return s.issue(ctx, g, refresh, "refresh")
}

func (s *Server) rotationError(ctx context.Context, grantID string, err error) *tokenError {
	switch {
	case errors.Is(err, store.ErrReplayed):
		s.forgetGrant(grantID)
		e := invalidGrant("the refresh token was already used; the whole login is revoked (RFC 9700 §4.14)")
		e.grantID = grantID
		return e
	case errors.Is(err, store.ErrNotFound):
		return invalidGrant("the grant is unknown, expired or revoked")
	}
	s.log.Error("rotate refresh token", "err", err)
	return &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the token could not be issued"}
}

// refreshUpstream asks the IdP again who the person is. nil, nil: the IdP
// gave no refresh token (no offline_access), so the login's groups stand.
func (s *Server) refreshUpstream(ctx context.Context, g store.OAuthGrant) (*store.OAuthGrant, *tokenError) {
	plain, err := s.open(g.Upstream, "grant:"+g.ID)
	var ut upstreamTokens
	if err != nil || json.Unmarshal(plain, &ut) != nil {
		s.log.Error("grant's IdP tokens do not open", "grant_client", g.ClientID, "err", err)
		return nil, &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the login's IdP tokens cannot be read; log in again"}
	}
	if ut.RefreshToken == "" {
		return nil, nil
	}
	toks, err := s.idp.refresh(ctx, ut.RefreshToken)
	var ie *idpError
	if errors.As(err, &ie) && ie.Code == "invalid_grant" {
		if rerr := s.revoke(ctx, g.ID, "the IdP refused to refresh the login"); rerr != nil {
			s.log.Error("revoke grant", "err", rerr)
		}
		return nil, invalidGrant("the identity provider no longer accepts this login; log in again")
	}
	if err != nil {
		s.log.Warn("IdP refresh failed", "err", err)
		return nil, &tokenError{status: fiber.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "the identity provider cannot be reached; try again shortly"}
	}
	if toks.IDToken == "" {
		toks.IDToken = ut.IDToken
	}
	if toks.RefreshToken == "" {
		toks.RefreshToken = ut.RefreshToken
	}
	who, err := s.idp.verifyIDToken(ctx, toks.IDToken, "")
	if err != nil || who.Subject != g.Subject {
		s.log.Warn("IdP refresh returned an unusable ID token", "err", err)
		return nil, &tokenError{status: fiber.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "the identity provider's refreshed ID token was not valid"}
	}
	raw, _ := json.Marshal(upstreamTokens{IDToken: toks.IDToken, AccessToken: toks.AccessToken, RefreshToken: toks.RefreshToken})
	profile, _ := json.Marshal(who.Profile)
	sealed, err := s.seal(raw, "grant:"+g.ID)
	if err != nil {
		return nil, &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the refreshed login could not be stored"}
	}
	return &store.OAuthGrant{Groups: who.Groups, Claims: profile, Upstream: sealed}, nil
}

func (s *Server) issue(ctx context.Context, g store.OAuthGrant, refresh, action string) (map[string]any, *tokenError) {
	access, ttl, err := s.mintAccess(g, g.Resource, s.now())
	if err != nil {
		s.log.Error("mint access token", "err", err)
		return nil, &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the token could not be issued"}
	}
	s.record(ctx, nil, audit.Record{Action: audit.Action(action), Subject: g.Subject, Issuer: g.Issuer, Agent: g.Agent, ObjectName: g.ClientID, Allow: true})
	return map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"expires_in":    int64(ttl.Seconds()),
		"refresh_token": refresh,
		"scope":         strings.Join(g.Scopes, " "),
	}, nil
}

// revoke ends a grant everywhere: the store, and this replica's memory.
func (s *Server) revoke(ctx context.Context, grantID, reason string) error {
	if grantID == "" {
		return nil
	}
	s.forgetGrant(grantID)
	return s.st.RevokeOAuthGrant(ctx, grantID, reason, s.now())
}

func (s *Server) refuseToken(c *fiber.Ctx, err error) error {
	var te *tokenError
	if !errors.As(err, &te) {
		te = &tokenError{status: fiber.StatusInternalServerError, code: "server_error", desc: "the token request failed"}
	}
	rec := audit.Record{Action: "refuse", Method: "token", ObjectName: te.clientID, Reasons: []string{te.Error()}}
	if te.grantID != "" {
		// A replayed code or refresh token: the trail says which login
		// the refusal ended.
		rec.Reasons = append(rec.Reasons, "revoked grant "+te.grantID)
	}
	if te.grantType != "" {
		rec.Method = "token:" + te.grantType
	}
	s.record(c.UserContext(), c, rec)
	if te.status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="mcpgw"`)
	}
	return oauthError(c, te.status, te.code, te.desc)
}
