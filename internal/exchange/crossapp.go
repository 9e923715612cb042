package exchange

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/oauthmeta"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Steps of the identity assertion authorization grant, as errors name them.
const (
	stepIDJAG    = "IdP token exchange"
	stepResource = "resource authorization server token request"
)

// crossApp is the okta-cross-app method: the Identity Assertion
// Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant) as
// Okta Cross App Access implements it. Step 1 exchanges the user's token at
// the IdP for an ID-JAG (RFC 8693, the agent authenticating with
// private_key_jwt); step 2 redeems the ID-JAG at the resource authorization
// server (RFC 7523 jwt-bearer) for the backend's access token.
type crossApp struct {
	x       *Exchanger
	backend config.Backend

	dynamic bool
	// targetAS is the resource authorization server's issuer (the ID-JAG
	// audience); targetAudience the resource (RFC 8707) the token is for.
	targetAS, targetTokenEndpoint, targetAudience string
	// client authenticates step 2; the agent's client_id and key fill in
	// what is not configured (the same-org Okta case).
	client clientConfig
	// audienceParam names the step-2 parameter carrying targetAudience:
	// "none" (the ID-JAG carries it, as the draft has it), "resource" or
	// "audience" (servers that ignore RFC 8707, such as ORY Hydra).
	audienceParam string

	// idpIssuer is the IdP whose users' tokens this backend exchanges
	// (auth_config idp_issuer); empty: the agent's issuer, else the only
	// trusted one.
	idpIssuer string
	// idpTokenEndpoint empty: the Okta org's, derived from that issuer.
	idpTokenEndpoint string
	scopes           []string
	subjectTokenType string

	mu sync.Mutex
	// resolved is the target once discovered (or as configured).
	resolved *target
}

// target is where step 2 goes.
type target struct {
	issuer, tokenEndpoint, audience string
}

func (x *Exchanger) newCrossApp(b config.Backend) (upstream.Injector, error) {
	a := newAuthConfig(b)
	ca := &crossApp{x: x, backend: b}
	ca.dynamic = a.oneOf("id_jag_mode", "static", "static", "dynamic") == "dynamic"
	ca.targetAS = a.httpURL("target_authorization_server")
	ca.targetTokenEndpoint = a.httpURL("target_token_endpoint")
	ca.targetAudience = a.str("target_audience")
	ca.client = a.clientAuth("target_")
	ca.audienceParam = a.oneOf("target_audience_parameter", "none", "none", "resource", "audience")
	if ca.audienceParam != "none" && ca.targetAudience == "" && !ca.dynamic {
		a.fail("target_audience", "required when target_audience_parameter is %s", ca.audienceParam)
	}
	ca.idpIssuer = a.httpURL("idp_issuer")
	if ca.idpIssuer != "" && len(x.issuers) > 0 && !slices.Contains(x.issuers, ca.idpIssuer) {
		a.fail("idp_issuer", "%q is not one of identity.issuers", ca.idpIssuer)
	}
	ca.idpTokenEndpoint = a.httpURL("idp_token_endpoint")
	ca.scopes = a.scopes("scopes")
	ca.subjectTokenType = a.tokenType("subject_token_type", TokenTypeAccessToken)
	if !ca.dynamic && ca.targetAS == "" && a.str("target_authorization_server") == "" {
		a.fail("target_authorization_server", "required when id_jag_mode is static")
	}
	if ca.dynamic {
		if err := checkHTTPURL(b.URL); err != nil {
			a.errs = append(a.errs, fmt.Errorf("backends.%s.url: %w (id_jag_mode dynamic discovers from it)", b.Name, err))
		}
	}
	if err := a.err(); err != nil {
		return nil, err
	}
	if !ca.dynamic && ca.targetTokenEndpoint != "" {
		ca.resolved = &target{issuer: ca.targetAS, tokenEndpoint: ca.targetTokenEndpoint, audience: ca.targetAudience}
	}
	return x.newInjector(b, MethodOktaCrossApp, true, ca.scopes, ca.fetch), nil
}

func (ca *crossApp) fetch(ctx context.Context, c upstream.Caller) (token, error) {
	if c.Token == "" {
		return token{}, errors.New("the caller has no bearer token to exchange")
	}
	if c.Principal != nil && c.Principal.Via != "" {
		return ca.fetchForFacadeLogin(ctx, c)
	}
	if c.Agent.ClientID == "" {
		return token{}, fmt.Errorf("agents.%s.client_id: required for okta-cross-app", c.Agent.Name)
	}
	key, err := agentKey(c.Agent)
	if err != nil {
		return token{}, err
	}
	idpEndpoint, err := ca.idpEndpoint(c)
	if err != nil {
		return token{}, err
	}
	tgt, err := ca.resolveTarget(ctx)
	if err != nil {
		return token{}, err
	}

	return ca.exchangeIDJAG(ctx, c, idpEndpoint, tgt, c.Token, ca.subjectTokenType,
		clientAuth{method: authPrivateKey, clientID: c.Agent.ClientID, key: key},
		func() (clientAuth, error) {
			return ca.client.forAgent(c.Agent, func() (jwk.Key, error) { return key, nil })
		})
}

// fetchForFacadeLogin is Cross App Access for a person who logged in through
// the gateway's own authorization server: the IdP's ID token of that login
// is the subject token (Okta's documented form), and the gateway's client,
// to which it was issued, is the requesting app at the IdP and, unless the
// backend names another target client, at the resource's server.
func (ca *crossApp) fetchForFacadeLogin(ctx context.Context, c upstream.Caller) (token, error) {
	f := ca.x.facade
	if f == nil || c.IDToken == nil {
		return token{}, errors.New("the caller logged in through the gateway's authorization server, but no oauth.upstream client is configured to exchange its ID token")
	}
	idToken, err := c.IDToken(ctx)
	if err != nil {
		return token{}, fmt.Errorf("the login's ID token: %w", err)
	}
	idpEndpoint, err := ca.idpEndpoint(c)
	if err != nil {
		return token{}, err
	}
	tgt, err := ca.resolveTarget(ctx)
	if err != nil {
		return token{}, err
	}
	return ca.exchangeIDJAG(ctx, c, idpEndpoint, tgt, idToken, TokenTypeIDToken, f.auth(), func() (clientAuth, error) {
		if ca.client.clientID != "" {
			return ca.client.forAgent(c.Agent, func() (jwk.Key, error) { return f.Key, nil })
		}
		return f.auth(), nil
	})
}

// exchangeIDJAG is the two steps: the subject token for an ID-JAG at the
// IdP (authenticated as idpAuth), then the ID-JAG for the resource's access
// token (authenticated as resourceAuth returns).
func (ca *crossApp) exchangeIDJAG(ctx context.Context, c upstream.Caller, idpEndpoint string, tgt target, subject, subjectType string,
	idpAuth clientAuth, resourceAuth func() (clientAuth, error)) (token, error) {
	// Step 1: the user's token for an ID-JAG naming the resource AS.
	params := url.Values{
		"requested_token_type": {TokenTypeIDJAG},
		"subject_token":        {subject},
		"subject_token_type":   {subjectType},
		"audience":             {tgt.issuer},
	}
	if tgt.audience != "" {
		params.Set("resource", tgt.audience)
	}
	grant, err := ca.x.requestToken(ctx, ca.backend.Name, tokenCall{
		step: stepIDJAG, endpoint: idpEndpoint, grant: GrantTokenExchange, params: params, scopes: ca.scopes,
		auth: idpAuth,
	})
	if err != nil {
		return token{}, err
	}
	if issued := extraString(grant, "issued_token_type"); issued != TokenTypeIDJAG {
		return token{}, fmt.Errorf("%s: issued_token_type is %q, not %s", stepIDJAG, secrets.Foreign(issued, 80), TokenTypeIDJAG)
	}

	// Step 2: the ID-JAG for the backend's access token.
	auth, err := resourceAuth()
	if err != nil {
		return token{}, err
	}
	params = url.Values{"assertion": {grant.AccessToken}}
	if ca.audienceParam != "none" && tgt.audience != "" {
		params.Set(ca.audienceParam, tgt.audience)
	}
	access, err := ca.x.requestToken(ctx, ca.backend.Name, tokenCall{
		step: stepResource, endpoint: tgt.tokenEndpoint, grant: GrantJWTBearer, params: params, scopes: ca.scopes, auth: auth,
	})
	if err != nil {
		return token{}, err
	}
	if err := checkBearer(stepResource, access); err != nil {
		return token{}, err
	}
	return token{value: access.AccessToken, expiresIn: expiresIn(access)}, nil
}

// idpEndpoint is where step 1 sends the caller's token, chosen from
// configuration only. The caller's token and the agent's client assertion
// go to an IdP's token endpoint, so the caller's own iss must not pick it:
// with several issuers trusted, a token minted by issuer B would otherwise
// carry A's agent credentials to B. The IdP is idp_issuer, else the agent's
// issuer, else the only trusted issuer; the caller's token must come from
// it, or nothing is sent.
func (ca *crossApp) idpEndpoint(c upstream.Caller) (string, error) {
	want := ca.idpIssuer
	switch agent := c.Agent.Issuer; {
	case want != "" && agent != "" && want != agent:
		return "", fmt.Errorf("backends.%s.auth_config.idp_issuer: names another issuer than agents.%s.issuer; the caller's token is not sent", ca.backend.Name, c.Agent.Name)
	case want == "" && agent != "":
		want = agent
	case want == "" && len(ca.x.issuers) == 1:
		want = ca.x.issuers[0]
	case want == "" && len(ca.x.issuers) > 1:
		return "", fmt.Errorf("backends.%s.auth_config.idp_issuer: required (or agents.%s.issuer) when several issuers are trusted: the IdP token endpoint must not be chosen by the caller's token", ca.backend.Name, c.Agent.Name)
	}
	if want != "" && c.Principal.Issuer != want {
		return "", fmt.Errorf("the caller's token was issued by another issuer than backends.%s exchanges at (auth_config.idp_issuer or agents.%s.issuer); it is not sent", ca.backend.Name, c.Agent.Name)
	}
	if ca.idpTokenEndpoint != "" {
		return ca.idpTokenEndpoint, nil
	}
	if want == "" {
		// Only an Exchanger built without Deps.Issuers (a library user)
		// gets here: nothing configured says which IdP this is.
		return "", fmt.Errorf("backends.%s.auth_config.idp_token_endpoint: required: no idp_issuer, agent issuer or trusted issuer is configured to derive it from", ca.backend.Name)
	}
	return oktaOrgTokenEndpoint(want)
}

// resolveTarget resolves step 2's destination once: the configured values, with
// what is missing discovered (RFC 9728 from the backend in dynamic mode,
// then RFC 8414 / OIDC metadata of the authorization server). A failure is
// not remembered here; the injector caches it briefly.
func (ca *crossApp) resolveTarget(ctx context.Context) (target, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.resolved != nil {
		return *ca.resolved, nil
	}
	t := target{issuer: ca.targetAS, tokenEndpoint: ca.targetTokenEndpoint, audience: ca.targetAudience}
	if ca.dynamic && (t.issuer == "" || t.audience == "") {
		md, err := oauthmeta.FetchResource(ctx, ca.x.httpc, ca.backend.URL)
		if err != nil {
			ca.x.log.Warn("protected resource metadata discovery failed", "backend", ca.backend.Name, "err", err)
			return target{}, fmt.Errorf("discovery of the backend's protected resource metadata failed: %w", errUnreachableOrInvalid(err))
		}
		if t.issuer == "" {
			t.issuer = md.AuthorizationServers[0]
		}
		if t.audience == "" {
			t.audience = md.Resource
		}
	}
	if t.tokenEndpoint == "" {
		endpoint, err := ca.x.discoverTokenEndpoint(ctx, t.issuer)
		if err != nil {
			ca.x.log.Warn("authorization server metadata discovery failed", "backend", ca.backend.Name, "issuer", t.issuer, "err", err)
			return target{}, fmt.Errorf("discovery of the resource authorization server's token endpoint failed: %w", errUnreachableOrInvalid(err))
		}
		t.tokenEndpoint = endpoint
	}
	ca.resolved = &t
	return t, nil
}

// errUnreachableOrInvalid reduces a discovery error to its kind, so the
// client-facing text carries no internal URL (the log has them).
func errUnreachableOrInvalid(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return errUnreachable
	}
	return errors.New("metadata missing or invalid")
}

// oktaOrgTokenEndpoint is the token endpoint of the Okta org of a
// configured issuer: ID-JAGs come from the org authorization server
// (/oauth2/v1/token) even when the user's token came from a custom one
// (https://org.okta.com/oauth2/default).
func oktaOrgTokenEndpoint(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("idp_token_endpoint is not set and the configured issuer is not an http(s) URL to derive it from")
	}
	return u.Scheme + "://" + u.Host + "/oauth2/v1/token", nil
}
