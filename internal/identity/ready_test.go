package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestIdPDownAtStart(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	tok := mint(t, idp, map[string]any{"sub": "alice"})
	if err := idp.Close(); err != nil {
		t.Fatal(err)
	}

	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	err := v.Ready()
	if err == nil {
		t.Fatal("Ready() = nil with the IdP down")
	}
	if !strings.Contains(err.Error(), idp.Issuer()) || !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("Ready() = %v, want an ErrKeysUnavailable naming %s", err, idp.Issuer())
	}

	_, err = v.Verify(t.Context(), tok)
	verr := asError(t, err, ReasonKeysUnavailable)
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("Verify error %v does not wrap ErrKeysUnavailable", err)
	}
	if strings.Contains(verr.Description, "127.0.0.1") {
		t.Errorf("Description %q leaks internal addresses", verr.Description)
	}
}

func TestIdPRecovers(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	net := &flakyTransport{}
	net.down.Store(true)
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, WithHTTPClient(net.client()))
	if v.Ready() == nil {
		t.Fatal("Ready() = nil while the IdP is unreachable")
	}
	tok := mint(t, idp, map[string]any{"sub": "alice"})

	net.down.Store(false)
	// The first token after recovery loads the keys (one refresh) and passes.
	p, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
	if p.Subject != "alice" {
		t.Errorf("Subject = %q", p.Subject)
	}
	if err := v.Ready(); err != nil {
		t.Errorf("Ready() after recovery = %v", err)
	}
}

func TestSlowIdPDoesNotBlock(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	net := &flakyTransport{}
	net.hang.Store(true)

	// NewVerifier returns when its ctx ends even though the fetch hangs.
	v, err := NewVerifier(deadline(t, 200*time.Millisecond),
		config.Identity{Issuers: []config.Issuer{issuerOf(idp)}},
		WithHTTPClient(net.client()), WithFetchTimeout(time.Minute))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	if v.Ready() == nil {
		t.Fatal("Ready() = nil while the JWKS fetch hangs")
	}

	// Verify gives up when its own ctx ends, failing closed.
	_, err = v.Verify(deadline(t, 200*time.Millisecond), mint(t, idp, map[string]any{"sub": "alice"}))
	asError(t, err, ReasonKeysUnavailable)
}

func TestFetchTimeout(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	net := &flakyTransport{}
	net.hang.Store(true)
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}},
		WithHTTPClient(net.client()), WithFetchTimeout(100*time.Millisecond))
	err := v.Ready()
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("Ready() = %v, want the fetch deadline as cause", err)
	}
}

func TestDiscovery(t *testing.T) {
	tests := []struct {
		name      string
		issuer    func(idp *testidp.Server) config.Issuer
		notFound  string // path the network answers 404 for
		wantReady bool
	}{
		{name: "oauth-authorization-server first", issuer: issuerOf, wantReady: true},
		{name: "falls back to oauth-authorization-server", issuer: issuerOf, notFound: testidp.PathOIDCDiscovery, wantReady: true},
		{name: "falls back to openid-configuration", issuer: issuerOf, notFound: testidp.PathOAuthDiscovery, wantReady: true},
		{name: "explicit jwks_url skips discovery", issuer: func(idp *testidp.Server) config.Issuer {
			ic := issuerOf(idp)
			ic.JWKSURL = idp.JWKSURL()
			return ic
		}, notFound: testidp.PathOIDCDiscovery, wantReady: true},
		{name: "no metadata at all", issuer: issuerOf, notFound: "both", wantReady: false},
		{name: "metadata names another issuer", issuer: func(idp *testidp.Server) config.Issuer {
			ic := issuerOf(idp)
			ic.Issuer += "/"
			return ic
		}, wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := startIdP(t, testidp.Options{})
			net := &flakyTransport{}
			switch tt.notFound {
			case "both":
				net.down.Store(true)
			case "":
			default:
				net.notFound.Store(tt.notFound)
			}
			v := newVerifier(t, config.Identity{Issuers: []config.Issuer{tt.issuer(idp)}}, WithHTTPClient(net.client()))
			err := v.Ready()
			if tt.wantReady != (err == nil) {
				t.Fatalf("Ready() = %v, want ready %v", err, tt.wantReady)
			}
			if !tt.wantReady {
				return
			}
			if got := idp.JWKSFetches(); got != 1 {
				t.Errorf("JWKS fetches = %d, want 1", got)
			}
			if _, err := v.Verify(t.Context(), mint(t, idp, map[string]any{"sub": "alice"})); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	good := config.Issuer{Issuer: "https://idp.example", Audiences: []string{"api://mcpgw"}}
	tests := []struct {
		name    string
		cfg     config.Identity
		wantErr string
	}{
		{name: "no issuers", cfg: config.Identity{}, wantErr: "identity.issuers:"},
		{name: "issuer not a URL", cfg: config.Identity{Issuers: []config.Issuer{{Issuer: "idp.example", Audiences: []string{"a"}}}}, wantErr: "identity.issuers[0].issuer:"},
		{name: "no audiences", cfg: config.Identity{Issuers: []config.Issuer{{Issuer: "https://idp.example"}}}, wantErr: "identity.issuers[0].audiences:"},
		{name: "empty audience", cfg: config.Identity{Issuers: []config.Issuer{{Issuer: "https://idp.example", Audiences: []string{""}}}}, wantErr: "identity.issuers[0].audiences:"},
		{name: "duplicate issuer", cfg: config.Identity{Issuers: []config.Issuer{good, good}}, wantErr: "identity.issuers[1].issuer:"},
		{name: "bad jwks_url", cfg: config.Identity{Issuers: []config.Issuer{{Issuer: "https://idp.example", Audiences: []string{"a"}, JWKSURL: "file:///etc/keys"}}}, wantErr: "identity.issuers[0].jwks_url:"},
		{name: "negative skew", cfg: config.Identity{Issuers: []config.Issuer{good}, ClockSkew: -time.Second}, wantErr: "identity.clock_skew:"},
		{name: "negative cache cost", cfg: config.Identity{Issuers: []config.Issuer{good}, ClaimsCacheMaxCost: -1}, wantErr: "identity.claims_cache_max_cost:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(t.Context(), tt.cfg)
			if err == nil {
				v.Close()
				t.Fatal("NewVerifier accepted an invalid config")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := withDefaults(config.Identity{Issuers: []config.Issuer{{Issuer: "https://idp.example", Audiences: []string{"a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// A zero clock skew stays zero (no tolerance); the refresh interval gets
	// the one default the config file gets too.
	if cfg.ClockSkew != 0 || cfg.ClaimsCacheMaxCost != 10000 || cfg.Issuers[0].GroupsClaim != "groups" || cfg.JWKSRefreshInterval != config.DefaultJWKSRefreshInterval {
		t.Errorf("defaults = %+v", cfg)
	}
}

// identity.clock_skew: 0s means no tolerance: it used to become 30s.
func TestClockSkewZeroMeansZero(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	tests := []struct {
		name   string
		skew   time.Duration
		expiry time.Duration // exp relative to the verifier's clock
		reason string        // "" when accepted
	}{
		{name: "zero skew refuses a token expired a second ago", skew: 0, expiry: -time.Second, reason: ReasonExpired},
		{name: "zero skew accepts a valid token", skew: 0, expiry: time.Minute},
		{name: "default skew tolerates a second", skew: config.DefaultClockSkew, expiry: -time.Second},
		{name: "default skew refuses beyond it", skew: config.DefaultClockSkew, expiry: -config.DefaultClockSkew - 2*time.Second, reason: ReasonExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := testutil.NewClock()
			v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}, ClockSkew: tc.skew}, WithClock(clock.Now))
			tok := mint(t, idp, map[string]any{"sub": "alice", "iat": clock.Now().Add(-time.Hour), "exp": clock.Now().Add(tc.expiry)})
			_, err := v.Verify(t.Context(), tok)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			asError(t, err, tc.reason)
		})
	}
}

func TestClose(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	v, err := NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	// After Close nothing is cached and verification still answers.
	if _, err := v.Verify(t.Context(), mint(t, idp, map[string]any{"sub": "alice"})); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
}
