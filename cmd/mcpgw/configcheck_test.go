package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// clearConfigEnv unsets what could point these tests at another
// configuration, restoring it afterwards. Unset, not set empty: a variable
// the environment has, even empty, is one an env file must not replace.
func clearConfigEnv(t *testing.T) {
	for _, name := range []string{"MCPGW_CONFIG", "CONFIG_PATH", "CONFIG_YAML", "OKTA_DOMAIN", "OKTA_ISSUER"} {
		t.Setenv(name, "") // marks the test as changing the environment
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Run bare where there is nothing to run, serve says so and leaves nothing
// behind (no mcpgw.db in the working directory).
func TestServeWithoutConfiguration(t *testing.T) {
	clearConfigEnv(t)
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &stdout, &stderr)
	want := "mcpgw: no configuration found: give --config FILE, or set one of MCPGW_CONFIG, CONFIG_PATH, CONFIG_YAML, or put it in ./config/config.yaml or ./config.yaml"
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat("mcpgw.db"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("serve without configuration created mcpgw.db (%v)", err)
	}
}

const checkedAdapterFile = `
backends:
  finance:
    url: http://127.0.0.1:9002/mcp
    paths: [/finance]
    auth_method: pre-shared-key
    auth_config: {key: fin-secret-1234, header_name: X-API-Key}
agents:
  copilot:
    agent_id: wlp1copilot
    client_id: 0oa1copilot
    client_secret: copilot-secret-5678
    backend_access: [finance]
gateway: {host: 127.0.0.1, port: 8123, base_url: "https://mcp.example.com"}
logging: {level: INFO}
cache: {backend_tokens: {max_size: 100, ttl_seconds: 600}}
`

func TestConfigCheck(t *testing.T) {
	clearConfigEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, "config/config.yaml", checkedAdapterFile)
	writeFile(t, ".env", "OKTA_DOMAIN=acme.okta.com\n")

	// Valid, found where the adapter kept it, .env read; --print masks secrets.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "--print"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"config config/config.yaml (from ./config/config.yaml) is valid: 1 backends, 1 agents, 1 issuers",
		`"issuer": "https://acme.okta.com"`, `"agent_audiences": true`, `"listen": "127.0.0.1:8123"`,
		`"client_secret": "[REDACTED]"`, `"key": "[REDACTED]"`, `"cache_max_ttl": "10m0s"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"fin-secret-1234", "copilot-secret-5678"} {
		if strings.Contains(out, secret) {
			t.Errorf("--print shows a secret %q", secret)
		}
	}

	// Every problem a start would hit, listed at once: in the file, in the
	// environment, and in what only the routing table finds (a key that
	// does not parse).
	writeFile(t, "broken.yaml", `
backends:
  finance: {url: http://127.0.0.1:9002/mcp, auth_method: pre-shared-key, auth_config: {key: k}, timout_seconds: 5}
agents:
  copilot: {client_id: 0oa1, private_key: '{"kty":"RSA","n":"x"}', backend_access: [finance], created_by: admin}
`)
	t.Setenv("ADMIN_PASSWORD", "admin123")
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"config", "check", "--config", "broken.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\nstderr %s", code, stderr.String())
	}
	for _, want := range []string{
		"broken.yaml (from --config): 4 problem(s):",
		`backends.finance.timout_seconds: unknown key (did you mean "timeout_seconds"?)`,
		"agents.copilot.created_by: the Okta MCP adapter's bookkeeping",
		"ADMIN_PASSWORD: the admin API (/admin/v1, /api/admin) takes a bearer token",
		"agents.copilot.private_key: neither a JWK nor a PEM private key",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mcpgw.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("config check created mcpgw.db (%v)", err)
	}
}

func TestConfigSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "schema"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var schema struct {
		ID         string                     `json:"$id"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &schema); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if schema.ID != config.SchemaID || schema.Properties["backends"] == nil || schema.Properties["agents"] == nil {
		t.Fatalf("schema %s lacks its id or the backends and agents sections", stdout.String())
	}
	if code := run(context.Background(), []string{"config", "schema", "extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
}
