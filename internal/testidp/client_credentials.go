package testidp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4). The
// access token is issued to the client itself: sub, cid and client_id are the
// client id. Its audience is the RFC 8707 resource, else the audience
// parameter (Okta, Hydra), else the server's default Audience.
func (s *Server) clientCredentials(_ context.Context, req *tokenRequest) (*TokenResponse, *OAuthError) {
	c := req.Client
	scopes, oerr := grantedScopes(req.Form.Get("scope"), c.Scopes)
	if oerr != nil {
		return nil, oerr
	}
	aud, oerr := requestedAudience(req.Form, s.opts.Audience)
	if oerr != nil {
		return nil, oerr
	}
	claims := map[string]any{"sub": c.ID, "cid": c.ID, "client_id": c.ID, "aud": aud}
	if len(scopes) > 0 {
		claims["scp"] = scopes
	}
	token, err := s.Mint(claims)
	if err != nil {
		s.log.Error("client_credentials: mint", "err", err)
		return nil, &OAuthError{Code: "server_error", Description: "could not sign the token", Status: http.StatusInternalServerError}
	}
	return &TokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.TokenTTL.Seconds()),
		Scope:       strings.Join(scopes, " "),
	}, nil
}

// grantedScopes is the requested scope (space-separated) if the client may
// have all of it, or every scope of the client when none is requested.
func grantedScopes(requested string, allowed []string) ([]string, *OAuthError) {
	want := strings.Fields(requested)
	if len(want) == 0 {
		return slices.Clone(allowed), nil
	}
	for _, sc := range want {
		if !slices.Contains(allowed, sc) {
			return nil, invalidScope("scope %q is not allowed for this client", sc)
		}
	}
	slices.Sort(want)
	return slices.Compact(want), nil
}

// requestedAudience reads the RFC 8707 resource or the audience parameter.
func requestedAudience(form url.Values, fallback string) (string, *OAuthError) {
	if res := form.Get("resource"); res != "" {
		u, err := url.Parse(res)
		// RFC 8707 §2: an absolute URI without a fragment.
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return "", &OAuthError{Code: "invalid_target", Description: "resource must be an absolute URI without a fragment", Status: http.StatusBadRequest}
		}
		return res, nil
	}
	if aud := form.Get("audience"); aud != "" {
		return aud, nil
	}
	return fallback, nil
}
