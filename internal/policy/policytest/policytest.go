// Package policytest builds, signs and tampers with OPA bundles for the
// tests of the gateway's policy code and of its command line. It must not
// import internal/policy: that package's own tests import it.
package policytest

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

// Build is what `opa build -b Dir --revision Revision [--signing-key
// SigningKey] [--verification-key-id KeyID]` is told.
type Build struct {
	Dir      string
	Revision string
	// SigningKey is a private key PEM file; empty leaves the bundle unsigned.
	SigningKey string
	// KeyID is the signature's kid; empty leaves it out (the opa CLI says
	// "default" unless told otherwise).
	KeyID string
}

// BuildBundle compiles b.Dir into a bundle file with OPA's compile package,
// as the opa CLI does, and returns its path.
func BuildBundle(t testing.TB, b Build) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := compile.New().WithAsBundle(true).WithPaths(b.Dir).WithRevision(b.Revision).WithOutput(f)
	if b.SigningKey != "" {
		c = c.WithBundleSigningConfig(bundle.NewSigningConfig(b.SigningKey, "RS256", "")).WithBundleVerificationKeyID(b.KeyID)
	}
	if err := c.Build(context.Background()); err != nil {
		t.Fatalf("build bundle from %s: %v", b.Dir, err)
	}
	return out
}

// KeyPair writes a fresh RSA key pair as PEM files.
func KeyPair(t testing.TB) (privatePath, publicPath string) {
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

// Rewrite rebuilds a bundle tarball file by file, keeping each header (the
// signature file is just another file): edit gets each name without its
// leading slash and returns the new body and whether to keep the file; the
// files of add are appended.
func Rewrite(t testing.TB, raw []byte, edit func(name string, body []byte) ([]byte, bool), add map[string][]byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	write := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
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
		if body, keep := edit(strings.TrimPrefix(h.Name, "/"), body); keep {
			write(h, body)
		}
	}
	for name, body := range add {
		write(&tar.Header{Name: "/" + name, Mode: 0o644, Typeflag: tar.TypeReg}, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// EditFile rewrites one file inside a bundle tarball, keeping everything
// else (the signature included).
func EditFile(t testing.TB, raw []byte, name string, edit func([]byte) []byte) []byte {
	t.Helper()
	found := false
	out := Rewrite(t, raw, func(n string, body []byte) ([]byte, bool) {
		if n == name {
			body, found = edit(body), true
		}
		return body, true
	}, nil)
	if !found {
		t.Fatalf("bundle has no %s", name)
	}
	return out
}

// TamperData replaces the first old in data.json of the bundle file at path,
// keeping its signature, and returns the tampered copy's path.
func TamperData(t testing.TB, path, old, replacement string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := EditFile(t, raw, "data.json", func(body []byte) []byte {
		if !bytes.Contains(body, []byte(old)) {
			t.Fatalf("data.json of %s has no %s to tamper with", path, old)
		}
		return bytes.Replace(body, []byte(old), []byte(replacement), 1)
	})
	return WriteFile(t, tampered)
}

// WriteFile writes body to a fresh bundle file and returns its path.
func WriteFile(t testing.TB, body []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
