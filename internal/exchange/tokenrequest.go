package exchange

import (
	"context"
	"errors"
	"fmt"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Token endpoint client authentication methods (RFC 6749 §2.3, OIDC Core §9).
const (
	authSecretBasic = "client_secret_basic"
	authSecretPost  = "client_secret_post"
	authPrivateKey  = "private_key_jwt"
)

// clientAuth is how the gateway authenticates to one token endpoint.
type clientAuth struct {
	method   string
	clientID string
	secret   string
	key      jwk.Key // private_key_jwt only
}

// tokenCall is one token request.
type tokenCall struct {
	// step names the request in errors ("IdP token exchange").
	step     string
	endpoint string
	auth     clientAuth
	grant    string
	params   url.Values
	scopes   []string
}

// requestToken posts a token request and returns the token response.
//
// x/oauth2 has no token-exchange (RFC 8693) or assertion-grant (RFC 7523)
// helper, but its clientcredentials.Config lets EndpointParams override
// grant_type ("to allow interoperability", says its source). Going through
// it keeps the wire details to a well-kept library: the form encoding, the
// RFC 6749 §2.3.1 encoding of Basic credentials, JSON and form responses,
// and RFC 6749 §5.2 error parsing. What it cannot do, private_key_jwt
// client authentication, is added as parameters with a fresh assertion.
func (x *Exchanger) requestToken(ctx context.Context, backend string, call tokenCall) (*oauth2.Token, error) {
	params := url.Values{"grant_type": {call.grant}}
	for k, v := range call.params {
		params[k] = v
	}
	conf := clientcredentials.Config{
		ClientID:       call.auth.clientID,
		TokenURL:       call.endpoint,
		Scopes:         call.scopes,
		EndpointParams: params,
	}
	switch call.auth.method {
	case authSecretBasic:
		conf.ClientSecret, conf.AuthStyle = call.auth.secret, oauth2.AuthStyleInHeader
	case authSecretPost:
		conf.ClientSecret, conf.AuthStyle = call.auth.secret, oauth2.AuthStyleInParams
	case authPrivateKey:
		assertion, err := signClientAssertion(call.auth.key, call.auth.clientID, call.endpoint, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%s: client assertion: %w", call.step, err)
		}
		params.Set("client_assertion_type", clientAssertionTypeJWT)
		params.Set("client_assertion", assertion)
		// With no secret, x/oauth2 sends only client_id in the body.
		conf.AuthStyle = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("%s: client authentication method %q is not supported", call.step, call.auth.method)
	}
	tok, err := conf.Token(context.WithValue(ctx, oauth2.HTTPClient, x.httpc))
	if err != nil {
		return nil, x.tokenError(backend, call, params, err)
	}
	return tok, nil
}

// tokenError turns a failed token request into an error that names the
// step and the OAuth code but holds no token: the server's description is
// kept only in RFC 6749's character set, and withheld if it echoes anything
// we sent. Details (endpoint, status) go to the log.
func (x *Exchanger) tokenError(backend string, call tokenCall, sent url.Values, err error) error {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		status := 0
		if rerr.Response != nil {
			status = rerr.Response.StatusCode
		}
		code := secrets.Foreign(rerr.ErrorCode, 64)
		desc := secrets.Foreign(rerr.ErrorDescription, maxDescription)
		if echoes(desc, sent) {
			desc = "(description withheld: it repeats a credential)"
		}
		x.log.Warn("token request refused", "backend", backend, "step", call.step, "endpoint", call.endpoint, "status", status, "error", code, "error_description", desc)
		if code == "" {
			return fmt.Errorf("%s: token endpoint answered HTTP %d", call.step, status)
		}
		msg := call.step
		if desc != "" {
			msg += ": " + desc
		}
		return &oauthError{Code: code, Err: errors.New(msg)}
	}
	x.log.Warn("token request failed", "backend", backend, "step", call.step, "endpoint", call.endpoint, "err", err)
	var uerr *url.Error
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Errorf("%s: token endpoint %w", call.step, errTimeout)
	case errors.As(err, &uerr):
		return fmt.Errorf("%s: token endpoint %w", call.step, errUnreachable)
	}
	// x/oauth2's own complaints (no access_token, unparsable body) carry no
	// token; the body itself is not quoted.
	return fmt.Errorf("%s: invalid token response", call.step)
}

// echoes reports whether desc repeats a long value we sent (a token or an
// assertion that a careless server quotes back).
func echoes(desc string, sent url.Values) bool {
	for _, vs := range sent {
		for _, v := range vs {
			if len(v) >= 24 && strings.Contains(desc, v[:24]) {
				return true
			}
		}
	}
	return false
}

// expiresIn reads expires_in from a token response (a JSON number, or a
// string in form-encoded responses); 0 when absent or unusable.
func expiresIn(tok *oauth2.Token) time.Duration {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 || secs > 1<<31 {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

// extraString reads a string member of a token response.
func extraString(tok *oauth2.Token, name string) string {
	s, _ := tok.Extra(name).(string)
	return s
}

// checkBearer refuses tokens the gateway cannot present as a bearer token
// (DPoP-bound, N_A); an absent token_type is taken as Bearer.
func checkBearer(step string, tok *oauth2.Token) error {
	if t := tok.TokenType; t != "" && !strings.EqualFold(t, "bearer") {
		return fmt.Errorf("%s: token_type %q is not Bearer", step, secrets.Foreign(t, 32))
	}
	return nil
}
