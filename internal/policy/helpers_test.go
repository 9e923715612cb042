package policy

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// shippedPolicies is the repository's policies/ directory.
const shippedPolicies = "../../policies"

var (
	readScopes  = []string{"mcp:read"}
	writeScopes = []string{"mcp:read", "mcp:write"}
)

var employeeTools = []Tool{
	{Name: "get_employee", Annotations: map[string]any{"readOnlyHint": true}},
	{Name: "list_employees", Annotations: map[string]any{"readOnlyHint": true}},
	{Name: "search_employees", Annotations: map[string]any{"readOnlyHint": true}},
	{Name: "update_employee", Annotations: map[string]any{"readOnlyHint": false}},
	{Name: "delete_employee", Annotations: map[string]any{"destructiveHint": true}},
}

var fileTools = []Tool{
	{Name: "echo"}, {Name: "read_file"}, {Name: "write_file"},
	{Name: "list_files"}, {Name: "add"}, {Name: "long_running"},
}

func toolsOf(backend string) []Tool {
	if backend == "employees" {
		return employeeTools
	}
	return fileTools
}

// caller is a tools/call from Cursor by a member of groups holding scopes.
func caller(groups, scopes []string, backend, tool string, args map[string]any) *Input {
	return &Input{
		Version: InputVersion,
		Token: TokenInput{
			Sub: "alice@example.com", Iss: "https://idp.example.com", Aud: []string{"api://mcpgw"},
			ClientID: "cursor-client", Scopes: scopes, Groups: groups,
			Claims: map[string]any{"email": "alice@example.com", "amr": []any{"pwd", "mfa"}},
		},
		Agent: AgentInput{
			ID: "cursor", ClientID: "cursor-client", Enabled: true,
			Scopes: writeScopes, BackendAccess: []string{"employees", "files"},
		},
		Backend: BackendInput{Name: backend, AuthType: "okta-cross-app"},
		MCP:     MCPInput{Kind: KindRequest, Method: "tools/call", Tool: tool, Arguments: args, ProtocolVersion: "2025-06-18"},
		HTTP:    HTTPInput{Method: "POST", Path: "/" + backend, RemoteAddr: "127.0.0.1:40000"},
		Tools:   toolsOf(backend),
	}
}

// lister is a tools/list by the same caller.
func lister(groups, scopes []string, backend string) *Input {
	in := caller(groups, scopes, backend, "", nil)
	in.MCP.Method = "tools/list"
	return in
}

// session is session traffic of kind (KindResponse, KindStream or
// KindClose) on backend by the same caller, as the gateway describes it.
func session(groups, scopes []string, backend, kind string) *Input {
	in := caller(groups, scopes, backend, "", nil)
	in.MCP.Kind = kind
	in.Tools = nil
	switch kind {
	case KindResponse:
		in.MCP.Method = ""
	case KindStream:
		in.MCP.Method, in.HTTP.Method = "GET", "GET"
	case KindClose:
		in.MCP.Method, in.HTTP.Method = "DELETE", "DELETE"
	}
	return in
}

// recorder collects decision records.
type recorder struct{ testutil.Collector[Record] }

func (r *recorder) log(_ context.Context, rec Record) { r.Add(rec) }

func (r *recorder) all() []Record { return r.All() }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEngine starts an engine over source and stops it with the test.
func newEngine(t testing.TB, o Options) (*Engine, *recorder) {
	t.Helper()
	rec := &recorder{}
	if o.DecisionLog == nil {
		o.DecisionLog = rec.log
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New(%s): %v", o.Source, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e, rec
}

func shippedEngine(t testing.TB) (*Engine, *recorder) {
	return newEngine(t, Options{Source: shippedPolicies, AllowUnsigned: true})
}

// policyDir writes files into a fresh directory.
func policyDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
