package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
)

const (
	devSigningKey = "../../testdata/keys/bundle-signing.dev.pem"
	devPublicKey  = "../../testdata/keys/bundle-signing.dev.pub.pem"
)

// buildPolicyBundle builds policies/ as `opa build -b --revision R
// [--signing-key K]` does: it signs with the key id "default" unless told
// otherwise.
func buildPolicyBundle(t *testing.T, revision, signingKey string) string {
	t.Helper()
	return policytest.BuildBundle(t, policytest.Build{Dir: "../../policies", Revision: revision, SigningKey: signingKey, KeyID: "default"})
}

func TestBundleVerify(t *testing.T) {
	signed := buildPolicyBundle(t, "2026.03.1", devSigningKey)
	// A key the dev bundle was not signed with.
	_, otherPublicKey := policytest.KeyPair(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "verified, flags after the file", args: []string{"verify", signed, "--key", devPublicKey}, code: 0,
			stdout: []string{"revision 2026.03.1", "roots mcp, mcpgw, system/log", "signer kid=default alg=RS256", "data.json SHA-256 ", "OK: signature verified"}},
		{name: "verified, flags first", args: []string{"verify", "--key", devPublicKey, "--key-id", "default", signed}, code: 0,
			stdout: []string{"revision 2026.03.1"}},
		{name: "tampered", args: []string{"verify", policytest.TamperData(t, signed, `"mcp:write"`, `"mcp:read"`), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (digest mismatch): data.json: digest mismatch"},
		{name: "wrong key", args: []string{"verify", signed, "--key", otherPublicKey}, code: 1,
			stderr: "FAILED (wrong key)"},
		{name: "key id not the signer's", args: []string{"verify", signed, "--key", devPublicKey, "--key-id", "prod"}, code: 1,
			stderr: `FAILED (wrong key): signed by key id "default", not "prod"`},
		{name: "unsigned", args: []string{"verify", buildPolicyBundle(t, "2026.03.1", ""), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (missing signature)"},
		{name: "no revision", args: []string{"verify", buildPolicyBundle(t, "", devSigningKey), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (bad manifest)"},
		{name: "missing file", args: []string{"verify", filepath.Join(t.TempDir(), "none.tar.gz"), "--key", devPublicKey}, code: 1,
			stderr: "no such file"},
		{name: "key file missing", args: []string{"verify", signed, "--key", "bundle-signing.pub.pem"}, code: 2,
			stderr: "--key bundle-signing.pub.pem: open bundle-signing.pub.pem: no such file"},
		{name: "key file not PEM", args: []string{"verify", signed, "--key", signed}, code: 2, stderr: "not a PEM file"},
		{name: "no key", args: []string{"verify", signed}, code: 2, stderr: "--key is required"},
		{name: "no file", args: []string{"verify", "--key", devPublicKey}, code: 2, stderr: "give exactly one bundle FILE"},
		{name: "two files", args: []string{"verify", signed, signed, "--key", devPublicKey}, code: 2, stderr: "give exactly one bundle FILE"},
		{name: "unknown subcommand", args: []string{"sign", signed}, code: 2, stderr: "usage: mcpgw bundle verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bundle"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			// Columns are aligned with spaces; compare with single spaces.
			printed := strings.Join(strings.Fields(stdout.String()), " ")
			for _, want := range tc.stdout {
				if !strings.Contains(printed, want) {
					t.Fatalf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
			if tc.code != 0 && strings.Contains(stdout.String(), "OK") {
				t.Fatalf("a failure printed OK:\n%s", stdout.String())
			}
		})
	}
}
