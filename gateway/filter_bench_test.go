package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// toolList1000 is a 1,000-tool tools/list reply shaped like the one
// BenchmarkReadToolList1000 reads, and the names of every second tool.
func toolList1000() (string, visibleOnly) {
	var sb strings.Builder
	vis := visibleOnly{}
	sb.WriteString(`{"jsonrpc":"2.0","id":1,"result":{"tools":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		name := fmt.Sprintf("tool_%06d", i)
		if i%2 == 0 {
			vis[name] = true
		}
		fmt.Fprintf(&sb, `{"name":%q,"description":"Tool number %d of a large catalog","inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"what to look for"},"limit":{"type":"number"}},"required":["query"]},"annotations":{"readOnlyHint":%t,"destructiveHint":false}}`, name, i, i%2 == 0)
	}
	sb.WriteString(`],"nextCursor":"page-2"}}`)
	return sb.String(), vis
}

// BenchmarkFilterReply1000 is the gateway's whole handling of a 1,000-tool
// tools/list reply, half of it hidden: the strict read, finding and reading
// the items, the (cached) visibility answer and building what is sent on,
// as a JSON body and as one SSE event.
func BenchmarkFilterReply1000(b *testing.B) {
	body, vis := toolList1000()
	g := unitGateway(b, vis)
	pending := pendingOf(b, "tools/list", "1")
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			fw := forwarded{pending: pending}
			out, _, err := g.filterReply(context.Background(), unitCall(g), []byte(body), "application/json", &fw)
			if err != nil || len(out) >= len(body) {
				b.Fatalf("filterReply: %v (%d of %d bytes)", err, len(out), len(body))
			}
		}
	})
	b.Run("sse", func(b *testing.B) {
		ev, err := mcp.NewEventReader(strings.NewReader("event: message\nid: 7\ndata: " + body + "\n\n")).Next()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			out, ok := g.relayEvent(context.Background(), unitCall(g), ev, pending, requests{})
			if !ok || len(out) >= len(body) {
				b.Fatalf("relayEvent: ok %v (%d of %d bytes)", ok, len(out), len(body))
			}
		}
	})
}
