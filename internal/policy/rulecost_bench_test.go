package policy

import (
	"context"
	"strings"
	"testing"
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
