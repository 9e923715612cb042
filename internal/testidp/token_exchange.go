package testidp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Token type identifiers (RFC 8693 §3, draft-ietf-oauth-identity-assertion-authz-grant).
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDJAG       = "urn:ietf:params:oauth:token-type:id-jag"

	// IDJAGType is the typ header of an Identity Assertion JWT Authorization Grant.
	IDJAGType = "oauth-id-jag+jwt"
	// IDJAGTTL is the lifetime of issued ID-JAGs: they are exchanged at
	// once, so they are short-lived, as Okta's are.
	IDJAGTTL = 5 * time.Minute
)

// tokenExchange is the RFC 8693 token-exchange grant. Asked for an ID-JAG it
// acts as the IdP of the identity assertion authorization grant; otherwise it
// exchanges one of its own tokens for an access token (RFC 8693 §2).
func (s *Server) tokenExchange(_ context.Context, req *tokenRequest) (*TokenResponse, *OAuthError) {
	requested := req.Form.Get("requested_token_type")
	switch requested {
	case TokenTypeIDJAG:
		return s.issueIDJAG(req)
	case "", TokenTypeAccessToken:
		return s.exchangeForAccessToken(req)
	}
	return nil, invalidRequest("requested_token_type %s is not supported", requested)
}

// issueIDJAG issues an ID-JAG for the user named by the subject token, for
// the resource authorization server named by audience.
func (s *Server) issueIDJAG(req *tokenRequest) (*TokenResponse, *OAuthError) {
	c := req.Client
	// The draft requires the client to authenticate; Okta accepts only
	// private_key_jwt here. The client methods are mutually exclusive, so a
	// client_assertion on an authenticated request means private_key_jwt.
	if req.Form.Get("client_assertion_type") != ClientAssertionTypeJWT {
		return nil, invalidClient("ID-JAG requests require private_key_jwt client authentication")
	}
	audience := req.Form.Get("audience")
	if audience == "" {
		return nil, invalidRequest("audience (the resource authorization server) is required")
	}
	resource := req.Form.Get("resource")
	if resource != "" {
		if _, oerr := requestedAudience(req.Form, ""); oerr != nil {
			return nil, oerr
		}
	}
	subject, oerr := s.verifySubjectToken(req)
	if oerr != nil {
		return nil, oerr
	}
	// The subject token must have been issued to this client: an agent may
	// not turn another application's user token into its own grant.
	if !issuedTo(subject, req.Form.Get("subject_token_type"), c.ID) {
		return nil, invalidGrant("subject_token was not issued to this client")
	}
	sub, _ := subject.Subject()

	resourceClientID := c.ID
	if id, ok := c.ResourceClientIDs[audience]; ok {
		resourceClientID = id
	}
	now := time.Now()
	claims := map[string]any{
		"iss":       s.issuer,
		"sub":       sub,
		"aud":       audience,
		"client_id": resourceClientID,
		"jti":       newJTI(),
		"iat":       now.Unix(),
		"exp":       now.Add(IDJAGTTL).Unix(),
	}
	if resource != "" {
		claims["resource"] = resource
	}
	scope := normalizeScope(req.Form.Get("scope"))
	if scope != "" {
		claims["scope"] = scope
	}
	assertion, err := s.signTyped(claims, IDJAGType)
	if err != nil {
		s.log.Error("token exchange: sign ID-JAG", "err", err)
		return nil, serverError("could not sign the ID-JAG")
	}
	return &TokenResponse{
		AccessToken:     assertion,
		IssuedTokenType: TokenTypeIDJAG,
		// RFC 8693 §2.2.1: the issued token is not an access token.
		TokenType: "N_A",
		ExpiresIn: int64(IDJAGTTL.Seconds()),
		Scope:     scope,
	}, nil
}

// exchangeForAccessToken issues an access token for the subject token's user
// to the requesting client, for the requested resource or audience.
func (s *Server) exchangeForAccessToken(req *tokenRequest) (*TokenResponse, *OAuthError) {
	c := req.Client
	subject, oerr := s.verifySubjectToken(req)
	if oerr != nil {
		return nil, oerr
	}
	scopes, oerr := grantedScopes(req.Form.Get("scope"), c.Scopes)
	if oerr != nil {
		return nil, oerr
	}
	aud, oerr := requestedAudience(req.Form, s.opts.Audience)
	if oerr != nil {
		return nil, oerr
	}
	sub, _ := subject.Subject()
	claims := map[string]any{
		"sub": sub, "aud": aud, "cid": c.ID, "client_id": c.ID,
		// RFC 8693 §4.1: the client acts on behalf of the subject.
		"act": map[string]any{"sub": c.ID},
	}
	if len(scopes) > 0 {
		claims["scp"] = scopes
	}
	token, err := s.Mint(claims)
	if err != nil {
		s.log.Error("token exchange: mint", "err", err)
		return nil, serverError("could not sign the token")
	}
	return &TokenResponse{
		AccessToken:     token,
		IssuedTokenType: TokenTypeAccessToken,
		TokenType:       "Bearer",
		ExpiresIn:       int64(s.opts.TokenTTL.Seconds()),
		Scope:           strings.Join(scopes, " "),
	}, nil
}

// verifySubjectToken checks that subject_token is a token this server
// issued: signature with a published key, iss, exp (expired is refused).
func (s *Server) verifySubjectToken(req *tokenRequest) (jwt.Token, *OAuthError) {
	raw := req.Form.Get("subject_token")
	if raw == "" {
		return nil, invalidRequest("subject_token is required")
	}
	switch typ := req.Form.Get("subject_token_type"); typ {
	case TokenTypeAccessToken, TokenTypeIDToken, TokenTypeJWT:
	case "":
		return nil, invalidRequest("subject_token_type is required")
	default:
		return nil, invalidRequest("subject_token_type %s is not supported", typ)
	}
	tok, err := s.verifyOwnJWT(raw)
	if err != nil {
		return nil, invalidGrant("subject_token rejected: " + err.Error())
	}
	return tok, nil
}

// verifyOwnJWT verifies a JWT this server signed. Error texts never echo the token.
func (s *Server) verifyOwnJWT(raw string) (jwt.Token, error) {
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, errors.New("not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if alg, ok := hdr.Algorithm(); !ok || alg.String() != jwa.RS256().String() {
		return nil, errors.New("alg must be RS256")
	}
	kid, _ := hdr.KeyID()
	set, err := s.keys.publicSet(false)
	if err != nil {
		return nil, errors.New("keys unavailable")
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, errors.New("unknown signing key")
	}
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKey(jwa.RS256(), key),
		jwt.WithValidate(true),
		jwt.WithAcceptableSkew(assertionSkew),
		jwt.WithIssuer(s.issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if err != nil {
		return nil, errors.New(jwtFailure(err, jwtWording{}))
	}
	return tok, nil
}

// issuedTo reports whether tok was issued to clientID: an ID token names
// the client in aud (OIDC Core §2); an access token in cid or client_id.
func issuedTo(tok jwt.Token, tokenType, clientID string) bool {
	if tokenType == TokenTypeIDToken {
		aud, _ := tok.Audience()
		return slices.Contains(aud, clientID)
	}
	for _, claim := range []string{"cid", "client_id"} {
		var v string
		if err := tok.Get(claim, &v); err == nil && v == clientID {
			return true
		}
	}
	return false
}

// jwtWording words the failures whose rule differs by token: a client
// assertion's issuer and claims (RFC 7523 §3) are not an ID token's. An
// empty field keeps the generic wording.
type jwtWording struct {
	issuer, missingClaim, claims string
}

// jwtFailure names why a JWT failed validation, without echoing it.
func jwtFailure(err error, w jwtWording) string {
	or := func(specific, generic string) string {
		if specific != "" {
			return specific
		}
		return generic
	}
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return "expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "not yet valid"
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return "issued in the future"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return or(w.issuer, "wrong issuer")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "wrong audience"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return or(w.missingClaim, "a required claim is missing")
	case errors.Is(err, jwt.ValidateError()):
		return or(w.claims, "claims invalid")
	default:
		return "signature verification failed"
	}
}

// normalizeScope sorts and de-duplicates a space-separated scope string.
func normalizeScope(scope string) string {
	f := strings.Fields(scope)
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " ")
}

func invalidGrant(description string) *OAuthError {
	return &OAuthError{Code: "invalid_grant", Description: description, Status: http.StatusBadRequest}
}

func serverError(description string) *OAuthError {
	return &OAuthError{Code: "server_error", Description: description, Status: http.StatusInternalServerError}
}
