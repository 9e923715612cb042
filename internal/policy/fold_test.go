package policy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// foldPolicy folds the policy of e for query and returns the result.
func foldPolicy(t *testing.T, e *Engine, query string) foldResult {
	t.Helper()
	ctx := context.Background()
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.store.Abort(ctx, txn)
	res, err := foldDataRules(ctx, e.manager.GetCompiler(), e.store, txn, []string{query})
	if err != nil {
		t.Fatalf("fold: %v", err)
	}
	return res
}

// evalWith evaluates query over input against compiler, as JSON ("undefined"
// or "error: ..." otherwise).
func evalWith(t *testing.T, e *Engine, compiler *ast.Compiler, query string, input any) string {
	t.Helper()
	ctx := context.Background()
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.store.Abort(ctx, txn)
	rs, err := rego.New(rego.Query(query), rego.Compiler(compiler), rego.Store(e.store), rego.Transaction(txn), rego.Input(input)).Eval(ctx)
	switch {
	case err != nil:
		return "error"
	case len(rs) == 0:
		return "undefined"
	}
	b, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFoldDataRules(t *testing.T) {
	const data = `{"cfg": {"roles": {"a": ["x", "y"], "b": ["z"]}, "limit": 2}}`
	tests := []struct {
		name string
		rego string
		// other is a second module, package q.
		other  string
		folded []string
		// skipped, when set, is a word of the reason nothing was folded.
		skipped string
		inputs  []map[string]any
	}{
		{
			name: "data-only rules become constants, input rules stay",
			rego: `package p
allowed := {r | some r, _ in data.cfg.roles; count(data.cfg.roles[r]) <= data.cfg.limit}
perms := {r: {p | some p in ps} | some r, ps in data.cfg.roles}
role := input.role
x if {
	role in allowed
	input.perm in perms[role]
}`,
			folded: []string{"data.p.allowed", "data.p.perms"},
			inputs: []map[string]any{{"role": "a", "perm": "x"}, {"role": "a", "perm": "z"}, {"role": "c"}, {}},
		},
		{
			name: "a rule on a data-only function folds, the function stays",
			rego: `package p
double(n) := n * 2
max_items := double(data.cfg.limit)
x if count(input.items) <= max_items`,
			folded: []string{"data.p.max_items"},
			inputs: []map[string]any{{"items": []any{1, 2, 3}}, {"items": []any{1, 2, 3, 4, 5}}},
		},
		{
			name: "else and default fold to their value",
			rego: `package p
default mode := "closed"
mode := "open" if data.cfg.limit > 5
level := "high" if data.cfg.limit > 5 else := "low"
x if { mode == "closed"; level == input.level }`,
			folded: []string{"data.p.level", "data.p.mode"},
			inputs: []map[string]any{{"level": "low"}, {"level": "high"}},
		},
		{
			name: "the clock and randomness are not folded",
			rego: `package p
now := time.now_ns()
pick := rand.intn("k", 100)
x if { now > 0; pick >= 0; input.ok }`,
			inputs: []map[string]any{{"ok": true}},
		},
		{
			name: "a rule that fails to evaluate is left to fail at decision time",
			rego: `package p
conflict := {k: v | some v, k in ["a", "a"]}
x if { input.ok; conflict }`,
			inputs: []map[string]any{{"ok": true}},
		},
		{
			name: "with replaces data for a rule, so nothing is folded",
			rego: `package p
allowed := {r | some r, _ in data.cfg.roles}
x if { "q" in allowed with data.cfg.roles as {"q": []}; input.ok }`,
			skipped: "with",
			inputs:  []map[string]any{{"ok": true}},
		},
		{
			name: "a dynamic reference depends on every rule it may reach",
			other: `package q
static := data.cfg.limit * 10
dynamic := input.n`,
			rego: `package p
vals := [data.q[k] | some k in ["static"]]
x if { input.ok; count(vals) > 0 }`,
			// vals may reach dynamic, which reads input; static may be
			// reached and reads data only.
			folded: []string{"data.q.static"},
			inputs: []map[string]any{{"ok": true, "n": 1}, {"ok": true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"p.rego": tc.rego, "data.json": data}
			if tc.other != "" {
				files["q.rego"] = tc.other
			}
			dir := policyDir(t, files)
			e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
			res := foldPolicy(t, e, "data.p.x")
			if !slices.Equal(res.folded, tc.folded) {
				t.Errorf("folded %v, want %v", res.folded, tc.folded)
			}
			if tc.skipped != "" && !strings.Contains(res.skipped, tc.skipped) {
				t.Errorf("skipped %q, want it to say %q", res.skipped, tc.skipped)
			}
			if len(tc.folded) == 0 && res.compiler != e.manager.GetCompiler() {
				t.Error("nothing folded, but the compiler was replaced")
			}
			for _, in := range tc.inputs {
				plain := evalWith(t, e, e.manager.GetCompiler(), "data.p.x", in)
				folded := evalWith(t, e, res.compiler, "data.p.x", in)
				if plain != folded {
					t.Errorf("input %v: folded policy says %s, the policy says %s", in, folded, plain)
				}
			}
		})
	}
}

// The shipped policy folds its data-derived indexes and decides exactly as
// without folding: every query the gateway asks, over many inputs.
func TestFoldingKeepsShippedDecisions(t *testing.T) {
	e, _ := shippedEngine(t)
	queries := []string{decisionRule, adminQuery}
	for _, kind := range listKinds() {
		rule, _ := visibleRule(kind)
		queries = append(queries, rule)
	}
	ctx := context.Background()
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := foldDataRules(ctx, e.manager.GetCompiler(), e.store, txn, queries)
	e.store.Abort(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range []string{"data.mcp.gateway.compiled_grants", "data.mcp.gateway.role_includes", "data.mcp.gateway.method_patterns", "data.mcp.gateway.read_only_globs"} {
		if !slices.Contains(res.folded, rule) {
			t.Errorf("%s not folded (folded: %v, skipped: %q)", rule, res.folded, res.skipped)
		}
	}
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 300 {
		in := randomInput(r)
		for _, q := range []string{decisionRule, "data.mcp.gateway.visible_tools", "data.mcp.gateway.visible_resources", "data.mcp.gateway.visible_prompts", "data.mcp.admin.allow", "data.mcp.admin.reasons"} {
			plain := evalWith(t, e, e.manager.GetCompiler(), q, in)
			folded := evalWith(t, e, res.compiler, q, in)
			if plain != folded {
				js, _ := json.Marshal(in)
				t.Fatalf("input %d %s: %s\nfolded: %s\npolicy: %s", i, js, q, folded, plain)
			}
		}
	}
}

// randomInput draws a policy input from the shapes the shipped policy
// distinguishes, some with fields missing.
func randomInput(r *rand.Rand) map[string]any {
	pick := func(xs ...any) any { return xs[r.IntN(len(xs))] }
	tools := []any{}
	for _, name := range []string{"get_employee", "update_employee", "delete_employee", "read_file", "write_file", "echo", "export_report", ""} {
		if r.IntN(2) == 0 {
			tools = append(tools, map[string]any{"name": name, "annotations": pick(map[string]any{}, map[string]any{"readOnlyHint": true}, map[string]any{"readOnlyHint": false})})
		}
	}
	in := map[string]any{
		"version": pick(1, 1, 1, 2),
		"token": map[string]any{
			"sub": "alice", "client_id": pick("cursor-client", "cursor-client", "", "other"),
			"scopes": pick([]any{}, []any{"mcp:read"}, []any{"mcp:read", "mcp:write"}, []any{"mcp:write"}),
			"groups": pick([]any{}, []any{"mcp-viewers"}, []any{"mcp-admins"}, []any{"mcp-super-admins"}, []any{"mcp-admins", "finance"}, []any{"unknown"}),
		},
		"agent": map[string]any{
			"id": pick("cursor", "cursor", ""), "client_id": pick("cursor-client", ""), "enabled": r.IntN(6) > 0,
			"scopes": pick([]any{"mcp:read", "mcp:write"}, []any{"mcp:read"}),
		},
		"backend": map[string]any{"name": pick("employees", "files", "notes", "finance", "other")},
		"mcp": map[string]any{
			"kind":      pick("request", "request", "request", "notification", "response", "stream", "close", "", "other"),
			"method":    pick("tools/call", "tools/call", "tools/list", "resources/read", "prompts/get", "initialize", "tasks/cancel", "sampling/createMessage", "notifications/initialized", "", "GET", "DELETE"),
			"tool":      pick("", "get_employee", "update_employee", "delete_employee", "read_file", "write_file", "echo", "export_report", "file:///a", "summarize"),
			"arguments": pick(map[string]any{}, map[string]any{"employee_id": "*"}, map[string]any{"employee_id": "e-1"}, map[string]any{"path": "/etc/passwd"}, map[string]any{"path": "notes/a"}, map[string]any{"file": "../x"}, map[string]any{"path": []any{"x"}}),
		},
		"tools":     tools,
		"resources": []any{map[string]any{"uri": "file:///a", "name": "a"}},
		"prompts":   []any{map[string]any{"name": "summarize"}},
		"admin":     map[string]any{"action": pick("list", "get", "create", "delete"), "kind": "agents", "name": pick("", "cursor")},
	}
	if r.IntN(4) == 0 {
		section := pick("agent", "token", "mcp", "backend").(string)
		delete(in[section].(map[string]any), pick("id", "client_id", "enabled", "groups", "scopes", "name", "tool", "method", "kind").(string))
	}
	return in
}
