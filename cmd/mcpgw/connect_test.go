package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestConnectPrintConfig(t *testing.T) {
	var out bytes.Buffer
	if err := printConnectConfig(&out, "/opt/mcpgw/bin/mcpgw", "https://gateway.example/notes"); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(out.String()), "\n\n")
	if len(parts) != 2 {
		t.Fatalf("want two snippets, got:\n%s", out.String())
	}
	type server struct {
		Type    string   `json:"type"`
		Command string   `json:"command"`
		Args    []string `json:"args"`
	}
	decode := func(part string, v any) {
		t.Helper()
		_, body, ok := strings.Cut(part, "\n")
		if !ok {
			t.Fatalf("no title line in %q", part)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%v in %s", err, body)
		}
	}
	var claude struct {
		MCPServers map[string]server `json:"mcpServers"`
	}
	var vscode struct {
		Servers map[string]server `json:"servers"`
	}
	decode(parts[0], &claude)
	decode(parts[1], &vscode)
	want := server{Command: "/opt/mcpgw/bin/mcpgw", Args: []string{"connect", "https://gateway.example/notes"}}
	c := claude.MCPServers["notes"]
	if len(claude.MCPServers) != 1 || c.Command != want.Command || strings.Join(c.Args, " ") != strings.Join(want.Args, " ") || c.Type != "" {
		t.Errorf("Claude Desktop: %+v", claude)
	}
	v := vscode.Servers["notes"]
	if len(vscode.Servers) != 1 || v.Type != "stdio" || v.Command != want.Command || strings.Join(v.Args, " ") != strings.Join(want.Args, " ") {
		t.Errorf("VS Code: %+v", vscode)
	}
}

func TestConnectPrintConfigCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"connect", "--print-config", "https://gateway.example/wiki/"}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), `"wiki"`) || !strings.Contains(stdout.String(), `"type": "stdio"`) {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if code := run(t.Context(), []string{"connect", "ftp://x/y"}, &stdout, &stderr); code != 2 {
		t.Errorf("a non-http URL: exit %d, want 2", code)
	}
}
