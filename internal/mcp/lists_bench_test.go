package mcp

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkReadToolList1000 is the gateway's reading of a 1,000-tool
// tools/list reply: the strict parse, finding and reading the list, and
// building what is sent on from it with half the tools hidden.
func BenchmarkReadToolList1000(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":1,"result":{"tools":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"name":"tool_%06d","description":"Tool number %d of a large catalog","inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"what to look for"},"limit":{"type":"number"}}},"annotations":{"readOnlyHint":%t,"destructiveHint":false}}`, i, i, i%2 == 0)
	}
	sb.WriteString(`]}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		msgs, _, err := ParseReply(body)
		if err != nil {
			b.Fatal(err)
		}
		lists, err := msgs[0].Lists("tools/list")
		if err != nil || len(lists) != 1 {
			b.Fatal(err)
		}
		// Keep every second tool, as the gateway does for a read-only
		// caller, and splice the reply as the gateway does (until
		// 2026-12 it filtered the tree and encoded it).
		n := 0
		if _, ok := msgs[0].Splice(lists, func(ListKey, ListItem) bool { n++; return n%2 == 0 }); !ok {
			b.Fatal("no splice")
		}
	}
}
