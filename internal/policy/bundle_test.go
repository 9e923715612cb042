package policy

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

// keyPair writes a fresh RSA key pair as PEM files.
func keyPair(t *testing.T) (privatePath, publicPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privatePath, publicPath = filepath.Join(dir, "private.pem"), filepath.Join(dir, "public.pem")
	if err := os.WriteFile(privatePath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(publicPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	return privatePath, publicPath
}

// buildBundle runs what `opa build -b policies --revision R [--signing-key K]` runs.
func buildBundle(t *testing.T, revision, signingKey string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := compile.New().WithAsBundle(true).WithPaths(shippedPolicies).WithRevision(revision).WithOutput(f)
	if signingKey != "" {
		c = c.WithBundleSigningConfig(bundle.NewSigningConfig(signingKey, "RS256", ""))
	}
	if err := c.Build(context.Background()); err != nil {
		t.Fatalf("build bundle: %v", err)
	}
	return out
}

// tamper rewrites data.json inside a bundle, keeping its signature file.
func tamper(t *testing.T, path string) string {
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
	changed := false
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
			body = bytes.Replace(body, []byte(`"delete_*"`), []byte(`"nothing_*"`), 1)
			changed = true
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if !changed {
		t.Fatal("bundle has no data.json to tamper with")
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

func TestBundleFiles(t *testing.T) {
	signingKey, publicKey := keyPair(t)
	_, otherPublicKey := keyPair(t)
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
		{name: "tampered", o: Options{Source: tamper(t, signed), VerificationKey: publicKey}, err: "digest mismatch"},
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
	copied := map[string]string{}
	entries, err := os.ReadDir(shippedPolicies)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		body, err := os.ReadFile(filepath.Join(shippedPolicies, entry.Name()))
		if err != nil {
			t.Fatal(err)
		}
		copied[entry.Name()] = string(body)
	}
	d, _ := newEngine(t, Options{Source: policyDir(t, copied), AllowUnsigned: true})
	if d.Revision() != a.Revision() {
		t.Fatalf("a copy of the policies has revision %s, the original %s", d.Revision(), a.Revision())
	}
}
