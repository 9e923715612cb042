package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
)

// Tool integrity end to end: a real backend changes a tool's definition
// between two lists and between a list and a call; the shipped policy holds
// it in enforce and lets it through, recorded, in observe; an administrator
// reviews and approves it through the admin API.

func withIntegrity(mode string) func(*config.Config) {
	return func(cfg *config.Config) {
		b := cfg.Backends["notes"]
		b.ToolIntegrity = mode
		cfg.Backends["notes"] = b
	}
}

// mcpUser is a caller of the notes backend through the claude-code agent.
type mcpUser struct {
	t    *testing.T
	base string
	tok  string
	sid  string
	id   int
}

func newMCPUser(t *testing.T, base, token string) *mcpUser {
	t.Helper()
	sid, err := mcpSession(base, "/notes", token, "claude-code")
	if err != nil {
		t.Fatal(err)
	}
	return &mcpUser{t: t, base: base, tok: token, sid: sid}
}

// rpc sends one request in the user's session and returns its response.
func (u *mcpUser) rpc(method, params string) map[string]any {
	u.t.Helper()
	u.id++
	status, _, body, err := mcpPost(u.base, "/notes", u.tok, "claude-code", u.sid,
		fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, u.id, method, params))
	if err != nil || status != http.StatusOK {
		u.t.Fatalf("%s: HTTP %d, %v: %s", method, status, err, body)
	}
	// The reply is JSON or one SSE event.
	if i := strings.Index(body, "data: "); i >= 0 {
		body = strings.SplitN(body[i+len("data: "):], "\n", 2)[0]
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		u.t.Fatalf("%s: %v: %s", method, err, body)
	}
	return m
}

// tools lists the tool names the user sees.
func (u *mcpUser) tools() []string {
	u.t.Helper()
	m := u.rpc("tools/list", "{}")
	result, _ := m["result"].(map[string]any)
	list, _ := result["tools"].([]any)
	var names []string
	for _, it := range list {
		names = append(names, it.(map[string]any)["name"].(string))
	}
	slices.Sort(names)
	return names
}

// echo calls echo and returns the JSON-RPC error message, "" on success.
func (u *mcpUser) echo() string {
	u.t.Helper()
	m := u.rpc("tools/call", `{"name":"echo","arguments":{"message":"hi"}}`)
	if e, ok := m["error"].(map[string]any); ok {
		return fmt.Sprint(e["message"])
	}
	return ""
}

func rugPull(t *testing.T, b *demo.Backend) {
	t.Helper()
	resp, err := http.Post(b.ChangeURL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("change the echo tool: HTTP %d", resp.StatusCode)
	}
}

type pendingView struct {
	Mode    string    `json:"tool_integrity"`
	Pending []pinView `json:"pending"`
}

func (w *adminWorld) pending(token string) pendingView {
	w.t.Helper()
	var p pendingView
	decodeJSON(w.t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/tool-integrity/notes/pending", token, ""), &p)
	return p
}

func (w *adminWorld) toolChanges(action audit.Action) []audit.Record {
	w.t.Helper()
	recs, _ := w.auditPage(w.root, "kind=tool_change&backend=notes&limit=1000")
	var out []audit.Record
	for _, r := range recs {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

var notesTools = []string{"add", "echo", "list_files", "long_running", "read_file", "write_file"}

func TestToolIntegrityEnforce(t *testing.T) {
	w := newAdminWorld(t, withIntegrity(config.IntegrityEnforce))
	carol := newMCPUser(t, w.url, w.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client"))

	// Nothing approved yet: every tool is new, hidden and refused.
	if got := carol.tools(); len(got) != 0 {
		t.Fatalf("tools before any approval = %v, want none", got)
	}
	if msg := carol.echo(); !strings.Contains(msg, "held by tool integrity (new)") {
		t.Fatalf("echo before approval: %q", msg)
	}
	p := w.pending(w.root)
	if p.Mode != "enforce" || len(p.Pending) != len(notesTools) || p.Pending[0].Status != "new" {
		t.Fatalf("pending = %+v", p)
	}
	w.must(http.StatusOK, http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root, `{"all":true}`)
	if got := carol.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("tools after approving all = %v", got)
	}
	if msg := carol.echo(); msg != "" {
		t.Fatalf("echo after approval: %q", msg)
	}

	// The backend changes echo between two lists: the second hides it,
	// and a call is refused naming what changed.
	rugPull(t, w.notes)
	if got := carol.tools(); slices.Contains(got, "echo") || len(got) != len(notesTools)-1 {
		t.Fatalf("tools after the change = %v, want all but echo", got)
	}
	if msg := carol.echo(); !strings.Contains(msg, "held by tool integrity (changed: description)") {
		t.Fatalf("echo after the change: %q", msg)
	}
	seen := w.toolChanges(audit.ActionSeen)
	if i := slices.IndexFunc(seen, func(r audit.Record) bool {
		return r.ObjectName == "echo" && slices.Contains(r.Reasons, "changed: description")
	}); i < 0 {
		t.Fatalf("no tool_change record of the change among %+v", seen)
	}

	// Review: the diff shows both definitions; approving the reviewed hash
	// brings the tool back.
	var diff struct {
		Item     pinView `json:"item"`
		Approved struct {
			Hash       string          `json:"hash"`
			Definition json.RawMessage `json:"definition"`
		} `json:"approved"`
		Current struct {
			Hash       string          `json:"hash"`
			Definition json.RawMessage `json:"definition"`
		} `json:"current"`
	}
	decodeJSON(t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/tool-integrity/notes/diff?kind=tool&name=echo", w.root, ""), &diff)
	if !slices.Equal(diff.Item.Changed, []string{"description"}) || !strings.Contains(string(diff.Approved.Definition), `"Echo a message back"`) ||
		!strings.Contains(string(diff.Current.Definition), demo.EchoChangedDescription) {
		t.Fatalf("diff = %+v", diff)
	}
	w.must(http.StatusConflict, http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root,
		fmt.Sprintf(`{"kind":"tool","name":"echo","hash":%q}`, diff.Approved.Hash))
	w.must(http.StatusOK, http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root,
		fmt.Sprintf(`{"kind":"tool","name":"echo","hash":%q}`, diff.Current.Hash))
	if got := carol.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("tools after approving the change = %v", got)
	}
	if msg := carol.echo(); msg != "" {
		t.Fatalf("echo after approving the change: %q", msg)
	}
	approvals := w.toolChanges(audit.ActionApprove)
	if i := slices.IndexFunc(approvals, func(r audit.Record) bool { return r.ObjectName == "echo" && r.Subject == "root" }); i < 0 || approvals[i].Time.IsZero() {
		t.Fatalf("no approval of echo by root among %+v", approvals)
	}
	if p := w.pending(w.root); len(p.Pending) != 0 {
		t.Errorf("pending after every approval: %+v", p.Pending)
	}
}

// A tool changed after the caller listed it: the call is decided on the
// definition the backend has now, which the gateway lists itself first.
func TestToolIntegrityChangeBetweenListAndCall(t *testing.T) {
	w := newAdminWorld(t, withIntegrity(config.IntegrityTrustOnFirstUse))
	dave := newMCPUser(t, w.url, w.token("dave", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client"))
	// Trust on first use approves the first list.
	if got := dave.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("first list = %v", got)
	}
	rugPull(t, w.notes)
	if msg := dave.echo(); !strings.Contains(msg, "held by tool integrity (changed: description)") {
		t.Fatalf("echo changed after the list: %q", msg)
	}
	// Rejected, it stays held and is no longer pending.
	w.must(http.StatusOK, http.MethodPost, "/admin/v1/tool-integrity/notes/reject", w.root, `{"kind":"tool","name":"echo"}`)
	if p := w.pending(w.root); len(p.Pending) != 0 {
		t.Errorf("pending after the rejection: %+v", p.Pending)
	}
	if msg := dave.echo(); !strings.Contains(msg, "held by tool integrity") {
		t.Errorf("echo after the rejection: %q", msg)
	}
	if got := w.toolChanges(audit.ActionReject); len(got) != 1 || got[0].Subject != "root" || got[0].Allow {
		t.Errorf("rejection records = %+v", got)
	}
}

func TestToolIntegrityObserve(t *testing.T) {
	w := newAdminWorld(t, withIntegrity(config.IntegrityObserve))
	erin := newMCPUser(t, w.url, w.token("erin", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client"))
	if got := erin.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("observe hides tools: %v", got)
	}
	if n := len(w.toolChanges(audit.ActionSeen)); n != len(notesTools) {
		t.Errorf("%d records of new tools, want %d", n, len(notesTools))
	}
	// Listed again: nothing new is recorded (once per definition). The
	// tools reviewed, a change is one against the approved definition.
	erin.tools()
	w.must(http.StatusOK, http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root, `{"all":true}`)
	rugPull(t, w.notes)
	if got := erin.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("observe hides the changed tool: %v", got)
	}
	if msg := erin.echo(); msg != "" {
		t.Fatalf("observe refuses the changed tool: %q", msg)
	}
	erin.tools()
	seen := w.toolChanges(audit.ActionSeen)
	if len(seen) != len(notesTools)+1 || seen[0].ObjectName != "echo" || !slices.Equal(seen[0].Reasons, []string{"changed: description"}) {
		t.Fatalf("%d records after the change, the newest %s %v", len(seen), seen[0].ObjectName, seen[0].Reasons)
	}
}

// Reviewing is the policy's to allow: admins may read, only super-admins
// approve, viewers see nothing; a backend that does not exist is 404.
func TestToolIntegrityAdminAuthorization(t *testing.T) {
	w := newAdminWorld(t, withIntegrity(config.IntegrityEnforce))
	tests := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"admin reads pending", http.MethodGet, "/admin/v1/tool-integrity/notes/pending", w.admin, "", http.StatusOK},
		{"admin may not approve", http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.admin, `{"all":true}`, http.StatusForbidden},
		{"viewer may not read", http.MethodGet, "/admin/v1/tool-integrity/notes/pending", w.viewer, "", http.StatusForbidden},
		{"no token", http.MethodGet, "/admin/v1/tool-integrity/notes/pending", "", "", http.StatusUnauthorized},
		{"unknown backend", http.MethodGet, "/admin/v1/tool-integrity/nope/pending", w.root, "", http.StatusNotFound},
		{"unknown item", http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root, `{"kind":"tool","name":"nope"}`, http.StatusNotFound},
		{"bad kind", http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root, `{"kind":"resource","name":"x"}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/admin/v1/tool-integrity/notes/approve", w.root, `{"everything":true}`, http.StatusBadRequest},
		{"name and all", http.MethodPost, "/admin/v1/tool-integrity/notes/reject", w.root, `{"name":"echo","all":true}`, http.StatusBadRequest},
		{"diff without name", http.MethodGet, "/admin/v1/tool-integrity/notes/diff", w.root, "", http.StatusBadRequest},
		{"wrong method", http.MethodGet, "/admin/v1/tool-integrity/notes/approve", w.root, "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _, body := w.api(tt.method, tt.path, tt.token, tt.body); status != tt.want {
				t.Errorf("%s %s: %d, want %d: %s", tt.method, tt.path, status, tt.want, body)
			}
		})
	}
}

// tool_integrity is a backend key like the others: the admin API sets it,
// validated, and the routing table serves the new mode at once.
func TestToolIntegrityModeThroughAdminAPI(t *testing.T) {
	w := newAdminWorld(t)
	tests := []struct {
		body, want string
		status     int
	}{
		{`{"tool_integrity":"strict"}`, `backends.notes.tool_integrity: \"strict\": want one of off, observe, enforce, trust_on_first_use`, http.StatusBadRequest},
		{`{"tool_integrity":"enforce"}`, `"tool_integrity":"enforce"`, http.StatusOK},
	}
	for _, tt := range tests {
		status, body := w.apiAs("application/merge-patch+json", http.MethodPatch, "/admin/v1/backends/notes", w.root, tt.body)
		if status != tt.status || !strings.Contains(string(body), tt.want) {
			t.Errorf("PATCH %s: %d %s, want %d with %s", tt.body, status, body, tt.status, tt.want)
		}
	}
	if p := w.pending(w.root); p.Mode != config.IntegrityEnforce {
		t.Errorf("mode after the PATCH = %q", p.Mode)
	}
}
