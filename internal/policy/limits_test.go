package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// manyFiles is a .tar.gz of n tiny files.
func manyFiles(t testing.TB, n int) []byte {
	return tarball(t, n, func() []byte { return []byte(`{}`) })
}

// incompressible is a .tar.gz of one file of n random bytes: as large
// compressed as expanded.
func incompressible(t testing.TB, n int) []byte {
	return tarball(t, 1, func() []byte { return randomBytes(t, n) })
}

func tarball(t testing.TB, n int, content func() []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := range n {
		body := content()
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("/d%d/data.json", i), Mode: 0o644, Size: int64(len(body))}); err != nil {
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
	return buf.Bytes()
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A bundle over any limit, served where the gateway polls, is refused
// before OPA reads it (or, unsigned, by OPA): the last good revision keeps
// deciding, Status names the limit, and the refused bundle is not downloaded
// again while it is unchanged, however many polls follow. A good revision
// published afterwards is taken at once.
func TestRemoteBundleLimits(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	tests := []struct {
		name   string
		limits BundleLimits
		mode   serverMode
		body   []byte
		want   string
	}{
		{name: "download over max_bundle_bytes, announced", limits: BundleLimits{Bytes: 1 << 20},
			body: randomBytes(t, 2<<20), want: "bundle download is 2097152 bytes: over policy.max_bundle_bytes (1048576)"},
		{name: "download over max_bundle_bytes, chunked", limits: BundleLimits{Bytes: 1 << 20}, mode: serverMode{chunked: true},
			body: incompressible(t, 2<<20), want: "bundle download is larger than 1048576 bytes: over policy.max_bundle_bytes (1048576)"},
		{name: "too many files", limits: BundleLimits{Files: 20},
			body: manyFiles(t, 50), want: "bundle holds more than 20 entries: over policy.max_bundle_files (20)"},
		{name: "one file too large", limits: BundleLimits{FileBytes: 1 << 20},
			body: gzipBomb(t, 1, 2<<20), want: "bundle file d0/data.json is 2097152 bytes: over policy.max_bundle_file_bytes (1048576)"},
		{name: "files too large together", limits: BundleLimits{UncompressedBytes: 1 << 20},
			body: gzipBomb(t, 4, 400<<10), want: "over policy.max_bundle_uncompressed_bytes (1048576)"},
		{name: "not a bundle", body: []byte("<html>maintenance</html>"), want: "not a gzipped tar bundle"},
		{name: "unsigned (refused by OPA)", body: versioned("r3", "C", "").bytes(t), want: "bundle missing .signatures.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newBundleServerWith(t, versioned("r1", "A", signingKey).bytes(t), tc.mode)
			e, _ := newEngine(t, Options{
				Source: srv.bundleURL(), VerificationKey: publicKey, PollInterval: time.Second,
				PersistDir: t.TempDir(), BundleLimits: tc.limits,
			})
			if e.Revision() != "r1" {
				t.Fatalf("revision %q before the bad bundle", e.Revision())
			}
			before := e.Status().LastRejectedAt
			srv.set(tc.body)
			testutil.Eventually(t, time.Minute, "the bad bundle rejected", func() bool { return e.Status().LastRejectedAt.After(before) })
			st := e.Status()
			if !strings.Contains(st.LastRejected, tc.want) || st.Revision != "r1" || !st.Ready {
				t.Fatalf("status %+v: want r1 serving and a rejection mentioning %q", st, tc.want)
			}
			rejectedAt := st.LastRejectedAt

			// Counted in polls, not seconds: however slow the machine,
			// three more polls download nothing.
			after := srv.requests()
			testutil.Eventually(t, time.Minute, "three polls after the rejection", func() bool { return srv.requests() >= after+3 })
			if n := len(srv.servedSinceSet()); n != 1 {
				t.Fatalf("the bad bundle was downloaded %d times, want once", n)
			}
			// Asking again is not a new rejection: Status keeps the reason.
			if st := e.Status(); st.LastRejectedAt != rejectedAt || !strings.Contains(st.LastRejected, tc.want) {
				t.Fatalf("status after the polls %+v: want the first rejection kept", st)
			}
			if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
				t.Fatalf("decision after the bad bundle: %+v", d)
			}

			srv.set(versioned("r2", "B", signingKey).bytes(t))
			testutil.Eventually(t, time.Minute, "r2 activated after the bad bundle", func() bool { return e.Revision() == "r2" })
		})
	}
}

// With OPA's own configuration, the guard wraps each service's credentials
// rather than replacing them: a bundle server that wants a bearer token
// still gets it (the good bundle activates), and the limits still apply.
func TestLimitsKeepServiceCredentials(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	pem, err := readKey(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := newBundleServerWith(t, versioned("r1", "A", signingKey).bytes(t), serverMode{bearer: "s3cret"})
	e, _ := newEngine(t, Options{
		BundleLimits: BundleLimits{FileBytes: 1 << 20},
		OPAConfig: map[string]any{
			"services": []any{map[string]any{"name": "acme", "url": srv.URL + "/bundles",
				"credentials": map[string]any{"bearer": map[string]any{"token": "s3cret"}}}},
			"keys": map[string]any{"ci": map[string]any{"key": pem, "algorithm": "RS256"}},
			"bundles": map[string]any{"gateway": map[string]any{
				"service": "acme", "resource": "mcpgw.tar.gz",
				"signing": map[string]any{"keyid": "ci"},
				"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 2},
			}},
			"persistence_directory": t.TempDir(),
		},
	})
	if err := e.Ready(); err != nil || e.Revision() != "r1" {
		t.Fatalf("revision %q, ready %v: the bearer token did not reach the server", e.Revision(), err)
	}
	before := e.Status().LastRejectedAt
	srv.set(gzipBomb(t, 1, 2<<20))
	testutil.Eventually(t, time.Minute, "the bomb rejected", func() bool { return e.Status().LastRejectedAt.After(before) })
	if st := e.Status(); !strings.Contains(st.LastRejected, "over policy.max_bundle_file_bytes (1048576)") || st.Revision != "r1" {
		t.Fatalf("status %+v", st)
	}
}

// Against a server that cannot say a bundle is unchanged (no ETag), a
// rejected bundle is downloaded again only after a wait that doubles from
// the poll interval after each rejection. The assertion is on lower bounds
// of the intervals, which a slow machine only lengthens. Today's OPA
// retried at once, then after 0.16 s, 0.26 s, …
func TestRejectedBundleBacksOff(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	tests := []struct {
		name   string
		limits BundleLimits
		body   []byte
		want   string
	}{
		{name: "refused for its size by the gateway", limits: BundleLimits{FileBytes: 1 << 20},
			body: gzipBomb(t, 1, 2<<20), want: "max_bundle_file_bytes"},
		{name: "refused for its signature by OPA", body: versioned("r3", "C", "").bytes(t), want: "bundle missing .signatures.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const poll = time.Second
			srv := newBundleServerWith(t, versioned("r1", "A", signingKey).bytes(t), serverMode{noETag: true})
			e, _ := newEngine(t, Options{
				Source: srv.bundleURL(), VerificationKey: publicKey, PollInterval: poll,
				PersistDir: t.TempDir(), BundleLimits: tc.limits,
			})
			srv.set(tc.body)
			testutil.Eventually(t, 2*time.Minute, "three downloads of the bad bundle", func() bool { return len(srv.servedSinceSet()) >= 3 })
			served := srv.servedSinceSet()
			for k := 1; k < 3; k++ {
				// ±10% jitter around poll × 2^(k-1).
				least := time.Duration(float64(poll) * 0.85 * float64(int(1)<<(k-1)))
				if gap := served[k].Sub(served[k-1]); gap < least {
					t.Fatalf("download %d came %s after the previous rejection, want at least %s (downloads at %v)", k+1, gap, least, served)
				}
			}
			if st := e.Status(); !strings.Contains(st.LastRejected, tc.want) || st.Revision != "r1" || !st.Ready {
				t.Fatalf("status %+v: want r1 serving and a rejection mentioning %q", st, tc.want)
			}
		})
	}
}

// Local sources are checked against the limits before OPA reads them: a
// source over them does not start, and a watched one that grows over them
// is rejected while the last good one keeps serving.
func TestLocalSourceLimits(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	bundleFile := func(body []byte) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "bundle.tar.gz")
			writeAtomically(t, path, body)
			return path
		}
	}
	dir := func(files map[string]string) func(t *testing.T) string {
		return func(t *testing.T) string { return policyDir(t, files) }
	}
	tests := []struct {
		name   string
		source func(t *testing.T) string
		limits BundleLimits
		want   string
	}{
		{"bundle file: gzip bomb", bundleFile(gzipBomb(t, 2, 100<<20)), BundleLimits{},
			"bundle file d0/data.json is 104857600 bytes: over policy.max_bundle_file_bytes (67108864)"},
		{"bundle file: over max_bundle_bytes", bundleFile(versioned("r1", "A", signingKey).bytes(t)), BundleLimits{Bytes: 512},
			"over policy.max_bundle_bytes (512)"},
		{"bundle file: too many entries", bundleFile(versioned("r1", "A", signingKey).bytes(t)), BundleLimits{Files: 2},
			"bundle holds more than 2 entries: over policy.max_bundle_files (2)"},
		{"directory: too many files", dir(map[string]string{"a.rego": "package a\n", "b.rego": "package b\n", "c.json": "{}"}), BundleLimits{Files: 2},
			"policy directory holds more than 2 files: over policy.max_bundle_files (2)"},
		{"directory: a file too large", dir(map[string]string{"p.rego": "package a\n", "data.json": `{"x": "` + strings.Repeat("x", 2000) + `"}`}), BundleLimits{FileBytes: 1024},
			"policy file data.json is 2009 bytes: over policy.max_bundle_file_bytes (1024)"},
		{"directory: files too large together", dir(map[string]string{"a.json": strings.Repeat(" ", 1500) + "{}", "b.json": strings.Repeat(" ", 1500) + "{}"}), BundleLimits{UncompressedBytes: 2048},
			"policy files add up to more than 2048 bytes: over policy.max_bundle_uncompressed_bytes (2048)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := New(context.Background(), Options{Source: tc.source(t), VerificationKey: publicKey, AllowUnsigned: true,
				BundleLimits: tc.limits, Logger: quietLogger(), DecisionLog: func(context.Context, Record) {}})
			if err == nil {
				stopEngine(t, e)
				t.Fatalf("New accepted a source over the limits; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !errors.As(err, new(*LimitError)) {
				t.Fatalf("New: %v; want a LimitError mentioning %q", err, tc.want)
			}
		})
	}

	t.Run("watched bundle file grows over the limits", func(t *testing.T) {
		t.Parallel()
		path := writeBundle(t, versioned("r1", "A", signingKey))
		e, _ := newEngine(t, Options{Source: path, VerificationKey: publicKey, PollInterval: 10 * time.Millisecond})
		before := e.Status().LastRejectedAt
		writeAtomically(t, path, gzipBomb(t, 3, 1e9))
		testutil.Eventually(t, time.Minute, "the bomb rejected", func() bool { return e.Status().LastRejectedAt.After(before) })
		if st := e.Status(); !strings.Contains(st.LastRejected, "max_bundle_file_bytes") || st.Revision != "r1" || !st.Ready {
			t.Fatalf("status %+v", st)
		}
		if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
			t.Fatalf("decision after the bomb: %+v", d)
		}
	})

	t.Run("limits must not be negative", func(t *testing.T) {
		t.Parallel()
		_, err := New(context.Background(), Options{Source: shippedPolicies, AllowUnsigned: true, BundleLimits: BundleLimits{Files: -1}, Logger: quietLogger()})
		if err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Fatalf("New: %v", err)
		}
	})
}

// `mcpgw bundle verify` applies the limits the gateway will: a bomb fails
// as over limits, without being expanded.
func TestVerifyBundleLimits(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	tests := []struct {
		name   string
		body   []byte
		limits BundleLimits
		want   string
	}{
		{"gzip bomb", gzipBomb(t, 3, 1e9), BundleLimits{}, "over limits: bundle file d0/data.json is 1000000000 bytes: over policy.max_bundle_file_bytes"},
		{"more files than allowed", versioned("r1", "A", signingKey).bytes(t), BundleLimits{Files: 2}, "over limits: bundle holds more than 2 entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "b.tar.gz")
			if err := os.WriteFile(path, tc.body, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := VerifyBundle(path, VerifyOptions{Key: publicKey, Limits: tc.limits})
			var be *BundleError
			if !errors.As(err, &be) || be.Check != CheckLimits || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyBundle: %v; want %q", err, tc.want)
			}
		})
	}
}
