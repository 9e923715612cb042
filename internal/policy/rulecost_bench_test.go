package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// The cost of how the shipped rules are written, for BENCHMARKS.md "Rule
// shape and the decision cache": a visibility decision over a list of the
// size a typical backend (50 tools) and a large one (1,000) has, with the
// visibility cache on (the default) and off. BenchmarkDecide and
// BenchmarkDecideCached are the same comparison for one call.

func visibleSizeBench(b *testing.B, n int, cached bool) {
	opts := Options{Source: shippedPolicies, AllowUnsigned: true, DecisionLog: func(context.Context, Record) {}}
	if !cached {
		opts.DecisionCacheSize = -1
	}
	e, _ := newEngine(b, opts)
	in := lister([]string{"mcp-admins"}, writeScopes, "employees")
	in.Tools = catalog(n)
	cat, err := ToolCatalog(in.Tools)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	names, err := e.VisibleCatalog(ctx, in, cat)
	if err != nil {
		b.Fatal(err)
	}
	want := 0
	for _, t := range in.Tools {
		if !strings.HasPrefix(t.Name, "delete_") {
			want++
		}
	}
	if len(names) != want {
		b.Fatalf("admin sees %d of %d tools, want %d (all but delete_*)", len(names), n, want)
	}
	if cached {
		e.visible.Wait()
	} else {
		e.cacheTTL = 0
	}
	measure(b, func() {
		if _, err := e.VisibleCatalog(ctx, in, cat); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkVisibleCatalog50Uncached(b *testing.B) { visibleSizeBench(b, 50, false) }
func BenchmarkVisibleCatalog50Cached(b *testing.B)   { visibleSizeBench(b, 50, true) }

// BenchmarkDecideRule evaluates single rules of the shipped policy with
// BenchmarkDecide's input (a viewer calls get_employee), each a prepared
// query as the engine prepares decision: what one building block of a
// decision costs (BENCHMARKS.md "One decision (issue 14)"). "empty" is the
// cost of an evaluation that reads nothing; a rule's own cost is the
// difference. The rules share helpers (caller_roles and more), so the parts
// add up to more than decision.
func BenchmarkDecideRule(b *testing.B) {
	e := benchEngine(b, shippedPolicies)
	in, err := callInput(caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1001"}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{
		"x := 1",
		"data.mcp.gateway.decision",
		"data.mcp.gateway.caller_denials",
		"data.mcp.gateway.message_denials",
		"data.mcp.gateway.obligations_field",
		"data.mcp.gateway.caller_grants.tools",
		"data.mcp.roles.caller_roles",
		"data.mcp.gateway.effective_scopes",
		"data.mcp.gateway.required_scope",
		"data.mcp.gateway.active_argument_rules",
		"data.mcp.gateway.called_tool",
	} {
		name := strings.TrimPrefix(strings.TrimPrefix(q, "data.mcp.gateway."), "data.")
		if q == "x := 1" {
			name = "empty"
		}
		b.Run(name, func(b *testing.B) {
			pq, err := rego.New(rego.Query(q), rego.Compiler(e.snap.Load().compiler), rego.Store(e.store)).PrepareForEval(ctx)
			if err != nil {
				b.Fatal(err)
			}
			measure(b, func() {
				if _, err := pq.Eval(ctx, rego.EvalParsedInput(in)); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
