package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecideShippedPolicies(t *testing.T) {
	e, _ := shippedEngine(t)
	viewers, admins, supers := []string{"mcp-viewers"}, []string{"mcp-admins"}, []string{"mcp-super-admins"}

	tests := []struct {
		name    string
		in      *Input
		allow   bool
		status  int
		scope   string
		reasons []string
	}{
		{name: "viewer calls a viewer tool", in: caller(viewers, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1"}), allow: true},
		{name: "read-only tool needs only mcp:read", in: caller(viewers, readScopes, "employees", "search_employees", map[string]any{"query": "ann"}), allow: true},
		{name: "read-only by data on files", in: caller(viewers, readScopes, "files", "read_file", map[string]any{"path": "notes/a.md"}), allow: true},
		{
			name: "viewer may not update", in: caller(viewers, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"}),
			reasons: []string{"tool update_employee requires role admin on backend employees"},
		},
		{
			name: "viewer may not delete", in: caller(viewers, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"}),
			reasons: []string{"tool delete_employee requires role super-admin on backend employees"},
		},
		{name: "admin updates", in: caller(admins, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"}), allow: true},
		{
			name: "admin may not delete", in: caller(admins, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"}),
			reasons: []string{"tool delete_employee requires role super-admin on backend employees"},
		},
		{name: "super-admin deletes", in: caller(supers, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"}), allow: true},
		{
			name: "missing write scope is transport-level", in: caller(admins, readScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"}),
			status: 403, scope: "mcp:write", reasons: []string{"missing scope mcp:write"},
		},
		{
			name: "no scope at all for tools/list", in: lister(viewers, nil, "employees"),
			status: 403, scope: "mcp:read", reasons: []string{"missing scope mcp:read"},
		},
		{
			name: "agent scopes narrow token scopes",
			in: func() *Input {
				in := caller(admins, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"})
				in.Agent.Scopes = readScopes
				return in
			}(),
			status: 403, scope: "mcp:write", reasons: []string{"missing scope mcp:write"},
		},
		{
			name: "agent bound to another client",
			in: func() *Input {
				in := caller(viewers, writeScopes, "employees", "get_employee", nil)
				in.Token.ClientID = "claude-client"
				return in
			}(),
			status:  403,
			reasons: []string{"agent cursor is bound to client cursor-client, but the token was issued to client claude-client"},
		},
		{
			name: "disabled agent",
			in: func() *Input {
				in := caller(supers, writeScopes, "employees", "get_employee", nil)
				in.Agent.Enabled = false
				return in
			}(),
			status: 403, reasons: []string{"agent cursor is disabled"},
		},
		{
			name: "backend narrowed to a group",
			in: func() *Input {
				in := lister(supers, writeScopes, "finance")
				return in
			}(),
			status: 403, reasons: []string{"backend finance is restricted to members of finance"},
		},
		{
			name: "wildcard delete target", in: caller(supers, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "*"}),
			reasons: []string{"argument employee_id of tool delete_employee must name one target: empty values and wildcards (* %) are refused"},
		},
		{
			name: "path outside allowed prefix", in: caller(supers, writeScopes, "files", "write_file", map[string]any{"path": "/etc/cron.d/x"}),
			reasons: []string{"argument path of tool write_file must start with one of: /srv/mcp/shared/, notes/"},
		},
		{
			name: "path with parent steps", in: caller(supers, writeScopes, "files", "read_file", map[string]any{"file": "notes/../../etc/shadow"}),
			reasons: []string{"argument file of tool read_file must not contain .."},
		},
		{
			name: "unknown method", in: func() *Input {
				in := lister(supers, writeScopes, "employees")
				in.MCP.Method = "sampling/createMessage"
				return in
			}(),
			reasons: []string{"method sampling/createMessage is not allowed by policy"},
		},
		{
			name: "tools/call without a name", in: caller(supers, writeScopes, "employees", "", nil),
			reasons: []string{"tools/call names no tool"},
		},
		{name: "stream with the read scope", in: session(viewers, readScopes, "employees", KindStream), allow: true},
		{name: "close with the read scope", in: session(viewers, readScopes, "employees", KindClose), allow: true},
		{name: "response with the read scope and no role", in: session(nil, readScopes, "employees", KindResponse), allow: true},
		{
			name: "stream without the read scope", in: session(supers, nil, "employees", KindStream),
			status: 403, scope: "mcp:read", reasons: []string{"missing scope mcp:read"},
		},
		{
			name: "response without the read scope", in: session(supers, []string{"mcp:write"}, "employees", KindResponse),
			status: 403, scope: "mcp:read", reasons: []string{"missing scope mcp:read"},
		},
		{
			name: "close on a backend the caller may not initialize on", in: session(supers, writeScopes, "finance", KindClose),
			status: 403, reasons: []string{"backend finance is restricted to members of finance"},
		},
		{
			name: "stream by a disabled agent", in: func() *Input {
				in := session(viewers, readScopes, "employees", KindStream)
				in.Agent.Enabled = false
				return in
			}(),
			status: 403, reasons: []string{"agent cursor is disabled"},
		},
		{
			name: "a JSON-RPC request named GET is an unknown method", in: func() *Input {
				in := session(supers, writeScopes, "employees", KindStream)
				in.MCP.Kind = KindRequest
				return in
			}(),
			reasons: []string{"method GET is not allowed by policy"},
		},
		{
			name: "empty kind is a request", in: func() *Input {
				in := caller(viewers, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"})
				in.MCP.Kind = ""
				return in
			}(),
			reasons: []string{"tool update_employee requires role admin on backend employees"},
		},
		{
			name: "empty kind named GET is an unknown method", in: func() *Input {
				in := session(supers, writeScopes, "employees", KindStream)
				in.MCP.Kind = ""
				return in
			}(),
			reasons: []string{"method GET is not allowed by policy"},
		},
		{
			name: "unknown kind", in: func() *Input {
				in := session(supers, writeScopes, "employees", KindStream)
				in.MCP.Kind = "subscribe"
				return in
			}(),
			status: 403, reasons: []string{"traffic of kind subscribe is not allowed by policy"},
		},
		{
			name: "wrong input version", in: func() *Input {
				in := lister(supers, writeScopes, "employees")
				in.Version = 7
				return in
			}(),
			status: 403, reasons: []string{"policy expects input version 1, got 7"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(context.Background(), tc.in)
			if d.Allow != tc.allow || d.Status != tc.status || d.Scope != tc.scope {
				t.Fatalf("decision = allow %v status %d scope %q (%v), want allow %v status %d scope %q",
					d.Allow, d.Status, d.Scope, d.Reasons, tc.allow, tc.status, tc.scope)
			}
			want := tc.reasons
			if want == nil {
				want = []string{}
			}
			if !reflect.DeepEqual(d.Reasons, want) {
				t.Fatalf("reasons = %q, want %q", d.Reasons, want)
			}
			if d.ID == "" || d.Revision == "" {
				t.Fatalf("decision id %q revision %q: both must be set", d.ID, d.Revision)
			}
		})
	}
}

func TestDecisionIDsAreUnique(t *testing.T) {
	e, _ := shippedEngine(t)
	seen := map[string]bool{}
	for range 200 {
		d := e.Decide(context.Background(), caller([]string{"mcp-viewers"}, readScopes, "employees", "get_employee", nil))
		if seen[d.ID] {
			t.Fatalf("decision id %s repeated", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestDecisionRecords(t *testing.T) {
	e, rec := shippedEngine(t)
	in := caller([]string{"mcp-viewers"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1", "secret_note": "do-not-log"})
	in.Token.Claims["ssn"] = "123-45-6789"
	d := e.Decide(context.Background(), in)

	records := rec.all()
	if len(records) != 1 {
		t.Fatalf("%d records for one decision, want 1", len(records))
	}
	r := records[0]
	if r.DecisionID != d.ID || r.Subject != "alice@example.com" || r.Agent != "cursor" || r.Backend != "employees" ||
		r.Kind != KindRequest || r.Method != "tools/call" || r.Tool != "delete_employee" || r.Allow || r.Revision != e.Revision() ||
		r.Query != "decision" || r.Time.IsZero() || r.Elapsed <= 0 {
		t.Fatalf("record %+v does not describe decision %+v", r, d)
	}
	if !reflect.DeepEqual(r.Reasons, d.Reasons) {
		t.Fatalf("record reasons %q, decision reasons %q", r.Reasons, d.Reasons)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"do-not-log", "123-45-6789", "alice@example.com\",\"email"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("record %s leaks %q", raw, secret)
		}
	}
}

func TestDecideAdmin(t *testing.T) {
	e, rec := shippedEngine(t)
	admin := func(groups []string, action, kind, name string) *AdminInput {
		return &AdminInput{
			Version: InputVersion,
			Token:   TokenInput{Sub: "bob@example.com", Groups: groups, Scopes: readScopes},
			HTTP:    HTTPInput{Method: "GET", Path: "/admin/v1/" + kind},
			Admin:   AdminRequest{Action: action, Kind: kind, Name: name},
		}
	}
	tests := []struct {
		name    string
		in      *AdminInput
		allow   bool
		reasons []string
	}{
		{"super-admin deletes", admin([]string{"mcp-super-admins"}, "delete", "agents", "cursor"), true, []string{"super-admin may do every admin action"}},
		{"admin lists", admin([]string{"mcp-admins"}, "list", "agents", ""), true, []string{"admin may list agents"}},
		{"admin may not update", admin([]string{"mcp-admins"}, "update", "backends", "employees"), false, []string{"admin action update on backends/employees requires role super-admin"}},
		{"viewer may not read", admin([]string{"mcp-viewers"}, "get", "agents", "cursor"), false, []string{"admin action get on agents/cursor requires role admin or super-admin"}},
		{"no input", nil, false, []string{"policy engine error: no input"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.DecideAdmin(context.Background(), tc.in)
			if d.Allow != tc.allow || !reflect.DeepEqual(d.Reasons, tc.reasons) {
				t.Fatalf("admin decision allow %v %q, want %v %q", d.Allow, d.Reasons, tc.allow, tc.reasons)
			}
			if wantStatus := map[bool]int{true: 0, false: 403}[tc.allow]; d.Status != wantStatus {
				t.Fatalf("status %d, want %d", d.Status, wantStatus)
			}
		})
	}
	last := rec.all()[len(rec.all())-1]
	if last.Query != "admin" || last.Allow {
		t.Fatalf("last admin record %+v", last)
	}
}
