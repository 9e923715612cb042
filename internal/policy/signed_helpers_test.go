package policy

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// bundleSpec describes a test bundle, built and signed with OPA's own bundle
// package as `opa build --signing-key` would.
type bundleSpec struct {
	revision string
	roots    []string // nil: the manifest declares none
	modules  map[string]string
	data     map[string]any
	// signingKey is a private key PEM file; empty leaves the bundle unsigned.
	signingKey string
	alg        string // default RS256
	keyID      string // default "default"
}

// versionRego allows every call and says, in its reason, which data version
// decided: a decision whose reason and revision disagree was made by a mix of
// two activations.
const versionRego = `package mcp.gateway

decision := {"allow": true, "reasons": [concat(" ", ["version", data.mcpgw.version])], "status": 0}

visible_tools contains t.name if some t in input.tools

visible_resources contains r.uri if some r in input.resources

visible_prompts contains p.name if some p in input.prompts
`

// versioned is a signed bundle of versionRego at revision rev with data
// version version.
func versioned(rev, version, signingKey string) bundleSpec {
	return bundleSpec{
		revision:   rev,
		roots:      []string{"mcp", "mcpgw"},
		modules:    map[string]string{"policy.rego": versionRego},
		data:       map[string]any{"mcpgw": map[string]any{"version": version}},
		signingKey: signingKey,
	}
}

func (s bundleSpec) bytes(t testing.TB) []byte {
	t.Helper()
	data := s.data
	if data == nil {
		data = map[string]any{}
	}
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: s.revision}, Data: data}
	if s.roots != nil {
		roots := slices.Clone(s.roots)
		b.Manifest.Roots = &roots
	}
	for _, name := range slices.Sorted(maps.Keys(s.modules)) {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: []byte(s.modules[name])})
	}
	if s.signingKey != "" {
		alg := s.alg
		if alg == "" {
			alg = "RS256"
		}
		keyID := s.keyID
		if keyID == "" {
			keyID = defaultKeyID
		}
		if err := b.GenerateSignature(bundle.NewSigningConfig(s.signingKey, alg, ""), keyID, false); err != nil {
			t.Fatalf("sign bundle: %v", err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatalf("write bundle: %v", err)
	}
	return buf.Bytes()
}

// writeAtomically replaces path as deployment tools do: write aside, rename.
func writeAtomically(t testing.TB, path string, body []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeBundle writes s to a fresh file and returns its path.
func writeBundle(t testing.TB, s bundleSpec) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	writeAtomically(t, path, s.bytes(t))
	return path
}

// activations records what Options.OnActivate is told.
type activations struct {
	mu   sync.Mutex
	revs []string
}

func (a *activations) record(rev string, _ time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revs = append(a.revs, rev)
}

func (a *activations) seen(rev string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.revs, rev)
}

// logBuffer is a slog handler's output, safe to read while engines log.
type logBuffer struct{ testutil.SyncBuffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// versionCall is an allowed call whose decision names the data version.
func versionCall() *Input {
	return caller([]string{"mcp-viewers"}, readScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1"})
}

// decidedBy checks that d was made wholly by one activation: allowed, with
// a revision, and the reason of that revision's data version.
func decidedBy(d Decision, versionOf map[string]string) bool {
	want, ok := versionOf[d.Revision]
	return ok && d.Allow && len(d.Reasons) == 1 && d.Reasons[0] == "version "+want
}

func stopEngine(t testing.TB, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Stop(ctx)
}
