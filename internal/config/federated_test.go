package config

import (
	"strings"
	"testing"
)

// TestFederatedPath: server.federated_path is a clean path other than "/",
// and no backend is routed at, above or below it.
func TestFederatedPath(t *testing.T) {
	backends := `
backends:
  employees: {url: "http://127.0.0.1:1/mcp", auth_method: none, paths: [/employees]}
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, paths: [/tools/hr]}
`
	for _, tt := range []struct {
		path, want string
	}{
		{"", ""},
		{"/mcp", ""},
		{"/all/mcp", ""},
		{"/", "must be a clean URL path"},
		{"mcp", "must be a clean URL path"},
		{"/mcp/../x", "must be a clean URL path"},
		{"/employees", `collides with backends.employees's path "/employees"`},
		{"/employees/all", `collides with backends.employees's path "/employees"`},
		{"/tools", `collides with backends.hr's path "/tools/hr"`},
	} {
		t.Run(tt.path, func(t *testing.T) {
			yaml := issuerYAML + backends
			if tt.path != "" {
				yaml += "server: {federated_path: \"" + tt.path + "\"}\n"
			}
			c, err := Load(writeConfig(t, yaml), nil)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tt.want == "" && c.Server.FederatedPath != tt.path:
				t.Fatalf("federated_path = %q, want %q", c.Server.FederatedPath, tt.path)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "server.federated_path: ") || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Load error %v, want server.federated_path: …%s", err, tt.want)
			}
		})
	}
}

func TestPathsCollide(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"/mcp", "/mcp", true},
		{"/mcp", "/mcp/x", true},
		{"/mcp/x", "/mcp", true},
		{"/mcp", "/", true},
		{"/mcp", "/mcpx", false},
		{"/mcp", "/notes", false},
	} {
		if got := PathsCollide(tt.a, tt.b); got != tt.want {
			t.Errorf("PathsCollide(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
