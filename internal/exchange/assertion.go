package exchange

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/mcpgw/mcpgw/internal/config"
)

// assertionLifetime is the validity of a private_key_jwt client assertion:
// Okta and the RFC 7523 profile want at most 5 minutes; one is plenty for
// a request sent at once.
const assertionLifetime = time.Minute

// signClientAssertion makes a private_key_jwt client assertion (RFC 7523
// §2.2, OIDC Core §9): iss = sub = clientID, aud = the token endpoint, a
// unique jti, iat and a short exp.
func signClientAssertion(key jwk.Key, clientID, audience string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("no private key")
	}
	if clientID == "" {
		return "", errors.New("no client_id")
	}
	alg, err := signingAlg(key)
	if err != nil {
		return "", err
	}
	tok, err := jwt.NewBuilder().
		Issuer(clientID).
		Subject(clientID).
		Audience([]string{audience}).
		JwtID(rand.Text()).
		IssuedAt(now).
		Expiration(now.Add(assertionLifetime)).
		Build()
	if err != nil {
		return "", fmt.Errorf("build claims: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return string(signed), nil
}

// parsePrivateKey reads a private key given as a JWK (JSON, as the Okta
// adapter stores it) or PEM (PKCS#1, PKCS#8 or SEC 1). Errors never quote
// the material.
func parsePrivateKey(material string) (jwk.Key, error) {
	material = strings.TrimSpace(material)
	if material == "" {
		return nil, errors.New("empty")
	}
	var (
		key jwk.Key
		err error
	)
	if strings.HasPrefix(material, "{") {
		key, err = jwk.ParseKey([]byte(material))
	} else {
		key, err = jwk.ParseKey([]byte(material), jwk.WithPEM(true))
	}
	if err != nil {
		return nil, errors.New("neither a JWK nor a PEM private key")
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || !private {
		return nil, errors.New("not a private key (a public key or a symmetric secret)")
	}
	if _, err := signingAlg(key); err != nil {
		return nil, err
	}
	return key, nil
}

// agentKey is the agent's private key (private_key or private_key_file).
func agentKey(a config.Agent) (jwk.Key, error) {
	material, err := config.ResolveSecret(a.PrivateKey, a.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("agents.%s.private_key: %w", a.Name, err)
	}
	if material == "" {
		return nil, fmt.Errorf("agents.%s.private_key: required for private_key_jwt", a.Name)
	}
	key, err := parsePrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("agents.%s.private_key: %w", a.Name, err)
	}
	return key, nil
}

// signingAlg is the key's own alg, else the usual one for its type. Never
// HMAC or none: the key must be asymmetric.
func signingAlg(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	if a, ok := key.Algorithm(); ok {
		alg, ok := jwa.LookupSignatureAlgorithm(a.String())
		if !ok || !allowedAlg(alg) {
			return jwa.EmptySignatureAlgorithm(), fmt.Errorf("key alg %s is not one of RS256, PS256, ES256, ES384, EdDSA", a.String())
		}
		return alg, nil
	}
	switch key.KeyType() {
	case jwa.RSA():
		return jwa.RS256(), nil
	case jwa.EC():
		var crv jwa.EllipticCurveAlgorithm
		if ec, ok := key.(interface {
			Crv() (jwa.EllipticCurveAlgorithm, bool)
		}); ok {
			crv, _ = ec.Crv()
		}
		switch crv {
		case jwa.P256():
			return jwa.ES256(), nil
		case jwa.P384():
			return jwa.ES384(), nil
		}
		return jwa.EmptySignatureAlgorithm(), fmt.Errorf("EC curve %s is not supported (P-256, P-384)", crv)
	case jwa.OKP():
		return jwa.EdDSA(), nil
	}
	return jwa.EmptySignatureAlgorithm(), fmt.Errorf("key type %s cannot sign client assertions", key.KeyType())
}

func allowedAlg(a jwa.SignatureAlgorithm) bool {
	for _, ok := range []jwa.SignatureAlgorithm{jwa.RS256(), jwa.PS256(), jwa.ES256(), jwa.ES384(), jwa.EdDSA()} {
		if a == ok {
			return true
		}
	}
	return false
}

// CheckAgentKey parses agent a's private key when it has one, so that a key
// that does not parse is refused where the agent is configured (at start
// and at every admin write), naming agents.<name>.private_key, rather than
// at the agent's first call.
func CheckAgentKey(a config.Agent) error {
	if a.PrivateKey == "" && a.PrivateKeyFile == "" {
		return nil
	}
	_, err := agentKey(a)
	return err
}

// ParsePrivateKey is parsePrivateKey for the gateway's other OAuth client,
// the authorization server facade's client at the IdP (internal/oauthserver).
func ParsePrivateKey(material string) (jwk.Key, error) { return parsePrivateKey(material) }

// SignClientAssertion is signClientAssertion for internal/oauthserver.
func SignClientAssertion(key jwk.Key, clientID, audience string, now time.Time) (string, error) {
	return signClientAssertion(key, clientID, audience, now)
}
