package exchange_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/exchange"
)

func TestFactoryValidation(t *testing.T) {
	x, err := exchange.New(exchange.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXCHANGE_TEST_SECRET", "from-env")
	_, agentJWK := newAgentKey(t)

	tests := []struct {
		name    string
		method  string
		url     string
		config  map[string]any
		wantErr []string // substrings; none: the factory must succeed
	}{
		{name: "cross-app minimal (same-org Okta: agent key at both steps)", method: exchange.MethodOktaCrossApp,
			config: map[string]any{"target_authorization_server": "https://org.okta.com/oauth2/aus1"}},
		{name: "cross-app as the Okta adapter writes it", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"id_jag_mode": "static", "target_authorization_server": "https://target.okta.com", "target_token_endpoint": "https://target.okta.com/oauth2/v1/token",
			"target_client_id": "0oa_target", "target_client_secret": "secret123", "target_audience": "mcp_resource_server"}},
		{name: "cross-app secret from env", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_id": "c", "target_client_secret": "${EXCHANGE_TEST_SECRET}"}},
		{name: "cross-app secret from file", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_id": "c", "target_client_secret_file": secretFile}},
		{name: "cross-app private_key_jwt with its own key", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_id": "c", "target_private_key": agentJWK}},
		{name: "cross-app dynamic", method: exchange.MethodOktaCrossApp, url: "https://hr.example/mcp", config: map[string]any{"id_jag_mode": "dynamic"}},

		{name: "cross-app without target", method: exchange.MethodOktaCrossApp, config: map[string]any{},
			wantErr: []string{"backends.hr.auth_config.target_authorization_server: required when id_jag_mode is static"}},
		{name: "cross-app bad values, all reported", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "not a url", "target_token_endpoint": "ftp://x", "idp_token_endpoint": "/relative",
			"id_jag_mode": "sometimes", "subject_token_type": "saml2", "scopes": []any{"ok", 3}, "target_client_auth_method": "tls_client_auth"},
			wantErr: []string{
				"backends.hr.auth_config.target_authorization_server: must be an absolute http(s) URL",
				"backends.hr.auth_config.target_token_endpoint: must be an absolute http(s) URL",
				"backends.hr.auth_config.idp_token_endpoint: must be an absolute http(s) URL",
				`backends.hr.auth_config.id_jag_mode: "sometimes" is not one of static, dynamic`,
				"backends.hr.auth_config.subject_token_type: must be access_token, id_token or jwt",
				"backends.hr.auth_config.scopes[1]: must be a string, not int",
				`backends.hr.auth_config.target_client_auth_method: "tls_client_auth" is not one of`,
			}},
		{name: "cross-app secret method without secret", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_auth_method": "client_secret_post"},
			wantErr: []string{"backends.hr.auth_config.target_client_secret: required for client_secret_post"}},
		{name: "cross-app unset env secret", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_secret": "${EXCHANGE_TEST_UNSET}"},
			wantErr: []string{"backends.hr.auth_config.target_client_secret: environment variable EXCHANGE_TEST_UNSET is not set"}},
		{name: "cross-app secret and file", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_client_secret": "x", "target_client_secret_file": secretFile},
			wantErr: []string{"backends.hr.auth_config.target_client_secret_file: set the value or its file, not both"}},
		{name: "cross-app target key not private", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_private_key": `{"kty":"oct","k":"c2VjcmV0"}`},
			wantErr: []string{"backends.hr.auth_config.target_private_key: not a private key"}},
		{name: "cross-app audience parameter without audience", method: exchange.MethodOktaCrossApp, config: map[string]any{
			"target_authorization_server": "https://as.example", "target_audience_parameter": "audience"},
			wantErr: []string{"backends.hr.auth_config.target_audience: required when target_audience_parameter is audience"}},
		{name: "cross-app dynamic without backend url", method: exchange.MethodOktaCrossApp, config: map[string]any{"id_jag_mode": "dynamic"},
			wantErr: []string{"backends.hr.url: must be an absolute http(s) URL"}},
		{name: "cross-app wrong type", method: exchange.MethodOktaCrossApp, config: map[string]any{"target_authorization_server": 42},
			wantErr: []string{"backends.hr.auth_config.target_authorization_server: must be a string, not int"}},

		{name: "token-exchange", method: exchange.MethodTokenExchange, config: map[string]any{
			"token_endpoint": "https://kc.example/token", "client_id": "gw", "client_secret": "s", "audience": "hr", "scopes": "a b"}},
		{name: "token-exchange by discovery, as the agent", method: exchange.MethodTokenExchange, config: map[string]any{"authorization_server": "https://kc.example/realms/x"}},
		{name: "token-exchange without endpoint", method: exchange.MethodTokenExchange, config: map[string]any{"client_id": "gw", "client_secret": "s"},
			wantErr: []string{"backends.hr.auth_config.token_endpoint: required (or authorization_server, to discover it)"}},
		{name: "token-exchange bad resource and type", method: exchange.MethodTokenExchange, config: map[string]any{
			"token_endpoint": "https://kc.example/token", "resource": "hr", "requested_token_type": "id_token"},
			wantErr: []string{"backends.hr.auth_config.resource: must be an absolute URI", "backends.hr.auth_config.requested_token_type: must be access_token or jwt"}},

		{name: "client-credentials", method: exchange.MethodClientCredentials, config: map[string]any{
			"token_endpoint": "https://as.example/token", "client_id": "gw", "client_secret_file": secretFile, "resource": "https://hr.example/mcp"}},
		{name: "client-credentials private_key_jwt", method: exchange.MethodClientCredentials, config: map[string]any{
			"token_endpoint": "https://as.example/token", "client_id": "gw", "private_key": agentJWK}},
		{name: "client-credentials without client", method: exchange.MethodClientCredentials, config: map[string]any{"token_endpoint": "https://as.example/token"},
			wantErr: []string{"backends.hr.auth_config.client_id: required for client-credentials", "backends.hr.auth_config.client_secret: required for client-credentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.Backend{Name: "hr", URL: tt.url, AuthMethod: tt.method, AuthConfig: tt.config}
			inj, err := x.Factories()[tt.method](b)
			if len(tt.wantErr) == 0 {
				if err != nil || inj == nil {
					t.Fatalf("factory: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("factory accepted an invalid auth_config")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, want)
				}
			}
			if strings.Contains(err.Error(), "secret123") || strings.Contains(err.Error(), "from-env") {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}

func TestInvalidDeps(t *testing.T) {
	tests := []struct {
		name string
		deps exchange.Deps
		want string
	}{
		{"negative max cost", exchange.Deps{Cache: exchange.CacheConfig{MaxCost: -1}}, "max cost"},
		{"negative max TTL", exchange.Deps{Cache: exchange.CacheConfig{MaxTTL: -1}}, "max TTL"},
		{"negative failure TTL", exchange.Deps{Cache: exchange.CacheConfig{FailureTTL: -1}}, "failure TTL"},
		{"negative skew", exchange.Deps{Cache: exchange.CacheConfig{Skew: -1}}, "skew"},
		{"negative timeout", exchange.Deps{ExchangeTimeout: -1}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exchange.New(tt.deps); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error about %s", err, tt.want)
			}
			// Factories defers the error to the first backend, naming it.
			_, err := exchange.Factories(tt.deps)[exchange.MethodClientCredentials](config.Backend{Name: "hr"})
			if err == nil || !strings.Contains(err.Error(), "backends.hr") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("factory: %v", err)
			}
		})
	}
}
