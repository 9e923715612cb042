package identity

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestVerify(t *testing.T) {
	idp := startIdP(t, testidp.Options{Audience: "api://mcpgw"})
	other := startIdP(t, testidp.Options{Audience: "api://mcpgw"})
	// The skew is set as config.Load sets it: zero now means no tolerance.
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}, ClockSkew: config.DefaultClockSkew})

	now := time.Now()
	signing := idp.SigningKey()
	pub, err := signing.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := jwk.EncodePEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	foreign := newRSAKey(t)

	tests := []struct {
		name   string
		token  string
		reason string // "" = valid
	}{
		{name: "valid", token: mint(t, idp, map[string]any{"sub": "alice"})},
		{name: "expired within skew", token: mint(t, idp, map[string]any{"sub": "alice", "exp": now.Add(-10 * time.Second)})},
		{name: "audience among several", token: mint(t, idp, map[string]any{"sub": "alice", "aud": []string{"api://other", "api://mcpgw"}})},

		{name: "empty", token: "", reason: ReasonMissing},
		{name: "garbage", token: "not-a-jwt", reason: ReasonMalformed},
		{name: "three garbage segments", token: "a.b.c", reason: ReasonMalformed},
		{name: "payload not JSON", token: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", reason: ReasonMalformed},
		{name: "too large", token: strings.Repeat("a", DefaultMaxTokenBytes+1), reason: ReasonTooLarge},
		{name: "alg none", token: unsignedToken(t, validClaims(idp)), reason: ReasonAlgorithm},
		{name: "HS256 with the RSA public key bytes", token: signWith(t, pubPEM, jwa.HS256(), kidOf(signing), validClaims(idp)), reason: ReasonAlgorithm},
		{name: "RS384 not allowed", token: signWith(t, signing, jwa.RS384(), kidOf(signing), validClaims(idp)), reason: ReasonAlgorithm},
		{name: "PS256 with a key published for RS256", token: signWith(t, signing, jwa.PS256(), kidOf(signing), validClaims(idp)), reason: ReasonUnknownKey},
		{name: "expired", token: mint(t, idp, map[string]any{"sub": "alice", "exp": now.Add(-2 * time.Minute)}), reason: ReasonExpired},
		{name: "not yet valid", token: mint(t, idp, map[string]any{"sub": "alice", "nbf": now.Add(2 * time.Minute)}), reason: ReasonNotYetValid},
		{name: "issued in the future", token: mint(t, idp, map[string]any{"sub": "alice", "iat": now.Add(2 * time.Minute)}), reason: ReasonIssuedInFuture},
		{name: "wrong iss", token: mint(t, idp, map[string]any{"sub": "alice", "iss": "https://evil.example"}), reason: ReasonIssuer},
		{name: "iss with trailing slash", token: mint(t, idp, map[string]any{"sub": "alice", "iss": idp.Issuer() + "/"}), reason: ReasonIssuer},
		{name: "no iss", token: mint(t, idp, map[string]any{"sub": "alice", "iss": nil}), reason: ReasonIssuer},
		{name: "wrong aud", token: mint(t, idp, map[string]any{"sub": "alice", "aud": "api://other"}), reason: ReasonAudience},
		{name: "no aud", token: mint(t, idp, map[string]any{"sub": "alice", "aud": nil}), reason: ReasonAudience},
		{name: "no exp", token: mint(t, idp, map[string]any{"sub": "alice", "exp": nil}), reason: ReasonMissingClaim},
		{name: "no sub", token: mint(t, idp, nil), reason: ReasonMissingClaim},
		{name: "kid not in JWKS", token: signWith(t, foreign, jwa.RS256(), "foreign-kid", validClaims(idp)), reason: ReasonUnknownKey},
		{name: "real kid, foreign key", token: signWith(t, foreign, jwa.RS256(), kidOf(signing), validClaims(idp)), reason: ReasonSignature},
		{name: "other IdP claiming our iss", token: mint(t, other, map[string]any{"sub": "alice", "iss": idp.Issuer()}), reason: ReasonUnknownKey},
		{name: "tampered payload", token: tamper(t, idp, mint(t, idp, map[string]any{"sub": "alice"})), reason: ReasonSignature},
		{name: "scp with a number", token: mint(t, idp, map[string]any{"sub": "alice", "scp": []any{"a", 1}}), reason: ReasonClaimType},
		{name: "sub not a string", token: mint(t, idp, map[string]any{"sub": 42}), reason: ReasonClaimType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.Subject != "alice" || p.Issuer != idp.Issuer() || !slices.Contains(p.Audience, "api://mcpgw") {
					t.Errorf("principal = %+v", p)
				}
				return
			}
			if p != nil {
				t.Errorf("principal %+v returned with an error", p)
			}
			verr := asError(t, err, tt.reason)
			if tt.token != "" && strings.Contains(verr.Description, tt.token) {
				t.Error("Description echoes the token")
			}
			if strings.ContainsAny(verr.Description, "\"\\") {
				t.Errorf("Description %q is not a valid RFC 6750 error_description", verr.Description)
			}
		})
	}
}

// tamper swaps the payload for one naming another subject, without re-signing.
func tamper(t *testing.T, idp *testidp.Server, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	claims := validClaims(idp)
	claims["sub"] = "root"
	forged := unsignedToken(t, claims)
	parts[1] = strings.Split(forged, ".")[1]
	return strings.Join(parts, ".")
}

func TestPrincipalClaims(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	rolesIdP := startIdP(t, testidp.Options{})
	roles := issuerOf(rolesIdP)
	roles.GroupsClaim = "roles"
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp), roles}})

	tests := []struct {
		name       string
		idp        *testidp.Server
		claims     map[string]any
		wantClient string
		wantScopes []string
		wantGroups []string
	}{
		{name: "scp array", idp: idp, claims: map[string]any{"scp": []string{"mcp:read", "mcp:write"}},
			wantScopes: []string{"mcp:read", "mcp:write"}},
		{name: "scp string", idp: idp, claims: map[string]any{"scp": "mcp:read mcp:write"},
			wantScopes: []string{"mcp:read", "mcp:write"}},
		{name: "scope string", idp: idp, claims: map[string]any{"scope": "mcp:read  mcp:write"},
			wantScopes: []string{"mcp:read", "mcp:write"}},
		{name: "scp wins over scope", idp: idp, claims: map[string]any{"scp": []string{"a"}, "scope": "b"},
			wantScopes: []string{"a"}},
		{name: "groups array", idp: idp, claims: map[string]any{"groups": []string{"eng", "admins"}},
			wantGroups: []string{"eng", "admins"}},
		{name: "groups single string", idp: idp, claims: map[string]any{"groups": "eng admins"},
			wantGroups: []string{"eng admins"}},
		{name: "custom groups claim", idp: rolesIdP, claims: map[string]any{"roles": []string{"reader"}, "groups": []string{"ignored"}},
			wantGroups: []string{"reader"}},
		{name: "cid, azp and client_id agreeing", idp: idp, claims: map[string]any{"cid": "c1", "azp": "c1", "client_id": "c1"}, wantClient: "c1"},
		{name: "cid", idp: idp, claims: map[string]any{"cid": "c1"}, wantClient: "c1"},
		{name: "azp", idp: idp, claims: map[string]any{"azp": "a1"}, wantClient: "a1"},
		{name: "client_id", idp: idp, claims: map[string]any{"client_id": "x1"}, wantClient: "x1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := map[string]any{"sub": "alice", "custom": map[string]any{"n": 1}}
			for k, val := range tt.claims {
				claims[k] = val
			}
			tok := mint(t, tt.idp, claims)
			p, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.ClientID != tt.wantClient {
				t.Errorf("ClientID = %q, want %q", p.ClientID, tt.wantClient)
			}
			if !slices.Equal(p.Scopes, tt.wantScopes) {
				t.Errorf("Scopes = %q, want %q", p.Scopes, tt.wantScopes)
			}
			if !slices.Equal(p.Groups, tt.wantGroups) {
				t.Errorf("Groups = %q, want %q", p.Groups, tt.wantGroups)
			}
			if p.Claims["sub"] != "alice" || p.Claims["iss"] != tt.idp.Issuer() {
				t.Errorf("Claims = %v", p.Claims)
			}
			if m, _ := p.Claims["custom"].(map[string]any); m["n"] != float64(1) {
				t.Errorf("Claims[custom] = %v, want JSON-decoded object", p.Claims["custom"])
			}
			exp, _ := p.Claims["exp"].(float64)
			if !p.ExpiresAt.Equal(time.Unix(int64(exp), 0)) {
				t.Errorf("ExpiresAt = %v, exp claim %v", p.ExpiresAt, exp)
			}
		})
	}
}

func TestKeysWithoutAlg(t *testing.T) {
	idp := startIdP(t, testidp.Options{JWKSOmitAlg: true})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	signing := idp.SigningKey()
	pub, _ := signing.PublicKey()
	pubPEM, err := jwk.EncodePEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims(idp)

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{name: "RS256", token: mint(t, idp, map[string]any{"sub": "alice"})},
		{name: "PS256 with the same RSA key", token: signWith(t, signing, jwa.PS256(), kidOf(signing), claims)},
		{name: "RS256 without kid", token: signWith(t, signing, jwa.RS256(), "", claims)},
		{name: "HS256 with the RSA public key bytes", token: signWith(t, pubPEM, jwa.HS256(), kidOf(signing), claims), reason: ReasonAlgorithm},
		{name: "ES256 header on an RSA key", token: forgeAlgHeader(t, signWith(t, signing, jwa.RS256(), kidOf(signing), claims), "ES256"), reason: ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			asError(t, err, tt.reason)
		})
	}
}

// forgeAlgHeader swaps the header's alg, keeping the kid and the signature.
func forgeAlgHeader(t *testing.T, token, alg string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"` + headerKid(t, token) + `"}`))
	return strings.Join(parts, ".")
}

func TestMultipleIssuers(t *testing.T) {
	a := startIdP(t, testidp.Options{Audience: "api://a"})
	b := startIdP(t, testidp.Options{Audience: "api://b"})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(a), issuerOf(b)}})

	for _, idp := range []*testidp.Server{a, b} {
		p, err := v.Verify(t.Context(), mint(t, idp, map[string]any{"sub": "alice"}))
		if err != nil {
			t.Fatalf("token of %s: %v", idp.Issuer(), err)
		}
		if p.Issuer != idp.Issuer() {
			t.Errorf("Issuer = %s, want %s", p.Issuer, idp.Issuer())
		}
	}
	// Audiences are per issuer: b's audience is not accepted on a's tokens.
	_, err := v.Verify(t.Context(), mint(t, a, map[string]any{"sub": "alice", "aud": "api://b"}))
	asError(t, err, ReasonAudience)
}

func TestUnknownKidRefreshAndRotation(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	clock := testutil.NewClock()
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, WithClock(clock.Now))
	if got := idp.JWKSFetches(); got != 1 {
		t.Fatalf("JWKS fetches after start = %d, want 1", got)
	}
	oldToken := mint(t, idp, map[string]any{"sub": "alice"})

	// A burst of tokens with kids the IdP never published.
	foreign := newRSAKey(t)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		tok := signWith(t, foreign, jwa.RS256(), "forged-"+string(rune('a'+i)), validClaims(idp))
		wg.Go(func() { _, errs[i] = v.Verify(t.Context(), tok) })
	}
	wg.Wait()
	for _, err := range errs {
		asError(t, err, ReasonUnknownKey)
	}
	if got := idp.JWKSFetches(); got != 2 {
		t.Fatalf("JWKS fetches after unknown-kid burst = %d, want 2 (one refresh)", got)
	}

	newKid, err := idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	rotated := mint(t, idp, map[string]any{"sub": "bob"})
	if headerKid(t, rotated) != newKid {
		t.Fatal("minted token does not carry the new kid")
	}
	// Within 30 s of the last refresh the new kid is not fetched.
	_, err = v.Verify(t.Context(), rotated)
	asError(t, err, ReasonUnknownKey)
	if got := idp.JWKSFetches(); got != 2 {
		t.Fatalf("JWKS fetches inside the rate limit = %d, want 2", got)
	}

	clock.Advance(unknownKeyRefreshInterval + time.Second)
	p, err := v.Verify(t.Context(), rotated)
	if err != nil {
		t.Fatalf("rotated key after refresh: %v", err)
	}
	if p.Subject != "bob" {
		t.Errorf("Subject = %q", p.Subject)
	}
	if got := idp.JWKSFetches(); got != 3 {
		t.Errorf("JWKS fetches after rotation = %d, want 3", got)
	}
	if _, err := v.Verify(t.Context(), oldToken); err != nil {
		t.Errorf("token of the old, unretired key: %v", err)
	}
}

func TestConcurrentRotatedKidSharesOneFetch(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	if _, err := idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, 10)
	for i := range tokens {
		tokens[i] = mint(t, idp, map[string]any{"sub": "user"})
	}
	before := idp.JWKSFetches()
	var wg sync.WaitGroup
	errs := make([]error, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() { _, errs[i] = v.Verify(t.Context(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d: %v", i, err)
		}
	}
	if got := idp.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetches for a burst of a rotated kid = %d, want 1", got)
	}
}

func TestCache(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	clock := testutil.NewClock()
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, WithClock(clock.Now))

	tok := mint(t, idp, map[string]any{"sub": "alice", "exp": clock.Now().Add(time.Minute)})
	first, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.signatureChecks.Load(); got != 1 {
		t.Fatalf("signature checks = %d, want 1", got)
	}
	v.cache.c.Wait() // ristretto applies Sets asynchronously

	second, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Error("cache hit returned a different principal")
	}
	if got := v.signatureChecks.Load(); got != 1 {
		t.Errorf("signature checks after a cache hit = %d, want 1", got)
	}

	// Past exp (and the skew): the cached principal must not be served.
	clock.Advance(time.Minute + config.DefaultClockSkew + time.Second)
	_, err = v.Verify(t.Context(), tok)
	asError(t, err, ReasonExpired)
	if got := v.signatureChecks.Load(); got != 2 {
		t.Errorf("signature checks after expiry = %d, want 2 (full verification)", got)
	}

	// A failed token is not cached: each attempt is checked again.
	bad := mint(t, idp, map[string]any{"sub": "alice", "aud": "api://other"})
	for range 2 {
		_, err := v.Verify(t.Context(), bad)
		asError(t, err, ReasonAudience)
		v.cache.c.Wait()
	}
	if got := v.signatureChecks.Load(); got != 4 {
		t.Errorf("signature checks after two failures = %d, want 4", got)
	}
}

func TestCacheTTLBoundedByExp(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})

	tests := []struct {
		name string
		exp  time.Duration
		max  time.Duration
	}{
		{name: "exp sooner than the cap", exp: 2 * time.Minute, max: 2 * time.Minute},
		{name: "exp later than the cap", exp: time.Hour, max: maxCacheTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mint(t, idp, map[string]any{"sub": "alice", "exp": time.Now().Add(tt.exp)})
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
			v.cache.c.Wait()
			ttl, ok := v.cache.c.GetTTL(cacheKey(tok))
			if !ok || ttl <= 0 {
				t.Fatalf("not cached (ttl %v, ok %v)", ttl, ok)
			}
			if ttl > tt.max {
				t.Errorf("TTL %v exceeds %v", ttl, tt.max)
			}
		})
	}
}

func TestHooks(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	var mu sync.Mutex
	var reasons []string
	var fetched []string
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, WithMetrics(Hooks{
		Verified: func(reason string, cached bool, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if cached {
				reason += "/cached"
			}
			reasons = append(reasons, reason)
		},
		JWKSFetched: func(issuer string, err error) {
			mu.Lock()
			defer mu.Unlock()
			fetched = append(fetched, issuer)
			if err != nil {
				t.Errorf("fetch error: %v", err)
			}
		},
	}))
	tok := mint(t, idp, map[string]any{"sub": "alice"})
	_, _ = v.Verify(t.Context(), tok)
	v.cache.c.Wait()
	_, _ = v.Verify(t.Context(), tok)
	_, _ = v.Verify(t.Context(), "")

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"ok", "ok/cached", ReasonMissing}; !slices.Equal(reasons, want) {
		t.Errorf("Verified reasons = %v, want %v", reasons, want)
	}
	if !slices.Equal(fetched, []string{idp.Issuer()}) {
		t.Errorf("JWKSFetched = %v", fetched)
	}
}

func TestErrorWrapping(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	_, err := v.Verify(t.Context(), mint(t, idp, map[string]any{"sub": "a", "exp": time.Now().Add(-time.Hour)}))
	wrapped := errors.Join(errors.New("request 1"), err)
	var verr *Error
	if !errors.As(wrapped, &verr) || verr.Reason() != ReasonExpired {
		t.Fatalf("errors.As through wrapping: %v", wrapped)
	}
	if !strings.Contains(verr.Error(), "invalid_token: token is expired") {
		t.Errorf("Error() = %q", verr.Error())
	}
}
