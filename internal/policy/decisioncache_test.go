package policy

import (
	"context"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cachedCount is how many decisions the active policy remembers.
func cachedCount(e *Engine) int {
	s := e.snap.Load()
	if s == nil || s.decisions == nil {
		return -1
	}
	return s.decisions.entries.Len()
}

// cacheStep is one call in a decision cache test: what it must be decided
// and how many decisions the engine remembers after it.
type cacheStep struct {
	name   string
	in     *Input
	allow  bool
	cached int
}

// decideStep decides s.in with e and checks it against s.
func decideStep(t *testing.T, e *Engine, s cacheStep) Decision {
	t.Helper()
	d := e.Decide(context.Background(), s.in)
	if d.Allow != s.allow {
		t.Errorf("%s: allow %v (%v), want %v", s.name, d.Allow, d.Reasons, s.allow)
	}
	if n := cachedCount(e); n != s.cached {
		t.Errorf("%s: %d decisions cached, want %d", s.name, n, s.cached)
	}
	return d
}

func TestDecisionCacheAnswersRepeatedCalls(t *testing.T) {
	e, rec := shippedEngine(t)
	viewer := func(tool string, args map[string]any) *Input {
		return caller([]string{"mcp-viewers"}, writeScopes, "employees", tool, args)
	}
	supers := func(args map[string]any) *Input {
		return caller([]string{"mcp-super-admins"}, writeScopes, "employees", "delete_employee", args)
	}
	steps := []cacheStep{
		{"first call is evaluated", viewer("get_employee", map[string]any{"employee_id": "e-1"}), true, 1},
		{"the same call is remembered", viewer("get_employee", map[string]any{"employee_id": "e-1"}), true, 1},
		{"another tool is another decision", viewer("update_employee", map[string]any{"employee_id": "e-1"}), false, 2},
		{"an argument decides", supers(map[string]any{"employee_id": "*"}), false, 3},
		{"so it is part of the key", supers(map[string]any{"employee_id": "e-1"}), true, 4},
		{"and its value counts", supers(map[string]any{"employee_id": "*"}), false, 4},
		{"the caller is part of the key", func() *Input {
			in := viewer("get_employee", map[string]any{"employee_id": "e-1"})
			in.Agent.Enabled = false
			return in
		}(), false, 5},
		{"and the called tool's catalog entry", func() *Input {
			in := caller([]string{"mcp-admins"}, readScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"})
			in.Tools = []Tool{{Name: "update_employee", Annotations: map[string]any{"readOnlyHint": true}}}
			return in
		}(), true, 6},
		{"whose hint changes the decision", func() *Input {
			in := caller([]string{"mcp-admins"}, readScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"})
			in.Tools = []Tool{{Name: "update_employee", Annotations: map[string]any{"readOnlyHint": false}}}
			return in
		}(), false, 7},
		{"a GET stream is decided", session([]string{"mcp-viewers"}, readScopes, "employees", KindStream), true, 8},
		{"the kind is part of the key", func() *Input {
			in := session([]string{"mcp-viewers"}, readScopes, "employees", KindStream)
			in.MCP.Kind = KindRequest // a JSON-RPC request named GET
			return in
		}(), false, 9},
		{"and the stream is remembered", session([]string{"mcp-viewers"}, readScopes, "employees", KindStream), true, 9},
		// An agent without scopes leaves them to the token; one with an
		// empty list may use none. Hashed alike, one would answer for the
		// other.
		{"an agent without scopes", func() *Input {
			in := viewer("get_employee", map[string]any{"employee_id": "e-1"})
			in.Agent.Scopes = nil
			return in
		}(), true, 10},
		{"is not an agent with none", func() *Input {
			in := viewer("get_employee", map[string]any{"employee_id": "e-1"})
			in.Agent.Scopes = []string{}
			return in
		}(), false, 11},
	}
	ids := map[string]bool{}
	for _, s := range steps {
		d := decideStep(t, e, s)
		if ids[d.ID] {
			t.Errorf("%s: decision id %s reused", s.name, d.ID)
		}
		ids[d.ID] = true
	}
	// Every call is recorded, remembered or not.
	if got := len(rec.all()); got != len(steps) {
		t.Errorf("%d decision records, want %d", got, len(steps))
	}
}

// A cached decision is the decision: same reasons, status and scope.
func TestCachedDecisionEqualsEvaluated(t *testing.T) {
	cached, _ := shippedEngine(t)
	plain, _ := newEngine(t, Options{Source: shippedPolicies, AllowUnsigned: true, DecisionCacheSize: -1})
	if cachedCount(plain) != -1 {
		t.Fatal("DecisionCacheSize -1 still caches")
	}
	ctx := context.Background()
	for _, in := range []*Input{
		caller([]string{"mcp-admins"}, readScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"}),
		caller([]string{"mcp-admins"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "*"}),
		lister([]string{"mcp-viewers"}, nil, "finance"),
	} {
		first, again, want := cached.Decide(ctx, in), cached.Decide(ctx, in), plain.Decide(ctx, in)
		for _, d := range []Decision{first, again} {
			if d.Allow != want.Allow || d.Status != want.Status || d.Scope != want.Scope || !slices.Equal(d.Reasons, want.Reasons) || d.Revision != want.Revision {
				t.Errorf("%s %s: cached engine %+v, uncached %+v", in.MCP.Method, in.MCP.Tool, d, want)
			}
		}
	}
}

func TestDecisionCacheOnlyForDeterministicPolicies(t *testing.T) {
	tests := []struct {
		name   string
		rego   string
		cached bool
	}{
		{"a function of input and data", `decision := {"allow": input.agent.enabled, "reasons": []}`, true},
		{"reads the clock", `decision := {"allow": time.now_ns() % 2 == 0, "reasons": []}`, false},
		{"through a helper rule", `decision := {"allow": even, "reasons": []}
even if rand.intn("x", 2) == 0`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\n" + tc.rego + "\n"})
			e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
			in := caller(nil, nil, "employees", "get_employee", nil)
			e.Decide(context.Background(), in)
			e.Decide(context.Background(), in)
			if got := cachedCount(e); (got == 1) != tc.cached || (!tc.cached && got != -1) {
				t.Errorf("%d decisions cached, want cached=%v", got, tc.cached)
			}
		})
	}
}

// A new policy starts with no remembered decisions, and a stopped engine
// denies whatever it remembers.
func TestDecisionCacheFollowsThePolicy(t *testing.T) {
	policy := func(allow bool) string {
		v := "false"
		if allow {
			v = "true"
		}
		return "package mcp.gateway\n\ndecision := {\"allow\": " + v + ", \"reasons\": [\"r\"]}\n"
	}
	dir := policyDir(t, map[string]string{"p.rego": policy(true)})
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	ctx := context.Background()
	in := caller(nil, nil, "employees", "get_employee", nil)
	// The second decision is answered from the cache.
	if first, cached := e.Decide(ctx, in), e.Decide(ctx, in); !first.Allow || !cached.Allow {
		t.Fatal("policy allowing everything denied")
	}
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := cachedCount(e); n != 0 {
		t.Errorf("new policy starts with %d cached decisions", n)
	}
	if e.Decide(ctx, in).Allow {
		t.Error("decision of the previous policy served after a reload")
	}
	e.Stop(ctx)
	if d := e.Decide(ctx, in); d.Allow || len(d.Reasons) != 1 || d.Reasons[0] != "policy engine error: "+errStopped.Error() {
		t.Errorf("stopped engine decided %+v", d)
	}
}

// Arguments that differ only deep down (the strict reader takes 128
// levels) are different keys: a policy may read that far.
func TestDecisionCacheDeepArguments(t *testing.T) {
	const depth = 80
	nested := func(leaf string) map[string]any {
		v := any(leaf)
		for range depth {
			v = map[string]any{"a": v}
		}
		return map[string]any{"deep": v}
	}
	path := "input.mcp.arguments.deep" + strings.Repeat(".a", depth)
	dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": " + path + " == \"ok\", \"reasons\": [\"r\"]}\n"})
	for _, size := range []int{0, -1} {
		e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, DecisionCacheSize: size})
		ctx := context.Background()
		if d := e.Decide(ctx, caller(nil, nil, "employees", "t", nested("ok"))); !d.Allow {
			t.Fatalf("cache size %d: the deep value ok was denied: %v", size, d.Reasons)
		}
		if d := e.Decide(ctx, caller(nil, nil, "employees", "t", nested("no"))); d.Allow {
			t.Errorf("cache size %d: the deep value no was allowed (answered for ok)", size)
		}
	}
	seed := maphash.MakeSeed()
	if hashAny(seed, nested("ok"), 0) == hashAny(seed, nested("no"), 0) {
		t.Error("values that differ below 64 levels hash alike")
	}
}
