package exchange

import (
	"context"
	"net/url"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

const stepClientCredentials = "client credentials grant"

// clientCredentials is the client-credentials method: the gateway's own
// service identity at the backend's authorization server (RFC 6749 §4.4),
// one credential per backend whoever calls.
type clientCredentials struct {
	x                  *Exchanger
	backend            string
	endpoint           *endpoint
	auth               clientAuth
	audience, resource string
	scopes             []string
}

func (x *Exchanger) newClientCredentials(b config.Backend) (upstream.Injector, error) {
	a := newAuthConfig(b)
	cc := &clientCredentials{x: x, backend: b.Name}
	cc.endpoint = readEndpoint(x, a)
	client := a.clientAuth("")
	// The gateway's own identity: no agent fills in what is missing.
	if client.clientID == "" && a.str("client_id") == "" {
		a.fail("client_id", "required for client-credentials")
	}
	if client.method == authPrivateKey && client.key == nil && a.str("private_key") == "" && a.str("private_key_file") == "" {
		a.fail("client_secret", "required for client-credentials (or private_key with client_auth_method private_key_jwt)")
	}
	cc.auth = clientAuth(client)
	cc.audience = a.str("audience")
	cc.resource = a.str("resource")
	if cc.resource != "" {
		if err := checkAbsoluteURI(cc.resource); err != nil {
			a.fail("resource", "%v", err)
		}
	}
	cc.scopes = a.scopes("scopes")
	if err := a.err(); err != nil {
		return nil, err
	}
	return x.newInjector(b, MethodClientCredentials, false, cc.scopes, cc.fetch), nil
}

func (cc *clientCredentials) fetch(ctx context.Context, _ upstream.Caller) (token, error) {
	ep, err := cc.endpoint.get(ctx)
	if err != nil {
		return token{}, err
	}
	params := url.Values{}
	// Okta and Hydra name the API with audience; RFC 8707 servers with resource.
	if cc.audience != "" {
		params.Set("audience", cc.audience)
	}
	if cc.resource != "" {
		params.Set("resource", cc.resource)
	}
	tok, err := cc.x.requestToken(ctx, cc.backend, tokenCall{
		step: stepClientCredentials, endpoint: ep, grant: "client_credentials", params: params, scopes: cc.scopes, auth: cc.auth,
	})
	if err != nil {
		return token{}, err
	}
	if err := checkBearer(stepClientCredentials, tok); err != nil {
		return token{}, err
	}
	return token{value: tok.AccessToken, expiresIn: expiresIn(tok)}, nil
}
