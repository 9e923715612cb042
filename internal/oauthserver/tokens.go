package oauthserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/store"
)

// Claims the gateway adds to its access tokens beside the registered ones.
const (
	claimClientID = "client_id"
	claimScope    = "scope"
	claimGroups   = "groups"
	claimAgent    = "mcpgw_agent"
	claimGrant    = "mcpgw_grant"
	claimIdP      = "idp_iss"
	typAccess     = "at+jwt"
)

// signingKeys is the gateway's token key and its public set.
type signingKeys struct {
	private jwk.Key
	alg     jwa.SignatureAlgorithm
	public  jwk.Set
	kid     string // the key's thumbprint: what isOurs looks for
}

// CheckSigningKey reads oauth.signing_key_file as New would (mcpgw config
// check); "" is accepted (a key is generated).
func CheckSigningKey(file string) error {
	if _, err := loadSigningKeys(file); err != nil {
		return fmt.Errorf("oauth.signing_key_file: %w", err)
	}
	return nil
}

func loadSigningKeys(file string) (*signingKeys, error) {
	var key jwk.Key
	if file == "" {
		raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if key, err = jwk.Import(raw); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	} else {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if key, err = jwk.ParseKey(pem, jwk.WithPEM(true)); err != nil {
			return nil, fmt.Errorf("%s: not a PEM private key", file)
		}
		if private, err := jwk.IsPrivateKey(key); err != nil || !private {
			return nil, fmt.Errorf("%s: not a private key", file)
		}
	}
	var alg jwa.SignatureAlgorithm
	switch key.KeyType() {
	case jwa.EC():
		alg = jwa.ES256()
		var crv jwa.EllipticCurveAlgorithm
		if err := key.Get(jwk.ECDSACrvKey, &crv); err != nil || crv != jwa.P256() {
			return nil, errors.New("EC keys must be on P-256 (ES256)")
		}
	case jwa.RSA():
		alg = jwa.RS256()
		var n []byte
		if err := key.Get(jwk.RSANKey, &n); err != nil || len(n)*8 < 2048 {
			return nil, errors.New("RSA keys must have at least 2048 bits")
		}
	default:
		return nil, fmt.Errorf("key type %s not supported; want EC P-256 or RSA", key.KeyType())
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	_ = key.Set(jwk.AlgorithmKey, alg)
	_ = key.Set(jwk.KeyUsageKey, "sig")
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	kid, _ := key.KeyID()
	return &signingKeys{private: key, alg: alg, public: set, kid: kid}, nil
}

// mintAccess signs an RFC 9068 access token for grant g, valid at resource.
func (s *Server) mintAccess(g store.OAuthGrant, resource string, now time.Time) (string, time.Duration, error) {
	ttl := s.cfg.AccessTokenTTL
	if left := g.ExpiresAt.Sub(now); left < ttl {
		ttl = left
	}
	if ttl <= 0 {
		return "", 0, errors.New("grant expired")
	}
	b := jwt.NewBuilder().
		Issuer(s.issuer).
		Subject(g.Subject).
		Audience([]string{resource}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(ttl)).
		JwtID(randomToken()).
		Claim(claimClientID, g.ClientID).
		Claim(claimScope, strings.Join(g.Scopes, " ")).
		Claim(claimAgent, g.Agent).
		Claim(claimGrant, g.ID).
		Claim(claimIdP, g.Issuer)
	if g.Groups != nil {
		b = b.Claim(claimGroups, g.Groups)
	}
	tok, err := b.Build()
	if err != nil {
		return "", 0, fmt.Errorf("build access token: %w", err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, typAccess)
	signed, err := jwt.Sign(tok, jwt.WithKey(s.keys.alg, s.keys.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", 0, fmt.Errorf("sign access token: %w", err)
	}
	return string(signed), ttl, nil
}

// accessToken is a verified gateway access token.
type accessToken struct {
	principal *identity.Principal
	grantID   string
}

// parseAccess verifies a gateway access token's signature, type, issuer
// and times (not its audience: the caller knows the resource, and not its
// grant's state: checkGrant).
func (s *Server) parseAccess(raw string) (*accessToken, error) {
	return s.parseAccessAt(raw, true)
}

// parseAccessIgnoringExpiry is for revocation (RFC 7009 §2.2: an expired
// token may be revoked; its grant lives on).
func (s *Server) parseAccessIgnoringExpiry(raw string) (*accessToken, error) {
	return s.parseAccessAt(raw, false)
}

// parseAccessAt verifies the signature, type and issuer, and, when
// checkTimes, exp/nbf/iat. (A clock set to the past would not do for
// revocation: iat would then lie in the future.)
func (s *Server) parseAccessAt(raw string, checkTimes bool) (*accessToken, error) {
	msg, err := jws.Parse([]byte(raw))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalidToken("malformed token")
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); !strings.EqualFold(typ, typAccess) {
		return nil, invalidToken("token type is not at+jwt")
	}
	tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(s.keys.public, jws.WithRequireKid(true)), jwt.WithIssuer(s.issuer),
		jwt.WithValidate(checkTimes), jwt.WithAcceptableSkew(s.skew), jwt.WithClock(jwt.ClockFunc(s.now)))
	if err != nil {
		return nil, invalidToken("token is not valid: " + err.Error())
	}
	// Checked here too: without validation jwt.Parse checks no claim.
	if iss, _ := tok.Issuer(); iss != s.issuer {
		return nil, invalidToken("token is not of this gateway's authorization server")
	}
	var claims map[string]any
	b, err := json.Marshal(tok)
	if err != nil || json.Unmarshal(b, &claims) != nil {
		return nil, invalidToken("token claims unreadable")
	}
	str := func(k string) string { v, _ := claims[k].(string); return v }
	sub, _ := tok.Subject()
	aud, _ := tok.Audience()
	exp, _ := tok.Expiration()
	grant, agent, idp := str(claimGrant), str(claimAgent), str(claimIdP)
	if sub == "" || grant == "" || agent == "" || idp == "" {
		return nil, invalidToken("token lacks sub, mcpgw_grant, mcpgw_agent or idp_iss")
	}
	var groups []string
	if gs, ok := claims[claimGroups].([]any); ok {
		for _, g := range gs {
			if s, ok := g.(string); ok {
				groups = append(groups, s)
			}
		}
	}
	p := &identity.Principal{
		Subject: sub, Issuer: idp, Audience: aud, ClientID: str(claimClientID),
		Scopes: strings.Fields(str(claimScope)), Groups: groups, Claims: claims, ExpiresAt: exp,
		Agent: agent, Via: s.issuer,
	}
	return &accessToken{principal: p, grantID: grant}, nil
}

// checkGrant refuses a token whose grant was revoked (code replay, refresh
// reuse, an administrator, the person's revocation). A replica remembers
// an active grant for grantCheckTTL.
func (s *Server) checkGrant(ctx context.Context, id string) error {
	now := s.now()
	if until, ok := s.grants.Get(id); ok && now.Before(until) {
		return nil
	}
	g, err := s.st.GetOAuthGrant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return invalidToken("the token's grant no longer exists")
	}
	if err != nil {
		return fmt.Errorf("look up grant: %w", err)
	}
	if !g.RevokedAt.IsZero() {
		return invalidToken("the token's grant was revoked")
	}
	if !now.Before(g.ExpiresAt) {
		return invalidToken("the token's grant expired")
	}
	s.grants.SetWithTTL(id, now.Add(grantCheckTTL), 1, grantCheckTTL)
	return nil
}

// forgetGrant drops this replica's memory of a revoked grant at once.
func (s *Server) forgetGrant(id string) { s.grants.Del(id) }

func invalidToken(desc string) error {
	return &identity.Error{Code: "invalid_token", Description: desc}
}

// Authenticator verifies the gateway's own tokens and hands every other
// token to next (the IdP issuers' verifier).
type Authenticator interface {
	Verify(ctx context.Context, token string) (*identity.Principal, error)
}

// Chain returns an Authenticator that routes by issuer: the gateway's tokens
// here, every other one to next.
func (s *Server) Chain(next Authenticator) Authenticator { return chain{s: s, next: next} }

type chain struct {
	s    *Server
	next Authenticator
}

func (c chain) Verify(ctx context.Context, raw string) (*identity.Principal, error) {
	if !c.s.isOurs(raw) {
		return c.next.Verify(ctx, raw)
	}
	// A verified token is remembered until it expires, as identity's
	// verifier does for the IdPs' tokens: the signature is checked once,
	// not on every request. Its grant is checked every time (checkGrant
	// remembers an active grant for grantCheckTTL only).
	at, ok := c.s.verified.Get(raw)
	if !ok || !c.s.now().Before(at.principal.ExpiresAt) {
		var err error
		if at, err = c.s.parseAccess(raw); err != nil {
			return nil, err
		}
		if ttl := at.principal.ExpiresAt.Sub(c.s.now()); ttl > 0 {
			c.s.verified.SetWithTTL(raw, at, 1, ttl)
		}
	}
	if err := c.s.checkGrant(ctx, at.grantID); err != nil {
		return nil, err
	}
	return at.principal, nil
}

// maxPeekedHeader bounds the JOSE header isOurs decodes.
const maxPeekedHeader = 2048

// isOurs says which verifier to ask, never whether to trust: a token whose
// JOSE header names the gateway's own key id. Only the header is decoded
// (every request passes here, IdP tokens included, before any cache).
func (s *Server) isOurs(raw string) bool {
	head, _, ok := strings.Cut(raw, ".")
	if !ok || len(head) > maxPeekedHeader {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Kid string `json:"kid"`
	}
	return json.Unmarshal(b, &h) == nil && h.Kid != "" && h.Kid == s.keys.kid
}
