package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// A catalog the size the speed goals name, shaped like real ones: every
// tool has a title, most a hint, names follow the demo's verbs.
func catalog(n int) []Tool {
	verbs := []string{"get", "list", "search", "update", "delete", "create", "export"}
	tools := make([]Tool, n)
	for i := range tools {
		verb := verbs[i%len(verbs)]
		ann := map[string]any{"title": fmt.Sprintf("%s record %d", verb, i)}
		switch verb {
		case "get", "list", "search", "export":
			ann["readOnlyHint"] = true
		case "delete":
			ann["destructiveHint"] = true
		}
		tools[i] = Tool{Name: fmt.Sprintf("%s_record_%d", verb, i), Annotations: ann}
	}
	return tools
}

// measure runs op under b.Loop and reports the median and 99th percentile
// next to the mean: on a shared machine other tenants inflate the mean.
func measure(b *testing.B, op func()) {
	b.Helper()
	b.ReportAllocs()
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		op()
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
}

// benchEngine starts an engine without the decision cache: the decision
// benchmarks repeat one input, and each run must evaluate it.
func benchEngine(b *testing.B, source string) *Engine {
	e, _ := newEngine(b, Options{Source: source, AllowUnsigned: true, DecisionLog: func(context.Context, Record) {}, DecisionCacheSize: -1})
	return e
}

// decideBench decides one input in a loop; cached keeps the decision cache.
func decideBench(b *testing.B, in *Input, allow, cached bool) {
	e := benchEngine(b, shippedPolicies)
	if cached {
		e, _ = newEngine(b, Options{Source: shippedPolicies, AllowUnsigned: true, DecisionLog: func(context.Context, Record) {}})
	}
	ctx := context.Background()
	if d := e.Decide(ctx, in); d.Allow != allow {
		b.Fatalf("benchmark decision allow=%v (%v), want %v", d.Allow, d.Reasons, allow)
	}
	if n := cachedCount(e); cached != (n == 1) {
		b.Fatalf("%d decisions cached, want cached=%v", n, cached)
	}
	measure(b, func() { e.Decide(ctx, in) })
}

// A viewer calls a read-only tool: the common allowed call.
func BenchmarkDecide(b *testing.B) {
	decideBench(b, caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1001"}), true, false)
}

// The same call answered from the decision cache.
func BenchmarkDecideCached(b *testing.B) {
	decideBench(b, caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1001"}), true, true)
}

// The same caller and tool with other arguments at every call, the
// decision cache on: a decision that did not read the arguments answers
// them all (argsprobe.go). Fresh arguments cost the input's hash, not an
// evaluation.
func BenchmarkDecideFreshArguments(b *testing.B) {
	e, _ := newEngine(b, Options{Source: shippedPolicies, AllowUnsigned: true, DecisionLog: func(context.Context, Record) {}})
	ctx := context.Background()
	in := caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-0"})
	if d := e.Decide(ctx, in); !d.Allow {
		b.Fatalf("benchmark decision denied: %v", d.Reasons)
	}
	n := 0
	measure(b, func() {
		n++
		in.MCP.Arguments = map[string]any{"employee_id": fmt.Sprintf("e-%d", n)}
		e.Decide(ctx, in)
	})
	if c := cachedCount(e); c != 1 {
		b.Fatalf("%d decisions cached, want 1: fresh arguments were evaluated", c)
	}
}

// Fresh arguments that the policy reads (the shipped path rule reads every
// files tool's path): each call is evaluated, through the probe when the
// cache is on, plainly when it is off. The difference is the probe's cost.
func BenchmarkDecideFreshArgumentsRead(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{{"cache-on", 0}, {"cache-off", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			e, _ := newEngine(b, Options{Source: shippedPolicies, AllowUnsigned: true, DecisionLog: func(context.Context, Record) {}, DecisionCacheSize: tc.size})
			ctx := context.Background()
			in := caller([]string{"mcp-viewers"}, writeScopes, "files", "read_file", map[string]any{"path": "/srv/mcp/shared/0"})
			if d := e.Decide(ctx, in); !d.Allow {
				b.Fatalf("benchmark decision denied: %v", d.Reasons)
			}
			n := 0
			measure(b, func() {
				n++
				in.MCP.Arguments = map[string]any{"path": fmt.Sprintf("/srv/mcp/shared/%d", n)}
				e.Decide(ctx, in)
			})
		})
	}
}

// An admin calls a tool that writes: the scope comes from the method classes.
func BenchmarkDecideWriteTool(b *testing.B) {
	decideBench(b, caller([]string{"mcp-admins"}, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1001"}), true, false)
}

func BenchmarkDecideDenied(b *testing.B) {
	e := benchEngine(b, shippedPolicies)
	in := caller([]string{"mcp-admins"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "*"})
	ctx := context.Background()
	if d := e.Decide(ctx, in); d.Allow {
		b.Fatal("benchmark decision allowed")
	}
	measure(b, func() { e.Decide(ctx, in) })
}

// The engine's own cost: the same call against a one-rule policy.
func BenchmarkDecideOneRulePolicy(b *testing.B) {
	dir := policyDir(b, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [], \"status\": 0} if input.agent.enabled\n"})
	e := benchEngine(b, dir)
	in := caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1001"})
	ctx := context.Background()
	measure(b, func() { e.Decide(ctx, in) })
}

// visibleBench lists 1000 tools for an admin (who sees all but delete_*).
func visibleBench(b *testing.B, cached, prepared bool) {
	e := benchEngine(b, shippedPolicies)
	in := lister([]string{"mcp-admins"}, writeScopes, "employees")
	in.Tools = catalog(1000)
	cat, err := ToolCatalog(in.Tools)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	list := func() (map[string]bool, error) {
		if prepared {
			return e.VisibleCatalog(ctx, in, cat)
		}
		return e.Visible(ctx, in, ListTools)
	}
	names, err := list()
	if err != nil {
		b.Fatal(err)
	}
	if want := 1000 - 1000/7 - 1; len(names) != want {
		b.Fatalf("admin sees %d of 1000 tools, want %d (all but delete_*)", len(names), want)
	}
	if cached {
		e.visible.Wait()
	} else {
		e.cacheTTL = 0 // a fresh engine per run would measure startup instead
	}
	measure(b, func() {
		if _, err := list(); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkVisible1000Uncached(b *testing.B)        { visibleBench(b, false, false) }
func BenchmarkVisible1000Cached(b *testing.B)          { visibleBench(b, true, false) }
func BenchmarkVisibleCatalog1000Uncached(b *testing.B) { visibleBench(b, false, true) }
func BenchmarkVisibleCatalog1000Cached(b *testing.B)   { visibleBench(b, true, true) }

func BenchmarkToolCatalog1000(b *testing.B) {
	tools := catalog(1000)
	measure(b, func() {
		if _, err := ToolCatalog(tools); err != nil {
			b.Fatal(err)
		}
	})
}
