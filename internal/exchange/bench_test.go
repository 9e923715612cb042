package exchange_test

import (
	"net/http"
	"testing"
)

// BenchmarkCacheHit is Inject for a caller whose backend token is cached:
// the cost the gateway adds to every forwarded request (goal ≤ 1 µs).
func BenchmarkCacheHit(b *testing.B) {
	f := newXAA(b, xaaOptions{})
	inj := f.injector(b, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	c := f.caller(b, "alice")
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, f.backend.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := inj.Inject(b.Context(), req, c); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := inj.Inject(ctx, req, c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if idp, _ := f.exchanges(); idp != 1 {
		b.Fatalf("%d exchanges during the benchmark, want the one priming call", idp)
	}
}
