package ijson

import "testing"

// BenchmarkParseCall is the strict read of a typical tools/call body, the
// message every call's decision reads (the list benchmarks are in
// internal/mcp and gateway).
func BenchmarkParseCall(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"bench","count":3,"tags":["a","b"]},"_meta":{"progressToken":"p-17"}}}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
