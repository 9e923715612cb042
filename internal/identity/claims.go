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
	clientID := ""
	for _, name := range []string{"cid", "azp", "client_id"} {
		v, err := stringClaim(claims, name)
		if err != nil {
			return nil, err
		}
		if v != "" {
			clientID = v
			break
		}
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
