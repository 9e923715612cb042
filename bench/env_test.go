package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/load"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// TestBenchPolicies: the harness's copy of the policies differs from the
// shipped ones only in the tool budget, raised out of the load's reach, and
// the argument rule that makes fresh calls on argsReadBackend evaluate.
func TestBenchPolicies(t *testing.T) {
	dst, err := benchPolicies("../policies", filepath.Join(t.TempDir(), "policies"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) map[string]any {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	shipped, copied := read("../policies/data.json"), read(filepath.Join(dst, "data.json"))
	budget := func(m map[string]any) map[string]any {
		return m["mcpgw"].(map[string]any)["obligations"].(map[string]any)["tool_budget"].(map[string]any)
	}
	if got := budget(copied)["limit"]; got != float64(1_000_000_000) {
		t.Fatalf("copied tool_budget.limit = %v", got)
	}
	budget(copied)["limit"] = budget(shipped)["limit"]
	wildcards := func(m map[string]any) []any {
		return m["mcpgw"].(map[string]any)["argument_rules"].(map[string]any)["wildcard_targets"].([]any)
	}
	added := wildcards(copied)
	if len(added) != len(wildcards(shipped))+1 || added[len(added)-1].(map[string]any)["name"] != benchArgumentRule["name"] {
		t.Fatalf("the benchmark's argument rule was not added last: %v", added)
	}
	copied["mcpgw"].(map[string]any)["argument_rules"].(map[string]any)["wildcard_targets"] = added[:len(added)-1]
	a, _ := json.Marshal(shipped)
	b, _ := json.Marshal(copied)
	if string(a) != string(b) {
		t.Errorf("the copy differs from the shipped data in more than the budget and the rule")
	}
	if _, err := os.Stat(filepath.Join(dst, "mcp", "gateway", "gateway.rego")); err != nil {
		t.Errorf("the Rego was not copied: %v", err)
	}
	// Policies without the budget: said, not silently benchmarked.
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "data.json"), []byte(`{"mcpgw":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := benchPolicies(empty, filepath.Join(t.TempDir(), "p")); err == nil || !strings.Contains(err.Error(), "tool_budget") {
		t.Errorf("policies without a budget: %v", err)
	}
}

// TestGatewayConfig: the configuration the harness writes passes the
// gateway's validation, okta-cross-app backend included (its agents need a
// client_id and a private key for it), and gives every agent every route.
func TestGatewayConfig(t *testing.T) {
	policies, err := benchPolicies("../policies", filepath.Join(t.TempDir(), "policies"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for range benchAgents {
		private, public, err := newAgentKey()
		if err != nil {
			t.Fatal(err)
		}
		// The identity provider gets the public half only.
		if _, ok := public.(jwk.ECDSAPublicKey); !ok || !strings.Contains(private, `"d"`) {
			t.Fatalf("newAgentKey: public %T, private has d: %v", public, strings.Contains(private, `"d"`))
		}
		keys = append(keys, private)
	}
	text := gatewayConfig(gatewaySetup{
		listen: "127.0.0.1:1", metrics: "127.0.0.1:2", issuer: "http://127.0.0.1:3", policies: policies,
		routes: []route{{"b50", "http://127.0.0.1:4/mcp"}, {argsReadBackend, "http://127.0.0.1:4/mcp"}}, extraBackends: 1,
		b50URL: "http://127.0.0.1:4/mcp", resourceAS: "http://127.0.0.1:5", agentKeys: keys,
	})
	cfg, err := config.LoadSource(config.Source{Text: []byte(text), From: "CONFIG_YAML"}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	// What config.Load leaves to the gateway: each backend's credential
	// settings and each agent's key, as `mcpgw validate` checks them.
	if errs := gateway.Check(cfg); len(errs) > 0 {
		t.Fatalf("gateway.Check: %v\n%s", errs, text)
	}
	xaa := cfg.Backends[xaaBackend]
	if xaa.AuthMethod != "okta-cross-app" || xaa.URL != "http://127.0.0.1:4/mcp" ||
		xaa.AuthConfig["idp_token_endpoint"] != "http://127.0.0.1:3"+testidp.PathToken || xaa.AuthConfig["target_authorization_server"] != "http://127.0.0.1:5" {
		t.Errorf("%s: %+v", xaaBackend, xaa)
	}
	want := []string{"b50", argsReadBackend, xaaBackend, "extra0"}
	for i, a := range benchAgents {
		got := cfg.Agents[a.id]
		if got.ClientID != a.client || got.PrivateKey != keys[i] || !slices.Equal(got.BackendAccess, want) {
			t.Errorf("agent %s: client %q, key set %v, access %v", a.id, got.ClientID, got.PrivateKey == keys[i], got.BackendAccess)
		}
	}
}

// TestReportXAA: the calls counted are the xaa target's, and the counts
// land in the record as well as in the text.
func TestReportXAA(t *testing.T) {
	recs := []record{
		{Target: xaaTarget, Sum: &load.Summary{Requests: 5}},
		{Target: "mcpgw repeated", Sum: &load.Summary{Requests: 7}},
		{Target: xaaTarget, Sum: &load.Summary{Requests: 6}},
	}
	if n := callsTo(recs, xaaTarget); n != 11 {
		t.Fatalf("callsTo = %d, want 11", n)
	}
	var out strings.Builder
	before, after := xaaGrants{exchanges: 2, jwtBearer: 3}, xaaGrants{exchanges: 10, jwtBearer: 11}
	r := reportXAA(&out, 8, after.minus(before), xaaGrants{}, 11)
	if !strings.Contains(out.String(), "8 token exchanges at the IdP, 8 jwt-bearer grants") ||
		!strings.Contains(out.String(), "0 token exchanges at the IdP, 0 jwt-bearer grants at the resource AS during 11 calls") {
		t.Errorf("report:\n%s", out.String())
	}
	if r.Extra["warmup_token_exchanges"] != int64(8) || r.Extra["token_exchanges"] != int64(0) || r.Extra["calls"] != 11 || r.Sum != nil {
		t.Errorf("record: %+v", r)
	}
}
