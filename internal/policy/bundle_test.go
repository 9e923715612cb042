package policy

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
)

// buildBundle runs what `opa build -b policies --revision R [--signing-key
// K] --verification-key-id ""` runs: a signature naming no key id, which
// the engine checks against its configured key id.
func buildBundle(t *testing.T, revision, signingKey string) string {
	t.Helper()
	return policytest.BuildBundle(t, policytest.Build{Dir: shippedPolicies, Revision: revision, SigningKey: signingKey})
}

func TestBundleFiles(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	_, otherPublicKey := policytest.KeyPair(t)
	signed := buildBundle(t, "v1.2.3", signingKey)
	unsigned := buildBundle(t, "v1.2.4", "")
	noRevision := buildBundle(t, "", "")
	publicPEM, err := os.ReadFile(publicKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		o        Options
		revision string // want a working engine with this revision prefix
		err      string // or this error
	}{
		{name: "signed, verified", o: Options{Source: signed, VerificationKey: publicKey}, revision: "v1.2.3"},
		{name: "signed, key given as PEM text", o: Options{Source: signed, VerificationKey: string(publicPEM)}, revision: "v1.2.3"},
		{name: "signed, key from OPA keys config", o: Options{Source: signed, KeyID: "default", OPAConfig: map[string]any{
			"keys": map[string]any{"default": map[string]any{"key": string(publicPEM), "algorithm": "RS256"}},
		}}, revision: "v1.2.3"},
		{name: "signed, wrong key", o: Options{Source: signed, VerificationKey: otherPublicKey}, err: "failed to verify JWT signature"},
		{name: "tampered", o: Options{Source: policytest.TamperData(t, signed, `"delete_*"`, `"nothing_*"`), VerificationKey: publicKey}, err: "digest mismatch"},
		{name: "HS256 with the public key as secret", o: Options{Source: writeBundle(t, bundleSpec{
			revision: "v1.2.5", modules: map[string]string{"p.rego": allowAllRego}, signingKey: string(publicPEM), alg: "HS256",
		}), VerificationKey: publicKey}, err: "failed to verify JWT signature"},
		{name: "unsigned with a key", o: Options{Source: unsigned, VerificationKey: publicKey}, err: "bundle missing .signatures.json"},
		{name: "unsigned with a key even if unsigned is allowed", o: Options{Source: unsigned, VerificationKey: publicKey, AllowUnsigned: true}, err: "bundle missing .signatures.json"},
		{name: "unsigned refused", o: Options{Source: unsigned}, err: "allow_unsigned is false"},
		{name: "unsigned allowed", o: Options{Source: unsigned, AllowUnsigned: true}, revision: "v1.2.4"},
		{name: "signed, unsigned allowed, no key", o: Options{Source: signed, AllowUnsigned: true}, revision: "v1.2.3"},
		{name: "no revision", o: Options{Source: noRevision, AllowUnsigned: true}, err: ".manifest has no revision"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Logger = quietLogger()
			tc.o.DecisionLog = func(context.Context, Record) {}
			e, err := New(context.Background(), tc.o)
			if tc.err != "" {
				if err == nil {
					e.Stop(context.Background())
					t.Fatalf("New accepted the bundle; want an error mentioning %q", tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Stop(context.Background())
			if !strings.HasPrefix(e.Revision(), tc.revision) {
				t.Fatalf("revision %q, want %q", e.Revision(), tc.revision)
			}
			if err := e.Ready(); err != nil {
				t.Fatal(err)
			}
			d := e.Decide(context.Background(), caller([]string{"mcp-admins"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"}))
			if d.Allow || d.Revision != e.Revision() {
				t.Fatalf("bundle policy decided %+v", d)
			}
		})
	}
}

func TestDirectoryRevisionIsContentHash(t *testing.T) {
	a, _ := shippedEngine(t)
	b, _ := shippedEngine(t)
	if a.Revision() != b.Revision() || !strings.HasPrefix(a.Revision(), "dir:sha256:") || len(a.Revision()) != len("dir:sha256:")+24 {
		t.Fatalf("revisions %q and %q of the same directory", a.Revision(), b.Revision())
	}
	dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": false}\n"})
	c, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	if c.Revision() == a.Revision() {
		t.Fatal("different directories have the same revision")
	}

	// The same files elsewhere have the same revision.
	copied := t.TempDir()
	if err := os.CopyFS(copied, os.DirFS(shippedPolicies)); err != nil {
		t.Fatal(err)
	}
	d, _ := newEngine(t, Options{Source: copied, AllowUnsigned: true})
	if d.Revision() != a.Revision() {
		t.Fatalf("a copy of the policies has revision %s, the original %s", d.Revision(), a.Revision())
	}
}
