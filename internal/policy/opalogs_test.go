package policy

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
)

// maskRego masks the token and the tool arguments out of OPA's decision
// logs, as a security team would, in the policy itself.
const maskRego = `package system.log

mask contains "/input/token"

mask contains "/input/mcp/arguments"
`

// OPA's decision-log plugin receives every call decision, masked by the
// policy's system.log.mask, on the console and at a remote service; the
// engine's own records flow regardless.
func TestOPADecisionLogsMasked(t *testing.T) {
	collector := startDecisionLogService(t)

	dir := policyDir(t, map[string]string{"policy.rego": versionRego, "mask.rego": maskRego, "data.json": `{"mcpgw": {"version": "A"}}`})
	var logs logBuffer
	rec := &recorder{}
	e, err := New(context.Background(), Options{
		Source: dir, AllowUnsigned: true, Logger: logs.logger(), DecisionLog: rec.log,
		OPAConfig: map[string]any{
			"services":      map[string]any{"logs": map[string]any{"url": collector.url}},
			"decision_logs": map[string]any{"service": "logs", "console": true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(context.Background(), versionCall())
	if !d.Allow {
		t.Fatalf("decision %+v", d)
	}
	// Stopping flushes the buffered events to the service.
	stopEngine(t, e)

	events := collector.received()
	i := slices.IndexFunc(events, func(ev map[string]any) bool { return ev["decision_id"] == d.ID })
	if i < 0 {
		t.Fatalf("decision %s not among %d uploaded events", d.ID, len(events))
	}
	ev := events[i]
	input, _ := ev["input"].(map[string]any)
	mcp, _ := input["mcp"].(map[string]any)
	agent, _ := input["agent"].(map[string]any)
	result, _ := ev["result"].(map[string]any)
	bundles, _ := ev["bundles"].(map[string]any)
	mcpgw, _ := bundles[bundleName].(map[string]any)
	switch {
	case ev["path"] != decisionPath:
		t.Fatalf("path %v", ev["path"])
	case input["token"] != nil || mcp["arguments"] != nil:
		t.Fatalf("masked fields logged: %v", input)
	case mcp["tool"] != "get_employee" || agent["id"] != "cursor":
		t.Fatalf("unmasked fields missing: %v", input)
	case result["allow"] != true:
		t.Fatalf("result %v", ev["result"])
	case mcpgw["revision"] != d.Revision:
		t.Fatalf("bundles %v, want revision %s", ev["bundles"], d.Revision)
	}
	erased, _ := ev["erased"].([]any)
	if !slices.Contains(erased, any("/input/token")) || !slices.Contains(erased, any("/input/mcp/arguments")) {
		t.Fatalf("erased %v", ev["erased"])
	}

	console := logs.String()
	if !strings.Contains(console, "Decision Log") || !strings.Contains(console, d.ID) {
		t.Fatalf("no console decision log:\n%s", console)
	}
	if strings.Contains(console, "alice@example.com") {
		t.Fatalf("the console decision log shows masked token claims:\n%s", console)
	}
	if rs := rec.all(); len(rs) != 1 || rs[0].DecisionID != d.ID {
		t.Fatalf("engine records %+v", rs)
	}
}

// policy.opa reaches OPA unchanged except for the sections this gateway
// does not run; the policy.bundle URL shorthand expands to OPA's own
// sections; and signatures are mandatory for downloaded bundles.
func TestOPAConfiguration(t *testing.T) {
	_, publicKey := policytest.KeyPair(t)
	tests := []struct {
		name string
		o    Options
		err  string
	}{
		{"discovery refused", Options{Source: shippedPolicies, AllowUnsigned: true, OPAConfig: map[string]any{"discovery": map[string]any{"service": "x"}}}, "policy.opa.discovery: not supported"},
		{"custom plugins refused", Options{Source: shippedPolicies, AllowUnsigned: true, OPAConfig: map[string]any{"plugins": map[string]any{"x": map[string]any{}}}}, "policy.opa.plugins: not supported"},
		{"deprecated bundle refused", Options{Source: shippedPolicies, AllowUnsigned: true, OPAConfig: map[string]any{"bundle": map[string]any{"name": "x"}}}, "policy.opa.bundle: not supported"},
		{"URL and opa.bundles", Options{Source: "https://bundles.example.com/b.tar.gz", OPAConfig: map[string]any{"bundles": map[string]any{}}}, "configure the bundle server in one place"},
		{"explicit path and opa.bundles", Options{Source: "other-policies", OPAConfig: map[string]any{"bundles": map[string]any{}}}, "configure one policy source"},
		{"unsupported scheme", Options{Source: "ftp://bundles.example.com/b.tar.gz"}, `unsupported scheme "ftp"`},
		{"credentials in URL", Options{Source: "https://user:secret@bundles.example.com/b.tar.gz", VerificationKey: publicKey}, "credentials in the URL"},
		{"URL without key", Options{Source: "https://bundles.example.com/b.tar.gz"}, "no verification_key or key_id"},
		{"URL with unknown key_id", Options{Source: "https://bundles.example.com/b.tar.gz", KeyID: "prod"}, `policy.key_id "prod": no such key`},
		{"key in two places", Options{Source: "https://bundles.example.com/b.tar.gz", VerificationKey: publicKey, OPAConfig: map[string]any{
			"keys": map[string]any{"default": map[string]any{"key": "x", "algorithm": "RS256"}},
		}}, "give the key in one place"},
		{"opa.bundles without signing", Options{OPAConfig: map[string]any{
			"services": map[string]any{"s": map[string]any{"url": "https://bundles.example.com"}},
			"bundles":  map[string]any{"mcp": map[string]any{"service": "s", "resource": "b.tar.gz"}},
		}}, "policy.opa.bundles.mcp: no signing block"},
		{"opa.bundles with an unknown service", Options{AllowUnsigned: true, OPAConfig: map[string]any{
			"bundles": map[string]any{"mcp": map[string]any{"service": "nope", "resource": "b.tar.gz"}},
		}}, "policy.opa.bundles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Logger, tc.o.DecisionLog = quietLogger(), func(context.Context, Record) {}
			e, err := New(context.Background(), tc.o)
			if err == nil {
				stopEngine(t, e)
				t.Fatalf("New accepted the configuration; want an error mentioning %q", tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q, want it to mention %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks a credential: %v", err)
			}
		})
	}

	t.Run("shorthand expansion", func(t *testing.T) {
		pem, err := readKey(publicKey)
		if err != nil {
			t.Fatal(err)
		}
		o := Options{Source: "https://bundles.example.com/v1/mcp/bundle.tar.gz?tenant=a", VerificationKey: publicKey, KeyID: "ci-2026", PollInterval: 30 * time.Second,
			OPAConfig: map[string]any{"decision_logs": map[string]any{"console": true}}}
		setup, err := buildOPAConfig(&o, sourceURL)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(setup.raw, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			// The service's credentials are the bundle guard's, which wraps
			// the configured ones (none here).
			"services": map[string]any{shorthandService: map[string]any{
				"url": "https://bundles.example.com", "credentials": map[string]any{"plugin": guardPluginPrefix + shorthandService},
			}},
			"bundles": map[string]any{bundleName: map[string]any{
				"service": shorthandService, "resource": "v1/mcp/bundle.tar.gz?tenant=a", "persist": true,
				"polling":          map[string]any{"min_delay_seconds": 30.0, "max_delay_seconds": 60.0},
				"signing":          map[string]any{"keyid": "ci-2026"},
				"size_limit_bytes": float64(DefaultMaxBundleFileBytes),
			}},
			"keys":                  map[string]any{"ci-2026": map[string]any{"key": pem, "algorithm": "RS256"}},
			"persistence_directory": DefaultPersistDir,
			"decision_logs":         map[string]any{"console": true},
		}
		gotJSON, _ := json.MarshalIndent(got, "", " ")
		wantJSON, _ := json.MarshalIndent(want, "", " ")
		if string(gotJSON) != string(wantJSON) {
			t.Fatalf("expanded config\n%s\nwant\n%s", gotJSON, wantJSON)
		}
		if _, ok := o.OPAConfig["bundles"]; ok {
			t.Fatal("expansion wrote into the caller's config")
		}
	})
}

// A remote source's first attempt bounds New: a gateway whose bundle server
// does not answer starts after StartupWait, denying.
func TestStartupWaitBoundsNew(t *testing.T) {
	_, publicKey := policytest.KeyPair(t)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(hang.CloseClientConnections)
	start := time.Now()
	e, _ := newEngine(t, Options{Source: hang.URL + "/b.tar.gz", VerificationKey: publicKey, PersistDir: t.TempDir(), StartupWait: 300 * time.Millisecond})
	if waited := time.Since(start); waited >= DefaultStartupWait {
		t.Fatalf("New waited %s for a silent server: StartupWait was ignored", waited)
	}
	if err := e.Ready(); err == nil || !strings.Contains(err.Error(), "waiting for the first verified bundle from "+hang.URL) {
		t.Fatalf("Ready: %v", err)
	}
}

// The mask shipped in policies/system/log hides the token's claims and the
// tool arguments from OPA's decision logs but keeps who decided (sub, iss,
// client_id) readable.
func TestShippedDecisionLogMask(t *testing.T) {
	var logs logBuffer
	e, err := New(context.Background(), Options{
		Source: shippedPolicies, AllowUnsigned: true, Logger: logs.logger(),
		OPAConfig: map[string]any{"decision_logs": map[string]any{"console": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "ARG-SECRET-7"})
	in.Token.Claims = map[string]any{"email": "CLAIM-SECRET-8@example.com"}
	d := e.Decide(context.Background(), in)
	stopEngine(t, e)

	console := logs.String()
	if !strings.Contains(console, d.ID) {
		t.Fatalf("no console decision log for %s:\n%s", d.ID, console)
	}
	for _, leak := range []string{"ARG-SECRET-7", "CLAIM-SECRET-8"} {
		if strings.Contains(console, leak) {
			t.Errorf("the decision log shows masked %s:\n%s", leak, console)
		}
	}
	for _, keep := range []string{in.Token.Sub, in.Token.Iss, in.Token.ClientID, "/input/token/claims", "/input/mcp/arguments"} {
		if !strings.Contains(console, keep) {
			t.Errorf("the decision log lacks %s:\n%s", keep, console)
		}
	}
}

// decisionLogService is an OPA decision-log service: it keeps the events
// OPA's plugin uploads (gzipped JSON arrays).
type decisionLogService struct {
	url    string
	mu     sync.Mutex
	events []map[string]any
}

func startDecisionLogService(t *testing.T) *decisionLogService {
	t.Helper()
	d := &decisionLogService{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var batch []map[string]any
		if err := json.NewDecoder(zr).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.events = append(d.events, batch...)
		d.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

// received is every event so far.
func (d *decisionLogService) received() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}
