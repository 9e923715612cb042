package testidp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func getJSON(t *testing.T, url string, dst any) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	if dst != nil {
		if err := json.Unmarshal(body, dst); err != nil {
			t.Fatalf("decode %s: %v (%s)", url, err, body)
		}
	}
	return resp
}

// fetchKeys reads the published JWKS the way a verifier would.
func fetchKeys(t *testing.T, s *Server) jwk.Set {
	t.Helper()
	set, err := jwk.Fetch(t.Context(), s.JWKSURL())
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	return set
}

// verify checks token against the published JWKS and returns its claims.
func verify(t *testing.T, s *Server, token string) map[string]any {
	t.Helper()
	if _, err := jwt.Parse([]byte(token), jwt.WithKeySet(fetchKeys(t, s)), jwt.WithValidate(false)); err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func headerOf(t *testing.T, token string) jws.Headers {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return msg.Signatures()[0].ProtectedHeaders()
}

func TestStartDefaults(t *testing.T) {
	s := startServer(t, Options{})
	if !strings.HasPrefix(s.Issuer(), "http://127.0.0.1:") || strings.HasSuffix(s.Issuer(), "/") {
		t.Errorf("Issuer() = %q, want http://127.0.0.1:PORT without trailing slash", s.Issuer())
	}
	if s.JWKSURL() != s.Issuer()+"/.well-known/jwks.json" {
		t.Errorf("JWKSURL() = %q", s.JWKSURL())
	}
	if s.TokenEndpoint() != s.Issuer()+"/token" {
		t.Errorf("TokenEndpoint() = %q", s.TokenEndpoint())
	}
	if s.Audience() != DefaultAudience {
		t.Errorf("Audience() = %q, want %q", s.Audience(), DefaultAudience)
	}
}

func TestDiscovery(t *testing.T) {
	s := startServer(t, Options{})
	for _, path := range []string{PathOIDCDiscovery, PathOAuthDiscovery} {
		t.Run(path, func(t *testing.T) {
			var md Metadata
			resp := getJSON(t, s.Issuer()+path, &md)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if md.Issuer != s.Issuer() || md.JWKSURI != s.JWKSURL() || md.TokenEndpoint != s.TokenEndpoint() {
				t.Errorf("metadata = %+v", md)
			}
			if !slices.Contains(md.GrantTypesSupported, GrantClientCredentials) {
				t.Errorf("grant_types_supported = %v", md.GrantTypesSupported)
			}
			for _, m := range []string{"client_secret_basic", "client_secret_post", "private_key_jwt"} {
				if !slices.Contains(md.TokenEndpointAuthMethodsSupported, m) {
					t.Errorf("token_endpoint_auth_methods_supported = %v, missing %s", md.TokenEndpointAuthMethodsSupported, m)
				}
			}
			if slices.Contains(md.TokenEndpointAuthSigningAlgsSupported, "HS256") || slices.Contains(md.TokenEndpointAuthSigningAlgsSupported, "none") {
				t.Errorf("assertion algs = %v include a symmetric or none alg", md.TokenEndpointAuthSigningAlgsSupported)
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	tests := []struct {
		name    string
		omitAlg bool
	}{
		{name: "with alg", omitAlg: false},
		{name: "without alg", omitAlg: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{JWKSOmitAlg: tt.omitAlg})
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			before := s.JWKSFetches()
			resp := getJSON(t, s.JWKSURL(), &doc)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := s.JWKSFetches() - before; got != 1 {
				t.Errorf("JWKSFetches grew by %d, want 1", got)
			}
			if len(doc.Keys) != 1 {
				t.Fatalf("keys = %d, want 1", len(doc.Keys))
			}
			k := doc.Keys[0]
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := k[private]; ok {
					t.Errorf("JWKS publishes private parameter %q", private)
				}
			}
			if k["kty"] != "RSA" || k["use"] != "sig" {
				t.Errorf("kty/use = %v/%v", k["kty"], k["use"])
			}
			if k["kid"] != kidOf(s.SigningKey()) {
				t.Errorf("kid = %v, want %s", k["kid"], kidOf(s.SigningKey()))
			}
			_, hasAlg := k["alg"]
			if hasAlg == tt.omitAlg {
				t.Errorf("alg present = %v, want %v", hasAlg, !tt.omitAlg)
			}
		})
	}
}

func TestMint(t *testing.T) {
	s := startServer(t, Options{Audience: "api://test", TokenTTL: 10 * time.Minute})
	past := time.Now().Add(-time.Hour).Truncate(time.Second)

	tests := []struct {
		name   string
		claims map[string]any
		check  func(t *testing.T, c map[string]any)
	}{
		{
			name:   "defaults",
			claims: map[string]any{"sub": "alice"},
			check: func(t *testing.T, c map[string]any) {
				if c["iss"] != s.Issuer() || c["aud"] != "api://test" || c["sub"] != "alice" {
					t.Errorf("claims = %v", c)
				}
				iat, exp := c["iat"].(float64), c["exp"].(float64)
				if exp-iat != 600 {
					t.Errorf("exp-iat = %v, want 600 (TokenTTL)", exp-iat)
				}
				if c["nbf"] != c["iat"] {
					t.Errorf("nbf = %v, iat = %v", c["nbf"], c["iat"])
				}
				if jti, _ := c["jti"].(string); jti == "" {
					t.Error("jti missing")
				}
			},
		},
		{
			name:   "caller values win",
			claims: map[string]any{"iss": "https://evil.example", "aud": []string{"a", "b"}, "exp": past},
			check: func(t *testing.T, c map[string]any) {
				if c["iss"] != "https://evil.example" {
					t.Errorf("iss = %v", c["iss"])
				}
				if aud, _ := c["aud"].([]any); len(aud) != 2 {
					t.Errorf("aud = %v", c["aud"])
				}
				if c["exp"] != float64(past.Unix()) {
					t.Errorf("exp = %v, want %d (time.Time becomes NumericDate)", c["exp"], past.Unix())
				}
			},
		},
		{
			name:   "nil removes a claim",
			claims: map[string]any{"exp": nil, "jti": nil},
			check: func(t *testing.T, c map[string]any) {
				if _, ok := c["exp"]; ok {
					t.Errorf("exp present: %v", c["exp"])
				}
				if _, ok := c["jti"]; ok {
					t.Errorf("jti present: %v", c["jti"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := s.Mint(tt.claims)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			hdr := headerOf(t, token)
			if alg, _ := hdr.Algorithm(); alg.String() != "RS256" {
				t.Errorf("alg = %v", alg)
			}
			if kid, _ := hdr.KeyID(); kid != kidOf(s.SigningKey()) {
				t.Errorf("kid = %q, want %q", kid, kidOf(s.SigningKey()))
			}
			if typ, _ := hdr.Type(); typ != "JWT" {
				t.Errorf("typ = %q", typ)
			}
			tt.check(t, verify(t, s, token))
		})
	}
}

func TestMintUser(t *testing.T) {
	s := startServer(t, Options{})
	tests := []struct {
		name         string
		extra        map[string]any
		wantCID      any
		wantClientID any
	}{
		{name: "cid mirrored", extra: map[string]any{"cid": "0oa1"}, wantCID: "0oa1", wantClientID: "0oa1"},
		{name: "client_id mirrored", extra: map[string]any{"client_id": "0oa2"}, wantCID: "0oa2", wantClientID: "0oa2"},
		{name: "both kept", extra: map[string]any{"cid": "x", "client_id": "y"}, wantCID: "x", wantClientID: "y"},
		{name: "neither", extra: nil, wantCID: nil, wantClientID: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := s.MintUser("alice@example.com", []string{"mcp:read", "mcp:write"}, []string{"eng"}, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			c := verify(t, s, token)
			if c["sub"] != "alice@example.com" {
				t.Errorf("sub = %v", c["sub"])
			}
			if scp, _ := c["scp"].([]any); len(scp) != 2 || scp[0] != "mcp:read" {
				t.Errorf("scp = %v", c["scp"])
			}
			if g, _ := c["groups"].([]any); len(g) != 1 || g[0] != "eng" {
				t.Errorf("groups = %v", c["groups"])
			}
			if c["cid"] != tt.wantCID || c["client_id"] != tt.wantClientID {
				t.Errorf("cid/client_id = %v/%v, want %v/%v", c["cid"], c["client_id"], tt.wantCID, tt.wantClientID)
			}
		})
	}
}

func publishedKids(t *testing.T, s *Server) []string {
	t.Helper()
	set := fetchKeys(t, s)
	var kids []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		kids = append(kids, kidOf(k))
	}
	slices.Sort(kids)
	return kids
}

func TestRotateAndRetire(t *testing.T) {
	s := startServer(t, Options{})
	oldKid := kidOf(s.SigningKey())
	oldToken, err := s.Mint(map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}

	newKid, err := s.RotateKey()
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if newKid == oldKid || kidOf(s.SigningKey()) != newKid {
		t.Fatalf("new kid %q, old %q, current %q", newKid, oldKid, kidOf(s.SigningKey()))
	}
	want := []string{oldKid, newKid}
	slices.Sort(want)
	if got := publishedKids(t, s); !slices.Equal(got, want) {
		t.Errorf("after rotate JWKS kids = %v, want %v", got, want)
	}
	newToken, err := s.Mint(map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := headerOf(t, newToken).KeyID(); kid != newKid {
		t.Errorf("new token kid = %q, want %q", kid, newKid)
	}
	verify(t, s, oldToken) // still published

	s.RetireKey(newKid) // current: refused
	s.RetireKey(oldKid)
	if got := publishedKids(t, s); !slices.Equal(got, []string{newKid}) {
		t.Errorf("after retire JWKS kids = %v, want [%s]", got, newKid)
	}
	if _, err := jwt.Parse([]byte(oldToken), jwt.WithKeySet(fetchKeys(t, s)), jwt.WithValidate(false)); err == nil {
		t.Error("token signed by a retired key still verifies against the JWKS")
	}
	verify(t, s, newToken)
}

func TestCloseAndContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cancel()
	// Close after the ctx-triggered close must wait for it and not fail.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.JWKSURL(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after Close")
	}
	var opErr interface{ Timeout() bool }
	if errors.As(err, &opErr) && opErr.Timeout() {
		t.Fatalf("expected connection refused, got timeout: %v", err)
	}
}
