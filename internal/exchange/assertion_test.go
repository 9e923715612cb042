package exchange

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func jwkJSON(t *testing.T, raw any, kid string) string {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePrivateKeyAndSignAssertion(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaJWKWithAlg := func() string {
		var m map[string]any
		if err := json.Unmarshal([]byte(jwkJSON(t, rsaKey, "k1")), &m); err != nil {
			t.Fatal(err)
		}
		m["alg"] = "PS256"
		b, _ := json.Marshal(m)
		return string(b)
	}()
	hsJWK := func() string {
		var m map[string]any
		_ = json.Unmarshal([]byte(jwkJSON(t, rsaKey, "")), &m)
		m["alg"] = "HS256"
		b, _ := json.Marshal(m)
		return string(b)
	}()

	tests := []struct {
		name     string
		material string
		alg      jwa.SignatureAlgorithm
		kid      string
		wantErr  string
	}{
		{name: "JWK EC with kid (the Okta adapter's form)", material: jwkJSON(t, ecKey, "agent-key-1"), alg: jwa.ES256(), kid: "agent-key-1"},
		{name: "JWK RSA with alg", material: rsaJWKWithAlg, alg: jwa.PS256(), kid: "k1"},
		{name: "PEM PKCS#8 RSA", material: pemOf(t, "PRIVATE KEY", pkcs8(rsaKey)), alg: jwa.RS256()},
		{name: "PEM PKCS#1 RSA", material: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), alg: jwa.RS256()},
		{name: "PEM SEC 1 EC", material: "\n  " + pemOf(t, "EC PRIVATE KEY", sec1), alg: jwa.ES256()},
		{name: "PEM PKCS#8 P-384", material: pemOf(t, "PRIVATE KEY", pkcs8(p384)), alg: jwa.ES384()},
		{name: "PEM PKCS#8 Ed25519", material: pemOf(t, "PRIVATE KEY", pkcs8(edKey)), alg: jwa.EdDSA()},

		{name: "public JWK", material: jwkJSON(t, &ecKey.PublicKey, ""), wantErr: "not a private key"},
		{name: "PEM public key", material: pemOf(t, "PUBLIC KEY", pub), wantErr: "not a private key"},
		{name: "symmetric JWK", material: `{"kty":"oct","k":"c2VjcmV0c2VjcmV0"}`, wantErr: "not a private key"},
		{name: "HMAC alg on an RSA key", material: hsJWK, wantErr: "key alg HS256 is not one of"},
		{name: "P-521", material: pemOf(t, "PRIVATE KEY", pkcs8(p521)), wantErr: "P-521"},
		{name: "garbage", material: "-----BEGIN NONSENSE-----", wantErr: "neither a JWK nor a PEM private key"},
		{name: "empty", material: "  ", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := parsePrivateKey(tt.material)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePrivateKey: %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePrivateKey: %v", err)
			}
			now := time.Now()
			const endpoint = "https://idp.example/oauth2/v1/token"
			signed, err := signClientAssertion(key, "0oa-agent", endpoint, now)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			pubKey, err := key.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := jws.Parse([]byte(signed))
			if err != nil {
				t.Fatal(err)
			}
			hdr := msg.Signatures()[0].ProtectedHeaders()
			if alg, _ := hdr.Algorithm(); alg != tt.alg {
				t.Errorf("alg = %s, want %s", alg, tt.alg)
			}
			if kid, _ := hdr.KeyID(); kid != tt.kid {
				t.Errorf("kid = %q, want %q", kid, tt.kid)
			}
			tok, err := jwt.Parse([]byte(signed), jwt.WithKey(tt.alg, pubKey), jwt.WithValidate(true),
				jwt.WithIssuer("0oa-agent"), jwt.WithSubject("0oa-agent"), jwt.WithAudience(endpoint))
			if err != nil {
				t.Fatalf("assertion does not verify: %v", err)
			}
			exp, _ := tok.Expiration()
			iat, _ := tok.IssuedAt()
			jti, _ := tok.JwtID()
			if life := exp.Sub(iat); life <= 0 || life > 5*time.Minute {
				t.Errorf("assertion lifetime %s, want (0, 5m]", life)
			}
			if len(jti) < 16 {
				t.Errorf("jti %q is too short to be unique", jti)
			}
		})
	}
}

func TestAgentKeyFromFile(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/agent.jwk"
	if err := writeFile(path, jwkJSON(t, ecKey, "f1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		agent   config.Agent
		wantErr string
	}{
		{name: "file", agent: config.Agent{Name: "cursor", PrivateKeyFile: path}},
		{name: "missing file", agent: config.Agent{Name: "cursor", PrivateKeyFile: path + ".nope"}, wantErr: "agents.cursor.private_key: read secret file"},
		{name: "none", agent: config.Agent{Name: "cursor"}, wantErr: "agents.cursor.private_key: required"},
		{name: "not a key", agent: config.Agent{Name: "cursor", PrivateKey: "hunter2"}, wantErr: "agents.cursor.private_key: neither a JWK nor a PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentKey(tt.agent)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("agentKey: %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the key material: %v", err)
			}
		})
	}
}

func TestOktaOrgTokenEndpoint(t *testing.T) {
	tests := []struct{ issuer, want string }{
		{"https://acme.okta.com", "https://acme.okta.com/oauth2/v1/token"},
		{"https://acme.okta.com/oauth2/default", "https://acme.okta.com/oauth2/v1/token"},
		{"https://acme.okta.com:8443/oauth2/aus1/", "https://acme.okta.com:8443/oauth2/v1/token"},
		{"acme.okta.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := oktaOrgTokenEndpoint(tt.issuer)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("oktaOrgTokenEndpoint(%q) = %q, %v; want %q", tt.issuer, got, err, tt.want)
		}
	}
}

func TestCacheKeyHasNoCollisions(t *testing.T) {
	pairs := [][2][]string{
		{{"a", "bc"}, {"ab", "c"}},
		{{"a\x00b", "c"}, {"a", "b\x00c"}},
		{{"", "x"}, {"x", ""}},
	}
	for _, p := range pairs {
		if cacheKey(p[0]...) == cacheKey(p[1]...) {
			t.Errorf("cacheKey(%q) == cacheKey(%q)", p[0], p[1])
		}
	}
}

func TestSafeTextAndEchoes(t *testing.T) {
	if got := secrets.Foreign("bad\n\"grant\"\\ é", 64); got != "badgrant" {
		t.Errorf("safeText = %q", got)
	}
	if got := secrets.Foreign(strings.Repeat("x", 300), maxDescription); len(got) != maxDescription+3 {
		t.Errorf("safeText did not cut: %d bytes", len(got))
	}
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	sent := url.Values{"subject_token": {tok}, "grant_type": {"x"}}
	if !echoes("the token "+tok[:30]+" is bad", sent) {
		t.Error("echoes missed a quoted token")
	}
	if echoes("subject token expired", sent) {
		t.Error("echoes flagged an innocent description")
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
