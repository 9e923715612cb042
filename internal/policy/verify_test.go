package policy

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
)

// retar rebuilds a bundle tarball without the files drop names and with
// the files of add appended.
func retar(t *testing.T, raw []byte, drop []string, add map[string][]byte) []byte {
	t.Helper()
	return policytest.Rewrite(t, raw, func(name string, body []byte) ([]byte, bool) {
		return body, !slices.Contains(drop, name)
	}, add)
}

func TestVerifyBundle(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	otherKey, _ := policytest.KeyPair(t)
	publicPEM, err := os.ReadFile(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	good := versioned("v1.4.0", "A", signingKey)
	goodRaw := good.bytes(t)

	twoModules := versioned("v1.4.0", "A", signingKey)
	twoModules.modules = map[string]string{"policy.rego": versionRego, "extra.rego": "package mcp.extra\n\nx := 1\n"}

	outsideRoots := versioned("v1.4.0", "A", signingKey)
	outsideRoots.modules = map[string]string{"policy.rego": versionRego, "other.rego": "package other\n\nx := 1\n"}
	noCompile := versioned("v1.4.0", "A", signingKey)
	noCompile.modules = map[string]string{"policy.rego": "package mcp.gateway\n\ndecision := no_such_function(1)\n"}
	otherKid := versioned("v1.4.0", "A", signingKey)
	otherKid.keyID = "ci-2026"
	// The public key's PEM used as an HMAC secret: what an attacker who
	// knows the public key can "sign" with if the algorithm came from the
	// bundle.
	hmac := versioned("v1.4.0", "A", string(publicPEM))
	hmac.alg = "HS256"

	tests := []struct {
		name  string
		path  string
		o     VerifyOptions
		check BundleCheck
		err   string
	}{
		{"not a bundle", policytest.WriteFile(t, []byte("plain text")), VerifyOptions{Key: publicKey}, CheckUnreadable, "not a gzipped tar bundle"},
		{"unsigned", writeBundle(t, versioned("v1.4.0", "A", "")), VerifyOptions{Key: publicKey}, CheckMissingSignature, "no .signatures.json"},
		{"wrong key", writeBundle(t, versioned("v1.4.0", "A", otherKey)), VerifyOptions{Key: publicKey}, CheckWrongKey, "failed to verify JWT signature"},
		{"other key id asked", writeBundle(t, otherKid), VerifyOptions{Key: publicKey, KeyID: "default"}, CheckWrongKey, `signed by key id "ci-2026", not "default"`},
		{"HS256 with the public key as secret", writeBundle(t, hmac), VerifyOptions{Key: publicKey}, CheckWrongKey, "signed with HS256, expected RS256"},
		{"tampered data", policytest.WriteFile(t, policytest.EditFile(t, goodRaw, "data.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"A"`), []byte(`"Z"`), 1)
		})), VerifyOptions{Key: publicKey}, CheckDigestMismatch, "data.json: digest mismatch"},
		{"file added", policytest.WriteFile(t, retar(t, goodRaw, nil, map[string][]byte{"backdoor.rego": []byte("package mcp.gateway\n")})), VerifyOptions{Key: publicKey}, CheckUnsignedFile, "backdoor.rego is in the bundle but not in its signature"},
		{"file removed", policytest.WriteFile(t, retar(t, twoModules.bytes(t), []string{"extra.rego"}, nil)), VerifyOptions{Key: publicKey}, CheckMissingFile, "extra.rego"},
		{"no revision", writeBundle(t, versioned("", "A", signingKey)), VerifyOptions{Key: publicKey}, CheckBadManifest, "no revision"},
		{"module outside the roots", writeBundle(t, outsideRoots), VerifyOptions{Key: publicKey}, CheckBadManifest, "manifest roots"},
		{"does not compile", writeBundle(t, noCompile), VerifyOptions{Key: publicKey}, CheckCompile, "undefined function no_such_function"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report, err := VerifyBundle(tc.path, tc.o)
			var be *BundleError
			if !errors.As(err, &be) {
				t.Fatalf("VerifyBundle = %+v, %v; want a %q failure", report, err, tc.check)
			}
			if be.Check != tc.check || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("failed %q: %v; want %q mentioning %q", be.Check, err, tc.check, tc.err)
			}
		})
	}

	t.Run("verified", func(t *testing.T) {
		report, err := VerifyBundle(writeBundle(t, otherKid), VerifyOptions{Key: string(publicPEM)})
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(report.Files))
		for _, f := range report.Files {
			if f.Algorithm != "SHA-256" || len(f.Hash) != 64 {
				t.Fatalf("file %+v", f)
			}
			names = append(names, f.Name)
		}
		if report.Revision != "v1.4.0" || strings.Join(report.Roots, ",") != "mcp,mcpgw" || report.KeyID != "ci-2026" || report.Algorithm != "RS256" ||
			strings.Join(names, ",") != ".manifest,data.json,policy.rego" {
			t.Fatalf("report %+v", report)
		}
	})
}
