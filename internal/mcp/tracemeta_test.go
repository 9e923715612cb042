package mcp

import (
	"testing"
)

func TestSetTraceMeta(t *testing.T) {
	carrier := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "g=1"}
	const tp = `"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"g=1"`
	tests := []struct {
		name, body, want string
		changed          bool
	}{
		{"no _meta yet", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"}}}`,
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"},"_meta":{` + tp + `}}}`, true},
		{"client's trace context replaced, other _meta kept in order", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":7,"traceparent":"00-aaaa","TraceState":"c=2"},"name":"echo"}}`,
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":7,` + tp + `},"name":"echo"}}`, true},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}}`,
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2,"_meta":{` + tp + `}}}`, true},
		{"no params: left alone", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, false},
		{"_meta not an object: left alone", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":"x"}}`,
			`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":"x"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, _, perr := ParseBody([]byte(tt.body), 0)
			if perr != nil {
				t.Fatalf("parse: %v", perr)
			}
			m := &msgs[0]
			if got := m.SetTraceMeta(carrier); got != tt.changed {
				t.Errorf("changed = %v, want %v", got, tt.changed)
			}
			if got := string(m.Encode()); got != tt.want {
				t.Errorf("forwarded\n %s\nwant\n %s", got, tt.want)
			}
			// What is forwarded reads back as the same message, strictly.
			again, _, perr := ParseBody(m.Encode(), 0)
			if perr != nil || string(again[0].ParamsJSON()) != string(m.ParamsJSON()) {
				t.Errorf("re-read: %v, params %s vs %s", perr, again[0].ParamsJSON(), m.ParamsJSON())
			}
		})
	}
	// A response is never touched.
	msgs, _, perr := ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`), 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if msgs[0].SetTraceMeta(carrier) {
		t.Error("a response got trace context")
	}
}
