package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every Okta MCP adapter key and variable mcpgw does not honour is refused
// at start, named, with what to write instead.
func TestAdapterKeysAndVariablesRefused(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    string
	}{
		// Keys of the adapter's file.
		{name: "service name", yaml: "name: Okta MCP Gateway", want: "name: the Okta MCP adapter's service name; mcpgw has no such setting: remove it"},
		{name: "version", yaml: "version: 1.0.0", want: "version: the Okta MCP adapter's version string; mcpgw has no such setting: remove it"},
		{name: "description", yaml: "description: x", want: "description: the Okta MCP adapter's service description; mcpgw has no such setting: remove it"},
		{name: "backend bookkeeping", yaml: "backends: {hr: {url: 'http://127.0.0.1:1/mcp', auth_method: none, created_by: admin}}",
			want: "backends.hr.created_by: the Okta MCP adapter's bookkeeping; mcpgw records who changed an entry and when in its audit trail (GET /admin/v1/audit?kind=change): remove it"},
		{name: "agent bookkeeping", yaml: "agents: {a: {updated_at: '2026-01-01'}}", want: "agents.a.updated_at: the Okta MCP adapter's bookkeeping"},
		{name: "backend name disagreeing with its key", yaml: "backends: {hr: {name: finance, url: 'http://127.0.0.1:1/mcp', auth_method: none}}",
			want: `backends.hr.name: finance is not the entry's key "hr"; the key under backends: is its name`},
		{name: "agent_name disagreeing with its key", yaml: "agents: {cursor: {agent_name: claude}}",
			want: `agents.cursor.agent_name: claude is not the entry's key "cursor"`},
		{name: "unknown gateway key", yaml: "gateway: {hots: 127.0.0.1}",
			want: `gateway.hots: unknown key (did you mean "host"?) (this Okta MCP adapter section takes host, port, base_url)`},
		{name: "gateway is not a section", yaml: "gateway: 8000", want: "gateway: want a section (host, port, base_url)"},
		{name: "gateway.port not a port", yaml: "gateway: {port: http}", want: "gateway.port: want a port number between 1 and 65535"},
		{name: "gateway.host empty", yaml: "gateway: {host: ''}", want: "gateway.host: want a host name or IP address"},
		{name: "gateway.base_url not a URL", yaml: "gateway: {base_url: localhost:8000}", want: "gateway.base_url: must be an absolute http(s) URL (it becomes server.public_url)"},
		{name: "gateway.port and server.listen", yaml: "gateway: {port: 8000}\nserver: {listen: '127.0.0.1:9000'}",
			want: "gateway.host/gateway.port: server.listen is set too; keep one of them"},
		{name: "gateway.base_url and server.public_url", yaml: "gateway: {base_url: 'https://a.example.com'}\nserver: {public_url: 'https://b.example.com'}",
			want: "gateway.base_url: server.public_url is set too; keep one of them"},
		{name: "logging.format", yaml: "logging: {format: json}", want: "logging.format: unknown key (this Okta MCP adapter section takes level)"},
		{name: "logging.level and log.level", yaml: "logging: {level: INFO}\nlog: {level: debug}", want: "logging.level: log.level is set too; keep one of them"},
		{name: "unknown cache", yaml: "cache: {jwks: {ttl_seconds: 60}}", want: "cache.jwks: unknown key (this Okta MCP adapter section takes backend_tokens)"},
		{name: "unknown token cache key", yaml: "cache: {backend_tokens: {max_entries: 5}}", want: `cache.backend_tokens.max_entries: unknown key`},
		{name: "ttl and ttl_seconds", yaml: "cache: {backend_tokens: {ttl: 1h, ttl_seconds: 60}}", want: "cache.backend_tokens.ttl: ttl_seconds is set too; keep one of them"},
		{name: "ttl_seconds zero", yaml: "cache: {backend_tokens: {ttl_seconds: 0}}", want: "cache.backend_tokens.ttl_seconds: want a whole number of seconds > 0"},
		{name: "ttl not a duration", yaml: "cache: {backend_tokens: {ttl: soon}}", want: `cache.backend_tokens.ttl: want a duration > 0 such as "1h" or a number of seconds`},
		{name: "max_size negative", yaml: "cache: {backend_tokens: {max_size: -1}}", want: "cache.backend_tokens.max_size: want a whole number of tokens > 0"},
		{name: "ttl_seconds and exchange.cache_max_ttl", yaml: "cache: {backend_tokens: {ttl_seconds: 60}}\nexchange: {cache_max_ttl: 1h}",
			want: "cache.backend_tokens.ttl_seconds: exchange.cache_max_ttl is set too; keep one of them"},

		{name: "unquoted placeholder", yaml: "agents: {copilot: {agent_id: {AGENT_ID}}}",
			want: "agents.copilot.agent_id: {AGENT_ID} is a placeholder from the Okta MCP adapter's example files, not a value: write the value"},
		{name: "quoted placeholder in a credential", yaml: "backends: {a: {url: 'http://127.0.0.1:1/mcp', auth_method: static-key, auth_config: {api_key: '{ANALYTICS_API_KEY}'}}}",
			want: "backends.a.auth_config.api_key: {ANALYTICS_API_KEY} is a placeholder from the Okta MCP adapter's example files, not a value: write the value (or ${ANALYTICS_API_KEY} to read it from the environment)"},
		{name: "placeholder inside a URL", yaml: "backends: {a: {url: 'http://127.0.0.1:1/mcp', auth_method: okta-cross-app, auth_config: {target_authorization_server: 'https://{OKTA_DOMAIN}/oauth2/{AUTH_SERVER_ID}'}}}",
			want: "backends.a.auth_config.target_authorization_server: {OKTA_DOMAIN} is a placeholder"},
		{name: "placeholder inside a JWK", yaml: `agents: {a: {private_key: '{"kty": "RSA", "kid": "{KID}"}'}}`,
			want: "agents.a.private_key: {KID} is a placeholder"},

		// The adapter's variables.
		{name: "OKTA_CLIENT_ID", environ: []string{"OKTA_CLIENT_ID=0oa1"}, want: "OKTA_CLIENT_ID: mcpgw has no Okta client of its own: each agent's OAuth client goes in agents.<name>.client_id (and client_secret); unset it"},
		{name: "OKTA_CLIENT_SECRET", environ: []string{"OKTA_CLIENT_SECRET=s"}, want: "OKTA_CLIENT_SECRET: mcpgw has no Okta client of its own"},
		{name: "ADMIN_USERNAME", environ: []string{"ADMIN_USERNAME=admin"}, want: "ADMIN_USERNAME: the admin API (/admin/v1, /api/admin) takes a bearer token from your identity provider and data.mcp.admin.allow decides; there is no admin password or login: unset it"},
		{name: "ADMIN_PASSWORD", environ: []string{"ADMIN_PASSWORD=admin123"}, want: "ADMIN_PASSWORD: the admin API"},
		{name: "ADMIN_JWT_SECRET", environ: []string{"ADMIN_JWT_SECRET=x"}, want: "ADMIN_JWT_SECRET: the admin API"},
		{name: "ADMIN_TOKEN_EXPIRATION", environ: []string{"ADMIN_TOKEN_EXPIRATION=3600"}, want: "ADMIN_TOKEN_EXPIRATION: the admin API"},
		{name: "PROTECTED_DISCOVERY false", environ: []string{"PROTECTED_DISCOVERY=false"}, want: "PROTECTED_DISCOVERY: mcpgw never serves an MCP request without a verified token (tools/list included); unset it"},
		{name: "PROTECTED_DISCOVERY other", environ: []string{"PROTECTED_DISCOVERY=maybe"}, want: "PROTECTED_DISCOVERY: want true (mcpgw always requires a token) or unset"},
		{name: "server id without a domain", environ: []string{"OKTA_AUTHORIZATION_SERVER_ID=default"}, want: "OKTA_AUTHORIZATION_SERVER_ID: needs OKTA_DOMAIN (or OKTA_ISSUER) to name the Okta org"},
		{name: "audience without a domain", environ: []string{"OKTA_AUDIENCE=api://x"}, want: "OKTA_AUDIENCE: needs OKTA_DOMAIN (or OKTA_ISSUER) to name the Okta org"},
		{name: "domain with a path", environ: []string{"OKTA_DOMAIN=acme.okta.com/oauth2/default"}, want: "OKTA_DOMAIN: want the Okta org's host name, such as acme.okta.com (for a custom authorization server set OKTA_AUTHORIZATION_SERVER_ID or OKTA_ISSUER)"},
		{name: "domain another than the file's issuer", yaml: "identity: {issuers: [{issuer: 'https://idp.example.com', audiences: [a]}]}", environ: []string{"OKTA_DOMAIN=acme.okta.com"},
			want: "OKTA_DOMAIN: names issuer https://acme.okta.com, but identity.issuers (file or MCPGW_*) configures others and wins; unset OKTA_DOMAIN or add the issuer there"},
		{name: "GATEWAY_HOST not a host", environ: []string{"GATEWAY_HOST=http://x"}, want: "GATEWAY_HOST: want a host name or IP address"},
		{name: "GATEWAY_PORT not a port", environ: []string{"GATEWAY_PORT=0"}, want: "GATEWAY_PORT: must be a port number between 1 and 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml), tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestAdapterSectionsHonoured(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   []string
		check func(c *Config) (got, want any)
	}{
		{"port alone listens on loopback", "gateway: {port: 9100}", nil,
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.1:9100" }},
		{"host alone keeps the adapter's port", "gateway: {host: 0.0.0.0}", nil,
			func(c *Config) (any, any) { return c.Server.Listen, "0.0.0.0:8000" }},
		{"port as text", "gateway: {port: '9101'}", nil,
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.1:9101" }},
		{"GATEWAY_PORT beats gateway.port", "gateway: {host: 127.0.0.3, port: 9100}", []string{"GATEWAY_PORT=9200"},
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.3:9200" }},
		{"base_url", "gateway: {base_url: 'https://mcp.example.com/'}", nil,
			func(c *Config) (any, any) { return c.Server.PublicURL, "https://mcp.example.com" }},
		{"logging level", "logging: {level: DEBUG}", nil,
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"ttl as a duration", "cache: {backend_tokens: {ttl: 90m}}", nil,
			func(c *Config) (any, any) { return c.Exchange.CacheMaxTTL, 90 * time.Minute }},
		{"ttl in seconds", "cache: {backend_tokens: {ttl: 120}}", nil,
			func(c *Config) (any, any) { return c.Exchange.CacheMaxTTL, 2 * time.Minute }},
		{"max_size", "cache: {backend_tokens: {max_size: 10}}", nil,
			func(c *Config) (any, any) { return c.Exchange.CacheMaxBytes, int64(10 * adapterTokenBytes) }},
		{"${NAME} is not a placeholder", "backends: {a: {url: 'http://127.0.0.1:1/mcp', auth_method: static-key, auth_config: {api_key: '${A_KEY}'}}}", []string{"A_KEY=k"},
			func(c *Config) (any, any) { return c.Backends["a"].AuthConfig["api_key"], "k" }},
		{"placeholders in free text are text", "backends: {a: {url: 'http://127.0.0.1:1/mcp', auth_method: none, description: 'set {API_KEY} first', labels: {note: '{X}'}}}", nil,
			func(c *Config) (any, any) { return c.Backends["a"].Description, "set {API_KEY} first" }},
		{"entry names repeating the key", "backends: {hr: {name: hr, backend_name: hr, url: 'http://127.0.0.1:1/mcp', auth_method: none}}\nagents: {a: {agent_name: a, name: a}}", nil,
			func(c *Config) (any, any) { return len(c.Agents) + len(c.Backends), 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.check(mustLoad(t, writeConfig(t, tt.yaml), tt.env...))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestFindSearchOrder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(p, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	find := func(flag string, environ ...string) Source {
		t.Helper()
		src, err := Find(flag, environ)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	if src := find(""); src.Found() {
		t.Fatalf("empty directory: found %+v", src)
	}
	write("config.yaml", minimal)
	if src := find(""); src.From != "./config.yaml" || src.Path != "config.yaml" {
		t.Errorf("./config.yaml: %+v", src)
	}
	write("config/config.yaml", minimal)
	if src := find(""); src.From != "./config/config.yaml" {
		t.Errorf("./config/config.yaml comes first: %+v", src)
	}
	if src := find("", "CONFIG_YAML="+minimal); src.From != "CONFIG_YAML" || string(src.Text) != minimal {
		t.Errorf("CONFIG_YAML before the directory: %+v", src)
	}
	if src := find("", "CONFIG_PATH=/etc/x.yaml"); src.From != "CONFIG_PATH" || src.Path != "/etc/x.yaml" {
		t.Errorf("CONFIG_PATH: %+v", src)
	}
	if src := find("mine.yaml", "CONFIG_PATH=/etc/x.yaml"); src.From != "--config" || src.Path != "mine.yaml" {
		t.Errorf("--config first: %+v", src)
	}
	_, err := Find("", []string{"MCPGW_CONFIG=/a.yaml", "CONFIG_YAML=" + minimal})
	if err == nil || !strings.Contains(err.Error(), "MCPGW_CONFIG and CONFIG_YAML are set and name different configurations; set one of them") {
		t.Errorf("two sources: %v", err)
	}
	// The directory's file loads through LoadSource.
	c, err := LoadSource(find(""), nil)
	if err != nil || c.Backends["hr"].URL == "" {
		t.Errorf("LoadSource: %v", err)
	}
}

func TestReadEnvFile(t *testing.T) {
	t.Chdir(t.TempDir())
	env := []string{"OKTA_DOMAIN=real.okta.com"}
	if got, rep, err := ReadEnvFile("", env); err != nil || rep.Path != "" || !slices.Equal(got, env) {
		t.Fatalf("no ./.env: %v %+v %v", got, rep, err)
	}
	text := "# the adapter's env.template\nOKTA_DOMAIN=file.okta.com\nexport GATEWAY_PORT=8001\nLOG_LEVEL=\"DEBUG\" # quoted\n"
	if err := os.WriteFile(".env", []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, rep, err := ReadEnvFile("", env)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Path != ".env" || !slices.Equal(rep.Set, []string{"GATEWAY_PORT", "LOG_LEVEL"}) || !slices.Equal(rep.Kept, []string{"OKTA_DOMAIN"}) {
		t.Errorf("report %+v", rep)
	}
	vars := envMap(got)
	if vars["OKTA_DOMAIN"] != "real.okta.com" || vars["GATEWAY_PORT"] != "8001" || vars["LOG_LEVEL"] != "DEBUG" {
		t.Errorf("environment %v: the real environment must win, the file fill the rest", vars)
	}
	if _, _, err := ReadEnvFile(filepath.Join(t.TempDir(), "missing.env"), env); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Errorf("a named env file that is missing: %v", err)
	}
}
