package identity

import (
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// BenchmarkVerifyCold is the full path without the cache: parse, key lookup,
// RS256 signature check, claim validation, principal building.
func BenchmarkVerifyCold(b *testing.B) {
	idp := startIdP(b, testidp.Options{})
	v := newVerifier(b, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	tok := mint(b, idp, map[string]any{"sub": "alice", "scp": []string{"mcp:read"}, "groups": []string{"eng"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.verifyUncached(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached is a repeated token: hash, cache lookup, expiry check.
func BenchmarkVerifyCached(b *testing.B) {
	idp := startIdP(b, testidp.Options{})
	v := newVerifier(b, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	tok := mint(b, idp, map[string]any{"sub": "alice", "scp": []string{"mcp:read"}, "groups": []string{"eng"}})
	if _, err := v.Verify(b.Context(), tok); err != nil {
		b.Fatal(err)
	}
	v.cache.c.Wait()
	checks := v.signatureChecks.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
	if got := v.signatureChecks.Load(); got != checks {
		b.Fatalf("cached benchmark ran %d signature checks", got-checks)
	}
}
