package testidp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Grant types of the authorization code flow (RFC 6749 §4.1, §6).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// pkceVerifier is RFC 7636 §4.1's code_verifier: 43 to 128 unreserved characters.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authorizationCode redeems a code from the authorization endpoint: once,
// by the client it was issued to, with the same redirect_uri and the PKCE
// verifier of its challenge.
func (s *Server) authorizationCode(_ context.Context, req *tokenRequest) (*TokenResponse, *OAuthError) {
	code := req.Form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	redirectURI := req.Form.Get("redirect_uri")
	if redirectURI == "" {
		return nil, invalidRequest("redirect_uri is required")
	}
	verifier := req.Form.Get("code_verifier")
	if verifier == "" {
		return nil, invalidRequest("code_verifier is required (PKCE)")
	}
	g, oerr := s.authz.redeemCode(code)
	if oerr != nil {
		return nil, oerr
	}
	if g.ClientID != req.Client.ID {
		return nil, invalidGrant("authorization code was issued to another client")
	}
	if g.RedirectURI != redirectURI {
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	}
	if !pkceVerifier.MatchString(verifier) {
		return nil, invalidGrant("code_verifier must be 43 to 128 unreserved characters")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.CodeChallenge)) != 1 {
		return nil, invalidGrant("code_verifier does not match the code_challenge")
	}
	return s.issueUserTokens(req, g.session, g.Scopes, g.Nonce)
}

// refreshToken is the refresh grant (RFC 6749 §6): new tokens with the
// user's current groups and a new refresh token; the old one is retired.
func (s *Server) refreshToken(_ context.Context, req *tokenRequest) (*TokenResponse, *OAuthError) {
	token := req.Form.Get("refresh_token")
	if token == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	want := strings.Fields(req.Form.Get("scope"))
	// The request may narrow the access token's scope, never widen it; the
	// refresh token keeps the original scope (RFC 6749 §6).
	narrow := func(sess session) *OAuthError {
		for _, sc := range want {
			if !slices.Contains(sess.Scopes, sc) {
				return invalidScope("scope %q was not granted", sc)
			}
		}
		return nil
	}
	sess, oerr := s.authz.rotateRefresh(token, req.Client.ID, narrow)
	if oerr != nil {
		return nil, oerr
	}
	scopes := sess.Scopes
	if len(want) > 0 {
		slices.Sort(want)
		scopes = slices.Compact(want)
	}
	return s.issueUserTokens(req, sess, scopes, "")
}

// issueUserTokens mints the access token, the ID token (when openid was
// granted) and the next refresh token of sess, with the user's current
// claims. nonce is the authorization request's; refreshes carry none.
func (s *Server) issueUserTokens(req *tokenRequest, sess session, scopes []string, nonce string) (*TokenResponse, *OAuthError) {
	u, ok := s.users.get(sess.Username)
	if !ok {
		return nil, invalidGrant("the user no longer exists")
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	aud, oerr := requestedAudience(req.Form, s.opts.Audience)
	if oerr != nil {
		return nil, oerr
	}
	access, err := s.MintUser(u.Subject, scopes, groups, map[string]any{"cid": sess.ClientID, "aud": aud})
	if err != nil {
		s.log.Error("authorization code: mint access token", "err", err)
		return nil, serverError("could not sign the token")
	}
	resp := &TokenResponse{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.TokenTTL.Seconds()),
		Scope:       strings.Join(scopes, " "),
	}
	if slices.Contains(scopes, "openid") {
		claims := map[string]any{
			"sub":                u.Subject,
			"aud":                sess.ClientID,
			"azp":                sess.ClientID,
			"auth_time":          sess.AuthTime.Unix(),
			"preferred_username": u.Username,
			"groups":             groups,
		}
		if nonce != "" {
			claims["nonce"] = nonce
		}
		if u.Email != "" {
			claims["email"] = u.Email
		}
		if u.Name != "" {
			claims["name"] = u.Name
		}
		if resp.IDToken, err = s.Mint(claims); err != nil {
			s.log.Error("authorization code: mint ID token", "err", err)
			return nil, serverError("could not sign the ID token")
		}
	}
	resp.RefreshToken = randomToken()
	// The refresh token keeps the session's scope, whatever this response narrowed.
	s.authz.addRefresh(resp.RefreshToken, sess)
	return resp, nil
}

// Userinfo is the userinfo response (OIDC Core §5.3).
type Userinfo struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email,omitempty"`
	Name              string   `json:"name,omitempty"`
	Groups            []string `json:"groups"`
}

// handleUserinfo answers a Bearer access token of a known user with the
// user's current claims.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="testidp"`)
		writeJSON(w, http.StatusUnauthorized, &OAuthError{Code: "invalid_request", Description: "a Bearer access token is required"})
		return
	}
	refuse := func(description string) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="testidp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, &OAuthError{Code: "invalid_token", Description: description})
	}
	tok, err := s.verifyOwnJWT(strings.TrimSpace(raw))
	if err != nil {
		refuse("access token rejected: " + err.Error())
		return
	}
	sub, _ := tok.Subject()
	u, ok := s.users.bySubject(sub)
	if !ok {
		refuse("the token's subject is not a user of this server")
		return
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, Userinfo{Subject: u.Subject, PreferredUsername: u.Username, Email: u.Email, Name: u.Name, Groups: groups})
}
