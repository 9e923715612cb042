package config

import (
	"strings"
	"testing"
)

// issuerYAML is a valid identity section that cases without identity
// problems prepend.
const issuerYAML = `
identity:
  issuers:
    - issuer: https://idp.example.com
      audiences: [api://mcpgw]
`

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    []string
		notWant []string
	}{
		{
			name: "backend url",
			yaml: issuerYAML + `
backends:
  hr-system: {url: "hr.internal/mcp", auth_method: none}
  finance: {url: "ftp://finance/mcp", auth_method: none}
  crm: {url: "https://user:pw@crm.example.com/mcp", auth_method: none}`,
			want: []string{
				"backends.hr-system.url: must be an absolute http(s) URL",
				"backends.finance.url: must be an absolute http(s) URL",
				"backends.crm.url: must not contain credentials",
			},
		},
		{
			name: "cache settings",
			yaml: issuerYAML + `
policy: {decision_cache_size: -2}
exchange: {cache_max_bytes: -1, cache_max_ttl: -1s, failure_ttl: -1s, timeout: -1s}`,
			want: []string{
				"policy.decision_cache_size: must be -1 (off), 0 (default) or a size",
				"exchange.cache_max_bytes: must not be negative",
				"exchange.cache_max_ttl: must not be negative",
				"exchange.failure_ttl: must not be negative",
				"exchange.timeout: must not be negative",
			},
		},
		{
			name: "backend paths",
			yaml: issuerYAML + `
backends:
  hr-system: {url: "http://127.0.0.1:1/mcp", auth_method: none, paths: [/hr, hr2, "/a/../b", "/x?y"]}`,
			want: []string{
				`backends.hr-system.paths[1]: must start with "/"`,
				"backends.hr-system.paths[2]: must be a clean URL path",
				"backends.hr-system.paths[3]: must be a clean URL path",
			},
		},
		{
			name: "duplicate path across backends names both",
			yaml: issuerYAML + `
backends:
  hr-system: {url: "http://127.0.0.1:1/mcp", auth_method: none, paths: [/hr]}
  people: {url: "http://127.0.0.1:2/mcp", auth_method: none, paths: [/people, /hr/]}
  twice: {url: "http://127.0.0.1:3/mcp", auth_method: none, paths: [/t, /t]}`,
			want: []string{
				`backends.people.paths[1]: "/hr" is already routed to backends.hr-system`,
				`backends.twice.paths[1]: "/t" is listed twice`,
			},
		},
		{
			name: "default path collides with an explicit one",
			yaml: issuerYAML + `
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none}
  people: {url: "http://127.0.0.1:2/mcp", auth_method: none, paths: [/hr]}`,
			want: []string{`backends.people.paths[0]: "/hr" is already routed to backends.hr`},
		},
		{
			name: "auth method",
			yaml: issuerYAML + `
backends:
  x: {url: "http://127.0.0.1:1/mcp", auth_method: foo}
  y: {url: "http://127.0.0.1:2/mcp"}`,
			want: []string{
				`backends.x.auth_method: unknown "foo" (want okta-cross-app, token-exchange, client-credentials, pre-shared-key, static-key, service-account, none)`,
				"backends.y.auth_method: required (want okta-cross-app,",
			},
		},
		{
			name: "auth_config required keys",
			yaml: issuerYAML + `
backends:
  psk: {url: "http://127.0.0.1:1/mcp", auth_method: pre-shared-key, auth_config: {header_name: X-Key}}
  static: {url: "http://127.0.0.1:2/mcp", auth_method: static-key}
  sa: {url: "http://127.0.0.1:3/mcp", auth_method: service-account, auth_config: {}}
  xaa: {url: "http://127.0.0.1:4/mcp", auth_method: okta-cross-app, auth_config: {id_jag_mode: static}}
  xaa-mode: {url: "http://127.0.0.1:5/mcp", auth_method: okta-cross-app, auth_config: {id_jag_mode: magic}}`,
			want: []string{
				"backends.psk.auth_config: pre-shared-key needs api_key (or key, or api_key_file)",
				"backends.static.auth_config: pre-shared-key needs api_key",
				"backends.sa.auth_config.username: required for service-account",
				"backends.sa.auth_config.password: required for service-account",
				"backends.xaa.auth_config: okta-cross-app needs target_audience or target_authorization_server",
				`backends.xaa-mode.auth_config.id_jag_mode: unknown "magic" (want static or dynamic)`,
			},
		},
		{
			name: "agents",
			yaml: issuerYAML + `
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none}
agents:
  a: {agent_id: cursor, backend_access: [hr, nope]}
  b: {agent_id: cursor}
  cursor: {}
  c: {scopes: [mcp:read, ""]}`,
			want: []string{
				`agents.a.backend_access[1]: unknown backend "nope"`,
				`agents.b.agent_id: "cursor" is already the id of agents.a`,
				`agents.cursor.agent_id: "cursor" is already the id of agents.a`,
				"agents.c.scopes[1]: must not be empty",
			},
		},
		{
			name: "issuers",
			yaml: `
identity:
  issuers:
    - issuer: idp.example.com
      audiences: [api://x]
    - issuer: https://idp.example.com
    - issuer: https://idp.example.com
      audiences: [api://y]
      jwks_url: /keys`,
			want: []string{
				"identity.issuers[0].issuer: must be an absolute URL",
				"identity.issuers[1].audiences: at least one required",
				`identity.issuers[2].issuer: "https://idp.example.com" is already identity.issuers[1]`,
				"identity.issuers[2].jwks_url: must be an absolute http(s) URL",
			},
		},
		{
			name: "server, policy and the rest",
			yaml: `
server:
  listen: "localhost"
  public_url: "gateway.example.com"
  max_body_bytes: 0
  read_timeout: -1s
  session_key: k
  session_key_file: /k
  allowed_origins: ["https://app.example.com/path"]
  metrics_pprof: true
policy:
  timeout: 0s
  bundle: ""
store: {dsn: "", poll_interval: 0s}
identity:
  issuers: [{issuer: "https://idp.example.com", audiences: [api://mcpgw]}]
  clock_skew: -1s
  jwks_refresh_interval: 0s
  claims_cache_max_cost: 0
log: {level: loud, format: xml}
telemetry: {sample_ratio: 2}`,
			want: []string{
				"server.listen: must be host:port",
				"server.public_url: must be an absolute http(s) URL",
				"server.max_body_bytes: must be > 0",
				"server.read_timeout: must be > 0",
				"server.session_key: set session_key or session_key_file, not both",
				"server.allowed_origins[0]: must be",
				"server.metrics_pprof: needs server.metrics_listen",
				"policy.timeout: must be > 0",
				"policy.bundle: required",
				"store.dsn: required",
				"store.poll_interval: must be > 0",
				"identity.clock_skew: must be >= 0",
				"identity.jwks_refresh_interval: must be > 0",
				"identity.claims_cache_max_cost: must be > 0",
				`log.level: unknown "loud"`,
				`log.format: unknown "xml"`,
				"telemetry.sample_ratio: must be between 0 and 1",
			},
		},
		{
			name:    "public_url from env is validated too",
			yaml:    issuerYAML,
			environ: []string{"GATEWAY_BASE_URL=not a url"},
			want:    []string{"server.public_url: must be an absolute http(s) URL"},
		},
		{
			name: "unknown keys with suggestions, inside backends and agents too",
			yaml: `
servr: {listen: "127.0.0.1:1"}
server: {listne: "127.0.0.1:1"}
polcy: {}
identity: {issuers: [{issuer: "https://idp.example.com", audiences: [a], audience: b}]}
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, timout_seconds: 5, metadata: {owner: x}}
agents:
  a: {description: d, scope: [mcp:read], agent_name: a}`,
			want: []string{
				`servr: unknown key (did you mean "server"?)`,
				`server.listne: unknown key (did you mean "listen"?)`,
				`polcy: unknown key (did you mean "policy"?)`,
				`identity.issuers[0].audience: unknown key (did you mean "audiences"?)`,
				`backends.hr.timout_seconds: unknown key (did you mean "timeout_seconds"?)`,
				`backends.hr.metadata: unknown key`,
				`agents.a.scope: unknown key (did you mean "scopes"?)`,
			},
			// agent_name repeating the key is the adapter's and accepted.
			notWant: []string{"agent_name"},
		},
		{
			name: "unknown key from the environment",
			yaml: issuerYAML,
			environ: []string{
				"MCPGW_SERVER__LISTN=127.0.0.1:1", "MCPGW_NOPE=1", "MCPGW_LOG____LEVEL=x",
				"MCPGW_POLICY_TIMEOUT=1s", "MCPGW_IDENTITY__ISSUERS__FIRST__ISSUER=x",
				// Unknown keys inside a backend are refused here as in the file.
				"MCPGW_BACKENDS__HR__METADATA__OWNER=x",
			},
			want: []string{
				`MCPGW_SERVER__LISTN: server.listn: unknown key (did you mean "listen"?)`,
				"MCPGW_NOPE: nope: unknown key",
				"MCPGW_LOG____LEVEL: empty key segment",
				"MCPGW_POLICY_TIMEOUT: policy_timeout: unknown key; levels nest with a double underscore: MCPGW_POLICY__TIMEOUT",
				`MCPGW_IDENTITY__ISSUERS__FIRST__ISSUER: identity.issuers: want a list index, got "first"`,
				"MCPGW_BACKENDS__HR__METADATA__OWNER: backends.hr.metadata: unknown key",
			},
		},
		{
			name:    "env list index out of range",
			yaml:    issuerYAML,
			environ: []string{"MCPGW_IDENTITY__ISSUERS__5__ISSUER=https://x.example.com"},
			want:    []string{`MCPGW_IDENTITY__ISSUERS__5__ISSUER: list index "5" out of range (the list has 1 items)`},
		},
		{
			name:    "bad GATEWAY_PORT",
			yaml:    issuerYAML,
			environ: []string{"GATEWAY_PORT=http"},
			want:    []string{"GATEWAY_PORT: must be a port number between 1 and 65535"},
		},
		{
			name: "type errors use key paths",
			yaml: issuerYAML + `
server: {max_body_bytes: lots}
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, timeout_seconds: soon, paths: {a: b}}
policy: {timeout: 50}`,
			want: []string{
				"server.max_body_bytes: cannot parse",
				"backends.hr.timeout_seconds: cannot parse",
				"backends.hr.paths[0]: expected type 'string'",
				`policy.timeout: want a duration with a unit, such as "30s" or "50ms"`,
			},
			// The field that failed to decode is not reported again as zero.
			notWant: []string{"server.max_body_bytes: must be > 0"},
		},
		{
			name: "tool integrity mode",
			yaml: issuerYAML + `
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, tool_integrity: strict}
  ok: {url: "http://127.0.0.1:2/mcp", auth_method: none, tool_integrity: " Enforce "}`,
			want:    []string{`backends.hr.tool_integrity: "strict": want one of off, observe, enforce, trust_on_first_use`},
			notWant: []string{"backends.ok.tool_integrity"},
		},
		{
			name: "bad names",
			yaml: issuerYAML + `
backends:
  "hr system": {url: "http://127.0.0.1:1/mcp", auth_method: none, paths: [/hr]}
agents:
  "-x": {}`,
			want: []string{
				"backends.hr system: name must be",
				"agents.-x: name must be",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml), tt.environ)
			if err == nil {
				t.Fatalf("Load succeeded, want errors %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("unexpected %q in:\n%s", w, msg)
				}
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	_, err := Load(writeConfig(t, `
servr: {}
identity:
  issuers: [{issuer: nope}]
backends:
  hr: {url: nope, auth_method: foo, paths: [hr]}
agents:
  a: {backend_access: [missing]}
policy: {timeout: 0s}
`), []string{"MCPGW_SERVER__MAX_BODY_BYTES=0"})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	msg := err.Error()
	for _, w := range []string{
		"servr: unknown key",
		"identity.issuers[0].issuer:",
		"identity.issuers[0].audiences:",
		"backends.hr.url:",
		"backends.hr.auth_method:",
		"backends.hr.paths[0]:",
		"agents.a.backend_access[0]:",
		"policy.timeout:",
		"server.max_body_bytes:",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q", w)
		}
	}
	if !strings.Contains(msg, "9 problem(s)") {
		t.Errorf("want a count of 9 problems in %q", strings.SplitN(msg, "\n", 2)[0])
	}
}

func TestOktaCrossAppDynamicNeedsNoTarget(t *testing.T) {
	mustLoad(t, writeConfig(t, issuerYAML+`
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: okta-cross-app, auth_config: {id_jag_mode: dynamic}}
`))
}

// TestIdentityBindingKeys covers the keys that say whose tokens an agent
// takes and what a token may look like: agents' issuer and
// allow_clientless_tokens, issuers' token_types, server.max_header_bytes.
func TestIdentityBindingKeys(t *testing.T) {
	const twoIssuers = `
identity:
  issuers:
    - issuer: https://a.example.com
      audiences: [api://mcpgw]
    - issuer: https://b.example.com
      audiences: [api://mcpgw]
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none}
`
	tests := []struct {
		name string
		yaml string
		// want are the errors Load must report; none: Load must succeed.
		want []string
		// check inspects a successful load.
		check func(*testing.T, *Config)
	}{
		{
			name: "defaults",
			yaml: issuerYAML,
			check: func(t *testing.T, c *Config) {
				if c.Server.MaxHeaderBytes != DefaultMaxHeaderBytes || c.Server.HeaderBytes() != 32768 {
					t.Errorf("max_header_bytes = %d (HeaderBytes %d), want 32768", c.Server.MaxHeaderBytes, c.Server.HeaderBytes())
				}
			},
		},
		{
			name: "agents bound to one of two issuers",
			yaml: `
identity:
  issuers:
    - issuer: https://a.example.com
      audiences: [api://mcpgw]
      token_types: [at+jwt, application/jwt, ""]
    - issuer: https://b.example.com
      audiences: [api://mcpgw]
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none}
agents:
  cursor: {client_id: c1, issuer: https://a.example.com, backend_access: [hr]}
  bot: {client_id: c1, agent_id: bot, issuer: https://b.example.com}
  kiosk: {allow_clientless_tokens: true, issuer: https://b.example.com}
  open: {}
server: {max_header_bytes: 65536}
`,
			check: func(t *testing.T, c *Config) {
				if a := c.Agents["kiosk"]; !a.AllowClientlessTokens || a.Issuer != "https://b.example.com" {
					t.Errorf("kiosk = %+v", a)
				}
				if got := c.Identity.Issuers[0].TokenTypes; len(got) != 3 || got[2] != "" {
					t.Errorf("token_types = %q", got)
				}
				if c.Server.HeaderBytes() != 65536 {
					t.Errorf("HeaderBytes = %d", c.Server.HeaderBytes())
				}
			},
		},
		{
			name: "client_id without issuer when two are trusted",
			yaml: twoIssuers + `
agents:
  cursor: {client_id: c1}
`,
			want: []string{`agents.cursor.issuer: required with client_id when several identity.issuers are configured`},
		},
		{
			name: "issuer not configured",
			yaml: issuerYAML + `
agents:
  cursor: {client_id: c1, issuer: https://evil.example.com}
`,
			want: []string{`agents.cursor.issuer: "https://evil.example.com" is not one of identity.issuers`},
		},
		{
			name: "clientless tokens on an agent with a client",
			yaml: issuerYAML + `
agents:
  cursor: {client_id: c1, allow_clientless_tokens: true}
`,
			want: []string{`agents.cursor.allow_clientless_tokens: only for an agent without client_id`},
		},
		{
			name: "token_types and max_header_bytes out of range",
			yaml: `
identity:
  issuers:
    - issuer: https://idp.example.com
      audiences: [api://mcpgw]
      token_types: [at+jwt, "JWT; v=1", " jwt", a/b/c]
server: {max_header_bytes: 1024}
`,
			want: []string{
				`identity.issuers[0].token_types[1]: "JWT; v=1" is not a media type`,
				`identity.issuers[0].token_types[2]: " jwt" is not a media type`,
				`identity.issuers[0].token_types[3]: "a/b/c" is not a media type`,
				"server.max_header_bytes: must be between 4096 and 1048576",
			},
		},
		{
			name: "max_header_bytes too large",
			yaml: issuerYAML + `
server: {max_header_bytes: 4194304}
`,
			want: []string{"server.max_header_bytes: must be between 4096 and 1048576"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.yaml), nil)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}
