package policy

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A decision answers every call that differs from it only in arguments it
// did not read; the arguments' names are always part of the key.
func TestDecisionCacheUnreadArguments(t *testing.T) {
	e, rec := shippedEngine(t)
	viewer := func(args map[string]any) *Input {
		return caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", args)
	}
	// delete_employee asks first (a confirm obligation quoting all the
	// arguments) and has an argument rule: its decisions read them all.
	super := func(args map[string]any) *Input {
		return caller([]string{"mcp-super-admins"}, writeScopes, "employees", "delete_employee", args)
	}
	// Every files tool's path is read (the path rule), nothing else.
	reader := func(args map[string]any) *Input {
		return caller([]string{"mcp-viewers"}, writeScopes, "files", "read_file", args)
	}
	steps := []struct {
		cacheStep
		confirm string // a substring of the confirm obligation's message
	}{
		{cacheStep{"first call is evaluated", viewer(map[string]any{"employee_id": "e-1"}), true, 1}, ""},
		{cacheStep{"other values, same decision", viewer(map[string]any{"employee_id": "e-2"}), true, 1}, ""},
		{cacheStep{"other names are another key", viewer(map[string]any{"id": 7, "more": []any{"x"}}), true, 2}, ""},
		{cacheStep{"and their values are not read either", viewer(map[string]any{"id": 8, "more": "y"}), true, 2}, ""},
		{cacheStep{"no arguments", viewer(nil), true, 3}, ""},
		{cacheStep{"a decision that reads them all", super(map[string]any{"employee_id": "e-1"}), true, 4}, `"employee_id":"e-1"`},
		{cacheStep{"is remembered for those values", super(map[string]any{"employee_id": "e-1"}), true, 4}, `"employee_id":"e-1"`},
		{cacheStep{"and evaluated for others", super(map[string]any{"employee_id": "e-2"}), true, 5}, `"employee_id":"e-2"`},
		{cacheStep{"which can deny", super(map[string]any{"employee_id": "*"}), false, 6}, ""},
		{cacheStep{"a decision that reads one", reader(map[string]any{"path": "/srv/mcp/shared/a", "offset": 1}), true, 7}, ""},
		{cacheStep{"answers other values of the others", reader(map[string]any{"path": "/srv/mcp/shared/a", "offset": 2}), true, 7}, ""},
		{cacheStep{"not another value of the one it read", reader(map[string]any{"path": "/etc/passwd", "offset": 2}), false, 8}, ""},
	}
	for _, s := range steps {
		d := decideStep(t, e, s.cacheStep)
		if s.confirm != "" {
			if d.Obligations == nil || d.Obligations.Confirm == nil || !strings.Contains(d.Obligations.Confirm.Message, s.confirm) {
				t.Errorf("%s: obligations %+v, want a confirm message with %s", s.name, d.Obligations, s.confirm)
			}
		}
	}
	if got := len(rec.all()); got != len(steps) {
		t.Errorf("%d decision records, want %d", got, len(steps))
	}
}

// Every way a policy can look at an argument makes its decision depend on
// it. Each case's two calls are decided differently by an engine without
// the cache (or alike, for a case that reads nothing that differs); the
// cached engine, having decided the first, must decide the second as that
// engine does, from a new entry or, where nothing read differs, from the
// first's.
func TestArgumentsProbeSeesEveryRead(t *testing.T) {
	// Same names, x differs: only a read of x (or of everything) tells.
	a := map[string]any{"x": "a", "y": "z"}
	b := map[string]any{"x": "b", "y": "z"}
	tests := []struct {
		name string
		rule string
		a, b map[string]any // default a and b
		// unread: the decision does not read what differs, so the second
		// call is answered from the first's entry.
		unread bool
	}{
		{"a field", `allow if input.mcp.arguments.x == "a"`, nil, nil, false},
		{"a field by a variable", `allow if { k := "x"; input.mcp.arguments[k] == "a" }`, nil, nil, false},
		{"any field", `allow if input.mcp.arguments[_] == "a"`, nil, nil, false},
		{"object.get", `allow if object.get(input.mcp, "arguments", {}).x == "a"`, nil, nil, false},
		{"object.get with a path", `allow if object.get(input, ["mcp", "arguments", "x"], "") == "a"`, nil, nil, false},
		{"equality", `allow if input.mcp.arguments == {"x": "a", "y": "z"}`, nil, nil, false},
		{"unification", `allow if input.mcp.arguments = {"x": "a", "y": "z"}`, nil, nil, false},
		{"json.marshal of the arguments", `allow if contains(json.marshal(input.mcp.arguments), "\"a\"")`, nil, nil, false},
		{"json.marshal of mcp", `allow if contains(json.marshal(input.mcp), "\"a\"")`, nil, nil, false},
		{"json.marshal of input", `allow if contains(json.marshal(input), "\"a\"")`, nil, nil, false},
		{"yaml.marshal of input", `allow if contains(yaml.marshal(input), "x: a")`, nil, nil, false},
		{"sprintf of mcp", `allow if contains(sprintf("%v", [input.mcp]), "\"a\"")`, nil, nil, false},
		{"walk", `allow if { walk(input, [_, v]); v == "a" }`, nil, nil, false},
		{"iterating mcp", `allow if { some k, v in input.mcp; k == "arguments"; v.x == "a" }`, nil, nil, false},
		{"iterating the arguments", `allow if { some k, v in input.mcp.arguments; k == "x"; v == "a" }`, nil, nil, false},
		{"mcp by a variable key", `allow if { some k; input.mcp[k].x == "a" }`, nil, nil, false},
		{"an alias", `allow if { m := input.mcp; m.arguments.x == "a" }`, nil, nil, false},
		{"input as a set member", `allow if { s := {input}; some i in s; i.mcp.arguments.x == "a" }`, nil, nil, false},
		{"mcp compared", `allow if {input.mcp} == {object.union({k: v | some k, v in {"kind": input.mcp.kind, "method": input.mcp.method, "tool": input.mcp.tool, "protocol_version": input.mcp.protocol_version}}, {"arguments": {"x": "a", "y": "z"}})}`, nil, nil, false},
		{"object.union", `allow if object.union(input.mcp, {}).arguments.x == "a"`, nil, nil, false},
		{"json.patch", `allow if json.patch(input.mcp, [])["arguments"].x == "a"`, nil, nil, false},
		{"object.filter", `allow if object.filter(input.mcp.arguments, ["x"]).x == "a"`, nil, nil, false},
		{"object.remove", `allow if object.remove(input.mcp.arguments, ["y"]).x == "a"`, nil, nil, false},
		{"the arguments as an object key", `allow if { o := {input.mcp.arguments: 1}; o[{"x": "a", "y": "z"}] == 1 }`, nil, nil, false},
		{"a comprehension over mcp", `allow if count([v | some v in input.mcp; is_object(v); v.x == "a"]) > 0`, nil, nil, false},
		{"urlquery.encode_object", `allow if urlquery.encode_object(input.mcp.arguments) == "x=a&y=z"`, nil, nil, false},
		// The names are part of every key: a read of the names alone.
		{"count", `allow if count(input.mcp.arguments) == 1`, map[string]any{"x": "a"}, a, false},
		{"object.keys", `allow if object.keys(input.mcp.arguments) == {"x"}`, map[string]any{"x": "a"}, a, false},
		{"a missing argument", `allow if not input.mcp.arguments.y`, map[string]any{"x": "a"}, a, false},
		// Reading what does not differ reads nothing that tells them apart.
		{"another argument", `allow if input.mcp.arguments.y == "z"`, nil, nil, true},
		{"the tool", `allow if input.mcp.tool == "t"`, nil, nil, true},
		{"mcp's keys", `allow if "arguments" in object.keys(input.mcp)`, nil, nil, true},
		{"the count of mcp", `allow if count(input.mcp) == 5`, nil, nil, true},
		{"the names of the arguments", `allow if object.keys(input.mcp.arguments) == {"x", "y"}`, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, second := a, b
			if tc.a != nil {
				first, second = tc.a, tc.b
			}
			policy := "package mcp.gateway\n\ndecision := {\"allow\": allow, \"reasons\": []}\n\ndefault allow := false\n\n" + tc.rule + "\n"
			dir := policyDir(t, map[string]string{"p.rego": policy})
			cached, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
			plain, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, DecisionCacheSize: -1})
			ctx := context.Background()
			call := func(args map[string]any) *Input {
				in := caller(nil, nil, "employees", "t", args)
				in.MCP.Method = "tools/call"
				return in
			}
			wantA, wantB := plain.Decide(ctx, call(first)).Allow, plain.Decide(ctx, call(second)).Allow
			if tc.unread {
				if wantA != wantB {
					t.Fatalf("the two calls are decided %v and %v: the case reads what differs", wantA, wantB)
				}
			} else if wantA == wantB {
				t.Fatalf("both calls decided %v: the case proves nothing", wantA)
			}
			if got := cached.Decide(ctx, call(first)).Allow; got != wantA {
				t.Errorf("first call: allow %v, want %v", got, wantA)
			}
			if got := cached.Decide(ctx, call(second)).Allow; got != wantB {
				t.Errorf("second call: allow %v, want %v (answered for the first call's arguments)", got, wantB)
			}
			wantEntries := 2
			if tc.unread {
				wantEntries = 1
			}
			if n := cachedCount(cached); n != wantEntries {
				t.Errorf("%d decisions cached, want %d", n, wantEntries)
			}
		})
	}
}

// Which arguments an evaluation reads may depend on their values: each
// read set is remembered, and a call is answered only by an entry whose
// read arguments it shares.
func TestArgumentsProbeReadSetsVary(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package mcp.gateway

decision := {"allow": allow, "reasons": []}

default allow := false

allow if {
	input.mcp.arguments.x == "a"
	input.mcp.arguments.y == "1"
}
`})
	cached, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	plain, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, DecisionCacheSize: -1})
	ctx := context.Background()
	steps := []struct {
		args   map[string]any
		cached int
	}{
		{map[string]any{"x": "b", "y": "1", "z": 0}, 1}, // reads x only: denied
		{map[string]any{"x": "b", "y": "2", "z": 1}, 1}, // the same x: answered
		{map[string]any{"x": "a", "y": "1", "z": 2}, 2}, // another x: reads x and y, allowed
		{map[string]any{"x": "a", "y": "2", "z": 3}, 3}, // same x, another y: denied
		{map[string]any{"x": "a", "y": "1", "z": 4}, 3}, // x and y as before: answered
		{map[string]any{"x": "b", "y": "9", "z": 5}, 3}, // x as the first: answered
	}
	for i, s := range steps {
		in := caller(nil, nil, "employees", "t", s.args)
		got, want := cached.Decide(ctx, in).Allow, plain.Decide(ctx, in).Allow
		if got != want {
			t.Errorf("call %d %v: allow %v, want %v", i, s.args, got, want)
		}
		if n := cachedCount(cached); n != s.cached {
			t.Errorf("call %d %v: %d decisions cached, want %d", i, s.args, n, s.cached)
		}
	}
}

// A decision whose value holds part of the input keeps what it holds: it
// is not remembered for arguments it carries but never read.
func TestArgumentsProbeDecisionHoldingInput(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [], \"mcp\": input.mcp}\n"})
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	ctx := context.Background()
	e.Decide(ctx, caller(nil, nil, "employees", "t", map[string]any{"x": "a"}))
	e.Decide(ctx, caller(nil, nil, "employees", "t", map[string]any{"x": "b"}))
	if n := cachedCount(e); n != 2 {
		t.Errorf("%d decisions cached, want 2 (one per arguments)", n)
	}
}

// Through the probe the policy sees the arguments exactly as without it:
// numbers keep their text, strings their bytes, nesting and types.
func TestArgumentsProbeValueIsExact(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [sprintf(\"%v\", [input.mcp.arguments]), json.marshal(input.mcp.arguments), sprintf(\"%v\", [[v | some v in input.mcp.arguments; is_number(v); v * 3]])]}\n"})
	cached, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	plain, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, DecisionCacheSize: -1})
	ctx := context.Background()
	for _, args := range []map[string]any{
		{},
		{"f": 0.1, "big": 1e21, "neg": math.Copysign(0, -1), "i": 12345678901234567, "s": "é \u2028 <&> \"q\" \\ \x01"},
		{"nested": map[string]any{"a": []any{1, "2", nil, true, map[string]any{}}}, "empty": []any{}},
		// json.Number is converted eagerly (anyObject): the probe then
		// holds an ast.Value.
		{"n": json.Number("1.50"), "m": json.Number("100000000000000000000000000001")},
	} {
		in := caller(nil, nil, "employees", "t", args)
		want, got := plain.Decide(ctx, in), cached.Decide(ctx, in)
		if !slices.Equal(got.Reasons, want.Reasons) || len(got.Reasons) != 3 {
			t.Errorf("arguments %v: read as %q through the probe, %q without", args, got.Reasons, want.Reasons)
		}
	}
}

// The shipped policy decides alike with and without the cache, whatever
// the arguments: each generated call is decided by the cached engine after
// a call that differs from it in its arguments alone.
func TestArgumentsProbeShippedPolicyDifferential(t *testing.T) {
	cached, _ := shippedEngine(t)
	plain, _ := newEngine(t, Options{Source: shippedPolicies, AllowUnsigned: true, DecisionCacheSize: -1})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(goldenSeed, 15))
	unread := 0
	for range 600 {
		in := randomInput(r)
		// The same names with other values, or (a quarter of the time)
		// other names.
		other := *in
		other.MCP.Arguments = map[string]any{}
		values := randomInput(r).MCP.Arguments
		for name := range in.MCP.Arguments {
			other.MCP.Arguments[name] = values[name]
		}
		if r.IntN(4) == 0 {
			other.MCP.Arguments = values
		}
		cached.Decide(ctx, &other)
		before := cachedCount(cached)
		got, want := cached.Decide(ctx, in), plain.Decide(ctx, in)
		if cachedCount(cached) == before {
			unread++
		}
		if got.Allow != want.Allow || got.Status != want.Status || got.Scope != want.Scope || !slices.Equal(got.Reasons, want.Reasons) || !sameObligations(got.Obligations, want.Obligations) {
			t.Fatalf("%s %s %v after %v: cached %+v, uncached %+v", in.MCP.Method, in.MCP.Tool, in.MCP.Arguments, other.MCP.Arguments, got, want)
		}
	}
	// Repeated callers and tools must be answered from the argument-free
	// entries often, or the test did not exercise them.
	t.Logf("%d of 600 calls answered from the entry of a call with other arguments", unread)
	if unread < 50 {
		t.Errorf("only %d of 600 calls answered without evaluation", unread)
	}
}

func sameObligations(a, b *Obligations) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// argumentsProbeCallSites are the files of OPA (the version go.mod names)
// that hand a value's Go form to other code (ast.ValueToInterface, ast.JSON,
// ast.JSONWithOpt: for a lazy object, its Go map itself, probe included),
// each checked for what it does with the probe (argsprobe.go): encodes it
// with encoding/json, which calls MarshalJSON and records the read; cannot
// tell it from the map it replaces; or never sees an input.
var argumentsProbeCallSites = map[string]string{
	"internal/compile/ucast.go":             "compiles partial-evaluation results (opa build), not an evaluation",
	"internal/configpolicy/configpolicy.go": "OPA's configuration policy, not an evaluation of ours",
	"v1/ast/check.go":                       "the type checker: compile time",
	"v1/ast/env.go":                         "the type checker: compile time, constant keys",
	"v1/ast/term.go":                        "ast.JSON and ast.JSONWithOpt themselves",
	"v1/bundle/store.go":                    "writes bundle data to the store",
	"v1/rego/rego.go":                       "rego's default result generator; the engine sets its own (astValues)",
	"v1/storage/inmem/inmem.go":             "writes to the store, not the input",
	"v1/topdown/builtins/builtins.go":       "NDBCache.MarshalJSON: non-deterministic builtins, which turn the decision cache off",
	"v1/topdown/crypto.go":                  "x509 verify options: reads only the options' keys",
	"v1/topdown/encoding.go":                "json.marshal, json.marshal_with_options, yaml.marshal encode with encoding/json; urlquery.encode_object refuses a map value and a probe alike",
	"v1/topdown/graphql.go":                 "encodes with encoding/json",
	"v1/topdown/http.go":                    "http.send: non-deterministic, the decision cache is off",
	"v1/topdown/jsonschema.go":              "gojsonschema's Go loader encodes with encoding/json (and json.match_schema is non-deterministic)",
	"v1/topdown/providers.go":               "providers.aws.sign_req encodes the body with encoding/json",
	"v1/topdown/runtime.go":                 "opa.runtime: not the input",
	"v1/topdown/tokens.go":                  "io.jwt.encode_sign* encode with encoding/json (and are non-deterministic)",
}

// TestArgumentsProbeOPACallSites fails when the OPA this module builds with
// has such a call in a file argumentsProbeCallSites does not list (or lacks
// one it lists): an upgrade must be checked against argsprobe.go first.
// Commands, servers and plugins of OPA's that the engine does not run in an
// evaluation are not searched.
func TestArgumentsProbeOPACallSites(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/open-policy-agent/opa").Output()
	if err != nil {
		t.Fatalf("find OPA's source: %v", err)
	}
	root := strings.TrimSpace(string(out))
	qualified := regexp.MustCompile(`\bast\.(ValueToInterface|JSON|JSONWithOpt)\(`)
	inAST := regexp.MustCompile(`\b(ValueToInterface|JSON|JSONWithOpt)\(`)
	skip := map[string]bool{"cmd": true, "internal/cmd": true, "v1/tester": true, "v1/server": true, "v1/sdk": true, "v1/repl": true,
		"v1/plugins": true, "v1/cover": true, "v1/profiler": true, "v1/debug": true, "build": true, "docs": true, "e2e": true, "test": true}
	found := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if skip[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		calls := qualified
		if strings.HasPrefix(rel, "v1/ast/") {
			calls = inAST
		}
		for _, line := range strings.Split(string(src), "\n") {
			code := strings.TrimSpace(line)
			if strings.HasPrefix(code, "//") || strings.HasPrefix(code, "func ") ||
				strings.Contains(code, "MarshalJSON") || strings.Contains(code, "UnmarshalJSON") {
				continue
			}
			if calls.MatchString(code) {
				found[rel] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for file := range found {
		if _, ok := argumentsProbeCallSites[file]; !ok {
			t.Errorf("OPA's %s hands a value's Go form to other code and is not checked: see argsprobe.go", file)
		}
	}
	for file := range argumentsProbeCallSites {
		if !found[file] {
			t.Errorf("OPA's %s is listed but makes no such call: update argumentsProbeCallSites", file)
		}
	}
}
