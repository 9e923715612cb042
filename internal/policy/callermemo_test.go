package policy

import (
	"context"
	"slices"
	"testing"
)

// The documents the memo replaces: those that read only the caller's part
// of the input, are always defined, and are reached by rules that are
// evaluated.
func TestCallerRules(t *testing.T) {
	const head = "package mcp.gateway\n\ndecision := {\"allow\": allow, \"reasons\": [r | some r in denials]}\n\ndefault allow := false\n\nallow if { count(denials) == 0; input.mcp.tool != \"\" }\n\n"
	tests := []struct {
		name string
		rego string
		want []string
	}{
		{"a partial set on the token", `denials contains "no sub" if input.token.sub == ""`, []string{"data.mcp.gateway.denials"}},
		{"one definition reads the message", `denials contains "no sub" if input.token.sub == ""
denials contains "no tool" if input.mcp.tool == ""`, nil},
		{"a bare input", `denials contains "x" if { x := input; x.token.sub == "" }`, nil},
		{"input by a variable key", `denials contains "x" if { some k; input[k].sub == "" }`, nil},
		{"a field not of the caller", `denials contains "x" if input.http.method == "GET"`, nil},
		{"with", `denials contains "x" if { helper with input.token.sub as "" }
helper if input.token.sub == ""`, nil},
		{"through a helper rule", `denials contains "x" if not agent_ok
agent_ok if input.agent.enabled`, []string{"data.mcp.gateway.denials"}},
		{"a helper reading the message", `denials contains "x" if not ok
ok if input.mcp.method != ""`, nil},
		{"data only", `denials contains d if { some d in data.deny_all }`, []string{"data.mcp.gateway.denials"}},
		// Not always defined: the rule is evaluated, and the partial set it
		// reads is replaced instead.
		{"a complete rule without a default", `denials := ds if { ds := names; count(ds) >= 0 }
names contains n if { some n in input.token.groups }`, []string{"data.mcp.gateway.names"}},
		{"a complete rule with a default", `default denials := set()
denials := {"x"} if input.agent.id == ""`, []string{"data.mcp.gateway.denials"}},
		{"a comprehension", `denials := {g | some g in input.token.groups; g == "blocked"}`, []string{"data.mcp.gateway.denials"}},
		{"a function", `denials contains "x" if blocked(input.mcp.tool)
blocked(t) if { some g in input.token.groups; g == t }`, nil},
		{"what a function reads", `denials contains "x" if blocked(input.mcp.tool)
blocked(t) if t in groups
groups contains g if { some g in input.token.groups }`, []string{"data.mcp.gateway.groups"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"p.rego": head + tc.rego + "\n"})
			e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
			var got []string
			for _, d := range callerRules(e.snap.Load().compiler) {
				got = append(got, d.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("replaced %v, want %v", got, tc.want)
			}
			if (e.snap.Load().memo == nil) != (len(tc.want) == 0) {
				t.Errorf("memo %v with documents %v", e.snap.Load().memo, tc.want)
			}
		})
	}
}

// The shipped policy's caller rules: the caller checks, grants, roles and
// scopes, which every decision of a caller shares.
func TestCallerRulesShipped(t *testing.T) {
	e, _ := shippedEngine(t)
	var got []string
	for _, d := range e.snap.Load().memo.docs {
		got = append(got, d.String())
	}
	want := []string{
		"data.mcp.gateway.backend_name", "data.mcp.gateway.caller_denials", "data.mcp.gateway.caller_grants",
		"data.mcp.gateway.effective_scopes", "data.mcp.roles.caller_roles", "data.mcp.roles.role_ranks",
	}
	if !slices.Equal(got, want) {
		t.Errorf("replaced %v, want %v", got, want)
	}
}

// A memo is per caller: callers that differ anywhere in their part of the
// input (a group, a claim deep down) get their own values, and every
// decision is what it is without the memo.
func TestCallerMemoPerCaller(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package mcp.gateway

decision := {"allow": count(caller_denials | message_denials) == 0, "reasons": [r | some r in caller_denials | message_denials]}

caller_denials contains sprintf("group %s", [g]) if {
	some g in input.token.groups
	g in data.blocked
}

caller_denials contains "deep" if input.token.claims.a.b.c == "x"

message_denials contains "tool" if input.mcp.tool == "forbidden"
`, "data.json": `{"blocked": ["evil"]}`})
	memoized, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	plain, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, DecisionCacheSize: -1})
	if m := memoized.snap.Load().memo; m == nil || len(m.docs) != 1 || m.docs[0].String() != "data.mcp.gateway.caller_denials" {
		t.Fatalf("memo %+v, want caller_denials", m)
	}
	ctx := context.Background()
	call := func(groups []string, claim string, tool string) *Input {
		in := caller(groups, nil, "employees", tool, map[string]any{"n": tool})
		in.Token.Claims = map[string]any{"a": map[string]any{"b": map[string]any{"c": claim}}}
		return in
	}
	for i, in := range []*Input{
		call([]string{"good"}, "y", "t"),
		call([]string{"evil"}, "y", "t"),          // another group: another memo
		call([]string{"good"}, "x", "t"),          // a claim deep down: another memo
		call([]string{"good"}, "y", "forbidden"),  // the same caller, another message
		call([]string{"good"}, "y", "t2"),         // the same caller again
		call([]string{"evil", "good"}, "x", "t3"), // both
	} {
		got, want := memoized.Decide(ctx, in), plain.Decide(ctx, in)
		if got.Allow != want.Allow || !slices.Equal(got.Reasons, want.Reasons) {
			t.Errorf("call %d: %v %v, want %v %v", i, got.Allow, got.Reasons, want.Allow, want.Reasons)
		}
	}
	if n := memoized.snap.Load().memo.values.Len(); n != 4 {
		t.Errorf("%d callers remembered, want 4", n)
	}
}
