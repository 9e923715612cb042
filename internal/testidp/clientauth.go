package testidp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Token endpoint client authentication methods (RFC 6749 §2.3, OIDC Core §9).
const (
	authClientSecretBasic = "client_secret_basic"
	authClientSecretPost  = "client_secret_post"
	authPrivateKeyJWT     = "private_key_jwt"

	// ClientAssertionTypeJWT is the client_assertion_type of private_key_jwt (RFC 7523 §2.2).
	ClientAssertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// assertionSkew is the clock skew tolerated on client assertions.
const assertionSkew = 30 * time.Second

// assertionAlgs are the signature algorithms accepted on client assertions;
// never none or HMAC.
var assertionAlgs = []jwa.SignatureAlgorithm{jwa.ES256(), jwa.EdDSA(), jwa.PS256(), jwa.RS256()}

func assertionAlgNames() []string {
	names := make([]string, len(assertionAlgs))
	for i, a := range assertionAlgs {
		names[i] = a.String()
	}
	return names
}

// Client is an OAuth client registered with the server.
type Client struct {
	ID string
	// Secret enables client_secret_basic and client_secret_post.
	Secret string
	// PublicKey enables private_key_jwt; a private key is reduced to its public half.
	PublicKey jwk.Key
	// Scopes the client may be granted; a request for any other is invalid_scope.
	Scopes []string
	// ResourceClientIDs maps a resource authorization server (the audience
	// of an ID-JAG) to this client's id there, as an Okta managed connection
	// does; the ID-JAG's client_id claim is this client's own id otherwise.
	ResourceClientIDs map[string]string
	// RedirectURIs are where the authorization endpoint may send this
	// client's users back; a request's redirect_uri must equal one exactly.
	// Absolute URIs without a fragment.
	RedirectURIs []string
}

// RegisterClient adds or replaces a client.
func (s *Server) RegisterClient(c Client) error {
	if c.ID == "" {
		return errors.New("testidp: register client: ID is required")
	}
	if c.Secret == "" && c.PublicKey == nil {
		return fmt.Errorf("testidp: register client %s: Secret or PublicKey is required", c.ID)
	}
	if c.PublicKey != nil {
		if c.PublicKey.KeyType() == jwa.OctetSeq() {
			return fmt.Errorf("testidp: register client %s: PublicKey must be asymmetric", c.ID)
		}
		pub, err := jwk.PublicKeyOf(c.PublicKey)
		if err != nil {
			return fmt.Errorf("testidp: register client %s: PublicKey: %w", c.ID, err)
		}
		c.PublicKey = pub
	}
	for _, uri := range c.RedirectURIs {
		// RFC 6749 §3.1.2: absolute, no fragment.
		if u, err := url.Parse(uri); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(uri, "#") {
			return fmt.Errorf("testidp: register client %s: redirect URI %q must be absolute without a fragment", c.ID, uri)
		}
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.Scopes = slices.Clone(c.Scopes)
	c.ResourceClientIDs = maps.Clone(c.ResourceClientIDs)
	s.clients.put(c)
	return nil
}

type clientRegistry struct {
	mu      sync.RWMutex
	clients map[string]Client
}

func newClientRegistry() *clientRegistry {
	return &clientRegistry{clients: map[string]Client{}}
}

func (r *clientRegistry) put(c Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[c.ID] = c
}

func (r *clientRegistry) get(id string) (Client, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.clients[id]
	return c, ok
}

// scopes is the sorted union of every client's scopes.
func (r *clientRegistry) scopes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var all []string
	for _, c := range r.clients {
		all = append(all, c.Scopes...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// authenticateClient checks the client credentials of a token request. It
// returns (nil, nil) when the request carries none, so each grant decides
// whether a client is required.
func (s *Server) authenticateClient(r *http.Request) (*Client, *OAuthError) {
	form := r.PostForm
	_, _, hasBasic := r.BasicAuth()
	hasPost := form.Get("client_secret") != ""
	hasAssertion := form.Get("client_assertion") != "" || form.Get("client_assertion_type") != ""

	used := 0
	for _, b := range []bool{hasBasic, hasPost, hasAssertion} {
		if b {
			used++
		}
	}
	switch {
	case used > 1:
		// RFC 6749 §2.3: a client must not use more than one method per request.
		return nil, invalidRequest("more than one client authentication method used")
	case hasBasic:
		return s.authenticateBasic(r)
	case hasPost:
		return s.authenticateSecret(form.Get("client_id"), form.Get("client_secret"), authClientSecretPost)
	case hasAssertion:
		return s.authenticateAssertion(form, s.issuer+r.URL.Path)
	}
	return nil, nil
}

func (s *Server) authenticateBasic(r *http.Request) (*Client, *OAuthError) {
	rawID, rawSecret, _ := r.BasicAuth()
	// RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
	id, err := url.QueryUnescape(rawID)
	if err != nil {
		return nil, invalidClient("malformed client_id in Authorization header")
	}
	secret, err := url.QueryUnescape(rawSecret)
	if err != nil {
		return nil, invalidClient("malformed client secret in Authorization header")
	}
	if formID := r.PostForm.Get("client_id"); formID != "" && formID != id {
		return nil, invalidRequest("client_id does not match the Authorization header")
	}
	return s.authenticateSecret(id, secret, authClientSecretBasic)
}

func (s *Server) authenticateSecret(id, secret, method string) (*Client, *OAuthError) {
	if id == "" {
		return nil, invalidClient("client_id is required for %s", method)
	}
	c, ok := s.clients.get(id)
	// Compare even for an unknown client so the response time does not
	// reveal which client ids exist.
	match := subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) == 1
	if !ok || c.Secret == "" || !match {
		return nil, invalidClient("client authentication failed")
	}
	return &c, nil
}

// authenticateAssertion implements private_key_jwt (RFC 7523 §2.2, §3).
// endpoint is the token endpoint the request came in at (PathToken, or
// PathOktaOrgToken when the server plays an Okta org).
func (s *Server) authenticateAssertion(form url.Values, endpoint string) (*Client, *OAuthError) {
	if t := form.Get("client_assertion_type"); t != ClientAssertionTypeJWT {
		return nil, invalidClient("client_assertion_type must be %s", ClientAssertionTypeJWT)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return nil, invalidClient("client_assertion is required")
	}
	msg, err := jws.Parse([]byte(assertion), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalidClient("client_assertion is not a compact JWS")
	}
	alg, ok := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	if !ok || !slices.ContainsFunc(assertionAlgs, func(a jwa.SignatureAlgorithm) bool { return a.String() == alg.String() }) {
		return nil, invalidClient("client_assertion alg must be one of %s", strings.Join(assertionAlgNames(), ", "))
	}
	unverified, err := jwt.ParseInsecure([]byte(assertion))
	if err != nil {
		return nil, invalidClient("client_assertion claims are malformed")
	}
	id, _ := unverified.Subject()
	if formID := form.Get("client_id"); formID != "" && formID != id {
		return nil, invalidClient("client_id does not match the client_assertion subject")
	}
	c, ok := s.clients.get(id)
	if !ok || c.PublicKey == nil {
		return nil, invalidClient("client authentication failed")
	}
	tok, err := jwt.Parse([]byte(assertion),
		jwt.WithKey(alg, c.PublicKey),
		jwt.WithValidate(true),
		jwt.WithAcceptableSkew(assertionSkew),
		jwt.WithIssuer(id),
		jwt.WithSubject(id),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
	)
	if err != nil {
		return nil, invalidClient("client_assertion rejected: %s", jwtFailure(err, jwtWording{
			issuer:       "iss must be the client_id",
			missingClaim: "exp and jti are required",
			claims:       "claims invalid (sub must be the client_id)",
		}))
	}
	aud, _ := tok.Audience()
	// RFC 7523 §3: the audience identifies the authorization server; the
	// token endpoint URL and the issuer are both accepted.
	if !slices.Contains(aud, endpoint) && !slices.Contains(aud, s.issuer) {
		return nil, invalidClient("client_assertion aud must be the token endpoint or the issuer")
	}
	jti, _ := tok.JwtID()
	exp, _ := tok.Expiration()
	if !s.assertionJTIs.remember(id+"\x00"+jti, exp.Add(assertionSkew)) {
		return nil, invalidClient("client_assertion jti was already used")
	}
	return &c, nil
}

// jtiCache remembers identifiers until they expire, to refuse replays.
type jtiCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newJTICache() *jtiCache { return &jtiCache{seen: map[string]time.Time{}} }

// remember records id until expiry and reports whether it was new.
func (c *jtiCache) remember(id string, expiry time.Time) bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, exp := range c.seen {
		if now.After(exp) {
			delete(c.seen, k)
		}
	}
	if _, dup := c.seen[id]; dup {
		return false
	}
	c.seen[id] = expiry
	return true
}
