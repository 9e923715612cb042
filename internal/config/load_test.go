package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	adapterFile = "../../testdata/config/okta-adapter.yaml"
)

// writeConfig writes a YAML config into a temporary directory.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mcpgw.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, path string, environ ...string) *Config {
	t.Helper()
	c, err := Load(path, environ)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

// minimal is the smallest valid mcpgw file, used where a test varies one key.
const minimal = `
identity:
  issuers:
    - issuer: https://idp.example.com
      audiences: [api://mcpgw]
backends:
  hr:
    url: http://127.0.0.1:9001/mcp
    auth_method: none
`

func TestLoadOktaAdapterFileUnchanged(t *testing.T) {
	c := mustLoad(t, adapterFile, "OKTA_DOMAIN=example.okta.com")

	if got, want := c.BackendNames(), []string{"analytics-system", "finance", "hr-system", "ticketing-system"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("BackendNames() = %v, want %v", got, want)
	}

	hr := c.Backends["hr-system"]
	if hr.Name != "hr-system" || hr.URL != "http://localhost:8001/mcp" || !reflect.DeepEqual(hr.Paths, []string{"/hr"}) {
		t.Errorf("hr-system = %+v", hr)
	}
	if hr.AuthMethod != AuthOktaCrossApp || hr.AuthConfig["target_audience"] != "https://hr.mcp.example.com" ||
		hr.AuthConfig["target_authorization_server"] != "https://example.okta.com/oauth2/aus1hrsystem" {
		t.Errorf("hr-system auth = %q %v", hr.AuthMethod, hr.AuthConfig)
	}
	if hr.Description != "Okta Sample HR System MCP Server" || hr.Timeout() != 30*time.Second || !hr.IsEnabled() {
		t.Errorf("hr-system description/timeout/enabled = %q %v %v", hr.Description, hr.Timeout(), hr.IsEnabled())
	}

	fin := c.Backends["finance"]
	if fin.AuthMethod != AuthPreSharedKey || fin.AuthConfig["key"] != "finance-test-key-not-a-secret" || fin.AuthConfig["header_name"] != "X-API-Key" {
		t.Errorf("finance auth = %q %v", fin.AuthMethod, fin.AuthConfig)
	}
	if !reflect.DeepEqual(fin.Paths, []string{"/finance", "/finance-system"}) || fin.Timeout() != 45*time.Second {
		t.Errorf("finance paths/timeout = %v %v", fin.Paths, fin.Timeout())
	}

	analytics := c.Backends["analytics-system"]
	if analytics.AuthMethod != AuthPreSharedKey {
		t.Errorf("static-key not normalised: %q", analytics.AuthMethod)
	}
	if analytics.IsEnabled() {
		t.Error("analytics-system has enabled: false but IsEnabled() is true")
	}

	tickets := c.Backends["ticketing-system"]
	if tickets.AuthMethod != AuthServiceAccount || tickets.AuthConfig["username"] != "svc-mcp-gateway" ||
		tickets.AuthConfig["password"] != "ticketing-test-password-not-a-secret" {
		t.Errorf("ticketing-system auth = %q %v", tickets.AuthMethod, tickets.AuthConfig)
	}

	claude, ok := c.AgentByID("wlp1claudecode0000001")
	if !ok {
		t.Fatal(`AgentByID("wlp1claudecode0000001") not found`)
	}
	if claude.Name != "claude-code" || claude.ClientID != "0oa1claudecode00000001" || claude.ClientSecret != "claude-code-test-client-secret" {
		t.Errorf("claude-code = name %q client %q", claude.Name, claude.ClientID)
	}
	if !reflect.DeepEqual(claude.Scopes, []string{"openid", "mcp:read", "mcp:write"}) ||
		!reflect.DeepEqual(claude.BackendAccess, []string{"hr-system", "finance", "ticketing-system"}) || !claude.IsEnabled() {
		t.Errorf("claude-code scopes/access/enabled = %v %v %v", claude.Scopes, claude.BackendAccess, claude.IsEnabled())
	}
	var jwk map[string]string
	if err := json.Unmarshal([]byte(claude.PrivateKey), &jwk); err != nil {
		t.Fatalf("private_key is not the JWK JSON the adapter stores: %v", err)
	}
	if jwk["kty"] != "RSA" || jwk["kid"] != "claude-test-key" || jwk["d"] == "" {
		t.Errorf("private_key JWK = kty %q kid %q", jwk["kty"], jwk["kid"])
	}
	if _, ok := c.AgentByID("claude-code"); ok {
		t.Error("AgentByID matched the map key although agent_id is set")
	}

	// Identity comes from the adapter's own variable: OKTA_DOMAIN alone is
	// the org authorization server with the adapter's audience rule.
	want := []Issuer{{Issuer: "https://example.okta.com", AgentAudiences: true, GroupsClaim: "groups"}}
	if !reflect.DeepEqual(c.Identity.Issuers, want) {
		t.Errorf("issuers = %+v, want %+v", c.Identity.Issuers, want)
	}

	// The adapter's gateway:, logging: and cache: sections keep their meaning.
	if c.Server.Listen != "127.0.0.1:8080" || c.Server.PublicURL != "https://mcp.example.com" || c.Log.Level != "warn" {
		t.Errorf("listen %q public_url %q log.level %q", c.Server.Listen, c.Server.PublicURL, c.Log.Level)
	}
	if c.Exchange.CacheMaxTTL != time.Hour || c.Exchange.CacheMaxBytes != 50000*adapterTokenBytes {
		t.Errorf("exchange cache ttl %v bytes %d", c.Exchange.CacheMaxTTL, c.Exchange.CacheMaxBytes)
	}
	// Agents without scopes leave the decision to the token's scopes.
	copilot, _ := c.AgentByID("wlp1copilot0000000001")
	if copilot.Scopes == nil {
		t.Error("copilot lists scopes; they must not read as absent")
	}
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, writeConfig(t, minimal))
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.listen", c.Server.Listen, "127.0.0.1:8000"},
		{"server.public_url", c.Server.PublicURL, "http://127.0.0.1:8000"},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(4 << 20)},
		{"server.read_timeout", c.Server.ReadTimeout, 30 * time.Second},
		{"server.idle_timeout", c.Server.IdleTimeout, 120 * time.Second},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout, 15 * time.Second},
		{"identity.clock_skew", c.Identity.ClockSkew, 30 * time.Second},
		{"identity.jwks_refresh_interval", c.Identity.JWKSRefreshInterval, 15 * time.Minute},
		{"identity.claims_cache_max_cost", c.Identity.ClaimsCacheMaxCost, int64(10000)},
		{"identity.issuers[0].groups_claim", c.Identity.Issuers[0].GroupsClaim, "groups"},
		{"policy.bundle", c.Policy.Bundle, "policies"},
		{"policy.timeout", c.Policy.Timeout, 50 * time.Millisecond},
		{"policy.poll_interval", c.Policy.PollInterval, 10 * time.Second},
		{"policy.persist_dir", c.Policy.PersistDir, "bundles/last-good"},
		{"store.dsn", c.Store.DSN, "file:mcpgw.db"},
		{"store.poll_interval", c.Store.PollInterval, 5 * time.Second},
		{"telemetry.sample_ratio", c.Telemetry.SampleRatio, 1.0},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"backends.hr.paths (default /<name>)", c.Backends["hr"].Paths, []string{"/hr"}},
		{"backends.hr.timeout", c.Backends["hr"].Timeout(), 30 * time.Second},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.key, ch.got, ch.want)
		}
	}
}

func TestLoadWithoutFile(t *testing.T) {
	// No path, no CONFIG_PATH: environment and defaults only.
	c := mustLoad(t, "", "OKTA_ISSUER=https://idp.example.com/oauth2/aus1/", "OKTA_AUDIENCE=api://one, api://two")
	if len(c.Backends) != 0 || len(c.Agents) != 0 {
		t.Errorf("backends/agents from nowhere: %v %v", c.Backends, c.Agents)
	}
	want := Issuer{Issuer: "https://idp.example.com/oauth2/aus1", Audiences: []string{"api://one", "api://two"}, GroupsClaim: "groups"}
	if len(c.Identity.Issuers) != 1 || !reflect.DeepEqual(c.Identity.Issuers[0], want) {
		t.Errorf("issuers = %+v", c.Identity.Issuers)
	}
}

// The reference file loads with no variables set (cmd/mcpgw starts it).
func TestLoadExampleFile(t *testing.T) {
	t.Chdir("../..") // the file's relative paths are the repository root's
	c := mustLoad(t, "testdata/config/example.yaml")
	if got := c.Backends["finance"].AuthConfig["api_key"]; got != "placeholder-not-a-key" {
		t.Errorf("finance api_key = %v", got)
	}
	if got := c.Backends["ticketing"].Paths; !reflect.DeepEqual(got, []string{"/ticketing"}) {
		t.Errorf("ticketing default paths = %v", got)
	}
	if got := c.Backends["hr-system"].Labels["data_class"]; got != "confidential" {
		t.Errorf("hr-system labels = %v", c.Backends["hr-system"].Labels)
	}
	if a, ok := c.AgentByID("cursor"); !ok || a.ClientID != "0oa1cursor000000000001" {
		t.Errorf("cursor = %v %+v", ok, a)
	}
	// It runs the repository's unsigned policies/ directory, and says so.
	if c.Policy.Bundle != "policies" || !c.Policy.AllowUnsigned {
		t.Errorf("policy = %q, allow_unsigned %v", c.Policy.Bundle, c.Policy.AllowUnsigned)
	}
}

func TestConfigPathFromEnvironment(t *testing.T) {
	p := writeConfig(t, minimal+"log: {level: debug}\n")
	other := writeConfig(t, minimal+"log: {level: error}\n")
	tests := []struct {
		name    string
		path    string
		environ []string
		want    string
	}{
		{"CONFIG_PATH (adapter)", "", []string{"CONFIG_PATH=" + p}, "debug"},
		{"MCPGW_CONFIG and CONFIG_PATH naming one file", "", []string{"CONFIG_PATH=" + p, "MCPGW_CONFIG=" + p}, "debug"},
		{"CONFIG_YAML holds the YAML", "", []string{"CONFIG_YAML=" + minimal + "log: {level: warn}\n"}, "warn"},
		{"explicit path beats the variables", other, []string{"CONFIG_PATH=" + p, "MCPGW_CONFIG=" + p}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLoad(t, tt.path, tt.environ...).Log.Level; got != tt.want {
				t.Errorf("log.level = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	file := `
server:
  listen: 0.0.0.0:9000
  public_url: https://file.example.com
identity:
  issuers:
    - issuer: https://file-idp.example.com
      audiences: [api://file]
backends:
  HR-System:
    url: http://127.0.0.1:9001/mcp
    auth_method: none
  finance:
    url: http://127.0.0.1:9002/mcp
    paths: [/finance]
    auth_method: pre-shared-key
    auth_config: {api_key: file-key}
agents:
  cursor:
    backend_access: [finance]
log:
  level: warn
`
	tests := []struct {
		name    string
		environ []string
		check   func(c *Config) (got, want any)
	}{
		{"nested key", []string{"MCPGW_SERVER__LISTEN=127.0.0.1:7000"},
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.1:7000" }},
		{"single underscore stays in the key", []string{"MCPGW_SERVER__MAX_BODY_BYTES=1024"},
			func(c *Config) (any, any) { return c.Server.MaxBodyBytes, int64(1024) }},
		{"bool", []string{"MCPGW_POLICY__ALLOW_UNSIGNED=true"},
			func(c *Config) (any, any) { return c.Policy.AllowUnsigned, true }},
		{"duration", []string{"MCPGW_POLICY__TIMEOUT=75ms"},
			func(c *Config) (any, any) { return c.Policy.Timeout, 75 * time.Millisecond }},
		{"map key with dash, case-insensitive", []string{"MCPGW_BACKENDS__HR-SYSTEM__URL=https://hr.example.com/mcp"},
			func(c *Config) (any, any) { return c.Backends["HR-System"].URL, "https://hr.example.com/mcp" }},
		{"list is comma-separated", []string{"MCPGW_BACKENDS__FINANCE__PATHS=/fin, /money"},
			func(c *Config) (any, any) { return c.Backends["finance"].Paths, []string{"/fin", "/money"} }},
		{"agent list", []string{"MCPGW_AGENTS__CURSOR__BACKEND_ACCESS=finance,HR-System"},
			func(c *Config) (any, any) { return c.Agents["cursor"].BackendAccess, []string{"finance", "HR-System"} }},
		{"auth_config entry", []string{"MCPGW_BACKENDS__FINANCE__AUTH_CONFIG__API_KEY=env-key"},
			func(c *Config) (any, any) { return c.Backends["finance"].AuthConfig["api_key"], "env-key" }},
		{"new backend from env alone", []string{"MCPGW_BACKENDS__CRM__URL=http://127.0.0.1:9003/mcp", "MCPGW_BACKENDS__CRM__AUTH_METHOD=none"},
			func(c *Config) (any, any) { return c.Backends["crm"].Paths, []string{"/crm"} }},
		{"list element by index", []string{"MCPGW_IDENTITY__ISSUERS__0__AUDIENCES=api://a,api://b"},
			func(c *Config) (any, any) { return c.Identity.Issuers[0].Audiences, []string{"api://a", "api://b"} }},
		{"list element appended", []string{"MCPGW_IDENTITY__ISSUERS__1__ISSUER=https://second.example.com", "MCPGW_IDENTITY__ISSUERS__1__AUDIENCES=api://2"},
			func(c *Config) (any, any) { return len(c.Identity.Issuers), 2 }},
		{"session key shortcut", []string{"MCPGW_SESSION_KEY=0123456789abcdef0123456789abcdef"},
			func(c *Config) (any, any) { return c.Server.SessionKey, "0123456789abcdef0123456789abcdef" }},
		{"adapter GATEWAY_PORT keeps the host", []string{"GATEWAY_PORT=8123"},
			func(c *Config) (any, any) { return c.Server.Listen, "0.0.0.0:8123" }},
		{"adapter GATEWAY_BASE_URL beats the file", []string{"GATEWAY_BASE_URL=https://adapter.example.com/"},
			func(c *Config) (any, any) { return c.Server.PublicURL, "https://adapter.example.com" }},
		{"adapter LOG_LEVEL beats the file", []string{"LOG_LEVEL=DEBUG"},
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"adapter LOG_LEVEL WARNING", []string{"LOG_LEVEL=WARNING"},
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"MCPGW beats adapter", []string{"GATEWAY_BASE_URL=https://adapter.example.com", "MCPGW_SERVER__PUBLIC_URL=https://mcpgw.example.com"},
			func(c *Config) (any, any) { return c.Server.PublicURL, "https://mcpgw.example.com" }},
		{"MCPGW listen beats GATEWAY_PORT", []string{"GATEWAY_PORT=8123", "MCPGW_SERVER__LISTEN=127.0.0.1:7000"},
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.1:7000" }},
		{"adapter issuer that the file configures too", []string{"OKTA_ISSUER=https://file-idp.example.com"},
			func(c *Config) (any, any) { return len(c.Identity.Issuers), 1 }},
		{"adapter GATEWAY_HOST keeps the port", []string{"GATEWAY_HOST=127.0.0.2"},
			func(c *Config) (any, any) { return c.Server.Listen, "127.0.0.2:9000" }},
		{"adapter PROTECTED_DISCOVERY=true is mcpgw's behaviour", []string{"PROTECTED_DISCOVERY=true"},
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"adapter LOG_LEVEL CRITICAL", []string{"LOG_LEVEL=CRITICAL"},
			func(c *Config) (any, any) { return c.Log.Level, "error" }},
		{"the test harnesses' variables are not the gateway's", []string{"TEST_POSTGRES=off", "TEST_REDIS=off"},
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"later duplicate variable wins", []string{"MCPGW_LOG__LEVEL=debug", "MCPGW_LOG__LEVEL=error"},
			func(c *Config) (any, any) { return c.Log.Level, "error" }},
	}
	path := writeConfig(t, file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.check(mustLoad(t, path, tt.environ...))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestAdapterIssuer(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []Issuer
	}{
		{"OKTA_DOMAIN alone: the org authorization server", []string{"OKTA_DOMAIN=acme.okta.com"},
			[]Issuer{{Issuer: "https://acme.okta.com", AgentAudiences: true, GroupsClaim: "groups"}}},
		{"OKTA_DOMAIN with scheme and slash", []string{"OKTA_DOMAIN=https://acme.okta.com/"},
			[]Issuer{{Issuer: "https://acme.okta.com", AgentAudiences: true, GroupsClaim: "groups"}}},
		{"org server with an API audience too", []string{"OKTA_DOMAIN=acme.okta.com", "OKTA_AUDIENCE=api://mcp"},
			[]Issuer{{Issuer: "https://acme.okta.com", Audiences: []string{"api://mcp"}, AgentAudiences: true, GroupsClaim: "groups"}}},
		{"custom AS by id", []string{"OKTA_DOMAIN=acme.okta.com", "OKTA_AUTHORIZATION_SERVER_ID=aus9xyz", "OKTA_AUDIENCE=api://mcp"},
			[]Issuer{{Issuer: "https://acme.okta.com/oauth2/aus9xyz", Audiences: []string{"api://mcp"}, GroupsClaim: "groups"}}},
		{"custom AS default", []string{"OKTA_DOMAIN=acme.okta.com", "OKTA_AUTHORIZATION_SERVER_ID=default"},
			[]Issuer{{Issuer: "https://acme.okta.com/oauth2/default", Audiences: []string{"api://default"}, GroupsClaim: "groups"}}},
		{"OKTA_ISSUER beats OKTA_DOMAIN", []string{"OKTA_DOMAIN=acme.okta.com", "OKTA_ISSUER=https://login.acme.com/oauth2/aus1"},
			[]Issuer{{Issuer: "https://login.acme.com/oauth2/aus1", Audiences: []string{"api://default"}, GroupsClaim: "groups"}}},
		{"MCPGW issuers configure the same issuer in full", []string{"OKTA_DOMAIN=acme.okta.com", "MCPGW_IDENTITY__ISSUERS__0__ISSUER=https://acme.okta.com", "MCPGW_IDENTITY__ISSUERS__0__AUDIENCES=api://x"},
			[]Issuer{{Issuer: "https://acme.okta.com", Audiences: []string{"api://x"}, GroupsClaim: "groups"}}},
		{"nothing set", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, "", tt.environ...)
			if !reflect.DeepEqual(c.Identity.Issuers, tt.want) {
				t.Errorf("issuers = %+v, want %+v", c.Identity.Issuers, tt.want)
			}
		})
	}
}

func TestDefaultPublicURLFollowsListen(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"0.0.0.0:9000", "http://localhost:9000"},
		{":9000", "http://localhost:9000"},
		{"[::]:9000", "http://localhost:9000"},
		{"[::1]:9000", "http://[::1]:9000"},
	}
	for _, tt := range tests {
		c := mustLoad(t, "", "MCPGW_SERVER__LISTEN="+tt.listen)
		if c.Server.PublicURL != tt.want {
			t.Errorf("listen %s: public_url = %q, want %q", tt.listen, c.Server.PublicURL, tt.want)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.yaml"), "no such file"},
		{"not YAML", writeConfig(t, "server: [unclosed"), "load config"},
		{"not a mapping", writeConfig(t, "- a\n- b\n"), "load config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, tt.path, tt.want)
			}
		})
	}
}

func TestValidateOnConfigBuiltInCode(t *testing.T) {
	c := &Config{
		Server:   Server{Listen: "127.0.0.1:1", PublicURL: "http://127.0.0.1:1/", MaxBodyBytes: 1, ReadTimeout: 1, IdleTimeout: 1, ShutdownTimeout: 1},
		Identity: Identity{JWKSRefreshInterval: time.Minute, ClaimsCacheMaxCost: 1},
		Backends: map[string]Backend{"crm": {URL: "http://127.0.0.1:2/mcp", AuthMethod: "Static-Key", AuthConfig: map[string]any{"api_key": "k"}}},
		Agents:   map[string]Agent{"bot": {BackendAccess: []string{"crm"}}},
		Policy:   Policy{Bundle: "policies", Timeout: time.Millisecond},
		Store:    Store{DSN: ":memory:", PollInterval: time.Second},
		Log:      Log{Level: "INFO", Format: "text"},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	b := c.Backends["crm"]
	if b.Name != "crm" || b.AuthMethod != AuthPreSharedKey || !reflect.DeepEqual(b.Paths, []string{"/crm"}) {
		t.Errorf("backend not normalised: %+v", b)
	}
	if a, ok := c.AgentByID("bot"); !ok || a.Name != "bot" {
		t.Errorf("AgentByID(bot) = %+v, %v", a, ok)
	}
	if c.Server.PublicURL != "http://127.0.0.1:1" || c.Log.Level != "info" {
		t.Errorf("public_url %q log.level %q", c.Server.PublicURL, c.Log.Level)
	}
}

// Map keys may contain koanf's own delimiter (".") or be empty; neither may
// be split, lost or panic.
func TestUnusualKeysSurvive(t *testing.T) {
	c := mustLoad(t, writeConfig(t, issuerYAML+`
backends:
  api.v2:
    url: http://127.0.0.1:1/mcp
    auth_method: none
    labels: {app.kubernetes.io/name: crm, team: sales}
agents:
  idle:
`), "MCPGW_BACKENDS__API.V2__TIMEOUT_SECONDS=5")
	b := c.Backends["api.v2"]
	if b.Labels["app.kubernetes.io/name"] != "crm" || b.Labels["team"] != "sales" {
		t.Errorf("labels = %v", b.Labels)
	}
	if !reflect.DeepEqual(b.Paths, []string{"/api.v2"}) || b.TimeoutSeconds != 5 {
		t.Errorf("api.v2 paths %v timeout %d", b.Paths, b.TimeoutSeconds)
	}
	if a, ok := c.AgentByID("idle"); !ok || !a.IsEnabled() {
		t.Errorf("agent with an empty body: %+v %v", a, ok)
	}
}

// The demo command writes this layout (cmd/mcpgw/demo.go); it must load.
func TestDemoLayoutLoads(t *testing.T) {
	c := mustLoad(t, writeConfig(t, `
server:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1:0"
identity:
  issuers:
    - issuer: "http://127.0.0.1:41234"
      audiences: ["api://mcpgw"]
policy:
  bundle: "policies"
  allow_unsigned: true
store:
  dsn: ":memory:"
log:
  level: info
  format: text
backends:
  employees:
    url: "http://127.0.0.1:41235/mcp"
    paths: [/employees]
    auth_method: none
    description: HR directory (stateless)
agents:
  claude-code:
    agent_id: claude-code
    client_id: demo-claude
    scopes: [mcp:read, mcp:write]
    backend_access: [employees]
`))
	if !c.Policy.AllowUnsigned || c.Store.DSN != ":memory:" || c.Log.Format != "text" {
		t.Errorf("allow_unsigned %v, dsn %q, log.format %q", c.Policy.AllowUnsigned, c.Store.DSN, c.Log.Format)
	}
}
