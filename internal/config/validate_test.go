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
			name: "unknown keys with suggestions, adapter extras tolerated",
			yaml: `
servr: {listen: "127.0.0.1:1"}
server: {listne: "127.0.0.1:1"}
polcy: {}
identity: {issuers: [{issuer: "https://idp.example.com", audiences: [a], audience: b}]}
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, metadata: {owner: x}, created_by: y}
agents:
  a: {description: d, metadata: {team: t}, agent_name: a}
cache: {backend_tokens: {max_size: 1}}`,
			want: []string{
				`servr: unknown key (did you mean "server"?)`,
				`server.listne: unknown key (did you mean "listen"?)`,
				`polcy: unknown key (did you mean "policy"?)`,
				`identity.issuers[0].audience: unknown key (did you mean "audiences"?)`,
			},
		},
		{
			name: "unknown key from the environment",
			yaml: issuerYAML,
			environ: []string{
				"MCPGW_SERVER__LISTN=127.0.0.1:1", "MCPGW_NOPE=1", "MCPGW_LOG____LEVEL=x",
				"MCPGW_POLICY_TIMEOUT=1s", "MCPGW_IDENTITY__ISSUERS__FIRST__ISSUER=x",
				// Extra keys inside a backend are tolerated here as in the file.
				"MCPGW_BACKENDS__HR__METADATA__OWNER=x",
			},
			want: []string{
				`MCPGW_SERVER__LISTN: server.listn: unknown key (did you mean "listen"?)`,
				"MCPGW_NOPE: nope: unknown key",
				"MCPGW_LOG____LEVEL: empty key segment",
				"MCPGW_POLICY_TIMEOUT: policy_timeout: unknown key; levels nest with a double underscore: MCPGW_POLICY__TIMEOUT",
				`MCPGW_IDENTITY__ISSUERS__FIRST__ISSUER: identity.issuers: want a list index, got "first"`,
			},
			notWant: []string{"metadata"},
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

// TestToleratedKeysLoad proves the adapter's extra keys are accepted, not
// merely reported alongside other errors.
func TestToleratedKeysLoad(t *testing.T) {
	mustLoad(t, writeConfig(t, issuerYAML+`
backends:
  hr: {url: "http://127.0.0.1:1/mcp", auth_method: none, metadata: {owner: x}, created_by: y}
agents:
  a: {description: d, metadata: {team: t}, backend_access: [hr]}
cache: {backend_tokens: {max_size: 1}}
`))
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
