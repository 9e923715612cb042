package gateway

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// visibleOnly is a policy.Authorizer that lets the caller see the listed
// names and nothing else; identity plays no part in these tests.
type visibleOnly map[string]bool

func (visibleOnly) Decide(context.Context, *policy.Input) policy.Decision { return policy.Decision{} }

func (v visibleOnly) VisibleCatalog(context.Context, *policy.Input, *policy.Catalog) (map[string]bool, error) {
	return v, nil
}

// noVerifier refuses every token: the filter tests never authenticate.
type noVerifier struct{}

func (noVerifier) Verify(context.Context, string) (*identity.Principal, error) {
	return nil, context.Canceled
}

// unitGateway is a Gateway built by New (routes mounted, nothing
// listening) over one notes backend, deciding visibility with authz.
func unitGateway(t testing.TB, authz policy.Authorizer) *Gateway {
	t.Helper()
	key, _ := upstream.NewSessionKey()
	sealer, err := upstream.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Server:   config.Server{PublicURL: "https://gw.example.com", MaxBodyBytes: 1 << 20},
		Backends: map[string]config.Backend{"notes": {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/notes"}}},
	}
	g, err := New(Options{Config: cfg, Verifier: noVerifier{}, Authorizer: authz, Sealer: sealer, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func unitCall(g *Gateway) *call {
	return &call{route: g.topo.Load().backends["notes"], requestID: "unit", principal: &identity.Principal{Subject: "alice"}, rec: &requestRecord{}}
}

// pendingOf is the pending requests of ids (JSON integers or strings), each
// of method, keyed as replies are matched.
func pendingOf(t testing.TB, method string, ids ...string) requests {
	t.Helper()
	out := requests{}
	for _, id := range ids {
		msgs, _, err := mcp.ParseReply([]byte(`{"jsonrpc":"2.0","id":` + id + `,"result":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		out[msgs[0].IDKey] = request{method: method, id: msgs[0].ID}
	}
	return out
}

func deniedError(id int64) []byte {
	return mcp.ErrorResponse(mcpgo.NewRequestId(id), -32003, "denied", nil)
}

// TestRequestsErrorsUnit: a failing backend's answer to pending requests
// lists one error per id in a stable order, whatever the map's order.
func TestRequestsErrorsUnit(t *testing.T) {
	if got := (requests{}).errors(-32000, "x"); len(got) != 0 {
		t.Fatalf("no pending requests: %s", got)
	}
	p := pendingOf(t, "tools/call", `3`, `1`, `"b"`, `2`, `"a"`, `10`)
	var first []string
	for i := range 20 {
		var ids []string
		for _, e := range p.errors(-32000, "backend down") {
			var m struct {
				ID    any `json:"id"`
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(e, &m); err != nil {
				t.Fatal(err)
			}
			if m.Error.Code != -32000 || m.Error.Message != "backend down" {
				t.Fatalf("error %s", e)
			}
			ids = append(ids, strings.Trim(string(mustJSON(t, m.ID)), `"`))
		}
		if len(ids) != len(p) {
			t.Fatalf("%d errors for %d requests", len(ids), len(p))
		}
		if i == 0 {
			first = ids
		} else if !reflect.DeepEqual(ids, first) {
			t.Fatalf("order changed between calls: %v then %v", first, ids)
		}
	}
	// Every id answered exactly once.
	seen := map[string]int{}
	for _, id := range first {
		seen[id]++
	}
	for _, id := range []string{"1", "2", "3", "10", "a", "b"} {
		if seen[id] != 1 {
			t.Fatalf("id %s answered %d times: %v", id, seen[id], first)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFilterReplyUnit: a backend's non-streamed reply joined with the
// errors of the batch members the gateway denied itself. The answer to a
// batch is an array (JSON-RPC 2.0 §6) even when one member survived and
// went alone; a reply the gateway cannot read is refused rather than
// relayed unfiltered; list results are filtered.
func TestFilterReplyUnit(t *testing.T) {
	g := unitGateway(t, visibleOnly{"public": true})
	tools := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"public","inputSchema":{"type":"object"}},{"name":"secret","inputSchema":{"type":"object"}}]}}`
	echo := `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`
	for _, tc := range []struct {
		name        string
		payload     string
		contentType string
		fw          forwarded
		// want is the answer's shape: "object", "array", "raw" (passed on
		// as it is) or "error" (refused).
		want     string
		ids      []string // the answer's ids, in order
		has, not []string
	}{
		{name: "empty, nothing denied", payload: "", fw: forwarded{}, want: "raw"},
		{name: "blank, nothing denied", payload: " \n", fw: forwarded{}, want: "raw"},
		{name: "empty, a member denied", payload: "", fw: forwarded{denied: [][]byte{deniedError(2)}, batch: true}, want: "error"},
		{name: "one object", payload: echo, fw: forwarded{pending: pendingOf(t, "tools/call", "1")}, want: "object", ids: []string{"1"}},
		{name: "lone survivor of a batch", payload: echo, fw: forwarded{pending: pendingOf(t, "tools/call", "1"), batch: true}, want: "array", ids: []string{"1"}},
		{name: "survivor and a denied member", payload: echo,
			fw:   forwarded{pending: pendingOf(t, "tools/call", "1"), denied: [][]byte{deniedError(2)}, batch: true},
			want: "array", ids: []string{"1", "2"}},
		{name: "backend batch and denied members", payload: "[" + echo + `,{"jsonrpc":"2.0","id":3,"result":{}}]`,
			fw:   forwarded{pending: pendingOf(t, "tools/call", "1", "3"), denied: [][]byte{deniedError(2), deniedError(4)}, batch: true},
			want: "array", ids: []string{"1", "3", "2", "4"}},
		{name: "backend answers a batch of one as an array", payload: "[" + echo + "]", fw: forwarded{pending: pendingOf(t, "tools/call", "1")}, want: "array", ids: []string{"1"}},
		{name: "list filtered", payload: tools, fw: forwarded{pending: pendingOf(t, "tools/list", "1")}, want: "object", ids: []string{"1"}, has: []string{`"public"`}, not: []string{`"secret"`}},
		// A list under another request's id, or a notification-shaped
		// reply, is filtered by its shape.
		{name: "list filtered whatever the method", payload: tools, fw: forwarded{pending: pendingOf(t, "tools/call", "1")}, want: "object", has: []string{`"public"`}, not: []string{`"secret"`}},
		{name: "list in a batch with a denied member", payload: tools, fw: forwarded{pending: pendingOf(t, "tools/list", "1"), denied: [][]byte{deniedError(2)}, batch: true},
			want: "array", ids: []string{"1", "2"}, not: []string{`"secret"`}},
		{name: "plain text error page", payload: "Bad Gateway", contentType: "text/plain", fw: forwarded{pending: pendingOf(t, "tools/call", "1")}, want: "raw"},
		{name: "html, no content type", payload: "<html>oops</html>", fw: forwarded{}, want: "raw"},
		{name: "plain text, a member denied", payload: "Bad Gateway", contentType: "text/plain", fw: forwarded{pending: pendingOf(t, "tools/call", "1"), denied: [][]byte{deniedError(2)}, batch: true}, want: "error"},
		{name: "labelled JSON, unreadable", payload: "{oops", contentType: "application/json; charset=utf-8", fw: forwarded{}, want: "error"},
		{name: "labelled JSON under another name", payload: "{oops", contentType: "application/json-seq", fw: forwarded{}, want: "error"},
		{name: "valid JSON, not JSON-RPC", payload: `{"tools":[{"name":"secret"}]}`, contentType: "text/plain", fw: forwarded{}, want: "error"},
		{name: "duplicate names", payload: `{"jsonrpc":"2.0","id":1,"result":{},"result":{"tools":[]}}`, contentType: "application/json", fw: forwarded{}, want: "error"},
		{name: "case-folding member", payload: `{"jsonrpc":"2.0","id":1,"Result":{"tools":[{"name":"secret"}]}}`, contentType: "application/json", fw: forwarded{}, want: "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw := tc.fw
			out, isJSON, err := g.filterReply(context.Background(), unitCall(g), []byte(tc.payload), tc.contentType, &fw)
			if tc.want == "error" {
				if err == nil {
					t.Fatalf("filterReply passed %q on as %s", tc.payload, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("filterReply: %v", err)
			}
			if tc.want == "raw" {
				if isJSON || string(out) != tc.payload {
					t.Fatalf("want the payload as it is, got %q (json %v)", out, isJSON)
				}
				return
			}
			if !isJSON {
				t.Fatalf("a JSON answer marked as not JSON: %s", out)
			}
			var v any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("answer is not JSON: %s", out)
			}
			var members []any
			switch tc.want {
			case "object":
				m, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("want one object, got %s", out)
				}
				members = []any{m}
			case "array":
				a, ok := v.([]any)
				if !ok {
					t.Fatalf("want an array (JSON-RPC 2.0 §6), got %s", out)
				}
				members = a
			}
			if tc.ids != nil {
				var ids []string
				for _, m := range members {
					ids = append(ids, strings.Trim(string(mustJSON(t, m.(map[string]any)["id"])), `"`))
				}
				if !reflect.DeepEqual(ids, tc.ids) {
					t.Fatalf("ids %v, want %v: %s", ids, tc.ids, out)
				}
			}
			for _, s := range tc.has {
				if !strings.Contains(string(out), s) {
					t.Errorf("answer lacks %s: %s", s, out)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(string(out), s) {
					t.Errorf("answer has %s: %s", s, out)
				}
			}
		})
	}
}

// TestFailRequestsUnit: when the backend fails, every pending request and
// every denied member is answered, as an array for a batch.
func TestFailRequestsUnit(t *testing.T) {
	g := unitGateway(t, visibleOnly{})
	for _, tc := range []struct {
		name string
		fw   forwarded
		want string // "object", "array" or "refusal"
		n    int
	}{
		{"nothing pending", forwarded{}, "refusal", 1},
		{"one request", forwarded{pending: pendingOf(t, "tools/call", "1")}, "object", 1},
		{"lone survivor of a batch", forwarded{pending: pendingOf(t, "tools/call", "1"), batch: true}, "array", 1},
		{"only denied members", forwarded{denied: [][]byte{deniedError(2)}, batch: true}, "array", 1},
		{"pending and denied", forwarded{pending: pendingOf(t, "tools/call", "1", "3"), denied: [][]byte{deniedError(2)}, batch: true}, "array", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, "POST", "/notes", nil)
			fw := tc.fw
			if err := g.failRequests(c, 502, &fw, mcp.CodeBackend, "backend down"); err != nil {
				t.Fatal(err)
			}
			if c.Response().StatusCode() != 502 {
				t.Fatalf("status %d", c.Response().StatusCode())
			}
			body := c.Response().Body()
			var v any
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			switch a, isArray := v.([]any); {
			case tc.want == "array" && (!isArray || len(a) != tc.n):
				t.Fatalf("want an array of %d, got %s", tc.n, body)
			case tc.want != "array" && isArray:
				t.Fatalf("want one object, got %s", body)
			}
			if tc.want == "refusal" && v.(map[string]any)["id"] != nil {
				t.Fatalf("the refusal of nothing pending names an id: %s", body)
			}
		})
	}
}

// TestFilterSpliceUnit: a filtered list reaches the client as the backend
// sent it, minus the hidden items: member order, whitespace and escapes
// kept, in a JSON body and in an SSE event whose data spans lines.
func TestFilterSpliceUnit(t *testing.T) {
	g := unitGateway(t, visibleOnly{"public": true})
	pending := pendingOf(t, "tools/list", "1")
	body := "{\"result\": {\"tools\": [{\"name\": \"secret\"},\n {\"name\": \"public\", \"description\": \"caf\\u00e9 \\/\"}], \"nextCursor\": \"n\"}, \"id\": 1, \"jsonrpc\": \"2.0\"}"
	fw := forwarded{pending: pending}
	out, isJSON, err := g.filterReply(context.Background(), unitCall(g), []byte(body), "application/json", &fw)
	if err != nil || !isJSON {
		t.Fatalf("filterReply: %v (json %v)", err, isJSON)
	}
	if want := "{\"result\": {\"tools\": [{\"name\": \"public\", \"description\": \"caf\\u00e9 \\/\"}], \"nextCursor\": \"n\"}, \"id\": 1, \"jsonrpc\": \"2.0\"}"; string(out) != want {
		t.Fatalf("JSON reply\n%s\nwant\n%s", out, want)
	}

	stream := "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata:  \"result\":{\"tools\":[{\"name\":\"public\"},\ndata: {\"name\":\"secret\"}]}}\n\n"
	ev, err := mcp.NewEventReader(strings.NewReader(stream)).Next()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := g.relayEvent(context.Background(), unitCall(g), ev, pending, requests{})
	if !ok {
		t.Fatal("event refused")
	}
	if want := "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata:  \"result\":{\"tools\":[{\"name\":\"public\"}]}}\n\n"; string(got) != want {
		t.Fatalf("SSE event\n%q\nwant\n%q", got, want)
	}
	// What the client reads of the event is one reading with the hidden
	// tool gone.
	again, err := mcp.NewEventReader(strings.NewReader(string(got))).Next()
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := mcp.ParseReply(again.Data)
	if err != nil {
		t.Fatalf("the relayed event's data: %v", err)
	}
	lists, _ := msgs[0].Lists("tools/list")
	if len(lists) != 1 || len(lists[0].Items) != 1 || lists[0].Items[0].Name != "public" {
		t.Fatalf("relayed list %+v", lists)
	}
}
