package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

const exampleConfig = "testdata/config/example.yaml"

// The reference configuration starts as it is, with no variables set,
// through the code `mcpgw serve` runs, and answers an MCP client without a
// token as RFC 9728 asks.
func TestExampleConfigStartsAsItIs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idp, err := testidp.Start(ctx, testidp.Options{Audience: "api://default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	// The file's relative paths (policy.bundle: policies) are the
	// repository's, as for someone running it from the repository root.
	t.Chdir("../..")
	environ := []string{
		// A free port, as every test server binds.
		"MCPGW_SERVER__LISTEN=127.0.0.1:0",
		// Not mcpgw.db in the source tree.
		"MCPGW_STORE__DSN=file:" + filepath.Join(t.TempDir(), "mcpgw.db"),
		// The example issuer's keys from a local authorization server, so
		// the test does not reach example.okta.com over the network.
		"MCPGW_IDENTITY__ISSUERS__0__JWKS_URL=" + idp.JWKSURL(),
	}
	var logs testutil.SyncBuffer
	srv, cfg, _, ok := startServe(ctx, config.Source{Path: exampleConfig, From: "--config"}, environ, config.EnvFile{}, &logs)
	if !ok {
		t.Fatalf("%s does not start:\n%s", exampleConfig, logs.String())
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Close(sctx)
	})

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hr", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.WantStatus(t, resp, http.StatusUnauthorized)
	want := `resource_metadata="` + cfg.Server.PublicURL + `/.well-known/oauth-protected-resource/hr"`
	if chal := resp.Header.Get("WWW-Authenticate"); !strings.Contains(chal, want) {
		t.Errorf("WWW-Authenticate %q lacks %s", chal, want)
	}
	if !strings.Contains(logs.String(), `"msg":"mcp request"`) {
		t.Errorf("no request log line:\n%s", logs.String())
	}
}

// The commented policy.opa block of the reference configuration is valid
// where it stands: uncommented, the file still loads.
func TestExampleConfigOPABlockValidates(t *testing.T) {
	t.Chdir("../..") // the file's relative paths are the repository root's
	raw, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	text := uncommentBlock(string(raw), "opa:")
	if text == string(raw) {
		t.Fatalf("%s has no commented opa: block", exampleConfig)
	}
	p := filepath.Join(t.TempDir(), "example-opa.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, nil)
	if err != nil {
		t.Fatalf("%s with its opa: block uncommented: %v", exampleConfig, err)
	}
	if cfg.Policy.OPA["services"] == nil || cfg.Policy.OPA["bundles"] == nil {
		t.Fatalf("policy.opa = %v, want the block's services and bundles", cfg.Policy.OPA)
	}
}

// uncommentBlock removes the "# " of a commented YAML block that starts at
// a line "# <key>" and goes on while lines are comments indented deeper.
func uncommentBlock(text, key string) string {
	lines := strings.Split(text, "\n")
	indent := -1
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		lead := len(l) - len(trimmed)
		switch {
		case indent < 0 && trimmed == "# "+key:
			indent = lead
		case indent >= 0 && strings.HasPrefix(trimmed, "#   ") && lead == indent:
		default:
			indent = -1
			continue
		}
		lines[i] = l[:lead] + strings.TrimPrefix(trimmed, "# ")
	}
	return strings.Join(lines, "\n")
}
