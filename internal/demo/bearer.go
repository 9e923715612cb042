package demo

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/identity"
)

// TokenVerifier verifies a bearer token; *identity.Verifier is one.
type TokenVerifier interface {
	Verify(ctx context.Context, rawToken string) (*identity.Principal, error)
}

type principalKey struct{}

// BearerPrincipal is the principal RequireBearer verified for this request.
func BearerPrincipal(ctx context.Context) (*identity.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*identity.Principal)
	return p, ok
}

// RequireBearer makes a demo backend act as a resource server (for
// Options.Wrap): every request needs a bearer token that v accepts and whose
// aud names audience. Given a verifier that trusts only the backend's own
// authorization server, the user's token (another issuer and audience) is
// refused and only the credential the gateway obtained by exchange passes.
// Refusals are RFC 6750 401s; the token is never echoed or logged.
func RequireBearer(v TokenVerifier, audience string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="demo"`)
				http.Error(w, "bearer token required", http.StatusUnauthorized)
				return
			}
			p, err := v.Verify(r.Context(), strings.TrimSpace(raw))
			if err != nil || !slices.Contains(p.Audience, audience) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="demo", error="invalid_token"`)
				http.Error(w, "invalid token", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		})
	}
}
