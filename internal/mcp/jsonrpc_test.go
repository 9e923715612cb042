package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/ijson"
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
		{name: "ids of different types are distinct", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"}]`, batch: true,
			wantKinds: []Kind{KindRequest, KindRequest}},
		{name: "escaped member names are read decoded", body: `{"jsonrpc":"2.0","id":1,"m\u0065thod":"ping"}`, wantKinds: []Kind{KindRequest}},
		{name: "empty", body: "  ", wantCode: mcpgo.PARSE_ERROR, wantMsg: "unexpected end"},
		{name: "not JSON", body: `{"jsonrpc":`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "parse error"},
		{name: "broken batch", body: `[{"jsonrpc":"2.0"`, batch: true, wantCode: mcpgo.PARSE_ERROR},
		{name: "duplicate member", body: `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "duplicate"},
		{name: "duplicate inside arguments", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "duplicate"},
		{name: "number out of range", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1e400}}}`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "range"},
		{name: "trailing data", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}x`, wantCode: mcpgo.PARSE_ERROR, wantMsg: "after"},
		{name: "invalid UTF-8", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffing\"}", wantCode: mcpgo.PARSE_ERROR, wantMsg: "UTF-8"},
		{name: "empty batch", body: `[]`, batch: true, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "empty batch"},
		{name: "bad batch member names its index", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"x":1}]`, batch: true,
			wantCode: mcpgo.INVALID_REQUEST, wantMsg: "batch[1]"},
		{name: "batch with a repeated id", body: `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]`, batch: true,
			wantCode: mcpgo.INVALID_REQUEST, wantMsg: "share the id 1"},
		{name: "batch over the limit", body: "[" + strings.Repeat(`{"jsonrpc":"2.0","method":"x"},`, 3) + `{"jsonrpc":"2.0","method":"x"}]`, batch: true,
			wantCode: mcpgo.INVALID_REQUEST, wantMsg: "exceeds the limit of 3"},
		{name: "scalar", body: `42`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "not a JSON-RPC object"},
		{name: "wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"jsonrpc" must be "2.0"`},
		{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "fractional id", body: `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "exponent id", body: `{"jsonrpc":"2.0","id":1e2,"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "empty method", body: `{"jsonrpc":"2.0","id":1,"method":""}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"method"`},
		{name: "scalar params", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":3}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"params"`},
		{name: "array params", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"params"`},
		{name: "response without id", body: `{"jsonrpc":"2.0","result":{}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `"id"`},
		{name: "response with result and error", body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "not both"},
		{name: "neither", body: `{"jsonrpc":"2.0","id":1}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "needs"},
		{name: "upper-case method member", body: `{"jsonrpc":"2.0","id":1,"method":"ping","METHOD":"tools/call"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `unknown member "METHOD"`},
		{name: "upper-case params member", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","PARAMS":{"name":"x"}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `unknown member "PARAMS"`},
		{name: "request that is also a response", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"Method":null,"result":{}}`, wantCode: mcpgo.INVALID_REQUEST},
		{name: "request with a result", body: `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "both request and response"},
		{name: "response with a Method member", body: `{"jsonrpc":"2.0","id":1,"result":{},"Method":"tools/call"}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `unknown member "Method"`},
		{name: "unknown member", body: `{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: `unknown member "extra"`},
		{name: "case variants of name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get-env","NAME":"echo"}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: `/params has both "name" and "NAME"`},
		{name: "long s folds onto s", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"status":"a","ſtatus":"b"}}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "/params/arguments"},
		{name: "Kelvin sign folds onto k", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"key":"a","\u212aey":"b"}}}`, wantCode: mcpgo.INVALID_PARAMS},
		{name: "case variants of arguments", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"ARGUMENTS":{"p":1}}}`, wantCode: mcpgo.INVALID_PARAMS},
		{name: "case variants of uri", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///public","URI":"file:///secret"}}`, wantCode: mcpgo.INVALID_PARAMS},
		{name: "case variants deep in arguments", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":[{"Path":"x","path":"y"}]}}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "/params/arguments/a/0"},
		{name: "a params member folding onto arguments", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","ARGUMENTS":{"p":1}}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: `"ARGUMENTS" is not "arguments"`},
		{name: "a params member folding onto _meta", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_META":{}}}`, wantCode: mcpgo.INVALID_PARAMS},
		{name: "tools/call without a name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "params.name"},
		{name: "tools/call with a number for a name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "params.name"},
		{name: "resources/read without a uri", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "params.uri"},
		{name: "arguments that are not an object", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":"x"}}`, wantCode: mcpgo.INVALID_PARAMS, wantMsg: "arguments"},
		{name: "response with fold-colliding result", body: `{"jsonrpc":"2.0","id":1,"result":{"a":1,"A":2}}`, wantCode: mcpgo.INVALID_REQUEST, wantMsg: "both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, batch, perr := ParseBody([]byte(tc.body), 3)
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

func TestRefusalKeepsTheIDItCouldRead(t *testing.T) {
	_, _, perr := ParseBody([]byte(`{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"a","NAME":"b"}}`), 0)
	if perr == nil || perr.ID == nil || perr.ID.String() != "string:r1" {
		t.Fatalf("error %+v does not carry the request's id", perr)
	}
}

func TestMessageAccessors(t *testing.T) {
	msgs, _, _ := ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","n":123456789012345678901234567890}}}`), 0)
	args := msgs[0].Arguments()
	if msgs[0].Target() != "echo" || args["message"] != "hi" || args["n"] != json.Number("123456789012345678901234567890") {
		t.Fatalf("tool %q args %v", msgs[0].Target(), args)
	}
	msgs, _, _ = ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`), 0)
	if msgs[0].Target() != "file:///a" {
		t.Fatalf("resources/read target %q", msgs[0].Target())
	}
	msgs, _, _ = ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`), 0)
	if msgs[0].ProtocolVersion() != "2025-06-18" {
		t.Fatalf("protocol version %q", msgs[0].ProtocolVersion())
	}
	msgs, _, _ = ParseBody([]byte(` { "jsonrpc" : "2.0", "id" : 1, "method" : "ping" , "params":{"_meta":{"x":"<&>"}}} `), 0)
	if got := string(msgs[0].Encode()); got != `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"x":"<&>"}}}` {
		t.Fatalf("forwarded encoding %s", got)
	}
}

func TestErrorResponse(t *testing.T) {
	var e map[string]any
	if err := json.Unmarshal(ErrorResponse(mcpgo.NewRequestId("x"), CodeForbidden, "no", map[string]any{"decision_id": "d"}), &e); err != nil {
		t.Fatal(err)
	}
	if e["id"] != "x" || e["error"].(map[string]any)["code"] != float64(CodeForbidden) {
		t.Fatalf("error response %v", e)
	}
}

func TestParseReply(t *testing.T) {
	msgs, batch, err := ParseReply([]byte(`[{"jsonrpc":"2.0","id":3,"result":{"a":1}},{"jsonrpc":"2.0","method":"notifications/progress","params":{}}]`))
	if err != nil || !batch || len(msgs) != 2 || msgs[0].Kind != KindResponse || msgs[1].Kind != KindNotification {
		t.Fatalf("ParseReply = %v %v %v", msgs, batch, err)
	}
	msgs[0].SetResult(ijson.Value{Kind: ijson.Object, Members: []ijson.Member{{Name: "b", Value: ijson.Value{Kind: ijson.Number, Str: "2"}}}})
	if got := string(msgs[0].Encode()); got != `{"jsonrpc":"2.0","id":3,"result":{"b":2}}` {
		t.Fatalf("rewritten %s", got)
	}
	if msgs, _, err := ParseReply([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`)); err != nil || msgs[0].IDKey != "null" {
		t.Fatalf("a server's error with a null id: %v", err)
	}
	for _, bad := range []string{
		`{"jsonrpc":"2.0","id":null,"result":{}}`,
		`{"jsonrpc":"2.0","id":3,"result":{},"Result":{"tools":[]}}`,
		`{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"result":{"tools":[]}}`,
		`{"jsonrpc":"2.0","id":3,"result":{}} {"jsonrpc":"2.0","id":4,"result":{}}`,
	} {
		if _, _, err := ParseReply([]byte(bad)); err == nil {
			t.Errorf("ParseReply accepted %s", bad)
		}
	}
}

func TestFindAndFilterLists(t *testing.T) {
	parse := func(s string) ijson.Value {
		v, err := ijson.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	result := parse(`{"tools":[{"name":"a","annotations":{"readOnlyHint":true},"inputSchema":{"type":"object"}},{"name":"b"},{"name":"c"}],"nextCursor":"p2","_meta":{"k":1}}`)
	lists, err := FindLists(result, "tools/list")
	if err != nil || len(lists) != 1 || lists[0].Key != ListTools || len(lists[0].Items) != 3 {
		t.Fatalf("FindLists = %+v, %v", lists, err)
	}
	if it := lists[0].Items[0]; it.Annotations["readOnlyHint"] != true || it.InputSchema.Kind != ijson.Object {
		t.Fatalf("item a = %+v", it)
	}
	out := FilterLists(result, lists, func(_ ListKey, it ListItem) bool { return it.Name != "b" })
	if got := string(out.Encode()); got != `{"tools":[{"name":"a","annotations":{"readOnlyHint":true},"inputSchema":{"type":"object"}},{"name":"c"}],"nextCursor":"p2","_meta":{"k":1}}` {
		t.Fatalf("filtered %s (member order and other members must be kept)", got)
	}

	cases := []struct {
		name, result, method string
		keys                 []ListKey
		wantErr              string
	}{
		{"list found by shape when the method is unknown", `{"prompts":[{"name":"p"}]}`, "", []ListKey{ListPrompts}, ""},
		{"a reply to ping shaped like a list is still filtered", `{"tools":[{"name":"t"}]}`, "ping", []ListKey{ListTools}, ""},
		{"every list-shaped member", `{"tools":[],"prompts":[{"name":"p"}]}`, "tools/list", []ListKey{ListTools, ListPrompts}, ""},
		{"a member a Go client binds as tools", `{"Tools":[{"name":"t"}]}`, "tools/list", []ListKey{ListTools}, ""},
		{"item names read as a Go client reads them", `{"tools":[{"NAME":"secret"}]}`, "tools/list", []ListKey{ListTools}, ""},
		{"no list", `{"content":[]}`, "tools/call", nil, ""},
		{"list member of the wrong type", `{"tools":{}}`, "tools/list", nil, "not an array"},
		{"two members one client reads as one", `{"tools":[],"Tools":[{"name":"x"}]}`, "tools/list", nil, "both"},
		{"item with colliding names", `{"tools":[{"name":"a","Name":"b"}]}`, "tools/list", nil, "both"},
		{"annotations with colliding names", `{"tools":[{"name":"a","annotations":{"readOnlyHint":false,"readonlyhint":true}}]}`, "tools/list", nil, "both"},
		{"item that is not an object", `{"tools":["a"]}`, "tools/list", nil, "not an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lists, err := FindLists(parse(c.result), c.method)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []ListKey
			for _, l := range lists {
				keys = append(keys, l.Key)
			}
			if !reflect.DeepEqual(keys, c.keys) {
				t.Fatalf("lists %v, want %v", keys, c.keys)
			}
		})
	}
	lists, _ = FindLists(parse(`{"tools":[{"NAME":"secret"}]}`), "tools/list")
	if lists[0].Items[0].Name != "secret" {
		t.Fatalf("an upper-case NAME was read as %q, not as a Go client reads it", lists[0].Items[0].Name)
	}
	res := ListItem{URI: "file:///x", URITemplate: "file:///{p}", Name: "n"}
	if res.Key(ListResources) != "file:///x" || res.Key(ListResourceTemplates) != "file:///{p}" || res.Key(ListPrompts) != "n" {
		t.Fatal("ListItem.Key")
	}
}

// FuzzParseBody checks the gateway's central property: for every body it
// accepts, a second, independent reading of the bytes it forwards
// (encoding/json into maps, which matches names exactly and, with no
// duplicates left, reads as JSON.parse does) finds the same method, target
// and arguments the policy was given.
func FuzzParseBody(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `[{"jsonrpc":"2.0","method":"x"}]`, `{"jsonrpc":"2.0","id":1,"result":null}`, `[]`, `"`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","n":1.5e3}}}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"get-env","NAME":"echo"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///x","URI":"y"}}`,
		`{"jsonrpc":"2.0","id":3,"m\u0065thod":"prompts/get","params":{"n\u0061me":"p","arguments":{"a":"\ud83d\ude00"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"Method":null,"result":{}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, _, perr := ParseBody(body, 0)
		if perr != nil {
			return
		}
		for _, m := range msgs {
			if m.Kind == 0 {
				t.Fatalf("message without a kind from %q", body)
			}
			fwd := m.Encode()
			dec := json.NewDecoder(bytes.NewReader(fwd))
			dec.UseNumber()
			var other map[string]any
			if err := dec.Decode(&other); err != nil {
				t.Fatalf("forwarded bytes %s do not decode: %v", fwd, err)
			}
			params, _ := other["params"].(map[string]any)
			target := ""
			switch m.Method {
			case "tools/call", "prompts/get":
				target, _ = params["name"].(string)
			case "resources/read":
				target, _ = params["uri"].(string)
			}
			method, _ := other["method"].(string)
			if method != m.Method || target != m.Target() {
				t.Fatalf("decided %q %q, the forwarded bytes say %q %q\n%s", m.Method, m.Target(), method, target, fwd)
			}
			if fmt.Sprint(params["arguments"]) != fmt.Sprint(argsOrNil(m)) && m.Arguments() != nil {
				t.Fatalf("decided arguments %v, the forwarded bytes say %v", m.Arguments(), params["arguments"])
			}
		}
	})
}

func argsOrNil(m Message) any {
	if a := m.Arguments(); a != nil {
		return a
	}
	return nil
}
