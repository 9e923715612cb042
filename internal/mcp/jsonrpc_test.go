package mcp

import (
	"encoding/json"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

func TestParseBody(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantKinds []Kind
		batch     bool
		wantCode  int
		wantMsg   string
	}{
		{name: "request", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, wantKinds: []Kind{KindRequest}},
		{name: "string id", body: `{"jsonrpc":"2.0","id":"a","method":"ping"}`, wantKinds: []Kind{KindRequest}},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, wantKinds: []Kind{KindNotification}},
		{name: "response", body: `{"jsonrpc":"2.0","id":7,"result":{}}`, wantKinds: []Kind{KindResponse}},
		{name: "error response", body: `{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}`, wantKinds: []Kind{KindResponse}},
		{name: "batch", body: ` [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]`, batch: true,
			wantKinds: []Kind{KindRequest, KindNotification}},
		{name: "empty", body: "  ", wantCode: mcpgo.PARSE_ERROR, wantMsg: "empty body"},
		{name: "not JSON", body: `{"jsonrpc":`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "not valid JSON"},
		{name: "broken batch", body: `[{"jsonrpc":"2.0"`, batch: true, wantCode: mcpgo.PARSE_ERROR},
		{name: "empty batch", body: `[]`, batch: true, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "empty batch"},
		{name: "bad batch member names its index", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"x":1}]`, batch: true,
			wantCode: mcpgo.INVALID_REQUEST, wantMsg: "batch[1]"},
		{name: "scalar", body: `42`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "not a JSON-RPC object"},
		{name: "wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"jsonrpc" must be "2.0"`},
		{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "fractional id", body: `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "empty method", body: `{"jsonrpc":"2.0","id":1,"method":""}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"method"`},
		{name: "scalar params", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":3}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"params"`},
		{name: "response without id", body: `{"jsonrpc":"2.0","result":{}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "neither", body: `{"jsonrpc":"2.0","id":1}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "needs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, batch, perr := ParseBody([]byte(tc.body))
			if batch != tc.batch {
				t.Errorf("batch = %v, want %v", batch, tc.batch)
			}
			if tc.wantCode != 0 {
				if perr == nil || perr.Code != tc.wantCode || perr.Status != 400 || !strings.Contains(perr.Message, tc.wantMsg) {
					t.Fatalf("error = %+v, want code %d containing %q", perr, tc.wantCode, tc.wantMsg)
				}
				return
			}
			if perr != nil {
				t.Fatalf("unexpected error %v", perr)
			}
			if len(msgs) != len(tc.wantKinds) {
				t.Fatalf("%d messages, want %d", len(msgs), len(tc.wantKinds))
			}
			for i, k := range tc.wantKinds {
				if msgs[i].Kind != k {
					t.Errorf("message %d kind %v, want %v", i, msgs[i].Kind, k)
				}
			}
		})
	}
}

func TestMessageAccessors(t *testing.T) {
	msgs, _, _ := ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`))
	if msgs[0].ToolName() != "echo" || msgs[0].Arguments()["message"] != "hi" {
		t.Fatalf("tool %q args %v", msgs[0].ToolName(), msgs[0].Arguments())
	}
	msgs, _, _ = ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`))
	if msgs[0].ToolName() != "file:///a" {
		t.Fatalf("resources/read name %q", msgs[0].ToolName())
	}
	msgs, _, _ = ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`))
	if msgs[0].ProtocolVersion() != "2025-06-18" {
		t.Fatalf("protocol version %q", msgs[0].ProtocolVersion())
	}
}

func TestErrorResponseAndRewrite(t *testing.T) {
	var e map[string]any
	if err := json.Unmarshal(ErrorResponse(mcpgo.NewRequestId("x"), CodeForbidden, "no", map[string]any{"decision_id": "d"}), &e); err != nil {
		t.Fatal(err)
	}
	if e["id"] != "x" || e["error"].(map[string]any)["code"] != float64(CodeForbidden) {
		t.Fatalf("error response %v", e)
	}
	resp, err := ParseResponse([]byte(`{"jsonrpc":"2.0","id":3,"result":{"a":1},"_extra":true}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := resp.WithResult(json.RawMessage(`{"b":2}`))
	if err != nil || !strings.Contains(string(out), `"_extra":true`) || !strings.Contains(string(out), `"result":{"b":2}`) {
		t.Fatalf("rewritten %s %v", out, err)
	}
	if _, err := ParseResponse([]byte(`{"jsonrpc":"2.0","method":"notifications/progress"}`)); err != ErrNotResponse {
		t.Fatalf("notification parsed as response: %v", err)
	}
}

func TestFilterList(t *testing.T) {
	result := json.RawMessage(`{"tools":[{"name":"a","annotations":{"readOnlyHint":true}},{"name":"b"},{"name":"c"}],"nextCursor":"p2","_meta":{"k":1}}`)
	if DetectListKey(result) != ListTools || DetectListKey(json.RawMessage(`{"content":[]}`)) != "" {
		t.Fatal("DetectListKey")
	}
	items, err := ParseList(result, ListTools)
	if err != nil || len(items) != 3 || items[0].Annotations["readOnlyHint"] != true {
		t.Fatalf("ParseList %v %v", items, err)
	}
	out, err := FilterList(result, ListTools, func(it ListItem) bool { return it.Name != "b" })
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tools      []struct{ Name string }
		NextCursor string
		Meta       map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tools) != 2 || got.Tools[0].Name != "a" || got.Tools[1].Name != "c" || got.NextCursor != "p2" || got.Meta["k"] != float64(1) {
		t.Fatalf("filtered %s", out)
	}
	if _, err := FilterList(json.RawMessage(`{"tools":{}}`), ListTools, func(ListItem) bool { return true }); err == nil {
		t.Fatal("a tools member that is not an array was accepted")
	}
	res := ListItem{URI: "file:///x", URITemplate: "file:///{p}", Name: "n"}
	if res.Key(ListResources) != "file:///x" || res.Key(ListResourceTemplates) != "file:///{p}" || res.Key(ListPrompts) != "n" {
		t.Fatal("ListItem.Key")
	}
}

// FuzzParseBody: whatever arrives, parsing neither panics nor accepts a
// message without a kind.
func FuzzParseBody(f *testing.F) {
	for _, seed := range []string{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `[{"jsonrpc":"2.0","method":"x"}]`, `{"jsonrpc":"2.0","id":1,"result":null}`, `[]`, `"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, _, perr := ParseBody(body)
		if perr != nil {
			return
		}
		for _, m := range msgs {
			if m.Kind == 0 {
				t.Fatalf("message without a kind from %q", body)
			}
		}
	})
}
