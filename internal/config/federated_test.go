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

// TestFederatedPrefix: backends.<name>.federated_prefix defaults to
// "<name>__", may be "" for one backend, and no two non-empty prefixes may
// begin one another; the check runs only with server.federated_path.
func TestFederatedPrefix(t *testing.T) {
	for _, tt := range []struct {
		name     string
		backends string // the backends' extra keys, by name
		path     string
		want     string // in the error; "" for none
	}{
		{"defaults", `{}`, "/mcp", ""},
		{"one unprefixed", `{notes: {federated_prefix: ""}}`, "/mcp", ""},
		{"custom", `{notes: {federated_prefix: "n."}, employees: {federated_prefix: "e-"}}`, "/mcp", ""},
		{"two unprefixed", `{notes: {federated_prefix: ""}, employees: {federated_prefix: ""}}`, "/mcp",
			`backends.notes.federated_prefix: "" (unprefixed) is already backends.employees's`},
		{"prefix of another", `{notes: {federated_prefix: "emp"}}`, "/mcp",
			`backends.notes.federated_prefix: "emp" and backends.employees's prefix "employees__" begin one another`},
		{"equal", `{notes: {federated_prefix: "employees__"}}`, "/mcp", `begin one another`},
		{"bad characters", `{notes: {federated_prefix: "a b"}}`, "/mcp", `backends.notes.federated_prefix: "a b": want at most 64 letters`},
		{"not checked without the federated path", `{notes: {federated_prefix: "emp"}}`, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]string{}
			// A tiny YAML merge: each backend's extra keys as flow mappings.
			for _, b := range []string{"employees", "notes"} {
				if i := strings.Index(tt.backends, b+": {"); i >= 0 {
					rest := tt.backends[i+len(b)+3:]
					extra[b] = ", " + rest[:strings.Index(rest, "}")]
				}
			}
			yaml := issuerYAML + "backends:\n" +
				"  employees: {url: \"http://127.0.0.1:1/mcp\", auth_method: none" + extra["employees"] + "}\n" +
				"  notes: {url: \"http://127.0.0.1:1/mcp\", auth_method: none" + extra["notes"] + "}\n"
			if tt.path != "" {
				yaml += "server: {federated_path: \"" + tt.path + "\"}\n"
			}
			c, err := Load(writeConfig(t, yaml), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error %v, want …%s", err, tt.want)
			}
			_ = c
		})
	}
	// An unset prefix is "<name>__"; an empty one is kept empty.
	empty := ""
	if p := (Backend{Name: "notes"}).FederatedNamePrefix(); p != "notes__" {
		t.Errorf("default prefix %q", p)
	}
	if p := (Backend{Name: "notes", FederatedPrefix: &empty}).FederatedNamePrefix(); p != "" {
		t.Errorf("empty prefix read as %q", p)
	}
}
