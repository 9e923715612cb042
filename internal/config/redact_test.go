package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Each secret is a distinct marker so a leak names itself.
var secretMarkers = []string{
	"SECRET-client-secret", "SECRET-private-key", "SECRET-session-key",
	"SECRET-api-key", "SECRET-password", "SECRET-target-client-secret",
	"SECRET-nested-token", "SECRET-dsn-password", "SECRET-opa-token", "SECRET-Key-Mixed-Case",
	"SECRET-url-query", "SECRET-as-userinfo", "SECRET-as-query",
}

func redactionConfig(t *testing.T) *Config {
	t.Helper()
	return mustLoad(t, writeConfig(t, issuerYAML+`
server:
  session_key: SECRET-session-key
backends:
  psk:
    url: http://127.0.0.1:1/mcp
    auth_method: pre-shared-key
    auth_config: {api_key: SECRET-api-key, header_name: X-Api-Key, API_KEY_2: SECRET-Key-Mixed-Case}
  sa:
    url: http://127.0.0.1:2/mcp
    auth_method: service-account
    auth_config: {username: svc-user, password: SECRET-password}
  xaa:
    url: http://127.0.0.1:3/mcp
    auth_method: okta-cross-app
    auth_config:
      target_audience: https://xaa.example.com
      target_authorization_server: https://svc:SECRET-as-userinfo@as.example.com/oauth2/aus1?k=SECRET-as-query
      target_token_endpoint: https://as.example.com/token
      target_client_secret: SECRET-target-client-secret
      upstream: {refresh_token: SECRET-nested-token}
  signed:
    url: http://127.0.0.1:4/mcp?api_key=SECRET-url-query&region=eu
    auth_method: none
agents:
  cursor:
    client_id: 0oa-cursor
    client_secret: SECRET-client-secret
    private_key: SECRET-private-key
policy:
  opa:
    services:
      bundles:
        url: https://bundles.example.com
        credentials: {bearer: {token: SECRET-opa-token}}
store:
  dsn: postgres://mcpgw:SECRET-dsn-password@db.example.com:5432/mcpgw?sslmode=require
`))
}

func TestRedactionInEveryPrintPath(t *testing.T) {
	c := redactionConfig(t)
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", c, "agent", c.Agents["cursor"], "backend", c.Backends["sa"])
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", *c, "server", c.Server, "store", c.Store)

	outputs := map[string]string{
		"String()":        c.String(),
		"%v *Config":      fmt.Sprintf("%v", c),
		"%+v Config":      fmt.Sprintf("%+v", *c),
		"%#v Config":      fmt.Sprintf("%#v", *c),
		"%v Agent":        fmt.Sprintf("%v", c.Agents["cursor"]),
		"%+v Backend":     fmt.Sprintf("%+v", c.Backends["xaa"]),
		"%v Backends map": fmt.Sprintf("%v", c.Backends),
		"%v Server":       fmt.Sprintf("%v", c.Server),
		"%v Store":        fmt.Sprintf("%v", c.Store),
		"%+v Policy":      fmt.Sprintf("%+v", c.Policy),
		"slog JSON":       jsonLog.String(),
		"slog text":       textLog.String(),
	}
	for name, out := range outputs {
		for _, s := range secretMarkers {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks %s:\n%s", name, s, out)
			}
		}
		if !strings.Contains(out, secrets.Placeholder) && !strings.Contains(out, secrets.Mark) {
			t.Errorf("%s shows no redaction mark:\n%s", name, out)
		}
	}
	// The secrets are still in the Config itself: redaction is a copy.
	if c.Agents["cursor"].ClientSecret != "SECRET-client-secret" || c.Backends["psk"].AuthConfig["api_key"] != "SECRET-api-key" {
		t.Error("Redacted() modified the original configuration")
	}
}

func TestRedactedKeepsNonSecrets(t *testing.T) {
	c := redactionConfig(t)
	var printed map[string]any
	if err := json.Unmarshal([]byte(c.String()), &printed); err != nil {
		t.Fatalf("String() is not JSON: %v", err)
	}
	get := func(path ...string) any {
		var node any = printed
		for _, p := range path {
			m, ok := node.(map[string]any)
			if !ok {
				return nil
			}
			node = m[p]
		}
		return node
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"agents", "cursor", "client_id"}, "0oa-cursor"},
		{[]string{"agents", "cursor", "client_secret"}, secrets.Placeholder},
		{[]string{"agents", "cursor", "private_key"}, secrets.Placeholder},
		{[]string{"server", "session_key"}, secrets.Placeholder},
		{[]string{"server", "listen"}, "127.0.0.1:8000"},
		{[]string{"policy", "timeout"}, "50ms"},
		{[]string{"backends", "psk", "auth_config", "header_name"}, "X-Api-Key"},
		{[]string{"backends", "psk", "auth_config", "api_key"}, secrets.Placeholder},
		{[]string{"backends", "psk", "auth_config", "API_KEY_2"}, secrets.Placeholder},
		{[]string{"backends", "sa", "auth_config", "username"}, "svc-user"},
		{[]string{"backends", "sa", "auth_config", "password"}, secrets.Placeholder},
		{[]string{"backends", "xaa", "auth_config", "target_audience"}, "https://xaa.example.com"},
		{[]string{"backends", "xaa", "auth_config", "target_token_endpoint"}, "https://as.example.com/token"},
		// An address, not a secret: shown, with only URL secrets masked.
		{[]string{"backends", "xaa", "auth_config", "target_authorization_server"}, "https://REDACTED@as.example.com/oauth2/aus1?k=REDACTED"},
		{[]string{"backends", "xaa", "auth_config", "target_client_secret"}, secrets.Placeholder},
		{[]string{"backends", "xaa", "auth_config", "upstream", "refresh_token"}, secrets.Placeholder},
		{[]string{"policy", "opa", "services", "bundles", "url"}, "https://bundles.example.com"},
		{[]string{"policy", "opa", "services", "bundles", "credentials", "bearer", "token"}, secrets.Placeholder},
		{[]string{"store", "dsn"}, "postgres://REDACTED@db.example.com:5432/mcpgw?sslmode=REDACTED"},
		{[]string{"backends", "signed", "url"}, "http://127.0.0.1:4/mcp?api_key=REDACTED&region=REDACTED"},
	}
	for _, tt := range tests {
		if got := get(tt.path...); got != tt.want {
			t.Errorf("%s = %#v, want %#v", strings.Join(tt.path, "."), got, tt.want)
		}
	}
}

func TestEmptySecretsStayVisiblyEmpty(t *testing.T) {
	a := Agent{Name: "bot", ClientID: "c"}
	var printed map[string]any
	if err := json.Unmarshal([]byte(a.String()), &printed); err != nil {
		t.Fatal(err)
	}
	if _, ok := printed["client_secret"]; ok {
		t.Errorf("an unset client_secret printed as %v", printed["client_secret"])
	}
	if printed["name"] != "bot" || printed["client_id"] != "c" {
		t.Errorf("agent printed as %v", printed)
	}
}
