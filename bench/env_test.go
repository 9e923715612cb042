package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
