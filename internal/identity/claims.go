package identity

import (
	"strings"
	"time"
)

// principalFrom builds the Principal of a verified token. claims is the
// whole payload decoded as JSON (numbers are float64), kept as Claims.
func principalFrom(claims map[string]any, issuer string, audience []string, expiresAt time.Time, groupsClaim string) (*Principal, error) {
	sub, err := stringClaim(claims, "sub")
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return nil, invalidToken(ReasonMissingClaim, "token claim sub is missing, null or empty", nil)
	}
	clientID, err := clientClaim(claims)
	if err != nil {
		return nil, err
	}
	// Okta puts scopes in scp as an array, Azure AD in scp as a string,
	// RFC 9068 in scope as a string: accept either shape under either name.
	scopes, err := stringsClaim(claims, "scp", strings.Fields)
	if err != nil {
		return nil, err
	}
	if scopes == nil {
		if scopes, err = stringsClaim(claims, "scope", strings.Fields); err != nil {
			return nil, err
		}
	}
	groups, err := stringsClaim(claims, groupsClaim, func(s string) []string { return []string{s} })
	if err != nil {
		return nil, err
	}
	return &Principal{
		Subject:   sub,
		Issuer:    issuer,
		Audience:  audience,
		ClientID:  clientID,
		Scopes:    scopes,
		Groups:    groups,
		Claims:    claims,
		ExpiresAt: expiresAt,
	}, nil
}

// clientClaims name the OAuth client a token was issued to, as IdPs spell
// it: Okta cid, OIDC azp, RFC 9068 client_id, Azure AD v1 appid.
var clientClaims = []string{"cid", "azp", "client_id", "appid"}

// clientClaim is the client the token proves, "" when it names none. A token
// whose client claims name different clients is refused: which one counts
// would depend on the order they are read in, and the agent binding must
// not hinge on that.
func clientClaim(claims map[string]any) (string, error) {
	client := ""
	for _, name := range clientClaims {
		v, err := stringClaim(claims, name)
		if err != nil {
			return "", err
		}
		switch {
		case v == "":
		case client == "":
			client = v
		case v != client:
			return "", invalidToken(ReasonClaimType, "token claims cid, azp, client_id and appid name different clients", nil)
		}
	}
	return client, nil
}

// stringClaim is claims[name] as a string; "" when absent.
func stringClaim(claims map[string]any, name string) (string, error) {
	switch v := claims[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", claimTypeError(name, "a string")
	}
}

// stringsClaim is claims[name] as a list of strings: a JSON array of
// strings, or a single string turned into a list by fromString. nil when absent.
func stringsClaim(claims map[string]any, name string, fromString func(string) []string) ([]string, error) {
	switch v := claims[name].(type) {
	case nil:
		return nil, nil
	case string:
		return fromString(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, claimTypeError(name, "an array of strings")
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, claimTypeError(name, "an array of strings or a string")
	}
}

func claimTypeError(name, want string) *Error {
	// The claim name comes from configuration or this file, never from the
	// token, so it is safe in the description.
	return invalidToken(ReasonClaimType, "token claim "+name+" must be "+want, nil)
}
