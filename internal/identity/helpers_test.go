package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

func startIdP(tb testing.TB, opts testidp.Options) *testidp.Server {
	tb.Helper()
	s, err := testidp.Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("start testidp: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func issuerOf(idp *testidp.Server) config.Issuer {
	return config.Issuer{Issuer: idp.Issuer(), Audiences: []string{idp.Audience()}}
}

func newVerifier(tb testing.TB, cfg config.Identity, opts ...Option) *Verifier {
	tb.Helper()
	v, err := NewVerifier(tb.Context(), cfg, opts...)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	tb.Cleanup(v.Close)
	return v
}

func mint(tb testing.TB, idp *testidp.Server, claims map[string]any) string {
	tb.Helper()
	tok, err := idp.Mint(claims)
	if err != nil {
		tb.Fatalf("Mint: %v", err)
	}
	return tok
}

// signWith signs claims with an arbitrary key and header, for forgeries.
func signWith(tb testing.TB, key any, alg jwa.SignatureAlgorithm, kid string, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			tb.Fatal(err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		tb.Fatalf("sign %s: %v", alg, err)
	}
	return string(signed)
}

// unsignedToken is a JWS with alg none and an empty signature.
func unsignedToken(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

// validClaims are claims testidp would fill, for tokens signed elsewhere.
func validClaims(idp *testidp.Server) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": idp.Issuer(), "aud": idp.Audience(), "sub": "mallory",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func newRSAKey(tb testing.TB) jwk.Key {
	tb.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func kidOf(k jwk.Key) string {
	kid, _ := k.KeyID()
	return kid
}

// asError asserts err is an *Error with the given reason.
func asError(tb testing.TB, err error, reason string) *Error {
	tb.Helper()
	var verr *Error
	if !errors.As(err, &verr) {
		tb.Fatalf("error %v (%T) is not an *identity.Error", err, err)
	}
	if verr.Code != CodeInvalidToken {
		tb.Errorf("Code = %q, want invalid_token", verr.Code)
	}
	if verr.Reason() != reason {
		tb.Errorf("Reason = %q, want %q (%v)", verr.Reason(), reason, err)
	}
	if verr.Description == "" {
		tb.Error("empty Description")
	}
	return verr
}

// flakyTransport stands between the verifier and a real testidp: down makes
// every request fail like an unreachable host, hang blocks until the
// request's context ends, and notFound answers 404 for one path.
type flakyTransport struct {
	down     atomic.Bool
	hang     atomic.Bool
	notFound atomic.Value // string path
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.down.Load() {
		return nil, errors.New("dial tcp: connect: network is unreachable")
	}
	if f.hang.Load() {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	if p, _ := f.notFound.Load().(string); p != "" && req.URL.Path == p {
		return &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (f *flakyTransport) client() *http.Client { return &http.Client{Transport: f} }

// deadline is a context that ends soon, for calls that must not hang.
func deadline(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), d)
	tb.Cleanup(cancel)
	return ctx
}

func headerKid(tb testing.TB, token string) string {
	tb.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		tb.Fatalf("parse token: %v", err)
	}
	kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	return kid
}

// signRaw signs claims with the IdP's current key under exactly the header
// members given (alg RS256 and the key's kid are added), so tests can send
// typ and crit values testidp never writes. The JWS is built by hand: a
// JOSE library may refuse to produce the headers under test.
func signRaw(tb testing.TB, idp *testidp.Server, header map[string]any, claims map[string]any) string {
	tb.Helper()
	key := idp.SigningKey()
	h := map[string]any{"alg": "RS256", "kid": kidOf(key)}
	for k, v := range header {
		h[k] = v
	}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(hb) + "." + enc(pb)
	var raw rsa.PrivateKey
	if err := jwk.Export(key, &raw); err != nil {
		tb.Fatalf("export signing key: %v", err)
	}
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, &raw, crypto.SHA256, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + enc(sig)
}
