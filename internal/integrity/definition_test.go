package integrity

import (
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

func item(t *testing.T, s string) ijson.Value {
	t.Helper()
	v, err := ijson.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFromItem(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		item     string
		wantName string
		wantBody string
		wantErr  string
	}{
		{name: "tool fields in canonical order, others dropped", kind: KindTool,
			item:     `{"_meta":{"x":1},"inputSchema":{"type":"object","properties":{"b":{},"a":{}}},"description":"d","name":"echo"}`,
			wantName: "echo", wantBody: `{"name":"echo","description":"d","inputSchema":{"properties":{"a":{},"b":{}},"type":"object"}}`},
		{name: "folded member names read as the field", kind: KindTool,
			item: `{"Name":"echo","DESCRIPTION":"d"}`, wantName: "echo", wantBody: `{"name":"echo","description":"d"}`},
		{name: "prompt", kind: KindPrompt, item: `{"name":"p","arguments":[{"name":"city"}],"icons":[]}`,
			wantName: "p", wantBody: `{"name":"p","arguments":[{"name":"city"}]}`},
		{name: "template named by its uriTemplate", kind: KindResourceTemplate,
			item: `{"name":"Doc","uriTemplate":"file:///{path}","mimeType":"text/plain"}`, wantName: "file:///{path}",
			wantBody: `{"uriTemplate":"file:///{path}","name":"Doc","mimeType":"text/plain"}`},
		{name: "no name", kind: KindTool, item: `{"description":"d"}`, wantErr: "tool without a name"},
		{name: "not an object", kind: KindTool, item: `[]`, wantErr: "not an object"},
		{name: "unknown kind", kind: "resource", item: `{}`, wantErr: "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, err := FromItem(tt.kind, item(t, tt.item))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if def.Name != tt.wantName || string(def.Body) != tt.wantBody || len(def.Hash) != 64 {
				t.Errorf("got name %q body %s hash %q, want %q %s", def.Name, def.Body, def.Hash, tt.wantName, tt.wantBody)
			}
		})
	}
}

// The hash is over the canonical encoding: member order, escapes and
// unpinned members do not move it; any pinned field does.
func TestHashStability(t *testing.T) {
	base := `{"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"m":{"type":"string"}}}}`
	tests := []struct {
		name string
		item string
		same bool
	}{
		{"reordered members", `{"inputSchema":{"properties":{"m":{"type":"string"}},"type":"object"},"description":"Echo","name":"echo"}`, true},
		{"escaped text", `{"name":"echo","description":"\u0045cho","inputSchema":{"type":"object","properties":{"m":{"type":"string"}}}}`, true},
		{"unpinned member", `{"name":"echo","description":"Echo","icons":[],"inputSchema":{"type":"object","properties":{"m":{"type":"string"}}}}`, true},
		{"description", `{"name":"echo","description":"Echo!","inputSchema":{"type":"object","properties":{"m":{"type":"string"}}}}`, false},
		{"schema", `{"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"m":{"type":"number"}}}}`, false},
		{"annotations added", `{"name":"echo","description":"Echo","annotations":{},"inputSchema":{"type":"object","properties":{"m":{"type":"string"}}}}`, false},
	}
	want, err := FromItem(KindTool, item(t, base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		got, err := FromItem(KindTool, item(t, tt.item))
		if err != nil {
			t.Fatal(err)
		}
		if (got.Hash == want.Hash) != tt.same {
			t.Errorf("%s: same hash = %v, want %v", tt.name, got.Hash == want.Hash, tt.same)
		}
	}
}

func TestClassify(t *testing.T) {
	v1, _ := FromItem(KindTool, item(t, `{"name":"echo","description":"Echo"}`))
	v2, _ := FromItem(KindTool, item(t, `{"name":"echo","description":"Echo <IMPORTANT>","inputSchema":{}}`))
	tests := []struct {
		name string
		def  Definition
		pin  Pin
		want Result
	}{
		{"never approved", v1, Pin{}, Result{Status: StatusNew}},
		{"approved", v1, Pin{ApprovedHash: v1.Hash, ApprovedBody: v1.Body}, Result{Status: StatusApproved}},
		{"changed names its fields", v2, Pin{ApprovedHash: v1.Hash, ApprovedBody: v1.Body}, Result{Status: StatusChanged, Changed: []string{"description", "inputSchema"}}},
		{"rejected change", v2, Pin{ApprovedHash: v1.Hash, ApprovedBody: v1.Body, RejectedHash: v2.Hash}, Result{Status: StatusChanged, Changed: []string{"description", "inputSchema"}, Rejected: true}},
		{"rejected new item", v1, Pin{RejectedHash: v1.Hash}, Result{Status: StatusNew, Rejected: true}},
		{"rejected another definition", v1, Pin{ApprovedHash: v1.Hash, ApprovedBody: v1.Body, RejectedHash: v2.Hash}, Result{Status: StatusApproved}},
	}
	for _, tt := range tests {
		got := Classify(tt.def, tt.pin)
		if got.Status != tt.want.Status || got.Rejected != tt.want.Rejected || !slices.Equal(got.Changed, tt.want.Changed) {
			t.Errorf("%s: Classify = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
