package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// A batch whose one member survives the policy forwards that member alone
// (later revisions' backends refuse arrays), but the client sent a batch:
// the reply is an array holding the backend's answer and the denials, and
// a backend that fails or answers something other than JSON must not make
// the gateway forget the members it denied itself.
func TestBatchReplyIsAlwaysAnArrayWithTheDenials(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		ctype      string
		body       string
		wantStatus int
		wantA      string // "result" or "error"
		// second is the batch's other member, refused by the gateway: a
		// request (denied with an error response) or a notification
		// (refused without one, so the survivor's answer is all there is).
		second string
	}{
		{name: "survivor answered, other member a refused notification", status: http.StatusOK, ctype: "application/json", body: `{"jsonrpc":"2.0","id":"a","result":{}}`, wantStatus: http.StatusOK, wantA: "result",
			second: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"no_such_tool"}}`},
		{name: "backend answers the survivor", status: http.StatusOK, ctype: "application/json", body: `{"jsonrpc":"2.0","id":"a","result":{}}`, wantStatus: http.StatusOK, wantA: "result"},
		{name: "backend answers 500 plain text", status: http.StatusInternalServerError, ctype: "text/plain", body: "boom", wantStatus: http.StatusBadGateway, wantA: "error"},
		{name: "backend answers 200 not JSON", status: http.StatusOK, ctype: "text/plain", body: "hello", wantStatus: http.StatusBadGateway, wantA: "error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				// The catalog the gateway reads to decide the call, and the
				// handshake it may open to read it.
				var m struct {
					ID     json.RawMessage
					Method string
				}
				_ = json.Unmarshal(body, &m)
				switch {
				case m.Method == "initialize":
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-03-26","capabilities":{"tools":{}},"serverInfo":{"name":"plain","version":"1"}}}`, m.ID)
					return
				case strings.HasPrefix(m.Method, "notifications/"):
					w.WriteHeader(http.StatusAccepted)
					return
				case m.Method == "tools/list":
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"delete_employee","inputSchema":{"type":"object"}}]}}`, m.ID)
					return
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
			h := newHarness(t, harnessOptions{authorizer: shippedEngine(t), mutate: func(c *config.Config) {
				c.Backends["plain"] = config.Backend{URL: "http://" + ln.Addr().String() + "/mcp", Paths: []string{"/plain"}, AuthMethod: "none"}
				a := c.Agents["claude-code"]
				a.BackendAccess = append(a.BackendAccess, "plain")
				c.Agents["claude-code"] = a
			}})
			viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
			second := tc.second
			if second == "" {
				second = `{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"delete_employee","arguments":{"id":"e1"}}}`
			}
			batch := `[{"jsonrpc":"2.0","id":"a","method":"ping"},` + second + `]`
			resp := h.do(rawRequest{path: "/plain", token: viewer, agent: "claude-code",
				headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: batch})
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			var msgs []map[string]any
			if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) || json.Unmarshal(body, &msgs) != nil {
				t.Fatalf("reply to a batch is not an array: %s", body)
			}
			byID := map[string]map[string]any{}
			for _, m := range msgs {
				byID[fmt.Sprint(m["id"])] = m
			}
			if byID["a"][tc.wantA] == nil {
				t.Fatalf("reply %s: want a %s for a", body, tc.wantA)
			}
			if tc.second != "" {
				if len(msgs) != 1 {
					t.Fatalf("reply %s: want only a's answer (a notification gets none)", body)
				}
				return
			}
			if len(byID) != 2 {
				t.Fatalf("reply %s: want the denial of b too", body)
			}
			if code, _ := rpcErrorCode(byID["b"]); code != -32003 || !strings.Contains(fmt.Sprint(byID["b"]), "policy") {
				t.Fatalf("b = %v, want the policy's -32003", byID["b"])
			}
		})
	}
}
