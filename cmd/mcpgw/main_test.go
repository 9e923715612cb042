package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(`
identity:
  issuers: [{issuer: "https://idp.example.com", audiences: [api://mcpgw]}]
backends:
  hr-system: {url: "hr.internal/mcp", auth_method: none}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"no command", nil, 2, "", "usage: mcpgw"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, "bundle verify FILE", ""},
		{"version", []string{"version"}, 0, "mcpgw ", ""},
		{"wrong config names the field", []string{"serve", "--config", bad}, 1, "", "backends.hr-system.url: must be an absolute http(s) URL"},
		{"missing config file", []string{"serve", "--config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "", "none.yaml"},
		{"policy without eval", []string{"policy"}, 2, "", "usage: mcpgw policy eval"},
		{"help names the --explain default", []string{"help"}, 0, "--explain alone: MODE rules", ""},
		{"policy eval help names the --explain default", []string{"policy", "eval", "-h"}, 0, "", "--explain alone is --explain=rules (the default mode)"},
		{"policy eval help names the time unit", []string{"policy", "eval", "-h"}, 0, "", "elapsed_us"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.inStdout) || !strings.Contains(stderr.String(), tc.inStderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
}
