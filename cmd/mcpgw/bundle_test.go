package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
)

const (
	devSigningKey = "../../testdata/keys/bundle-signing.dev.pem"
	devPublicKey  = "../../testdata/keys/bundle-signing.dev.pub.pem"
)

// buildPolicyBundle builds policies/ as `opa build -b --revision R
// [--signing-key K]` does.
func buildPolicyBundle(t *testing.T, revision, signingKey string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mcpgw.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := compile.New().WithAsBundle(true).WithPaths("../../policies").WithRevision(revision).WithOutput(f)
	if signingKey != "" {
		// opa build signs with the key id "default" unless told otherwise.
		c = c.WithBundleSigningConfig(bundle.NewSigningConfig(signingKey, "RS256", "")).WithBundleVerificationKeyID("default")
	}
	if err := c.Build(context.Background()); err != nil {
		t.Fatalf("build bundle: %v", err)
	}
	return out
}

// tamperData changes data.json inside a bundle, keeping its signature.
func tamperData(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "data.json") {
			body = bytes.Replace(body, []byte(`"mcp:write"`), []byte(`"mcp:read"`), 1)
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.tar.gz")
	if err := os.WriteFile(tampered, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return tampered
}

// otherPublicKey is a key the dev bundle was not signed with.
func otherPublicKey(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBundleVerify(t *testing.T) {
	signed := buildPolicyBundle(t, "2026.03.1", devSigningKey)
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
		{name: "tampered", args: []string{"verify", tamperData(t, signed), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (digest mismatch): data.json: digest mismatch"},
		{name: "wrong key", args: []string{"verify", signed, "--key", otherPublicKey(t)}, code: 1,
			stderr: "FAILED (wrong key)"},
		{name: "key id not the signer's", args: []string{"verify", signed, "--key", devPublicKey, "--key-id", "prod"}, code: 1,
			stderr: `FAILED (wrong key): signed by key id "default", not "prod"`},
		{name: "unsigned", args: []string{"verify", buildPolicyBundle(t, "2026.03.1", ""), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (missing signature)"},
		{name: "no revision", args: []string{"verify", buildPolicyBundle(t, "", devSigningKey), "--key", devPublicKey}, code: 1,
			stderr: "FAILED (bad manifest)"},
		{name: "missing file", args: []string{"verify", filepath.Join(t.TempDir(), "none.tar.gz"), "--key", devPublicKey}, code: 1,
			stderr: "no such file"},
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
