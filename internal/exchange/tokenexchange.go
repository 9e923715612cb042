package exchange

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

const stepTokenExchange = "token exchange"

// endpoint is a token endpoint given directly or found in its
// authorization server's metadata on first use.
type endpoint struct {
	x        *Exchanger
	backend  string
	url      string
	issuer   string
	mu       sync.Mutex
	resolved string
}

// readEndpoint reads token_endpoint, else authorization_server (discovery).
func readEndpoint(x *Exchanger, a *authConfig) *endpoint {
	e := &endpoint{x: x, backend: a.b.Name, url: a.httpURL("token_endpoint"), issuer: a.httpURL("authorization_server")}
	if e.url == "" && e.issuer == "" && a.str("token_endpoint") == "" && a.str("authorization_server") == "" {
		a.fail("token_endpoint", "required (or authorization_server, to discover it)")
	}
	return e
}

func (e *endpoint) get(ctx context.Context) (string, error) {
	if e.url != "" {
		return e.url, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.resolved != "" {
		return e.resolved, nil
	}
	u, err := e.x.discoverTokenEndpoint(ctx, e.issuer)
	if err != nil {
		e.x.log.Warn("authorization server metadata discovery failed", "backend", e.backend, "issuer", e.issuer, "err", err)
		return "", fmt.Errorf("discovery of the authorization server's token endpoint failed: %w", errUnreachableOrInvalid(err))
	}
	e.resolved = u
	return u, nil
}

// plainExchange is the token-exchange method: one RFC 8693 request that
// trades the user's token for the backend's (Keycloak, Hydra-like servers,
// Azure's on-behalf-of in spirit).
type plainExchange struct {
	x                  *Exchanger
	backend            string
	endpoint           *endpoint
	client             clientConfig
	audience, resource string
	scopes             []string
	subjectTokenType   string
	requestedTokenType string
}

func (x *Exchanger) newTokenExchange(b config.Backend) (upstream.Injector, error) {
	a := newAuthConfig(b)
	pe := &plainExchange{x: x, backend: b.Name}
	pe.endpoint = readEndpoint(x, a)
	pe.client = a.clientAuth("")
	pe.audience = a.str("audience")
	pe.resource = a.str("resource")
	if pe.resource != "" {
		if err := checkAbsoluteURI(pe.resource); err != nil {
			a.fail("resource", "%v", err)
		}
	}
	pe.scopes = a.scopes("scopes")
	pe.subjectTokenType = a.tokenType("subject_token_type", TokenTypeAccessToken)
	pe.requestedTokenType = a.tokenType("requested_token_type", TokenTypeAccessToken)
	if pe.requestedTokenType == TokenTypeIDToken {
		a.fail("requested_token_type", "must be access_token or jwt: the backend needs a bearer token")
	}
	if err := a.err(); err != nil {
		return nil, err
	}
	return x.newInjector(b, MethodTokenExchange, true, pe.scopes, pe.fetch), nil
}

func (pe *plainExchange) fetch(ctx context.Context, c upstream.Caller) (token, error) {
	if c.Principal != nil && c.Principal.Via != "" {
		return token{}, errors.New("the caller's token was issued by the gateway's own authorization server, which the IdP does not accept as a subject token; use okta-cross-app for this backend")
	}
	if c.Token == "" {
		return token{}, errors.New("the caller has no bearer token to exchange")
	}
	auth, err := pe.client.forAgent(c.Agent, func() (jwk.Key, error) { return agentKey(c.Agent) })
	if err != nil {
		return token{}, err
	}
	ep, err := pe.endpoint.get(ctx)
	if err != nil {
		return token{}, err
	}
	params := url.Values{
		"subject_token":        {c.Token},
		"subject_token_type":   {pe.subjectTokenType},
		"requested_token_type": {pe.requestedTokenType},
	}
	if pe.audience != "" {
		params.Set("audience", pe.audience)
	}
	if pe.resource != "" {
		params.Set("resource", pe.resource)
	}
	tok, err := pe.x.requestToken(ctx, pe.backend, tokenCall{
		step: stepTokenExchange, endpoint: ep, grant: GrantTokenExchange, params: params, scopes: pe.scopes, auth: auth,
	})
	if err != nil {
		return token{}, err
	}
	// RFC 8693 §2.2.1 makes issued_token_type required; a server that
	// issued something else than asked for is refused.
	if issued := extraString(tok, "issued_token_type"); issued != "" && issued != pe.requestedTokenType {
		return token{}, fmt.Errorf("%s: issued_token_type is %q, not %s", stepTokenExchange, secrets.Foreign(issued, 80), pe.requestedTokenType)
	}
	if err := checkBearer(stepTokenExchange, tok); err != nil {
		return token{}, err
	}
	return token{value: tok.AccessToken, expiresIn: expiresIn(tok)}, nil
}

// checkAbsoluteURI is RFC 8707 §2's rule for resource: an absolute URI
// without a fragment.
func checkAbsoluteURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return errors.New("must be an absolute URI without a fragment (RFC 8707)")
	}
	return nil
}
