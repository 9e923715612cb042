package testidp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// ResourceASOptions make a Server the resource authorization server of the
// identity assertion authorization grant: it accepts ID-JAGs from one
// trusted IdP at the jwt-bearer grant (RFC 7523) and issues access tokens for
// the resource the ID-JAG names.
type ResourceASOptions struct {
	// TrustedIssuer is the IdP's issuer; ID-JAGs must carry it as iss.
	TrustedIssuer string
	// TrustedJWKSURL is where the IdP's keys are (default TrustedIssuer +
	// PathJWKS, where a testidp publishes them). Fetched per request: a
	// test fixture favours simplicity over speed.
	TrustedJWKSURL string
	// Resources, when set, are the only resources (ID-JAG resource claim)
	// this server issues tokens for; any other is invalid_target.
	Resources []string
}

type resourceAS struct {
	s    *Server
	opts ResourceASOptions
	// idJAGs remembers the jti of every accepted ID-JAG until it expires,
	// so one cannot be redeemed twice.
	idJAGs *jtiCache
	httpc  *http.Client
}

func newResourceAS(s *Server, opts ResourceASOptions) (*resourceAS, error) {
	if u, err := url.Parse(opts.TrustedIssuer); err != nil || !u.IsAbs() {
		return nil, errors.New("ResourceAS.TrustedIssuer must be an absolute URL")
	}
	if opts.TrustedJWKSURL == "" {
		opts.TrustedJWKSURL = strings.TrimSuffix(opts.TrustedIssuer, "/") + PathJWKS
	}
	opts.Resources = slices.Clone(opts.Resources)
	return &resourceAS{s: s, opts: opts, idJAGs: newJTICache(), httpc: &http.Client{Timeout: 5 * time.Second}}, nil
}

// jwtBearer is the jwt-bearer grant for ID-JAGs, checked as
// draft-ietf-oauth-identity-assertion-authz-grant §4.4 (and RFC 7523 §3) require.
func (r *resourceAS) jwtBearer(ctx context.Context, req *tokenRequest) (*TokenResponse, *OAuthError) {
	raw := req.Form.Get("assertion")
	if raw == "" {
		return nil, invalidRequest("assertion is required")
	}
	grant, oerr := r.verifyIDJAG(ctx, raw, req.Client.ID)
	if oerr != nil {
		return nil, oerr
	}

	var granted string
	_ = grant.Get("scope", &granted)
	if want := req.Form.Get("scope"); want != "" {
		// RFC 7523 §2.1: the request may narrow, never widen, the grant.
		for _, sc := range strings.Fields(want) {
			if !slices.Contains(strings.Fields(granted), sc) {
				return nil, invalidScope("scope %q is not in the ID-JAG", sc)
			}
		}
		granted = want
	}
	scopes, oerr := grantedScopes(granted, req.Client.Scopes)
	if oerr != nil {
		return nil, oerr
	}

	aud := r.s.opts.Audience
	var resource string
	if err := grant.Get("resource", &resource); err == nil && resource != "" {
		if len(r.opts.Resources) > 0 && !slices.Contains(r.opts.Resources, resource) {
			return nil, &OAuthError{Code: "invalid_target", Description: "this server issues no tokens for that resource", Status: http.StatusBadRequest}
		}
		aud = resource
	}
	sub, _ := grant.Subject()
	idp, _ := grant.Issuer()
	claims := map[string]any{"sub": sub, "aud": aud, "cid": req.Client.ID, "client_id": req.Client.ID, "idp": idp}
	if len(scopes) > 0 {
		claims["scp"] = scopes
	}
	token, err := r.s.Mint(claims)
	if err != nil {
		r.s.log.Error("jwt-bearer: mint", "err", err)
		return nil, serverError("could not sign the token")
	}
	return &TokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(r.s.opts.TokenTTL.Seconds()),
		Scope:       strings.Join(scopes, " "),
	}, nil
}

// verifyIDJAG checks typ, signature (the IdP's JWKS), iss, aud (this
// server's issuer), exp, client_id (the authenticated client) and jti reuse.
func (r *resourceAS) verifyIDJAG(ctx context.Context, raw, clientID string) (jwt.Token, *OAuthError) {
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalidGrant("assertion is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := hdr.Type(); !strings.EqualFold(typ, IDJAGType) {
		return nil, invalidGrant("assertion typ must be " + IDJAGType)
	}
	alg, ok := hdr.Algorithm()
	if !ok || !slices.ContainsFunc(assertionAlgs, func(a jwa.SignatureAlgorithm) bool { return a.String() == alg.String() }) {
		return nil, invalidGrant("assertion alg must be one of " + strings.Join(assertionAlgNames(), ", "))
	}
	kid, _ := hdr.KeyID()
	key, oerr := r.idpKey(ctx, kid)
	if oerr != nil {
		return nil, oerr
	}
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithAcceptableSkew(assertionSkew),
		jwt.WithIssuer(r.opts.TrustedIssuer),
		jwt.WithAudience(r.s.issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.IssuedAtKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if err != nil {
		return nil, invalidGrant("ID-JAG rejected: " + jwtFailure(err, jwtWording{}))
	}
	var grantClient string
	if err := tok.Get("client_id", &grantClient); err != nil || grantClient != clientID {
		return nil, invalidGrant("ID-JAG client_id is not the authenticated client")
	}
	jti, _ := tok.JwtID()
	exp, _ := tok.Expiration()
	if !r.idJAGs.remember(jti, exp.Add(assertionSkew)) {
		return nil, invalidGrant("ID-JAG jti was already used")
	}
	return tok, nil
}

// idpKey fetches the trusted IdP's JWKS and returns the key named kid.
func (r *resourceAS) idpKey(ctx context.Context, kid string) (jwk.Key, *OAuthError) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	set, err := jwk.Fetch(ctx, r.opts.TrustedJWKSURL, jwk.WithHTTPClient(r.httpc))
	if err != nil {
		r.s.log.Warn("jwt-bearer: fetch IdP JWKS", "url", r.opts.TrustedJWKSURL, "err", err)
		return nil, serverError("the IdP's keys are unavailable")
	}
	if kid == "" {
		return nil, invalidGrant("assertion has no kid")
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, invalidGrant("assertion is not signed by a key of the trusted IdP")
	}
	return key, nil
}
